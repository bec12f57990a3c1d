"""``garden usage``: requests, tokens, cost, energy and emissions, grouped, or every
record as CSV."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from garden.cli.output import api, api_errors, console, print_table


def _usage_row(label: Any, row: Any) -> list[Any]:
    """A usage table row: energy in Wh and emissions in g (a request's share is small)."""
    cost = None if row.cost_usd is None else f"{row.cost_usd:.4f}"
    return [label, row.requests, row.prompt_tokens, row.completion_tokens, cost,
            f"{row.energy_kwh * 1000:.4g}", f"{row.emissions_kg * 1000:.4g}"]


def usage(
    ctx: typer.Context,
    by: str = typer.Option("model", "--by", help="user, key, model, adapter, day or month."),
    since: Annotated[datetime | None, typer.Option(help="Start (inclusive, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="End (exclusive, UTC).")] = None,
    user: str | None = typer.Option(None, help="Admins: one user's usage only."),
    csv: str | None = typer.Option(None, "--csv", metavar="FILE",
                                   help="Write every record as CSV to FILE ('-': stdout)."),
) -> None:
    """Requests, prompt and completion tokens, cost (USD, where known), energy (Wh) and
    emissions (g CO2eq), grouped, with the totals; a user sees their own usage, an admin
    everyone's. --csv writes every record (kWh, kg) instead."""
    client = api(ctx)
    with api_errors():
        if csv is not None:
            dest = sys.stdout if csv == "-" else Path(csv)
            size = client.usage.export_csv(dest, since=since, until=until, user_id=user)
            if csv != "-":
                console.print(f"wrote {csv} ({size} bytes)")
            return
        summary = client.usage.summary(by, since=since, until=until,  # type: ignore[arg-type]
                                       user_id=user)
    print_table(f"usage by {summary.group_by}",
                [by, "requests", "prompt", "completion", "USD", "Wh", "g CO2eq"],
                [_usage_row(r.key, r) for r in summary.rows],
                footer=_usage_row("total", summary.total))
