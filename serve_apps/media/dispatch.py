"""Dispatch to providers: turn a request into a provider job (styles applied), choose the
providers (request, policy, configured, not cooling down), submit with retries and
fallbacks — one Prediction row per attempt, written *before* the provider is called —
record usage and cost, then create the Image, ImageEdit or Video row and hand the job to
tracking. :class:`DispatchMixin` of :class:`serve_apps.media.service.MediaService`."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from catalog import schemas as s
from catalog import storage as shared_storage
from catalog.errors import Conflict, InvalidArgument, NotFound, Unavailable
from serve_apps.auth import Principal, check_readable
from serve_apps.media.predictions import PredictionsMixin
from serve_apps.media.pricing import estimate_cost
from serve_apps.media.providers import MediaJob, Provider, ProviderError
from serve_apps.media.providers.base import ProviderJob
from serve_apps.media.retry import with_retries
from serve_apps.media.schemas import (
    EditRequest,
    EditResult,
    ImageGenerationRequest,
    ImageResult,
    ProviderModel,
    ProviderStatus,
    StyleRef,
    UpscaleRequest,
    VideoRequest,
    VideoResult,
)
from serve_apps.media.state import P
from serve_apps.media.styles import StyledPrompt, StylePiece, apply_styles, join_negative

log = logging.getLogger(__name__)
#: Provider HTTP statuses after which another provider is tried: its fault or its
#: configuration (401/403/404), not the request's (400/413/422 are surfaced as they are).
FALLBACK_STATUSES = frozenset({401, 403, 404, 408, 409, 429})

R = TypeVar("R", s.Image, s.ImageEdit, s.Video)


def _falls_back(error: ProviderError) -> bool:
    return error.status is None or error.status >= 500 or error.status in FALLBACK_STATUSES


class DispatchMixin(PredictionsMixin):
    """The generation routes and the providers' list; builds on tracking
    (:class:`~serve_apps.media.predictions.PredictionsMixin`), which takes each accepted
    job over."""

    async def generate_image(self, req: ImageGenerationRequest, who: Principal) -> ImageResult:
        """Generate one image. Raises InvalidArgument (422), Unavailable (503)."""
        styled, version_id = await self._styled(req.prompt, req, "image", who)
        job = MediaJob(
            modality=s.Modality.image, operation="generate", prompt=styled.prompt,
            model=req.model, negative_prompt=req.negative_prompt, width=req.width,
            height=req.height, aspect_ratio=req.aspect_ratio, output_format=req.output_format,
            seed=req.seed, steps=req.steps, num_outputs=req.num_outputs,
            guidance_scale=req.guidance_scale, style_preset=req.style_preset,
        )
        pred, image = await self._dispatch(
            job, req.provider, req.model_dump(mode="json"), who,
            lambda pred: self.cat.images.create(s.ImageCreate(
                prompt=req.prompt, negative_prompt=pred.input.get("negative_prompt"),
                styled_prompt=styled.prompt, applied_style=styled.applied,
                prompt_helper_version_id=version_id, provider=pred.provider,
                model=pred.model, width=req.width, height=req.height,
                aspect_ratio=req.aspect_ratio, output_format=req.output_format,
                num_outputs=req.num_outputs, guidance_scale=req.guidance_scale,
                style_preset=pred.input.get("style_preset"), prediction_id=pred.id,
                user_id=who.user_id,
            )), styled=styled)
        return ImageResult(image=image, prediction=pred)

    async def upscale_image(self, image_id: str, req: UpscaleRequest,
                            who: Principal) -> EditResult:
        """Upscale an image (fast|conservative|creative): a generated one (``img_...``) or
        an upload (``src_...``)."""
        data = await self._source(image_id, who)
        job = MediaJob(modality=s.Modality.image, operation="upscale", mode=req.mode,
                       prompt=req.prompt, model=req.model, image=data,
                       output_format=req.output_format, seed=req.seed)
        return await self._edit(image_id, job, req.provider, req.model_dump(mode="json"),
                                s.EditKind.upscale, who)

    async def edit_image(self, image_id: str, req: EditRequest, who: Principal) -> EditResult:
        """Inpaint, search-and-replace or vary an image (``img_...``) or upload (``src_...``)."""
        data = await self._source(image_id, who)
        variation = req.mode == "variation"
        job = MediaJob(
            modality=s.Modality.image, operation="variation" if variation else "edit",
            mode=None if variation else req.mode, prompt=req.prompt, model=req.model,
            image=data, mask=base64.b64decode(req.mask) if req.mask else None,
            search_prompt=req.search_prompt, output_format=req.output_format, seed=req.seed,
        )
        record = req.model_dump(mode="json", exclude={"mask"}) | {"has_mask": bool(req.mask)}
        return await self._edit(image_id, job, req.provider, record, s.EditKind.edit, who)

    async def create_video(self, req: VideoRequest, who: Principal) -> VideoResult:
        """Text-to-video, or image-to-video when ``image_id`` names a generated image
        (``img_...``) or an upload (``src_...``); styles apply with their ``video``
        placement."""
        data = await self._source(req.image_id, who) if req.image_id else None
        styled, _ = await self._styled(req.prompt, req, "video", who)
        job = MediaJob(
            modality=s.Modality.video, operation="generate",
            mode="image_to_video" if data else "text_to_video", prompt=styled.prompt,
            model=req.model, image=data, aspect_ratio=req.ratio, duration_s=req.duration_s,
            seed=req.seed,
        )
        upload = bool(req.image_id and req.image_id.startswith("src_"))
        pred, video = await self._dispatch(
            job, req.provider, req.model_dump(mode="json"), who,
            lambda pred: self.cat.videos.create(s.VideoCreate(
                prompt=req.prompt, provider=pred.provider, model=pred.model,
                image_id=None if upload else req.image_id,
                source_image_id=req.image_id if upload else None,
                duration_s=req.duration_s, ratio=req.ratio, prediction_id=pred.id,
                user_id=who.user_id,
            )), styled=styled)
        return VideoResult(video=video, prediction=pred)

    def list_providers(self) -> list[ProviderStatus]:
        """Every provider, its models (seed 000 ``ReplicateModel``: name, version,
        capabilities, active) and its health (configured, cooling down)."""
        return [ProviderStatus(
            name=name, configured=p.configured,
            healthy=p.configured and not self.cooldown.cooling(name),
            cooldown_s=round(self.cooldown.remaining_s(name), 1),
            token_env=p.settings.token_env,
            models=[ProviderModel(**m) for m in p.models()],
        ) for name, p in self.providers.items()]

    def candidates(self, key: str, preferred: str | None) -> list[str]:
        """Providers to try for ``key``: the requested one first, then the policy's order,
        then any other that supports ``key``; tokenless and cooling-down providers are
        left out (a requested provider that is cooling down is skipped like the others).

        Raises:
            InvalidArgument: the requested provider cannot do ``key`` (422, field provider).
            Unavailable: the requested provider has no token (503 naming the variable),
                or no provider is configured and warm.
        """
        if preferred is not None:
            chosen = self.providers.get(preferred)
            if chosen is None or not chosen.supports(key):
                raise InvalidArgument(f"provider {preferred!r} does not support {key}",
                                      field="provider")
            if not chosen.configured:
                raise Unavailable(f"{preferred} is not configured: set "
                                  f"{chosen.settings.token_env}")
        order = ([preferred] if preferred else []) + [
            n for n in self.config.policy.get(key, []) if n != preferred]
        order += [n for n, p in self.providers.items() if p.supports(key) and n not in order]
        usable = [n for n in order if n in self.providers and self.providers[n].supports(key)
                  and self.providers[n].configured]
        if not usable:
            names = sorted({self.providers[n].settings.token_env for n in order
                            if n in self.providers and self.providers[n].supports(key)})
            raise Unavailable(f"no provider configured for {key}: set one of "
                              f"{', '.join(names)}")
        warm = [n for n in usable if not self.cooldown.cooling(n)]
        if not warm:
            waits = ", ".join(f"{n} {self.cooldown.remaining_s(n):.0f}s" for n in usable)
            raise Unavailable(f"every provider for {key} is cooling down ({waits})")
        return warm

    async def _submit(self, job: MediaJob, preferred: str | None, record: dict[str, Any],
                      who: Principal, *, styled: StyledPrompt | None = None,
                      ) -> tuple[s.Prediction, ProviderJob | None]:
        """Try providers in order; returns the accepted attempt (or the last failed one,
        with None) after writing each attempt's Prediction row first.

        A parameter the provider's model does not take (``num_outputs``,
        ``guidance_scale``, ``negative_prompt``, ``style_preset``) is a 422 for the
        provider the request named; a provider chosen by policy that cannot take it is
        passed over for the next. ``styled``'s negative text and style preset are added
        for providers that take them.
        """
        names = self.candidates(job.key, preferred)
        previous: s.Prediction | None = None
        refused: InvalidArgument | None = None
        for index, name in enumerate(names):
            provider = self.providers[name]
            attempt_job = job if index == 0 else replace(job, model=None)
            try:
                model = provider.model_for(attempt_job)
            except NotFound:
                continue
            provider.check_model(model)  # a malformed model: 422 before any row
            attempt_job = self._with_style(provider, attempt_job, model, styled)
            try:
                provider.check_params(attempt_job)
            except InvalidArgument as exc:
                if name == preferred:
                    raise
                refused = refused or exc  # raised below if no provider takes the job
                continue
            if job.webhook_url is None and self.config.webhook_url and name == "replicate":
                attempt_job = replace(attempt_job, webhook_url=(
                    f"{self.config.webhook_url.rstrip('/')}/v1/webhooks/{name}"))
            pred = await self.cat.predictions.create(s.PredictionCreate(
                provider=name, model=model, operation=job.operation if not job.mode
                else f"{job.operation}.{job.mode}", modality=job.modality,
                input=record | {"prompt": attempt_job.prompt, "attempt": index + 1,
                                "negative_prompt": attempt_job.negative_prompt,
                                "style_preset": attempt_job.style_preset,
                                "previous_prediction_id": previous.id if previous else None},
                user_id=who.user_id,
            ))
            started = time.monotonic()
            try:
                pjob, calls = await with_retries(
                    partial(provider.submit, attempt_job), self.config.retry,
                    create=True, idempotent_create=provider.idempotent_create)
            except ProviderError as exc:
                self.cooldown.failure(name)
                message = self._redact(str(exc))
                nxt = names[index + 1] if index + 1 < len(names) else None
                fallback = _falls_back(exc) and nxt is not None
                if fallback:
                    message += f"; falling back to {nxt}"
                previous = await self.cat.transition_prediction(
                    pred.id, P.failed, error_message=message)
                log.warning("prediction %s: %s", pred.id, message)
                if not fallback:
                    return previous, None
                continue
            self.cooldown.success(name)
            cost = self._cost(pred, attempt_job)
            self._log_usage(pred, attempt_job, (time.monotonic() - started) * 1000, calls,
                            cost)
            if pjob.status == P.succeeded:  # copy outputs while the target row is written
                self._prefetch[pred.id] = asyncio.get_running_loop().create_task(
                    self.outputs.save(pred.id, pjob.outputs))
            fields: dict[str, Any] = {"cost_usd": cost, "retry_count": calls - 1}
            status = pred.status
            if pjob.provider_id and not pjob.terminal:  # webhooks find the row by this id
                fields["provider_prediction_id"] = pjob.provider_id
                status = pjob.status
            pred = await self.cat.transition_prediction(pred.id, status, **fields)
            return pred, pjob
        if previous is None:
            if refused is not None:
                raise refused
            raise Unavailable(f"no provider has a model for {job.key}")
        return previous, None

    def _with_style(self, provider: Provider, job: MediaJob, model: str,
                    styled: StyledPrompt | None) -> MediaJob:
        """``job`` with the styles' negative text and the style preset for ``provider``
        added where its ``model`` takes them (the request's own values come first)."""
        if styled is None:
            return job
        support = provider.param_support(job, model)
        negative = job.negative_prompt
        if styled.negative_text and support.negative_prompt:
            negative = join_negative(negative, styled.negative_text)
        preset = job.style_preset
        offered = styled.style_presets.get(provider.name)
        if preset is None and offered and (
                support.passthrough or (support.style_presets and offered in
                                        support.style_presets)):
            preset = offered
        return replace(job, negative_prompt=negative, style_preset=preset)

    def _cost(self, pred: s.Prediction, job: MediaJob) -> float | None:
        """Estimated USD of an accepted request (:func:`serve_apps.media.pricing.
        estimate_cost`, times ``num_outputs``); None when no price is known."""
        cost_key = job.mode if pred.provider == "stability" and job.operation != "generate" \
            else pred.model
        cost = estimate_cost(pred.provider, cost_key or pred.model, duration_s=job.duration_s,
                             overrides=self.config.prices_usd)
        return None if cost is None else round(cost * job.num_outputs, 6)

    def _log_usage(self, pred: s.Prediction, job: MediaJob, latency_ms: float,
                   calls: int, cost: float | None) -> None:
        self.usage.start()
        self.usage.add(s.UsageCreate(
            id=f"use_{pred.id}", kind="media", model=pred.model, provider=pred.provider,
            latency_ms=latency_ms, cost_usd=cost, user_id=pred.user_id,
            details={"size": job.size or job.aspect_ratio, "steps": job.steps,
                     "operation": pred.operation, "prediction_id": pred.id, "calls": calls},
        ))

    async def _styled(self, prompt: str, ref: StyleRef, prompt_type: str,
                      who: Principal) -> tuple[StyledPrompt, str | None]:
        """Apply the theme (its styles' current versions in order, then its own text) and
        the helper (pinned or current version) that ``ref`` names, with their placements
        for ``prompt_type``. Returns the styled prompt and the id of the helper version
        applied last. Raises NotFound, PermissionDenied (another user's private style)."""
        pieces: list[StylePiece] = []
        last: str | None = None
        if ref.theme_helper_id:
            theme = await self._visible_style(self.cat.theme_helpers, ref.theme_helper_id, who)
            for helper_id in theme.prompt_helper_ids:
                version = await self.cat.get_prompt_helper_version(helper_id)
                pieces.append(StylePiece.of(version, prompt_type))
                last = version.id
            if theme.text or theme.negative_text:
                pieces.append(StylePiece(theme.text or "", s.PromptPlacement.append,
                                         theme.negative_text))
        if ref.prompt_helper_id:
            await self._visible_style(self.cat.prompt_helpers, ref.prompt_helper_id, who)
            version = await self.cat.get_prompt_helper_version(
                ref.prompt_helper_id, ref.prompt_helper_version)
            pieces.append(StylePiece.of(version, prompt_type))
            last = version.id
        return apply_styles(prompt, pieces, prompt_type), last

    @staticmethod
    async def _visible_style(repo: Any, style_id: str, who: Principal) -> Any:
        row = await repo.get(style_id)
        check_readable(who, row.user_id, row.is_public)
        return row

    async def _source(self, ref: str, who: Principal) -> bytes:
        """The bytes of an image to change or animate: a generated image (``img_...``,
        its first file) or an upload (``src_...``). Raises NotFound, PermissionDenied,
        Conflict (an image without output yet)."""
        if ref.startswith("src_"):
            source = await self._live(self.cat.source_images, ref, who, public_ok=True)
            if source.purged_at is not None:
                raise Conflict(f"upload {ref} was purged", field="image_id")
            path = source.path
        else:
            image = await self._live(self.cat.images, ref, who, public_ok=True)
            if not image.files:
                raise Conflict(f"image {ref} has no output yet", field="image_id")
            path = image.files[0].path
        return await asyncio.to_thread(shared_storage.read_bytes, path)

    async def _edit(self, ref: str, job: MediaJob, preferred: str | None,
                    record: dict[str, Any], kind: s.EditKind, who: Principal) -> EditResult:
        """Submit an edit or upscale of ``ref`` (``img_...`` or ``src_...``) and write
        its ImageEdit row (``record``: the request as stored)."""
        upload = ref.startswith("src_")
        pred, edit = await self._dispatch(
            job, preferred, record | {"image_id": ref}, who,
            lambda pred: self.cat.image_edits.create(s.ImageEditCreate(
                kind=kind, operation=job.mode or job.operation,
                image_id=None if upload else ref, source_image_id=ref if upload else None,
                prompt=job.prompt, params={k: v for k, v in record.items() if v is not None},
                prediction_id=pred.id, user_id=who.user_id,
            )))
        return EditResult(edit=edit, prediction=pred)

    async def _dispatch(self, job: MediaJob, preferred: str | None, record: dict[str, Any],
                        who: Principal, create_row: Callable[[s.Prediction], Awaitable[R]],
                        *, styled: StyledPrompt | None = None) -> tuple[s.Prediction, R]:
        """Submit ``job`` (:meth:`_submit`), write its target row with ``create_row``
        (given the prediction accepted, or the last failed one), then finish or track
        the job (:meth:`_advance`). Returns the prediction and the row as it is now."""
        pred, pjob = await self._submit(job, preferred, record, who, styled=styled)
        row = await create_row(pred)
        pred, updated = await self._advance(pred, pjob, row.id)
        return pred, updated or row
