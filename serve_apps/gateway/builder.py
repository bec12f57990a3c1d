"""Ray Serve deployment of the gateway: a plain ingress class plus :func:`build_gateway_app`."""

from __future__ import annotations

import os
import sys

from ray import serve
from ray.serve import Application

from serve_apps.gateway.config import FORWARDED_ENV, GatewayConfig
from serve_apps.gateway.work import Work

#: Serve's rolling-update surge of the gateway, in percent of its replicas: each new
#: replica starts, and is ready, before an old one stops (at most twice the replicas
#: during an upgrade; a gateway replica reserves 0.1 CPU).
UPGRADE_SURGE_PERCENT = 100
#: Seconds a stopping gateway replica keeps serving what it holds: requests, and the job
#: event streams, which then end (a client reconnects with ``Last-Event-ID``).
GRACEFUL_SHUTDOWN_S = 30.0

#: The gateway app's one deployment (a Serve config's ``deployments`` override names it).
DEPLOYMENT_NAME = "Gateway"


class Gateway:
    """Serve ingress replica; its ASGI app is built on the replica (never pickled).

    ``work`` runs the heavy operations (model import, dataset registration, job
    submission) outside the replica; see :mod:`serve_apps.gateway.work`.
    """

    def __init__(self, config: GatewayConfig, work: Work):
        self.config = config
        self.work = work

    def __serve_build_asgi_app__(self):
        from serve_apps.gateway.app import create_app

        return create_app(self.config, self.work)

    def loaded_modules(self) -> list[str]:
        """Diagnostics: the sorted top-level names of the modules this replica has
        imported (``sys.modules``), through a handle call (not an HTTP route); the tests
        check that torch and transformers are absent."""
        return sorted({name.partition(".")[0] for name in sys.modules})


def replica_env(config: GatewayConfig) -> dict[str, str]:
    """The replicas' environment: the deployer's forwarded variables, then
    ``config.env_vars``."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.update(config.env_vars)
    return env


def build_gateway_app(config: GatewayConfig | None, work: Work) -> Application:
    """The gateway as a Serve application; run it with
    ``serve.run(app, name="gateway", route_prefix="/")``.

    ``work`` (pickled into each replica) runs model imports, dataset registrations and
    job submissions; the cluster passes :class:`cluster.work.RayWork`.

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
        name=DEPLOYMENT_NAME,
        num_replicas=config.num_replicas,
        ray_actor_options={"num_cpus": config.num_cpus, "runtime_env": {"env_vars": env}},
        # an upgrade starts each new replica before its old one stops (Serve's surge),
        # and an old replica finishes what it holds: 0 failed requests under load
        max_surge_percent=UPGRADE_SURGE_PERCENT,
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
    )
    return deployment.bind(config, work)
