"""The console as a Ray Serve application, mounted beside the gateway at ``/ui``.

Ray's ``ray.serve.gradio_integrations.GradioServer`` builds the page with
``gradio.routes.App.create_app``, which Gradio 6 no longer completes (the page answers
500: its config is never set); this ingress builds it with ``gr.mount_gradio_app``
instead, on the replica, as the gateway builds its app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application

if TYPE_CHECKING:  # Gradio's import: on the replica only (garden.demo reads the names)
    from garden.console.common import ConsoleConfig

#: Where the console is mounted on the Serve HTTP proxy.
ROUTE_PREFIX = "/ui"
#: Its builder, as a Serve config names it (:func:`app_builder`).
CONSOLE_BUILDER = "garden.console.serve:app_builder"
#: Its one deployment, the CPUs each replica reserves, and the replicas' environment
#: (Gradio's analytics off: nothing outside the cluster is called).
DEPLOYMENT_NAME = "Console"
NUM_CPUS = 0.1
REPLICA_ENV = {"GRADIO_ANALYTICS_ENABLED": "False"}


class Console:
    """Serve ingress replica of the console; its ASGI app is built on the replica."""

    def __init__(self, config: ConsoleConfig):
        self.config = config

    def __serve_build_asgi_app__(self) -> Any:
        from garden.console.app import create_app

        return create_app(self.config)


def build_console_app(config: ConsoleConfig, *, num_cpus: float = NUM_CPUS,
                      env_vars: dict[str, str] | None = None) -> Application:
    """The console as a Serve application; run it with
    ``serve.run(app, name="console", route_prefix=ROUTE_PREFIX)``.

    ``env_vars``: the replica's environment (runtime_env); Gradio's analytics are off
    there whatever is given (nothing outside the cluster is called)."""
    env = {**REPLICA_ENV, **(env_vars or {})}
    deployment = serve.deployment(
        serve.ingress()(Console), name=DEPLOYMENT_NAME, num_replicas=1,
        ray_actor_options={"num_cpus": num_cpus, "runtime_env": {"env_vars": env}})
    return deployment.bind(config)


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point (``import_path: garden.console.serve:app_builder``):
    the console of ``args``, a :class:`ConsoleConfig` mapping (``api_url``: the gateway as
    a replica reaches it, ``dashboard_url``: the Ray dashboard linked from the page).

    Raises:
        pydantic.ValidationError: ``args`` is not a valid ConsoleConfig.
    """
    from garden.console.common import ConsoleConfig

    return build_console_app(ConsoleConfig.model_validate(args))
