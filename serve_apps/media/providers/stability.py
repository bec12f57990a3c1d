"""Stability AI REST v2beta over httpx.

https://platform.stability.ai/docs/api-reference — every call is multipart/form-data with
``Authorization: Bearer <key>`` and ``Accept: application/json`` (the image comes back
base64 in ``image`` with ``finish_reason``):

- generate: ``POST /v2beta/stable-image/generate/{core|ultra|sd3}`` (synchronous)
- upscale: ``/v2beta/stable-image/upscale/{conservative|fast}`` (synchronous),
  ``/upscale/creative`` (asynchronous: returns ``{"id"}``; poll ``GET /v2beta/results/{id}``,
  202 while in progress, 200 with the image when done)
- edit: ``/v2beta/stable-image/edit/{inpaint|search-and-replace}`` (synchronous)

Errors are ``{"id", "name", "errors": [...]}`` with 400/403/413/422/429/500.

Optional generation fields (one image per call, no count field): ``negative_prompt`` on
core, ultra and sd3 (not sd3.5-large-turbo: "does not work with" it), ``style_preset``
(:data:`STYLE_PRESETS`) on core and sd3, ``cfg_scale`` 1..10 on sd3 only; the
conservative and creative upscalers and both edits take ``negative_prompt``.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from catalog.errors import InvalidArgument
from catalog.schemas import PredictionStatus
from serve_apps.media.providers.base import (
    NO_PARAMS,
    HttpProvider,
    MediaJob,
    Output,
    ParamSupport,
    ProviderJob,
)
from serve_apps.media.providers.sizes import nearest_aspect_ratio

GENERATE_MODELS = ("core", "ultra", "sd3", "sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium")
UPSCALE_MODES = ("fast", "conservative", "creative")
EDIT_MODES = {"inpaint": "inpaint", "search_and_replace": "search-and-replace"}
#: ``style_preset`` enum of v2beta generate (core, sd3).
STYLE_PRESETS = frozenset({
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk",
    "origami", "photographic", "pixel-art", "tile-texture",
})
#: ``cfg_scale`` range of v2beta generate/sd3.
CFG_SCALE_RANGE = (1.0, 10.0)
_NEGATIVE_ONLY = ParamSupport(negative_prompt=True)


class StabilityProvider(HttpProvider):
    name = "stability"
    capabilities = frozenset({"image.generate", "image.upscale", "image.edit"})
    default_models: ClassVar[dict[str, str]] = {
        "image.generate": "core", "image.upscale": "fast", "image.edit": "inpaint",
    }
    headers: ClassVar[dict[str, str]] = {"Accept": "application/json"}

    def param_support(self, job: MediaJob, model: str) -> ParamSupport:
        """Per the module docstring's table. Raises InvalidArgument for an unknown
        generate model (field ``model``)."""
        if job.operation == "generate":
            if model not in GENERATE_MODELS:
                raise InvalidArgument(f"stability has no model {model!r}; one of "
                                      f"{', '.join(GENERATE_MODELS)}", field="model")
            if model == "ultra":
                return _NEGATIVE_ONLY
            if model == "core":
                return ParamSupport(negative_prompt=True, style_presets=STYLE_PRESETS)
            return ParamSupport(negative_prompt="turbo" not in model,
                                style_presets=STYLE_PRESETS, guidance_scale=CFG_SCALE_RANGE)
        if job.operation == "upscale":
            return NO_PARAMS if (job.mode or "fast") == "fast" else _NEGATIVE_ONLY
        if job.operation == "edit":
            return _NEGATIVE_ONLY
        return NO_PARAMS

    def endpoint(self, job: MediaJob) -> tuple[str, dict[str, Any]]:
        """``(path, extra form fields)`` for a job. Raises InvalidArgument for an unknown
        model or mode."""
        if job.operation == "generate":
            model = self.model_for(job)
            if model not in GENERATE_MODELS:
                raise InvalidArgument(f"stability has no model {model!r}; one of "
                                      f"{', '.join(GENERATE_MODELS)}", field="model")
            if model.startswith("sd3"):
                return "/v2beta/stable-image/generate/sd3", (
                    {"model": model} if model != "sd3" else {})
            return f"/v2beta/stable-image/generate/{model}", {}
        if job.operation == "upscale":
            mode = job.mode or "fast"
            if mode not in UPSCALE_MODES:
                raise InvalidArgument(f"unknown upscale mode {mode!r}", field="mode")
            return f"/v2beta/stable-image/upscale/{mode}", {}
        if job.operation == "edit":
            mode = job.mode or ("inpaint" if job.mask else "search_and_replace")
            if mode not in EDIT_MODES:
                raise InvalidArgument(f"stability cannot edit with mode {mode!r}", field="mode")
            return f"/v2beta/stable-image/edit/{EDIT_MODES[mode]}", {}
        raise InvalidArgument(f"stability does not support {job.key}", field="operation")

    def form(self, job: MediaJob) -> tuple[dict[str, str], dict[str, Any]]:
        """Multipart ``(data, files)`` for a job."""
        _, extra = self.endpoint(job)
        data = {k: str(v) for k, v in extra.items()} | job.given(
            "prompt", "negative_prompt", "style_preset", "search_prompt")
        if job.guidance_scale is not None:
            data["cfg_scale"] = f"{job.guidance_scale:g}"
        if job.seed is not None:
            data["seed"] = str(job.seed)
        data["output_format"] = job.output_format
        if job.operation == "generate":
            if job.aspect_ratio:
                data["aspect_ratio"] = job.aspect_ratio
            elif job.width and job.height:
                data["aspect_ratio"] = nearest_aspect_ratio(job.width, job.height)
        files: dict[str, Any] = {}
        if job.image is not None:
            files["image"] = ("image.png", job.image, "image/png")
        if job.mask is not None:
            files["mask"] = ("mask.png", job.mask, "image/png")
        if not files:  # Stability requires multipart even without files (their docs' recipe)
            files["none"] = ("", b"")
        return data, files

    async def submit(self, job: MediaJob) -> ProviderJob:
        path, _ = self.endpoint(job)
        data, files = self.form(job)
        response = await self._request("POST", path, data=data, files=files)
        body = response.json()
        if "image" not in body and body.get("id"):  # asynchronous (creative upscale)
            return ProviderJob(provider_id=body["id"], status=PredictionStatus.processing,
                               raw={"id": body["id"]})
        return self._finished(body, provider_id=body.get("id"))

    async def get(self, provider_id: str) -> ProviderJob:
        response = await self._request("GET", f"/v2beta/results/{provider_id}")
        body = response.json()
        if response.status_code == 202:
            return ProviderJob(provider_id=provider_id, status=PredictionStatus.processing,
                               raw={"status": body.get("status")})
        return self._finished(body, provider_id=provider_id)

    def _finished(self, body: dict[str, Any], provider_id: str | None) -> ProviderJob:
        reason = body.get("finish_reason", "SUCCESS")
        if reason != "SUCCESS" or not body.get("image"):
            return ProviderJob(provider_id=provider_id, status=PredictionStatus.failed,
                               error=f"stability finish_reason {reason}",
                               raw={"finish_reason": reason})
        data = base64.b64decode(body["image"])
        return ProviderJob(provider_id=provider_id, status=PredictionStatus.succeeded,
                           outputs=[Output(data=data)],
                           raw={"finish_reason": reason, "seed": body.get("seed")})

    def error_message(self, body: Any) -> str | None:
        """Stability v2beta errors: ``{"name": ..., "errors": ["..."]}``."""
        return "; ".join(body.get("errors") or []) or body.get("name")

