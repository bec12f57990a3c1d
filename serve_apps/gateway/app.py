"""The gateway's FastAPI application: routers, the one error shape, request metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from serve_apps.errors import ERROR_STATUSES, error_responses, install_error_handlers
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.deps import app_catalog, bearer_scheme
from serve_apps.gateway.reconcile import reconcile_forever
from serve_apps.gateway.routes import (
    batches,
    carbon,
    datasets,
    evaluations,
    keys,
    library,
    models,
    styles,
    system,
    training,
    usage,
)
from serve_apps.gateway.work import Work
from serve_apps.observability import record_request

API_VERSION = "v1"

#: Routes that answer no error in the error shape: /health needs no key and reports its
#: own 503 (a HealthReport).
NO_ERRORS = frozenset({("GET", "/health")})
#: Routes authenticated otherwise than by an API key: the providers' webhooks (signed).
UNKEYED = NO_ERRORS | {("POST", "/v1/webhooks/{provider}")}
#: Routes that read the request body themselves (dataset uploads): they can also answer
#: 413 (too large).
UPLOADS = frozenset({("POST", "/v1/datasets")})


def _routes_of(route: BaseRoute) -> set[tuple[str, str]]:
    return {(m, route.path) for m in route.methods} if isinstance(route, APIRoute) else set()


def error_statuses(route: BaseRoute) -> tuple[int, ...]:
    """The error statuses ``route`` can answer in the error shape: those of
    :data:`serve_apps.errors.ERROR_RESPONSES` (key, owner, row, conflict, validation,
    rate, dependency), plus 400 where it parses a body (a body that is not JSON or not
    UTF-8, a broken multipart upload) and 413 for uploads; none for :data:`NO_ERRORS`."""
    routes = _routes_of(route)
    if not routes or routes & NO_ERRORS:
        return ()
    statuses = list(ERROR_STATUSES)
    if routes & UPLOADS or getattr(route, "body_field", None) is not None:
        statuses.append(400)
    if routes & UPLOADS:
        statuses.append(413)
    return tuple(sorted(statuses))


def _include_documented(app: FastAPI, router: APIRouter, *, declare_bearer: bool = False) -> None:
    """Mount ``router`` with each route's :func:`error_statuses` documented (the one
    error schema, through ``include_router(responses=...)``, so no route repeats it).

    ``declare_bearer`` adds the bearer scheme to the OpenAPI ``security`` of the routes
    that take a key (for routers, like the media one, that authenticate without
    declaring it; the scheme's own check is a no-op, the routes' dependency
    authenticates).
    """
    # consecutive routes of one kind go in together: the routes keep their order, which
    # decides which of two matching paths answers
    runs: list[tuple[tuple[tuple[int, ...], bool], APIRouter]] = []
    for route in router.routes:
        kind = (error_statuses(route), not _routes_of(route) & UNKEYED)
        if not runs or runs[-1][0] != kind:
            runs.append((kind, APIRouter()))
        runs[-1][1].routes.append(route)
    for (statuses, keyed), part in runs:
        dependencies = [Security(bearer_scheme)] if declare_bearer and keyed else []
        app.include_router(part, responses=error_responses(*statuses),
                           dependencies=dependencies)


def create_app(config: GatewayConfig | None = None, work: Work | None = None) -> FastAPI:
    """Build the gateway app. OpenAPI at ``/openapi.json``, docs at ``/docs``.

    ``work`` runs model imports, dataset registrations and job submissions (see
    :mod:`serve_apps.gateway.work`); without it those routes answer 503. With it, and a
    ``config.reconcile_period_s`` above 0, the app's lifespan (which Serve runs in each
    replica) runs the reconciler (:mod:`serve_apps.gateway.reconcile`) in the background
    until shutdown.

    Every route but ``/health`` needs ``Authorization: Bearer <key>``. Each request is
    counted in the Ray metrics ``garden_requests_total`` / ``garden_request_latency_seconds``
    with ``kind="api"`` and ``model="gateway"``.
    """
    config = config or GatewayConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if work is None or not config.reconcile_period_s:
            yield
            return
        task = asyncio.create_task(reconcile_forever(lambda: app_catalog(app), work, config))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(
        title="Model Garden API", version=API_VERSION,
        description="Datasets, models, LoRA training jobs, carbon accounting and media "
        "generation on Ray. OpenAI-compatible inference lives under /openai/v1.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.work = work
    install_error_handlers(app)
    for module in (system, datasets, models, evaluations, training, batches, carbon, usage,
                   keys, styles, library):
        _include_documented(app, module.router)
    _include_documented(app, training.tokens_router)
    if app.state.config.media_app:
        from serve_apps.media.api import router as media_routes
        from serve_apps.media.deps import use_media_app

        use_media_app(app, app.state.config.media_app)
        _include_documented(app, media_routes, declare_bearer=True)

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
