"""Request and response bodies of the media routes (validated: a bad field is a 422
naming it). Rows themselves are :mod:`catalog.schemas` models."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalog import schemas as s
from catalog.schemas.common import NAME_LENGTH
from catalog.schemas.media import RATIO_LENGTH
from serve_apps.media.providers.sizes import ASPECT_RATIOS, RUNWAY_RATIOS

ProviderName = Literal["replicate", "stability", "openai", "runway"]
OutputFormat = Literal["png", "jpeg", "webp"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _b64_image(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{field} must be base64-encoded image bytes") from exc
    return value


class StyleRef(_Body):
    """Prompt styles to apply: a theme (its styles, then its own text) and/or one helper
    (optionally a pinned version), in that order."""

    prompt_helper_id: str | None = None
    prompt_helper_version: int | None = Field(None, ge=1, description="Default: current.")
    theme_helper_id: str | None = None


class ImageGenerationRequest(StyleRef):
    prompt: str = Field(min_length=1, max_length=10000)
    negative_prompt: str | None = Field(None, max_length=10000)
    provider: ProviderName | None = Field(None, description="Default: the policy's order.")
    model: str | None = Field(None, max_length=NAME_LENGTH)
    size: str | None = Field(None, description="'WIDTHxHEIGHT' in pixels, 64..4096 each.")
    width: int | None = Field(None, ge=64, le=4096)
    height: int | None = Field(None, ge=64, le=4096)
    aspect_ratio: str | None = Field(None, max_length=RATIO_LENGTH,
                                     description=f"One of {', '.join(ASPECT_RATIOS)}.")
    output_format: OutputFormat = "png"
    steps: int | None = Field(None, ge=1, le=150)
    seed: int | None = Field(None, ge=0, le=4294967294)
    num_outputs: int = Field(1, ge=1, le=10, description="Images from one request; the "
                             "provider's model must support more than 1 (else 422).")
    guidance_scale: float | None = Field(
        None, ge=0, le=30, description="How closely to follow the prompt (CFG scale); "
        "only models with guidance (else 422).")
    style_preset: str | None = Field(
        None, max_length=64, description="The provider's own style preset (Stability: "
        "cinematic, anime, ...); default: the applied style's preset for the provider.")

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is None:
            return None
        w, sep, h = value.partition("x")
        if not (sep and w.isdigit() and h.isdigit()):
            raise ValueError("size must look like 1024x1024")
        if not (64 <= int(w) <= 4096 and 64 <= int(h) <= 4096):
            raise ValueError("size: width and height must be 64..4096")
        return value

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio(cls, value: str | None) -> str | None:
        if value is not None and value not in ASPECT_RATIOS:
            raise ValueError(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        return value

    @model_validator(mode="after")
    def _dimensions(self) -> ImageGenerationRequest:
        if self.size is not None:
            if self.width is not None or self.height is not None:
                raise ValueError("give size or width/height, not both")
            w, _, h = self.size.partition("x")
            self.width, self.height = int(w), int(h)
        elif (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        return self


class UpscaleRequest(_Body):
    mode: Literal["fast", "conservative", "creative"] = "fast"
    prompt: str | None = Field(None, max_length=10000,
                               description="Required by conservative and creative.")
    provider: ProviderName | None = None
    model: str | None = Field(None, max_length=NAME_LENGTH)
    output_format: OutputFormat = "png"
    seed: int | None = Field(None, ge=0, le=4294967294)

    @model_validator(mode="after")
    def _prompt(self) -> UpscaleRequest:
        if self.mode != "fast" and not self.prompt:
            raise ValueError(f"prompt is required for {self.mode} upscale")
        return self


class EditRequest(_Body):
    mode: Literal["inpaint", "search_and_replace", "variation"] = "inpaint"
    prompt: str | None = Field(None, max_length=10000)
    search_prompt: str | None = Field(None, max_length=10000)
    mask: str | None = Field(None, description="Base64 PNG; white pixels are repainted.")
    provider: ProviderName | None = None
    model: str | None = Field(None, max_length=NAME_LENGTH)
    output_format: OutputFormat = "png"
    seed: int | None = Field(None, ge=0, le=4294967294)

    @field_validator("mask")
    @classmethod
    def _mask(cls, value: str | None) -> str | None:
        return _b64_image(value, "mask")

    @model_validator(mode="after")
    def _needs(self) -> EditRequest:
        if self.mode != "variation" and not self.prompt:
            raise ValueError(f"prompt is required for {self.mode}")
        if self.mode == "search_and_replace" and not self.search_prompt:
            raise ValueError("search_prompt is required for search_and_replace")
        return self


#: ``GET /v1/providers``' rows live in the catalog's contract, which the client shares.
ProviderModel = s.ProviderModel
ProviderStatus = s.ProviderStatus

#: What an image reference may name: a generated image (``img_...``) or an upload
#: (``src_...``).
IMAGE_REF = "A generated image id (img_...) or an uploaded source image id (src_...)."


class VideoRequest(StyleRef):
    prompt: str = Field(min_length=1, max_length=1000)
    image_id: str | None = Field(None, max_length=64,
                                 description=f"Image-to-video from this image. {IMAGE_REF}")
    provider: ProviderName | None = None
    model: str | None = Field(None, max_length=NAME_LENGTH)
    duration_s: float = Field(5.0, gt=0, le=10)
    ratio: str = Field("16:9", max_length=RATIO_LENGTH,
                       description=f"One of {', '.join(RUNWAY_RATIOS)}.")
    seed: int | None = Field(None, ge=0, le=4294967294)

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, value: str) -> str:
        if value not in RUNWAY_RATIOS:
            raise ValueError(f"ratio must be one of {', '.join(RUNWAY_RATIOS)}")
        return value


class ImageResult(_Body):
    image: s.Image
    prediction: s.Prediction


class EditResult(_Body):
    edit: s.ImageEdit
    prediction: s.Prediction


class VideoResult(_Body):
    video: s.Video
    prediction: s.Prediction
