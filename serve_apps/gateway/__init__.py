"""The REST gateway: FastAPI ingress on Ray Serve (datasets, models, training jobs, carbon,
health, system, API keys).

``build_gateway_app(GatewayConfig(...), work)`` returns the Serve application, where
``work`` implements :class:`serve_apps.gateway.work.Work` (the cluster passes
``cluster.work.RayWork``); ``create_app(config, work)`` the bare FastAPI app it serves.
"""

from serve_apps.gateway.app import create_app
from serve_apps.gateway.builder import build_gateway_app
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.work import Work

__all__ = ["GatewayConfig", "Work", "build_gateway_app", "create_app"]
