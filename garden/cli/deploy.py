"""``garden deploy kuberay``: write the KubeRay manifests of a cluster
(:mod:`cluster.kuberay.manifests`), with the web console that :func:`garden.demo.console_app`
describes among the Serve apps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.text import Text

from garden.cli.output import api_errors, console

deploy_app = typer.Typer(help="Deploy on other platforms (KubeRay on Kubernetes).",
                         no_args_is_help=True)


@deploy_app.command("kuberay")
def kuberay(
    out: Annotated[Path, typer.Option(help="Folder the manifests are written to.")] = Path(
        "kuberay"),
    config: Annotated[Path | None, typer.Option(
        help="KubeRay settings (YAML): any field of cluster.kuberay.KubeRaySettings (name, "
        "namespace, image, head, gpu_workers, serve, redis_address, train_job, ...).")] = None,
    name: str | None = typer.Option(None, help="RayService name (overrides the file)."),
    namespace: str | None = typer.Option(None, help="Kubernetes namespace."),
    image: str | None = typer.Option(None, help="Image of every Pod (Ray with this "
                                     "project installed)."),
    console_app: bool = typer.Option(True, "--console/--no-console",
                                     help="Deploy the web console at /ui."),
) -> None:
    """Write a RayService (the Serve apps and their cluster), RayJob templates for
    training and batch jobs, their ConfigMaps, an example of the Secrets they read and a
    Grafana dashboard; apply them with kubectl (README, "Running on Kubernetes")."""
    from cluster.deploy import proxy_url
    from cluster.kuberay.manifests import (
        KubeRaySettings,
        SettingsError,
        load_settings,
        write_manifests,
    )
    from garden.demo import console_app as console_spec

    try:
        settings = load_settings(config) if config else KubeRaySettings()
        overrides = {k: v for k, v in (("name", name), ("namespace", namespace),
                                       ("image", image)) if v is not None}
        if overrides:
            settings = KubeRaySettings.model_validate(
                settings.model_dump(exclude_unset=True) | overrides)
    except (SettingsError, ValidationError) as exc:
        console.print(Text.assemble(("error", "red"), f": {exc}"), soft_wrap=True)
        raise typer.Exit(1) from exc
    with api_errors():
        apps = []
        if console_app and settings.console:
            serve = settings.serve
            apps.append(console_spec(proxy_url(serve.http_host, serve.http_port),
                                     serve.gateway.dashboard_url))
        written = write_manifests(settings, out, apps)
    for path in written:
        console.print(Text(f"wrote {path}"))
    console.print(f"next: fill in and apply {out / 'secret.example.yaml'}, then "
                  f"kubectl apply -f {out / 'configmap.yaml'} -f {out / 'rayservice.yaml'}")
