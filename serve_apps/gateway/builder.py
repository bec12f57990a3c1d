"""Ray Serve deployment of the gateway: a plain ingress class plus :func:`build_gateway_app`."""

from __future__ import annotations

import os

from ray import serve
from ray.serve import Application

from serve_apps.gateway.config import FORWARDED_ENV, GatewayConfig


class Gateway:
    """Serve ingress replica; its ASGI app is built on the replica (never pickled)."""

    def __init__(self, config: GatewayConfig):
        self.config = config

    def __serve_build_asgi_app__(self):
        from serve_apps.gateway.app import create_app

        return create_app(self.config)


def replica_env(config: GatewayConfig) -> dict[str, str]:
    """The replicas' environment: the deployer's forwarded variables, then
    ``config.env_vars``."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.update(config.env_vars)
    return env


def build_gateway_app(config: GatewayConfig | None = None) -> Application:
    """The gateway as a Serve application; run it with
    ``serve.run(app, name="gateway", route_prefix="/")``.

    Replicas get ``config.env_vars`` plus the deployer's ``GARDEN_HOME``,
    ``GARDEN_DATABASE_URL`` and ``RAY_AUTH_MODE`` when set and not overridden, so the
    storage root matches the deployer's. The bootstrap ``GARDEN_ADMIN_KEY`` is not
    forwarded (the dashboard shows runtime_envs): replicas read the one their node was
    started with, unless ``config.env_vars`` names one.
    """
    config = config or GatewayConfig()
    env = replica_env(config)
    deployment = serve.deployment(
        serve.ingress()(Gateway),
        name="Gateway",
        num_replicas=config.num_replicas,
        ray_actor_options={"num_cpus": config.num_cpus, "runtime_env": {"env_vars": env}},
    )
    return deployment.bind(config)
