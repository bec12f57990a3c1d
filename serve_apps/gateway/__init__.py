"""The REST gateway: FastAPI ingress on Ray Serve (datasets, models, training jobs, carbon,
health, system, API keys).

``build_gateway_app(GatewayConfig(...))`` returns the Serve application;
``create_app(config)`` the bare FastAPI app it serves.
"""

from serve_apps.gateway.app import create_app
from serve_apps.gateway.builder import build_gateway_app
from serve_apps.gateway.config import GatewayConfig

__all__ = ["GatewayConfig", "build_gateway_app", "create_app"]
