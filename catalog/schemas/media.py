"""Media: provider predictions (seed 000's ReplicatePrediction), generated images, uploaded
source images, edits and upscales (seed 001), and videos (seed 003)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from catalog.schemas.common import (
    CAPTION_LENGTH,
    ID_LENGTH,
    NAME_LENGTH,
    PROVIDER_LENGTH,
    CreatedAt,
    Row,
    Schema,
    UpdatedAt,
    UserId,
)

#: Width:height ratios such as ``16:9`` or ``1280:720`` (``String(16)`` columns).
RATIO_PATTERN, RATIO_LENGTH = r"^\d+:\d+$", 16


class PredictionStatus(enum.StrEnum):
    """Replicate's prediction statuses, used for every provider.

    Source: https://replicate.com/docs/reference/http#predictions.get
    Terminal: succeeded, failed, canceled (Replicate's spelling).
    """

    starting = "starting"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class Modality(enum.StrEnum):
    """What a model produces."""

    text = "text"
    image = "image"
    video = "video"


class EditKind(enum.StrEnum):
    """``edit``: inpaint, search-and-replace, variation; ``upscale``: a larger copy."""

    edit = "edit"
    upscale = "upscale"


class MediaMeta(Schema):
    """What a user writes about an image or a video (seed 001 ``Image``: title, caption,
    alt_text, is_public, is_favorite)."""

    title: str | None = Field(None, max_length=NAME_LENGTH, description="A short title.")
    caption: str | None = Field(None, max_length=CAPTION_LENGTH, description="A caption.")
    alt_text: str | None = Field(None, max_length=CAPTION_LENGTH,
                                 description="Text alternative for screen readers.")
    is_public: bool = Field(False, description="Visible to every user.")
    is_favorite: bool = Field(False, description="Marked as a favourite by its owner.")


class MediaUpdate(Schema):
    """A change to an image's or a video's metadata (null: unchanged)."""

    title: str | None = Field(None, max_length=NAME_LENGTH)
    caption: str | None = Field(None, max_length=CAPTION_LENGTH)
    alt_text: str | None = Field(None, max_length=CAPTION_LENGTH)
    is_public: bool | None = None
    is_favorite: bool | None = None


class Lifecycle(Schema):
    """Soft delete and retention: a deleted row is hidden (its files kept until the
    retention purge); a purged row's files are gone from storage."""

    tags: list[str] = Field(description="Tag names, sorted.")
    deleted_at: datetime | None = Field(description="When it was deleted (UTC); null: live.")
    purged_at: datetime | None = Field(
        description="When its files were removed from storage by the retention purge (UTC)."
    )


class StoredFile(Schema):
    """An output copied into storage before the provider's URL expired."""

    path: str = Field(description="Where the copy is (local path or storage URI).")
    mime_type: str = Field(description="MIME type, e.g. image/png, video/mp4.")
    size_bytes: int = Field(ge=0, description="File size, bytes.")
    width: int | None = Field(None, description="Width, pixels (images and videos).")
    height: int | None = Field(None, description="Height, pixels (images and videos).")
    source_url: str | None = Field(None, description="The provider URL it was copied from.")


# --------------------------------------------------------------------------- predictions


class PredictionCreate(Schema):
    """A request sent to a provider, recorded before it is sent."""

    provider: str = Field(min_length=1, max_length=PROVIDER_LENGTH,
                          description="replicate, stability, openai or runway.")
    model: str = Field(min_length=1, max_length=NAME_LENGTH,
                       description="The provider's model name.")
    operation: str = Field(min_length=1, max_length=PROVIDER_LENGTH,
                           description="generate, upscale, ...")
    modality: Modality = Field(description="What it produces.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The request's parameters, as the caller sent them."
    )
    provider_prediction_id: str | None = Field(
        None, max_length=200, description="The provider's id of the prediction, once it has one."
    )
    user_id: UserId = None


class Prediction(PredictionCreate, Row):
    """A prediction and its lifecycle (``status`` follows the provider)."""

    status: PredictionStatus = Field(description="Lifecycle status, Replicate's names.")
    output: Any | None = Field(description="The provider's output (JSON), e.g. output URLs.")
    files: list[StoredFile] = Field(description="Outputs copied into storage.")
    error_message: str | None = Field(description="Why it failed.")
    created_at: CreatedAt
    updated_at: UpdatedAt
    started_at: datetime | None = Field(description="When the provider began processing (UTC).")
    completed_at: datetime | None = Field(
        description="When it reached a terminal status (UTC)."
    )
    duration_s: float | None = Field(
        description="completed_at minus started_at (or created_at), seconds."
    )
    cost_usd: float | None = Field(
        description="Estimated provider cost, USD, from serve_apps.media.pricing's list "
        "prices; null when no price is known or the provider did not accept it."
    )
    retry_count: int = Field(
        description="Calls to the provider beyond the first for this attempt (retries)."
    )


# --------------------------------------------------------------------------- images


class ImageSpec(Schema):
    """An image's fields, shared by the request and the row (constraints live here)."""

    prompt: str = Field(
        min_length=1, max_length=10000, description="The user's prompt, before styles."
    )
    negative_prompt: str | None = Field(None, description="What the image should not show.")
    styled_prompt: str | None = Field(
        None, description="The prompt sent to the provider, after styles."
    )
    applied_style: str | None = Field(None, description="The text the prompt style added.")
    prompt_helper_version_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The PromptHelperVersion applied, if any."
    )
    provider: str = Field(max_length=PROVIDER_LENGTH,
                          description="replicate, stability, openai or runway.")
    model: str = Field(max_length=NAME_LENGTH, description="The provider's model name.")
    width: int | None = Field(None, ge=64, le=4096, description="Width, pixels.")
    height: int | None = Field(None, ge=64, le=4096, description="Height, pixels.")
    aspect_ratio: str | None = Field(
        None, pattern=RATIO_PATTERN, max_length=RATIO_LENGTH,
        description="Width:height ratio, e.g. 16:9."
    )
    num_outputs: int = Field(1, ge=1, le=10, description="Images asked for in one request.")
    guidance_scale: float | None = Field(
        None, ge=0, le=30, description="How closely to follow the prompt (CFG scale)."
    )
    style_preset: str | None = Field(
        None, max_length=64, description="The provider's style preset sent, if any."
    )
    prediction_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The Prediction that makes it.")
    user_id: UserId = None


class ImageCreate(ImageSpec, MediaMeta):
    """A generated image, recorded when its prediction is submitted."""

    output_format: Literal["png", "jpeg", "webp"] = Field("png", description="File format.")


# Derives from ImageSpec, not ImageCreate: the row's output_format is a plain string (the
# response schema stays a string, and a row reads back whatever format it names), which
# a subclass of ImageCreate could not declare without breaking ImageCreate's type.
class Image(ImageSpec, MediaMeta, Lifecycle, Row):
    """A generated image and its stored files (``num_outputs`` files when it succeeded)."""

    # the stored file's real size: the 64..4096 bounds are the request's (ImageSpec)
    width: int | None = Field(ge=1, description="Width of the stored file, pixels.")
    height: int | None = Field(ge=1, description="Height of the stored file, pixels.")

    output_format: str = Field(description="File format, e.g. png, jpeg, webp.")
    files: list[StoredFile] = Field(description="The image files copied into storage.")
    created_at: CreatedAt
    updated_at: UpdatedAt


class SourceImageMeta(Schema):
    """What a user writes about an upload (seed 001 ``SourceImage``)."""

    title: str | None = Field(None, max_length=NAME_LENGTH, description="A short title.")
    description: str | None = Field(None, max_length=10000, description="Free text.")
    purpose: Literal["training", "reference", "inspiration"] = Field(
        "reference", description="What the upload is for."
    )
    is_public: bool = Field(False, description="Visible to every user.")


class SourceImageUpdate(Schema):
    """A change to an upload's metadata (null: unchanged)."""

    title: str | None = Field(None, max_length=NAME_LENGTH)
    description: str | None = Field(None, max_length=10000)
    purpose: Literal["training", "reference", "inspiration"] | None = None
    is_public: bool | None = None


class SourceImageCreate(SourceImageMeta):
    """An uploaded image (a reference or the source of an edit, upscale or video)."""

    path: str = Field(description="Where the upload is stored (local path or storage URI).")
    thumbnail_path: str | None = Field(None, description="Where its thumbnail is stored.")
    format: str = Field(max_length=16,
                        description="Image format read from the bytes: png, jpeg, webp, gif.")
    mime_type: str = Field(max_length=64, description="MIME type, e.g. image/png.")
    size_bytes: int = Field(ge=0, description="File size, bytes.")
    width: int | None = Field(None, ge=1, description="Width, pixels.")
    height: int | None = Field(None, ge=1, description="Height, pixels.")
    user_id: UserId = None


class SourceImage(SourceImageCreate, Lifecycle, Row):
    """A stored upload."""

    created_at: CreatedAt
    updated_at: UpdatedAt


class ImageEditSpec(Schema):
    """An edit's fields, shared by the request and the row (constraints live here)."""

    kind: EditKind = Field(description="edit or upscale.")
    operation: str = Field(min_length=1, max_length=PROVIDER_LENGTH,
                           description="inpaint, search_and_replace, fast, ...")
    image_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The generated Image it changes.")
    source_image_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The SourceImage it changes.")
    prompt: str | None = Field(None, description="The edit's prompt, if it takes one.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The request's parameters, as the caller sent them."
    )
    prediction_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The Prediction that makes it.")
    user_id: UserId = None


class ImageEditCreate(ImageEditSpec):
    """One row for both edits (inpaint, search-and-replace) and upscales."""

    @model_validator(mode="after")
    def _one_source(self) -> ImageEditCreate:
        if (self.image_id is None) == (self.source_image_id is None):
            raise ValueError("exactly one of image_id or source_image_id is required")
        return self


# Derives from ImageEditSpec, not ImageEditCreate: the one-source rule is checked when an
# edit is recorded; a stored row is read back as it is.
class ImageEdit(ImageEditSpec, Row):
    """An edit or upscale and its stored files."""

    files: list[StoredFile] = Field(description="The result files copied into storage.")
    deleted_at: datetime | None = Field(description="When it was deleted (UTC); null: live.")
    purged_at: datetime | None = Field(description="When its files were purged (UTC).")
    created_at: CreatedAt
    updated_at: UpdatedAt


# --------------------------------------------------------------------------- videos


class VideoCreate(MediaMeta):
    """A generated video, recorded when its prediction is submitted."""

    prompt: str = Field(min_length=1, max_length=10000, description="The user's prompt.")
    provider: str = Field(max_length=PROVIDER_LENGTH,
                          description="replicate, stability, openai or runway.")
    model: str = Field(max_length=NAME_LENGTH, description="The provider's model name.")
    image_id: str | None = Field(
        None, max_length=ID_LENGTH, description="A generated Image: image-to-video.")
    source_image_id: str | None = Field(
        None, max_length=ID_LENGTH, description="An uploaded SourceImage: image-to-video.")
    duration_s: float = Field(5.0, gt=0, le=60, description="Clip length asked for, seconds.")
    ratio: str | None = Field(
        None, pattern=RATIO_PATTERN, max_length=RATIO_LENGTH,
        description="Frame ratio, e.g. 16:9 or 1280:720."
    )
    prediction_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The Prediction that makes it.")
    user_id: UserId = None


class Video(VideoCreate, Lifecycle, Row):
    """A generated video and its stored files."""

    files: list[StoredFile] = Field(description="The video files copied into storage.")
    thumbnail: StoredFile | None = Field(
        description="A still of the video, where the provider returns one.")
    created_at: CreatedAt
    updated_at: UpdatedAt


# --------------------------------------------------------------------------- providers


class ProviderModel(Schema):
    """One model a provider runs (seed 000 ``ReplicateModel``)."""

    name: str = Field(description="The model name, e.g. black-forest-labs/flux-schnell.")
    version: str | None = Field(description="Version id, where the provider has versions.")
    capabilities: list[str] = Field(description="Operation keys, e.g. image.generate.")
    active: bool = Field(description="Usable now: the provider has a token.")


class ProviderStatus(Schema):
    """A provider, its models and its health (``GET /v1/providers``)."""

    name: str = Field(description="replicate, stability, openai or runway.")
    configured: bool = Field(description="Its token variable is set.")
    healthy: bool = Field(description="Configured and not cooling down after failures.")
    cooldown_s: float = Field(description="Seconds until it is tried again; 0: warm.")
    token_env: str = Field(description="The variable that holds its token.")
    models: list[ProviderModel]
