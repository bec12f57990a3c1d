"""The local cluster's commands: ``garden up``, ``garden demo``, ``garden down`` and
``garden status`` (:mod:`cluster.local`; ``up`` hands it the web console that
:func:`garden.demo.console_app` builds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cluster import local
from garden.cli.options import (
    AGENT_PORT,
    DASHBOARD_PORT,
    HTTP_PORT,
    RAY_PORT,
    DashboardPortOpt,
    HttpPortOpt,
    RayPortOpt,
)
from garden.cli.output import api_errors, console
from garden.demo import DemoSettings, console_app, run_demo


def up(
    ray_port: RayPortOpt = RAY_PORT,
    dashboard_port: DashboardPortOpt = DASHBOARD_PORT,
    http_port: HttpPortOpt = HTTP_PORT,
    agent_port: int = typer.Option(AGENT_PORT, help="Dashboard agent HTTP port (job API); "
                                   "0 picks a free one."),
    num_cpus: int | None = typer.Option(None, help="Logical CPUs of the head."),
    llm_model: str | None = typer.Option(None, help="Catalog base model to serve."),
    serve_config: Annotated[Path | None, typer.Option(
        help="Cluster config (YAML): `llm:` LLM apps by name, one per base model, "
        "each an LLMAppConfig (model, route_prefix, engine_args, deployment with "
        "autoscaling_config).", show_default=False)] = None,
    redis: str | None = typer.Option(
        None, help="External Redis (host:port) for GCS fault tolerance: the head's GCS "
        "keeps its state there and comes back with it after a restart.",
        show_default=False),
    redis_password: str | None = typer.Option(None, envvar="REDIS_PASSWORD",
                                              show_default=False, help="Redis' password."),
    admin_key: str | None = typer.Option(None, envvar="GARDEN_ADMIN_KEY",
                                         show_default=False, help="Bootstrap admin key."),
    media: bool = typer.Option(True, help="Deploy the image/video media router."),
    timeout: float = typer.Option(300.0, help="Seconds each step may take (ray start, "
                                  "the catalog, the HTTP proxy)."),
) -> None:
    """Start a local Ray head with the dashboard, the catalog and the Serve apps.

    A port already taken stops it at once, naming the holder and the flag to change; a
    failed start keeps Ray's logs under $GARDEN_HOME/logs/ and quotes their last lines."""
    llm_apps = None
    if serve_config is not None:
        from cluster.serve_config import ClusterConfigError, load_llm_apps

        try:
            llm_apps = load_llm_apps(serve_config)
        except ClusterConfigError as exc:
            console.print(Text.assemble(("error", "red"), f": {exc}"), soft_wrap=True)
            raise typer.Exit(1) from exc
    with api_errors(), console.status("starting Ray, the catalog and the apps...") as spinner:
        cluster = local.up(ray_port=ray_port, dashboard_port=dashboard_port,
                           http_port=http_port, agent_port=agent_port, num_cpus=num_cpus,
                           llm_model=llm_model, llm_apps=llm_apps, redis_address=redis,
                           redis_password=redis_password, admin_key=admin_key, media=media,
                           apps=[console_app],
                           timeout_s=timeout, progress=lambda s: spinner.update(f"{s}..."))
    console.print(f"API        {cluster.api_url}  (OpenAPI: {cluster.api_url}/openapi.json)")
    console.print(f"OpenAI     {cluster.openai_base_url}")
    console.print(f"Dashboard  {cluster.dashboard_url}")
    if cluster.console_url:
        console.print(f"Console    {cluster.console_url}  (sign in with an API key)")
    console.print(f"Ray        {cluster.address}")


def demo(
    steps: int = typer.Option(30, help="Training steps."),
    workers: int = typer.Option(2, help="Ray Train workers."),
    questions: int = typer.Option(5, help="Held-out questions to ask both models."),
    evaluate: int = typer.Option(32, help="Held-out prompts both models answer in the "
                                 "evaluation the training job ends with (ROUGE-L, BLEU, "
                                 "exact match)."),
    http_port: HttpPortOpt = HTTP_PORT,
    ray_port: RayPortOpt = RAY_PORT,
    dashboard_port: DashboardPortOpt = DASHBOARD_PORT,
    agent_port: int = typer.Option(AGENT_PORT, help="Dashboard agent port (job API)."),
) -> None:
    """The main job: train a LoRA on chatterbot, score its answers against the base
    model's, serve it, compare them side by side."""
    settings = DemoSettings(steps=steps, workers=workers, questions=questions,
                            evaluate_n=evaluate, http_port=http_port, ray_port=ray_port,
                            dashboard_port=dashboard_port, agent_port=agent_port)
    with api_errors():
        run_demo(settings, console)


def down() -> None:
    """Stop the local cluster started by ``garden up`` (only its own processes)."""
    stopped = local.down()
    console.print(f"stopped {stopped} process(es)" if stopped else "no local cluster recorded")


def status() -> None:
    """The local cluster's URLs, processes and health."""
    info = local.status()
    if info["cluster"] is None:
        console.print("no local cluster recorded (garden up)")
        raise typer.Exit(1)
    for key in ("api_url", "openai_base_url", "dashboard_url", "console_url", "address"):
        if info["cluster"].get(key):
            console.print(f"{key:16} {info['cluster'][key]}")
    console.print(f"{'processes':16} {info['processes']}")
    health = info["health"] or {}
    console.print(f"{'health':16} {health.get('status')}")
    for name, comp in (health.get("components") or {}).items():
        console.print(f"  {name:14} {comp['status']} {comp.get('detail') or ''}")
