"""Serve config entry points of the applications whose builder needs the cluster's side:
the gateway, whose heavy work runs as Ray tasks (:class:`cluster.work.RayWork`), which
``serve_apps`` may not import. A Serve config names it as ``cluster.apps:gateway_app``
(:mod:`cluster.serve_config`)."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from cluster.work import RayWork
from serve_apps.gateway import GatewayConfig, build_gateway_app


def gateway_app(args: dict[str, Any]) -> Application:
    """The gateway application of ``args`` (a :class:`GatewayConfig` mapping), with
    :class:`RayWork` submitting jobs through ``dashboard_url``'s job API.

    Raises:
        pydantic.ValidationError: ``args`` is not a valid GatewayConfig.
    """
    config = GatewayConfig.model_validate(args)
    return build_gateway_app(config, RayWork(dashboard_url=config.dashboard_url))
