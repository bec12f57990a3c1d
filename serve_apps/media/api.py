"""The media routes: one module-level router under ``/v1`` (images, edits, videos,
source images, predictions, providers, webhooks), mounted by the gateway and by the
standalone media app (:mod:`serve_apps.media.builder`).

Every route but the webhook takes the caller from
:func:`serve_apps.auth.current_principal`; webhooks are authenticated by their
signature. Routes only validate and call the ``MediaRouter`` deployment
(:class:`serve_apps.media.service.MediaService`) through the DeploymentHandle that
:func:`serve_apps.media.deps.media_service` finds from the app's state. Errors travel
as :class:`catalog.errors.CatalogError` and are rendered by :mod:`serve_apps.errors` in
the one error shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from ray.serve.handle import DeploymentHandle

from catalog import schemas as s
from catalog.errors import PayloadTooLarge
from catalog.schemas.common import NAME_LENGTH
from serve_apps.auth import Principal
from serve_apps.media.deps import ImageRef, ListFilters, Media, PageSize, RowId, Who
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

#: Upload limit checked before the bytes cross to the media service (which checks its own
#: ``MediaConfig.max_upload_bytes`` again from the bytes).
MAX_UPLOAD_BYTES = 20 * 2**20

router = APIRouter(prefix="/v1", tags=["media"])


async def _deleted(media: DeploymentHandle, kind: str, row_id: str,
                   who: Principal) -> Response:
    """Soft-delete the row ``row_id`` of table ``kind``; the empty 204 answer."""
    await unwrapped(media.delete_media.remote(kind, row_id, who))
    return Response(status_code=204)


async def _file(media: DeploymentHandle, kind: str, row_id: str, who: Principal,
                **which: Any) -> Response:
    """A stored file of the row ``row_id`` of table ``kind`` (``which``: ``index``,
    ``thumbnail``), kept by the browser for an hour."""
    data, mime = await unwrapped(media.content.remote(kind, row_id, who, **which))
    return Response(content=data, media_type=mime,
                    headers={"Cache-Control": "private, max-age=3600"})


@router.post("/images/generations", status_code=201, response_model=ImageResult)
async def generate_image(body: ImageGenerationRequest, who: Who, media: Media) -> ImageResult:
    """Generate an image (provider by request or policy; styles applied)."""
    return await unwrapped(media.generate_image.remote(body, who))


@router.get("/images/{image_id}", response_model=ImageResult)
async def get_image(image_id: RowId, who: Who, media: Media) -> ImageResult:
    return await unwrapped(media.get_image.remote(image_id, who))


@router.post("/images/{image_id}/upscale", status_code=201, response_model=EditResult)
async def upscale_image(image_id: ImageRef, body: UpscaleRequest, who: Who,
                        media: Media) -> EditResult:
    return await unwrapped(media.upscale_image.remote(image_id, body, who))


@router.post("/images/{image_id}/edits", status_code=201, response_model=EditResult)
async def edit_image(image_id: ImageRef, body: EditRequest, who: Who,
                     media: Media) -> EditResult:
    return await unwrapped(media.edit_image.remote(image_id, body, who))


@router.post("/videos", status_code=201, response_model=VideoResult)
async def create_video(body: VideoRequest, who: Who, media: Media) -> VideoResult:
    return await unwrapped(media.create_video.remote(body, who))


@router.get("/videos/{video_id}", response_model=VideoResult)
async def get_video(video_id: RowId, who: Who, media: Media) -> VideoResult:
    return await unwrapped(media.get_video.remote(video_id, who))


@router.get("/predictions", response_model=s.Page[s.Prediction])
async def list_predictions(
    who: Who, media: Media,
    status: s.PredictionStatus | None = None,
    provider: str | None = Query(None, max_length=50),
    modality: s.Modality | None = None,
    page_size: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
) -> s.Page[s.Prediction]:
    return await unwrapped(media.list_predictions.remote(
        who, status=status, provider=provider, modality=modality, page_size=page_size,
        cursor=cursor))


@router.get("/predictions/{prediction_id}", response_model=s.Prediction)
async def get_prediction(prediction_id: RowId, who: Who, media: Media) -> s.Prediction:
    """One prediction (any modality); 404 when unknown, 403 when another user's."""
    return await unwrapped(media.get_prediction.remote(prediction_id, who))


@router.post("/predictions/{prediction_id}/cancel", response_model=s.Prediction)
async def cancel_prediction(prediction_id: RowId, who: Who, media: Media) -> s.Prediction:
    return await unwrapped(media.cancel_prediction.remote(prediction_id, who))


# ------------------------------------------------------------------------- the library

@router.get("/images", response_model=s.Page[s.Image])
async def list_images(who: Who, media: Media, filters: ListFilters) -> s.Page[s.Image]:
    """The caller's images (admins: everyone's), newest first; deleted ones left out."""
    return await unwrapped(media.list_images.remote(who, **filters))


@router.patch("/images/{image_id}", response_model=s.Image)
async def update_image(image_id: RowId, body: s.MediaUpdate, who: Who,
                       media: Media) -> s.Image:
    """Change title, caption, alt_text, is_public or is_favorite (owner only)."""
    return await unwrapped(media.update_image.remote(image_id, body, who))


@router.delete("/images/{image_id}", status_code=204)
async def delete_image(image_id: RowId, who: Who, media: Media) -> Response:
    """Soft delete: gone from lists and gets; files purged after the retention."""
    return await _deleted(media, "images", image_id, who)


@router.get("/images/{image_id}/content", response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
async def image_content(image_id: RowId, who: Who, media: Media,
                        index: int = Query(0, ge=0, le=9)) -> Response:
    """The ``index``-th stored file of an image."""
    return await _file(media, "images", image_id, who, index=index)


@router.get("/edits", response_model=s.Page[s.ImageEdit])
async def list_edits(
    who: Who, media: Media,
    image_id: str | None = Query(None, max_length=64, description=IMAGE_REF),
    kind: s.EditKind | None = None, page_size: PageSize = 50, cursor: str | None = None,
) -> s.Page[s.ImageEdit]:
    """The caller's edits and upscales, newest first."""
    return await unwrapped(media.list_edits.remote(
        who, image_id=image_id, kind=kind, page_size=page_size, cursor=cursor))


@router.get("/edits/{edit_id}", response_model=EditResult)
async def get_edit(edit_id: RowId, who: Who, media: Media) -> EditResult:
    return await unwrapped(media.get_edit.remote(edit_id, who))


@router.delete("/edits/{edit_id}", status_code=204)
async def delete_edit(edit_id: RowId, who: Who, media: Media) -> Response:
    return await _deleted(media, "image_edits", edit_id, who)


@router.get("/edits/{edit_id}/content", response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
async def edit_content(edit_id: RowId, who: Who, media: Media,
                       index: int = Query(0, ge=0, le=9)) -> Response:
    return await _file(media, "image_edits", edit_id, who, index=index)


@router.get("/videos", response_model=s.Page[s.Video])
async def list_videos(who: Who, media: Media, filters: ListFilters) -> s.Page[s.Video]:
    """The caller's videos (admins: everyone's), newest first; deleted ones left out."""
    return await unwrapped(media.list_videos.remote(who, **filters))


@router.patch("/videos/{video_id}", response_model=s.Video)
async def update_video(video_id: RowId, body: s.MediaUpdate, who: Who,
                       media: Media) -> s.Video:
    return await unwrapped(media.update_video.remote(video_id, body, who))


@router.delete("/videos/{video_id}", status_code=204)
async def delete_video(video_id: RowId, who: Who, media: Media) -> Response:
    return await _deleted(media, "videos", video_id, who)


@router.get("/videos/{video_id}/content", response_class=Response,
            responses={200: {"content": {"video/*": {}, "image/*": {}}}})
async def video_content(video_id: RowId, who: Who, media: Media, thumbnail: bool = False,
                        index: int = Query(0, ge=0, le=9)) -> Response:
    """The video file (or its thumbnail, where the provider gave one)."""
    return await _file(media, "videos", video_id, who, index=index, thumbnail=thumbnail)


@router.post("/source-images", status_code=201, response_model=s.SourceImage)
async def upload_source_image(
    who: Who, media: Media,
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
    return await unwrapped(media.upload_source_image.remote(data, meta, who))


@router.get("/source-images", response_model=s.Page[s.SourceImage])
async def list_source_images(
    who: Who, media: Media,
    purpose: Literal["training", "reference", "inspiration"] | None = None,
    tag: str | None = Query(None, max_length=100),
    page_size: PageSize = 50, cursor: str | None = None,
) -> s.Page[s.SourceImage]:
    return await unwrapped(media.list_source_images.remote(
        who, purpose=purpose, tag=tag, page_size=page_size, cursor=cursor))


@router.get("/source-images/{source_id}", response_model=s.SourceImage)
async def get_source_image(source_id: RowId, who: Who, media: Media) -> s.SourceImage:
    return await unwrapped(media.get_source_image.remote(source_id, who))


@router.patch("/source-images/{source_id}", response_model=s.SourceImage)
async def update_source_image(source_id: RowId, body: s.SourceImageUpdate,
                              who: Who, media: Media) -> s.SourceImage:
    return await unwrapped(media.update_source_image.remote(source_id, body, who))


@router.delete("/source-images/{source_id}", status_code=204)
async def delete_source_image(source_id: RowId, who: Who, media: Media) -> Response:
    return await _deleted(media, "source_images", source_id, who)


@router.get("/source-images/{source_id}/content", response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
async def source_image_content(source_id: RowId, who: Who, media: Media,
                               thumbnail: bool = False) -> Response:
    """The uploaded file, or its WebP thumbnail (256 px on the longer side)."""
    return await _file(media, "source_images", source_id, who, thumbnail=thumbnail)


@router.get("/providers", response_model=list[ProviderStatus])
async def list_providers(who: Who, media: Media) -> Any:
    """Each provider's models (name, version, capabilities, active) and health."""
    return await unwrapped(media.list_providers.remote())


@router.post("/webhooks/{provider}", response_model=s.Prediction)
async def webhook(provider: Annotated[str, Path(max_length=50)], request: Request,
                  media: Media) -> s.Prediction:
    """Provider callback; authenticated by its signature (bad signature: 401)."""
    body = await request.body()
    return await unwrapped(
        media.handle_webhook.remote(provider, dict(request.headers), body))
