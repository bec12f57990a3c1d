"""The media service as a Ray Serve deployment, and the app builders.

:class:`~serve_apps.media.service.MediaService` is deployed as it is (the habit of Ray
Serve LLM's ``LLMServer``): it holds what must live in one place per replica
(provider clients, cooldowns, background polling tasks), and the routes
(:mod:`serve_apps.media.api`) call its methods through a DeploymentHandle. Catalog
errors raised there reach the caller with their own class (they pickle), so the
gateway maps them to HTTP statuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_apps.errors import install_error_handlers
from serve_apps.media.api import router as media_routes
from serve_apps.media.config import MediaConfig
from serve_apps.media.deps import DEPLOYMENT_NAME
from serve_apps.media.service import MediaService


def _actor_options(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": 0}  # it waits on I/O
    if runtime_env:
        options["runtime_env"] = runtime_env
    return options


def build_media_app(config: MediaConfig | None = None, *, http: bool = True,
                    num_replicas: int = 1, max_ongoing_requests: int = 1000,
                    runtime_env: dict[str, Any] | None = None) -> Application:
    """A Serve application of the media service (no CPU reserved: it waits on I/O).

    With ``http`` the app's ingress is a FastAPI deployment serving
    :data:`serve_apps.media.api.router` (error shape and auth included) and calling the
    ``MediaRouter`` deployment in the same app; without, the app is the ``MediaRouter``
    deployment alone, for a gateway that mounts the routes itself (pointed at this app's
    name with :func:`serve_apps.media.deps.use_media_app`).

    ``config`` None: each replica reads :meth:`MediaConfig.from_env`. ``runtime_env``
    applies to every replica (e.g. ``{"env_vars": {"GARDEN_ADMIN_KEY": ...}}``). Each
    replica resumes tracking the unfinished predictions when it starts.
    """
    router = serve.deployment(
        MediaService, name=DEPLOYMENT_NAME, num_replicas=num_replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=_actor_options(runtime_env),
    ).bind(config, resume=True)
    if not http:
        return router
    return _ingress_deployment(runtime_env).bind(router)


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point (``import_path: serve_apps.media.builder:app_builder``):
    :func:`build_media_app` with each replica reading :meth:`MediaConfig.from_env` and
    ``args`` of ``http`` (bool, default False: the gateway mounts the routes),
    ``num_replicas`` (default 1) and ``max_ongoing_requests`` (default 1000).

    Raises:
        TypeError: ``args`` holds another key.
    """
    allowed = {"http", "num_replicas", "max_ongoing_requests"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise TypeError(f"media app args: unknown {', '.join(unknown)} "
                        f"(allowed: {', '.join(sorted(allowed))})")
    return build_media_app(None, **{"http": False, **args})


def _ingress_deployment(runtime_env: dict[str, Any] | None = None) -> serve.Deployment:
    app = FastAPI(title="Model Garden media", version="1")
    install_error_handlers(app)
    app.include_router(media_routes)

    @serve.deployment(name="MediaIngress", ray_actor_options=_actor_options(runtime_env),
                      max_ongoing_requests=1000)
    @serve.ingress(app)
    class MediaIngress:
        """HTTP face of the standalone media app; holds the handle only to keep the
        ``MediaRouter`` deployment in the app graph."""

        def __init__(self, router: DeploymentHandle):
            self.router = router

    return MediaIngress
