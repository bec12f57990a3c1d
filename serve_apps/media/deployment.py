"""The media router as a Ray Serve deployment, and the app builders.

``MediaRouter`` holds the state that must live in one place per replica: provider
clients, cooldowns, background polling tasks. Routes (:mod:`serve_apps.media.api`)
call it through a DeploymentHandle. Catalog errors raised here reach the caller with
their own class (they pickle), so the gateway maps them to HTTP statuses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from catalog import schemas as s
from serve_apps.auth import Principal
from serve_apps.media.catalog_port import ActorCatalog
from serve_apps.media.config import MediaConfig
from serve_apps.media.schemas import (
    EditRequest,
    EditResult,
    ImageGenerationRequest,
    ImageResult,
    UpscaleRequest,
    VideoRequest,
    VideoResult,
)
from serve_apps.media.service import MediaService

DEPLOYMENT_NAME = "MediaRouter"


class MediaRouter:
    """Serve deployment class over :class:`MediaService` (method names match it).

    Args:
        config: settings; None reads :meth:`MediaConfig.from_env` in the replica.
        catalog: catalog port; None uses the cluster's catalog actor.
    """

    def __init__(self, config: MediaConfig | None = None, catalog: Any = None):
        self._config = config
        self._catalog = catalog
        self._service: MediaService | None = None
        self._lock = asyncio.Lock()

    async def service(self) -> MediaService:
        """The service, built on first use (and unfinished jobs resumed)."""
        async with self._lock:
            if self._service is None:
                service = MediaService(self._config or MediaConfig.from_env(),
                                       self._catalog or ActorCatalog())
                await service.resume()
                self._service = service
        return self._service

    async def generate_image(self, req: ImageGenerationRequest, who: Principal) -> ImageResult:
        return await (await self.service()).generate_image(req, who)

    async def get_image(self, image_id: str, who: Principal) -> ImageResult:
        return await (await self.service()).get_image(image_id, who)

    async def upscale_image(self, image_id: str, req: UpscaleRequest,
                            who: Principal) -> EditResult:
        return await (await self.service()).upscale_image(image_id, req, who)

    async def edit_image(self, image_id: str, req: EditRequest, who: Principal) -> EditResult:
        return await (await self.service()).edit_image(image_id, req, who)

    async def create_video(self, req: VideoRequest, who: Principal) -> VideoResult:
        return await (await self.service()).create_video(req, who)

    async def get_video(self, video_id: str, who: Principal) -> VideoResult:
        return await (await self.service()).get_video(video_id, who)

    async def list_predictions(self, who: Principal, **filters: Any) -> s.Page[s.Prediction]:
        return await (await self.service()).list_predictions(who, **filters)

    async def get_prediction(self, prediction_id: str, who: Principal) -> s.Prediction:
        return await (await self.service()).get_prediction(prediction_id, who)

    async def cancel_prediction(self, prediction_id: str, who: Principal) -> s.Prediction:
        return await (await self.service()).cancel_prediction(prediction_id, who)

    async def handle_webhook(self, provider: str, headers: dict[str, str],
                             body: bytes) -> s.Prediction:
        return await (await self.service()).handle_webhook(provider, headers, body)

    async def wait(self, prediction_id: str, timeout_s: float) -> s.Prediction:
        return await (await self.service()).wait(prediction_id, timeout_s)

    async def health(self) -> dict[str, Any]:
        return (await self.service()).health()

    async def __del__(self) -> None:  # Serve awaits this on replica shutdown
        if self._service is not None:
            await self._service.close()


def _actor_options(runtime_env: dict | None) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": 0}  # it waits on I/O
    if runtime_env:
        options["runtime_env"] = runtime_env
    return options


def media_deployment(num_replicas: int = 1, max_ongoing_requests: int = 1000,
                     runtime_env: dict | None = None):
    """``MediaRouter`` as a Serve deployment (no CPU reserved)."""
    return serve.deployment(
        MediaRouter, name=DEPLOYMENT_NAME, num_replicas=num_replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=_actor_options(runtime_env),
    )


def build_media_app(config: MediaConfig | None = None, *, http: bool = True,
                    num_replicas: int = 1, runtime_env: dict | None = None) -> Application:
    """A standalone Serve application for the media routes.

    With ``http`` the app's ingress is a FastAPI deployment serving
    :func:`serve_apps.media.api.build_media_router` (error shape and auth included) and
    calling ``MediaRouter`` in the same app; without, the app is ``MediaRouter`` alone,
    for a gateway that includes the router itself (deploy it as its own app and pass
    that app's name to ``build_media_router(app_name=...)``).

    ``config`` None: each replica reads :meth:`MediaConfig.from_env`. ``runtime_env``
    applies to every replica (e.g. ``{"env_vars": {"GARDEN_ADMIN_KEY": ...}}``).
    """
    router = media_deployment(num_replicas=num_replicas, runtime_env=runtime_env).bind(config)
    if not http:
        return router
    return _ingress_deployment(runtime_env).bind(router)


def _ingress_deployment(runtime_env: dict | None = None):
    from serve_apps.errors import install_error_handlers
    from serve_apps.media.api import build_media_router

    app = FastAPI(title="Model Garden media", version="1")
    install_error_handlers(app)
    app.include_router(build_media_router())

    @serve.deployment(name="MediaIngress", ray_actor_options=_actor_options(runtime_env),
                      max_ongoing_requests=1000)
    @serve.ingress(app)
    class MediaIngress:
        """HTTP face of the standalone media app; holds the handle only to keep the
        ``MediaRouter`` deployment in the app graph."""

        def __init__(self, router: Any):
            self.router = router

    return MediaIngress
