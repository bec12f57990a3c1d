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
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from ray import serve
from ray.serve.handle import DeploymentHandle

from catalog import schemas as s
from catalog.errors import PayloadTooLarge
from catalog.schemas.common import NAME_LENGTH
from serve_apps.auth import Principal, current_principal
from serve_apps.media.schemas import (
    IMAGE_REF,
    EditRequest,
    EditResult,
    ImageGenerationRequest,
    ImageResult,
    ProviderStatus,
    UpscaleRequest,
    VideoRequest,
    VideoResult,
)
from serve_apps.remote import unwrapped

#: The Serve deployment name of the media service.
DEPLOYMENT_NAME = "MediaRouter"

Who = Annotated[Principal, Depends(current_principal)]
RowId = Annotated[str, Path(min_length=1, max_length=64)]
ImageRef = Annotated[str, Path(min_length=1, max_length=64, description=IMAGE_REF)]
PageSize = Annotated[int, Query(ge=1, le=1000, description="Rows per page.")]
#: Upload limit checked before the bytes cross to the media service (which checks its own
#: ``MediaConfig.max_upload_bytes`` again from the bytes).
MAX_UPLOAD_BYTES = 20 * 2**20


def list_filters(
    status: s.PredictionStatus | None = None,
    provider: str | None = Query(None, max_length=50),
    tag: str | None = Query(None, max_length=100),
    project: str | None = Query(None, max_length=200),
    favorite: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page_size: PageSize = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The filters of the image and video lists: the status of the prediction that makes
    the row, provider, a tag name, a project (id or slug), favourites only, creation
    time bounds, and the page."""
    return {"status": status, "provider": provider, "tag": tag, "project": project,
            "favorite": favorite, "created_after": created_after,
            "created_before": created_before, "page_size": page_size, "cursor": cursor}


ListFilters = Annotated[dict[str, Any], Depends(list_filters)]


def _bytes(data: bytes, mime: str) -> Response:
    return Response(content=data, media_type=mime,
                    headers={"Cache-Control": "private, max-age=3600"})


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
    async def upscale_image(image_id: ImageRef, body: UpscaleRequest, who: Who) -> EditResult:
        return await unwrapped(media().upscale_image.remote(image_id, body, who))

    @router.post("/images/{image_id}/edits", status_code=201, response_model=EditResult)
    async def edit_image(image_id: ImageRef, body: EditRequest, who: Who) -> EditResult:
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

    # ------------------------------------------------------------- the library

    @router.get("/images", response_model=s.Page[s.Image])
    async def list_images(who: Who, filters: ListFilters) -> s.Page[s.Image]:
        """The caller's images (admins: everyone's), newest first; deleted ones left out."""
        return await unwrapped(media().list_images.remote(who, **filters))

    @router.patch("/images/{image_id}", response_model=s.Image)
    async def update_image(image_id: RowId, body: s.MediaUpdate, who: Who) -> s.Image:
        """Change title, caption, alt_text, is_public or is_favorite (owner only)."""
        return await unwrapped(media().update_image.remote(image_id, body, who))

    @router.delete("/images/{image_id}", status_code=204)
    async def delete_image(image_id: RowId, who: Who) -> Response:
        """Soft delete: gone from lists and gets; files purged after the retention."""
        await unwrapped(media().delete_media.remote("images", image_id, who))
        return Response(status_code=204)

    @router.get("/images/{image_id}/content", response_class=Response,
                responses={200: {"content": {"image/*": {}}}})
    async def image_content(image_id: RowId, who: Who,
                            index: int = Query(0, ge=0, le=9)) -> Response:
        """The ``index``-th stored file of an image."""
        data, mime = await unwrapped(media().content.remote("images", image_id, who,
                                                            index=index))
        return _bytes(data, mime)

    @router.get("/edits", response_model=s.Page[s.ImageEdit])
    async def list_edits(
        who: Who, image_id: str | None = Query(None, max_length=64, description=IMAGE_REF),
        kind: s.EditKind | None = None, page_size: PageSize = 50, cursor: str | None = None,
    ) -> s.Page[s.ImageEdit]:
        """The caller's edits and upscales, newest first."""
        return await unwrapped(media().list_edits.remote(
            who, image_id=image_id, kind=kind, page_size=page_size, cursor=cursor))

    @router.get("/edits/{edit_id}", response_model=EditResult)
    async def get_edit(edit_id: RowId, who: Who) -> EditResult:
        return await unwrapped(media().get_edit.remote(edit_id, who))

    @router.delete("/edits/{edit_id}", status_code=204)
    async def delete_edit(edit_id: RowId, who: Who) -> Response:
        await unwrapped(media().delete_media.remote("image_edits", edit_id, who))
        return Response(status_code=204)

    @router.get("/edits/{edit_id}/content", response_class=Response,
                responses={200: {"content": {"image/*": {}}}})
    async def edit_content(edit_id: RowId, who: Who,
                           index: int = Query(0, ge=0, le=9)) -> Response:
        data, mime = await unwrapped(media().content.remote("image_edits", edit_id, who,
                                                            index=index))
        return _bytes(data, mime)

    @router.get("/videos", response_model=s.Page[s.Video])
    async def list_videos(who: Who, filters: ListFilters) -> s.Page[s.Video]:
        """The caller's videos (admins: everyone's), newest first; deleted ones left out."""
        return await unwrapped(media().list_videos.remote(who, **filters))

    @router.patch("/videos/{video_id}", response_model=s.Video)
    async def update_video(video_id: RowId, body: s.MediaUpdate, who: Who) -> s.Video:
        return await unwrapped(media().update_video.remote(video_id, body, who))

    @router.delete("/videos/{video_id}", status_code=204)
    async def delete_video(video_id: RowId, who: Who) -> Response:
        await unwrapped(media().delete_media.remote("videos", video_id, who))
        return Response(status_code=204)

    @router.get("/videos/{video_id}/content", response_class=Response,
                responses={200: {"content": {"video/*": {}, "image/*": {}}}})
    async def video_content(video_id: RowId, who: Who, thumbnail: bool = False,
                            index: int = Query(0, ge=0, le=9)) -> Response:
        """The video file (or its thumbnail, where the provider gave one)."""
        data, mime = await unwrapped(media().content.remote(
            "videos", video_id, who, index=index, thumbnail=thumbnail))
        return _bytes(data, mime)

    @router.post("/source-images", status_code=201, response_model=s.SourceImage)
    async def upload_source_image(
        who: Who,
        file: Annotated[UploadFile, File(description="PNG, JPEG, WebP or GIF, 20 MiB at most.")],
        title: Annotated[str | None, Form(max_length=NAME_LENGTH)] = None,
        description: Annotated[str | None, Form(max_length=10000)] = None,
        purpose: Annotated[Literal["training", "reference", "inspiration"],
                           Form()] = "reference",
        is_public: Annotated[bool, Form()] = False,
    ) -> s.SourceImage:
        """Upload an image of your own (multipart field ``file``): its type and size are
        read from the bytes (422 naming ``file`` otherwise) and a thumbnail is made. It
        can then be the source of edits, upscales and image-to-video (``src_...``)."""
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"upload larger than {MAX_UPLOAD_BYTES} bytes", field="file")
        meta = s.SourceImageMeta(title=title, description=description, purpose=purpose,
                                 is_public=is_public)
        return await unwrapped(media().upload_source_image.remote(data, meta, who))

    @router.get("/source-images", response_model=s.Page[s.SourceImage])
    async def list_source_images(
        who: Who,
        purpose: Literal["training", "reference", "inspiration"] | None = None,
        tag: str | None = Query(None, max_length=100),
        page_size: PageSize = 50, cursor: str | None = None,
    ) -> s.Page[s.SourceImage]:
        return await unwrapped(media().list_source_images.remote(
            who, purpose=purpose, tag=tag, page_size=page_size, cursor=cursor))

    @router.get("/source-images/{source_id}", response_model=s.SourceImage)
    async def get_source_image(source_id: RowId, who: Who) -> s.SourceImage:
        return await unwrapped(media().get_source_image.remote(source_id, who))

    @router.patch("/source-images/{source_id}", response_model=s.SourceImage)
    async def update_source_image(source_id: RowId, body: s.SourceImageUpdate,
                                  who: Who) -> s.SourceImage:
        return await unwrapped(media().update_source_image.remote(source_id, body, who))

    @router.delete("/source-images/{source_id}", status_code=204)
    async def delete_source_image(source_id: RowId, who: Who) -> Response:
        await unwrapped(media().delete_media.remote("source_images", source_id, who))
        return Response(status_code=204)

    @router.get("/source-images/{source_id}/content", response_class=Response,
                responses={200: {"content": {"image/*": {}}}})
    async def source_image_content(source_id: RowId, who: Who,
                                   thumbnail: bool = False) -> Response:
        """The uploaded file, or its WebP thumbnail (256 px on the longer side)."""
        data, mime = await unwrapped(media().content.remote(
            "source_images", source_id, who, thumbnail=thumbnail))
        return _bytes(data, mime)

    @router.get("/providers", response_model=list[ProviderStatus])
    async def list_providers(who: Who) -> Any:
        """Each provider's models (name, version, capabilities, active) and health."""
        return await unwrapped(media().list_providers.remote())

    @router.post("/webhooks/{provider}", response_model=s.Prediction)
    async def webhook(provider: Annotated[str, Path(max_length=50)],
                      request: Request) -> s.Prediction:
        """Provider callback; authenticated by its signature (bad signature: 401)."""
        body = await request.body()
        return await unwrapped(
            media().handle_webhook.remote(provider, dict(request.headers), body))

    return router
