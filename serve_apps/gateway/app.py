"""The gateway's FastAPI application: routers, the one error shape, request metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

from serve_apps.errors import install_error_handlers
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.routes import carbon, datasets, keys, models, system, training
from serve_apps.gateway.work import Work
from serve_apps.observability import record_request

API_VERSION = "v1"


def create_app(config: GatewayConfig | None = None, work: Work | None = None) -> FastAPI:
    """Build the gateway app. OpenAPI at ``/openapi.json``, docs at ``/docs``.

    ``work`` runs model imports, dataset registrations and job submissions (see
    :mod:`serve_apps.gateway.work`); without it those routes answer 503.

    Every route but ``/health`` needs ``Authorization: Bearer <key>``. Each request is
    counted in the Ray metrics ``garden_requests_total`` / ``garden_request_latency_seconds``
    with ``kind="api"`` and ``model="gateway"``.
    """
    app = FastAPI(
        title="Model Garden API", version=API_VERSION,
        description="Datasets, models, LoRA training jobs, carbon accounting and media "
        "generation on Ray. OpenAI-compatible inference lives under /openai/v1.",
    )
    app.state.config = config or GatewayConfig()
    app.state.work = work
    install_error_handlers(app)
    for module in (system, datasets, models, training, carbon, keys):
        app.include_router(module.router)
    if app.state.config.media_app:
        from serve_apps.media.api import build_media_router

        app.include_router(build_media_router(app_name=app.state.config.media_app))

    @app.middleware("http")
    async def _metrics(request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            record_request("gateway", kind="api", status=status,
                           latency_s=time.perf_counter() - start)

    return app
