"""The ``garden`` command line (typer + rich), built on :class:`garden.Client` and
:mod:`cluster.local`: this module builds the app and registers each module's commands.

``garden demo``, ``garden up | down | status`` (:mod:`garden.cli.cluster`), ``garden
datasets`` (:mod:`~garden.cli.datasets`), ``garden models`` and ``garden chat``
(:mod:`~garden.cli.models`), ``garden train`` and ``garden jobs``
(:mod:`~garden.cli.training`), ``garden batch`` (:mod:`~garden.cli.batches`), ``garden
carbon``, ``garden usage``, ``garden keys``, ``garden styles | themes``
(:mod:`~garden.cli.styles`), ``garden tags | projects`` (:mod:`~garden.cli.library`) and
``garden uploads | images | videos | providers`` (:mod:`~garden.cli.media`) and ``garden
deploy kuberay`` (:mod:`~garden.cli.deploy`); what they
share is :mod:`garden.cli.output`. The API URL and key come from
``--api-url``/``--api-key`` or ``GARDEN_API_URL``/``GARDEN_API_KEY``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from garden.cli import (
    batches,
    carbon,
    cluster,
    datasets,
    deploy,
    keys,
    library,
    media,
    models,
    styles,
    training,
    usage,
)

app = typer.Typer(help="Model Garden: fine-tune, serve and track models on Ray.",
                  no_args_is_help=True)


@app.callback()
def main(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option(envvar="GARDEN_API_URL",
                                                help="Gateway URL.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="GARDEN_API_KEY", show_default=False,
                                                help="API key (Bearer).")] = None,
) -> None:
    ctx.obj = {"api_url": api_url, "api_key": api_key}  # garden.cli.output.api


for command in (cluster.up, cluster.demo, cluster.down, cluster.status, training.train,
                models.chat, carbon.carbon, usage.usage):
    app.command()(command)
for group, name in ((datasets.datasets_app, "datasets"), (models.models_app, "models"),
                    (media.images_app, "images"), (media.videos_app, "videos"),
                    (media.uploads_app, "uploads"), (styles.styles_app, "styles"),
                    (styles.themes_app, "themes"), (library.tags_app, "tags"),
                    (library.projects_app, "projects"), (media.providers_app, "providers"),
                    (keys.keys_app, "keys"), (training.jobs_app, "jobs"),
                    (batches.batch_app, "batch"), (deploy.deploy_app, "deploy")):
    app.add_typer(group, name=name)
