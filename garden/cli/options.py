"""The typer options several ``garden`` command groups take: the local cluster's ports,
with the one set of defaults that ``garden up`` and ``garden demo`` offer, the event-log
lines that ``jobs show`` and ``batch show`` print, and the description and visibility of
the media studio's rows.
"""

from __future__ import annotations

from typing import Annotated

import typer

#: Ports of a local cluster: Ray's GCS (6379 is Redis on these machines), the Ray
#: dashboard, Serve's HTTP proxy (API and OpenAI) and the dashboard agent (job API).
RAY_PORT = 6380
DASHBOARD_PORT = 8265
HTTP_PORT = 8000
AGENT_PORT = 52365

RayPortOpt = Annotated[int, typer.Option(help="Ray GCS port (6379 is Redis here).")]
DashboardPortOpt = Annotated[int, typer.Option(help="Ray dashboard port.")]
HttpPortOpt = Annotated[int, typer.Option(help="Serve HTTP port (API and OpenAI).")]

#: How many of a training job's or batch's last event-log lines ``show`` prints.
EventsOpt = Annotated[int, typer.Option(help="Last event-log lines shown.")]

DescriptionOpt = Annotated[str | None, typer.Option(help="Free text.")]
PublicOpt = Annotated[bool | None, typer.Option("--public/--private",
                                                help="Visible to every user or not.")]
