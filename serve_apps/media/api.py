"""The media routes as a FastAPI router for the gateway (or the standalone app).

Every route but the webhook takes the caller from
:func:`serve_apps.auth.current_principal`; webhooks are authenticated by their
signature. Routes only validate and call the ``MediaRouter`` deployment
(:class:`serve_apps.media.service.MediaService`, deployed by
:mod:`serve_apps.media.builder`) through a DeploymentHandle looked up by name on first
use. Errors travel as :class:`catalog.errors.CatalogError` and are rendered by
:mod:`serve_apps.errors` in the one error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

from catalog import schemas as s
from serve_apps.auth import Principal, current_principal
from serve_apps.media.schemas import (
    EditRequest,
    EditResult,
    ImageGenerationRequest,
    ImageResult,
    UpscaleRequest,
    VideoRequest,
    VideoResult,
)
from serve_apps.remote import unwrapped

#: The Serve deployment name of the media service.
DEPLOYMENT_NAME = "MediaRouter"

Who = Annotated[Principal, Depends(current_principal)]
RowId = Annotated[str, Path(min_length=1, max_length=64)]


def build_media_router(
    *, deployment_name: str = DEPLOYMENT_NAME, app_name: str | None = None,
    get_handle: Callable[[], DeploymentHandle] | None = None,
) -> APIRouter:
    """Routes under ``/v1`` (images, videos, predictions, webhooks).

    Args:
        deployment_name: the media service's deployment name.
        app_name: its Serve application; None means the app serving the route (the
            media deployment is bound in the same app as the ingress).
        get_handle: returns the handle directly (overrides the two names).
    """
    router = APIRouter(prefix="/v1", tags=["media"])
    cached: dict[str, DeploymentHandle] = {}

    def media() -> DeploymentHandle:
        """The media service's handle; call its methods as ``media().name.remote(...)``."""
        if "h" not in cached:
            cached["h"] = get_handle() if get_handle else serve.get_deployment_handle(
                deployment_name, app_name=app_name)
        return cached["h"]

    @router.post("/images/generations", status_code=201, response_model=ImageResult)
    async def generate_image(body: ImageGenerationRequest, who: Who) -> ImageResult:
        """Generate an image (provider by request or policy; styles applied)."""
        return await unwrapped(media().generate_image.remote(body, who))

    @router.get("/images/{image_id}", response_model=ImageResult)
    async def get_image(image_id: RowId, who: Who) -> ImageResult:
        return await unwrapped(media().get_image.remote(image_id, who))

    @router.post("/images/{image_id}/upscale", status_code=201, response_model=EditResult)
    async def upscale_image(image_id: RowId, body: UpscaleRequest, who: Who) -> EditResult:
        return await unwrapped(media().upscale_image.remote(image_id, body, who))

    @router.post("/images/{image_id}/edits", status_code=201, response_model=EditResult)
    async def edit_image(image_id: RowId, body: EditRequest, who: Who) -> EditResult:
        return await unwrapped(media().edit_image.remote(image_id, body, who))

    @router.post("/videos", status_code=201, response_model=VideoResult)
    async def create_video(body: VideoRequest, who: Who) -> VideoResult:
        return await unwrapped(media().create_video.remote(body, who))

    @router.get("/videos/{video_id}", response_model=VideoResult)
    async def get_video(video_id: RowId, who: Who) -> VideoResult:
        return await unwrapped(media().get_video.remote(video_id, who))

    @router.get("/predictions", response_model=s.Page[s.Prediction])
    async def list_predictions(
        who: Who,
        status: s.PredictionStatus | None = None,
        provider: str | None = Query(None, max_length=50),
        modality: s.Modality | None = None,
        page_size: int = Query(50, ge=1, le=1000),
        cursor: str | None = None,
    ) -> s.Page[s.Prediction]:
        return await unwrapped(media().list_predictions.remote(
            who, status=status, provider=provider, modality=modality, page_size=page_size,
            cursor=cursor))

    @router.get("/predictions/{prediction_id}", response_model=s.Prediction)
    async def get_prediction(prediction_id: RowId, who: Who) -> s.Prediction:
        """One prediction (any modality); 404 when unknown, 403 when another user's."""
        return await unwrapped(media().get_prediction.remote(prediction_id, who))

    @router.post("/predictions/{prediction_id}/cancel", response_model=s.Prediction)
    async def cancel_prediction(prediction_id: RowId, who: Who) -> s.Prediction:
        return await unwrapped(media().cancel_prediction.remote(prediction_id, who))

    @router.post("/webhooks/{provider}", response_model=s.Prediction)
    async def webhook(provider: Annotated[str, Path(max_length=50)],
                      request: Request) -> s.Prediction:
        """Provider callback; authenticated by its signature (bad signature: 401)."""
        body = await request.body()
        return await unwrapped(
            media().handle_webhook.remote(provider, dict(request.headers), body))

    return router
