"""The media router's logic: choose a provider, submit with retries and fallbacks, keep
the catalog rows following the provider (polling and webhooks), copy outputs.

Every request becomes one Prediction row per provider attempt, written *before* the
provider is called, so a provider that is down never loses the request: the failed
attempt keeps the request's input and the provider's error, and the next attempt's
``input.previous_prediction_id`` points back to it. The Image, ImageEdit or Video row
links the attempt that was accepted (or the last failed one).

:class:`MediaService` is the Serve deployment itself (:mod:`serve_apps.media.builder`
applies ``serve.deployment`` and the routes call its methods through a handle) and a
plain class that tests and benchmarks drive directly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx

from catalog import schemas as s
from catalog import storage as shared_storage
from catalog.errors import Conflict, InvalidArgument, InvalidTransition, NotFound, Unavailable
from catalog.port import AsyncCatalogPort, AsyncRepoPort
from catalog.tables import new_id, utcnow
from catalog.usage_buffer import UsageBuffer
from serve_apps.auth import Principal, check_owner, check_readable, owner_filter
from serve_apps.media.config import MediaConfig
from serve_apps.media.pricing import estimate_cost
from serve_apps.media.providers import MediaJob, Provider, ProviderError, build_providers
from serve_apps.media.providers.base import ProviderJob
from serve_apps.media.retry import Cooldown, with_retries
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
from serve_apps.media.storage import OutputStore, delete_files
from serve_apps.media.styles import StyledPrompt, StylePiece, apply_styles, join_negative
from serve_apps.media.uploads import inspect_image, save_upload

log = logging.getLogger(__name__)
P = s.PredictionStatus
ACTIVE = (P.starting, P.processing)
#: Provider HTTP statuses after which another provider is tried: its fault or its
#: configuration (401/403/404), not the request's (400/413/422 are surfaced as they are).
FALLBACK_STATUSES = frozenset({401, 403, 404, 408, 409, 429})


Target = AsyncRepoPort[s.Image] | AsyncRepoPort[s.ImageEdit] | AsyncRepoPort[s.Video]
M = TypeVar("M", s.Image, s.ImageEdit, s.Video, s.SourceImage)


def _target_repo(cat: AsyncCatalogPort, pred: s.Prediction) -> Target:
    """The catalog repository whose rows link ``pred``: videos, images or image edits."""
    if pred.modality == s.Modality.video:
        return cat.videos
    return cat.images if pred.operation == "generate" else cat.image_edits


def _falls_back(error: ProviderError) -> bool:
    return error.status is None or error.status >= 500 or error.status in FALLBACK_STATUSES


class MediaService:
    """Routes media requests to providers and keeps the catalog in step.

    Args:
        config: settings (providers, policy, retries, cooldown, polling); None reads
            :meth:`MediaConfig.from_env` (a Serve replica's environment).
        catalog: the catalog port; None is the cluster's catalog actor.
        providers: adapters by name (default: :func:`build_providers`).
        resume: start tracking every unfinished prediction again, as a task on the
            running event loop (a Serve replica constructs its deployment inside its
            loop); the builder sets it, so a restarted replica loses no prediction.
    """

    def __init__(self, config: MediaConfig | None = None,
                 catalog: AsyncCatalogPort | None = None,
                 providers: dict[str, Provider] | None = None, *, resume: bool = False):
        if catalog is None:
            from catalog.actor import AsyncCatalog

            catalog = AsyncCatalog()
        config = config or MediaConfig.from_env()
        self.config = config
        self.cat = catalog
        #: usage records wait here until the catalog acknowledges them; it runs on the
        #: replica's event loop (started here when built inside one, else by the first
        #: record)
        self.usage = UsageBuffer(catalog)
        with contextlib.suppress(RuntimeError):  # no running loop
            self.usage.start()
        self.providers = providers if providers is not None else build_providers(config)
        self.cooldown = Cooldown(config.cooldown)
        self.outputs = OutputStore(config.resolved_media_dir(),
                                   timeout_s=config.request_timeout_s,
                                   limit=config.max_concurrent_downloads,
                                   retry=config.retry)
        self._tracking: dict[str, asyncio.Task] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._prefetch: dict[str, asyncio.Task] = {}
        self._secrets = [p.token.get_secret_value() for p in config.providers.values()
                         if p.token] + [p.webhook_secret.get_secret_value()
                                        for p in config.providers.values() if p.webhook_secret]
        self._resumed: asyncio.Task[int] | None = None
        self._purging: asyncio.Task[None] | None = None
        if resume:
            loop = asyncio.get_running_loop()
            self._resumed = loop.create_task(self.resume())
            self._purging = loop.create_task(self._purge_periodically())

    # ----------------------------------------------------------------- public operations

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
        pred, pjob = await self._submit(job, req.provider, req.model_dump(mode="json"), who,
                                        styled=styled)
        image = await self.cat.images.create(s.ImageCreate(
            prompt=req.prompt, negative_prompt=pred.input.get("negative_prompt"),
            styled_prompt=styled.prompt, applied_style=styled.applied,
            prompt_helper_version_id=version_id, provider=pred.provider, model=pred.model,
            width=req.width, height=req.height, aspect_ratio=req.aspect_ratio,
            output_format=req.output_format, num_outputs=req.num_outputs,
            guidance_scale=req.guidance_scale, style_preset=pred.input.get("style_preset"),
            prediction_id=pred.id, user_id=who.user_id,
        ))
        pred, updated = await self._advance(pred, pjob, image.id)
        return ImageResult(image=updated or image, prediction=pred)

    async def get_image(self, image_id: str, who: Principal) -> ImageResult:
        """An image the caller may read (theirs, or public) and its prediction. Raises
        NotFound (also once deleted), PermissionDenied."""
        image = await self._live(self.cat.images, image_id, who, public_ok=True)
        return ImageResult(image=image, prediction=await self._linked(image.prediction_id))

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
        pred, pjob = await self._submit(job, req.provider, req.model_dump(mode="json"), who,
                                        styled=styled)
        upload = bool(req.image_id and req.image_id.startswith("src_"))
        video = await self.cat.videos.create(s.VideoCreate(
            prompt=req.prompt, provider=pred.provider, model=pred.model,
            image_id=None if upload else req.image_id,
            source_image_id=req.image_id if upload else None,
            duration_s=req.duration_s, ratio=req.ratio, prediction_id=pred.id,
            user_id=who.user_id,
        ))
        pred, updated = await self._advance(pred, pjob, video.id)
        return VideoResult(video=updated or video, prediction=pred)

    async def get_video(self, video_id: str, who: Principal) -> VideoResult:
        """A video the caller may read (theirs, or public) and its prediction. Raises
        NotFound (also once deleted), PermissionDenied."""
        video = await self._live(self.cat.videos, video_id, who, public_ok=True)
        return VideoResult(video=video, prediction=await self._linked(video.prediction_id))

    # ----------------------------------------------------------------- the library

    async def list_images(self, who: Principal, **filters: Any) -> s.Page[s.Image]:
        """The caller's live images (admins: everyone's), newest first; ``filters`` are
        :meth:`_list_filters`'. Raises NotFound (unknown project), InvalidArgument."""
        return await self.cat.images.list(**await self._list_filters(who, filters))

    async def list_videos(self, who: Principal, **filters: Any) -> s.Page[s.Video]:
        """The caller's live videos, like :meth:`list_images`."""
        return await self.cat.videos.list(**await self._list_filters(who, filters))

    async def list_edits(self, who: Principal, *, image_id: str | None = None,
                         kind: str | None = None, page_size: int = 50,
                         cursor: str | None = None) -> s.Page[s.ImageEdit]:
        """The caller's live edits and upscales, newest first; ``image_id`` narrows to
        one image's (``img_...``) or one upload's (``src_...``)."""
        upload = bool(image_id and image_id.startswith("src_"))
        return await self.cat.image_edits.list(
            page_size=page_size, cursor=cursor, kind=kind, user_id=owner_filter(who),
            image_id=None if upload else image_id, source_image_id=image_id if upload else None)

    async def get_edit(self, edit_id: str, who: Principal) -> EditResult:
        """An edit of the caller's and its prediction. Raises NotFound, PermissionDenied."""
        edit = await self._live(self.cat.image_edits, edit_id, who)
        return EditResult(edit=edit, prediction=await self._linked(edit.prediction_id))

    async def update_image(self, image_id: str, change: s.MediaUpdate,
                           who: Principal) -> s.Image:
        """Change an image's title, caption, alt text, public or favourite flag (owner
        only). Raises NotFound, PermissionDenied."""
        await self._live(self.cat.images, image_id, who)
        return await self.cat.images.update(image_id, **change.model_dump(exclude_none=True))

    async def update_video(self, video_id: str, change: s.MediaUpdate,
                           who: Principal) -> s.Video:
        """Change a video's metadata, like :meth:`update_image`."""
        await self._live(self.cat.videos, video_id, who)
        return await self.cat.videos.update(video_id, **change.model_dump(exclude_none=True))

    async def delete_media(self, kind: str, row_id: str, who: Principal) -> None:
        """Soft-delete one of the caller's images, videos, edits or uploads (``kind``:
        the table name): it leaves lists and gets at once; its files stay until the
        retention purge (``MediaConfig.retention_days``). Raises NotFound,
        PermissionDenied."""
        repo = self._media_repos()[kind]
        await self._live(repo, row_id, who)
        await repo.update(row_id, deleted_at=utcnow())

    async def upload_source_image(self, data: bytes, meta: s.SourceImageMeta,
                                  who: Principal) -> s.SourceImage:
        """Store an uploaded image: its type, size and dimensions read from the bytes
        (:func:`serve_apps.media.uploads.inspect_image`), a thumbnail made, both written
        under the media root, then the row. Raises InvalidArgument (field ``file``)."""
        info = await asyncio.to_thread(inspect_image, data,
                                       max_bytes=self.config.max_upload_bytes)
        upload_id = new_id("src")
        path, thumbnail_path = await save_upload(self.outputs.root, upload_id, data, info)
        return await self.cat.source_images.create(s.SourceImageCreate(
            **meta.model_dump(), path=path, thumbnail_path=thumbnail_path, format=info.format,
            mime_type=info.mime_type, size_bytes=info.size_bytes, width=info.width,
            height=info.height, user_id=who.user_id,
        ), id=upload_id)

    async def list_source_images(self, who: Principal, *, purpose: str | None = None,
                                 tag: str | None = None, page_size: int = 50,
                                 cursor: str | None = None) -> s.Page[s.SourceImage]:
        """The caller's live uploads (admins: everyone's), newest first."""
        return await self.cat.source_images.list(
            page_size=page_size, cursor=cursor, purpose=purpose, tag=tag,
            user_id=owner_filter(who))

    async def get_source_image(self, source_id: str, who: Principal) -> s.SourceImage:
        """An upload the caller may read (theirs, or public). Raises NotFound, 403."""
        return await self._live(self.cat.source_images, source_id, who, public_ok=True)

    async def update_source_image(self, source_id: str, change: s.SourceImageUpdate,
                                  who: Principal) -> s.SourceImage:
        """Change an upload's title, description, purpose or public flag (owner only)."""
        await self._live(self.cat.source_images, source_id, who)
        return await self.cat.source_images.update(
            source_id, **change.model_dump(exclude_none=True))

    async def content(self, kind: str, row_id: str, who: Principal, *, index: int = 0,
                      thumbnail: bool = False) -> tuple[bytes, str]:
        """The bytes and MIME type of a stored file: an upload (or its thumbnail), or
        the ``index``-th file of an image, edit or video (or a video's thumbnail).
        Raises NotFound (no such file, or purged), PermissionDenied."""
        repo = self._media_repos()[kind]
        row = await self._live(repo, row_id, who, public_ok=kind != "image_edits")
        if isinstance(row, s.SourceImage):
            path, mime = ((row.thumbnail_path, "image/webp") if thumbnail
                          else (row.path, row.mime_type))
            if row.purged_at is not None or path is None:
                raise NotFound(f"{row_id} has no stored file any more", field="id")
        else:
            stored = row.thumbnail if thumbnail and isinstance(row, s.Video) else (
                row.files[index] if 0 <= index < len(row.files) else None)
            if stored is None:
                raise NotFound(f"{row_id} has no file {index}", field="index")
            path, mime = stored.path, stored.mime_type
        return await asyncio.to_thread(shared_storage.read_bytes, path), mime

    # ----------------------------------------------------------------- providers, retention

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

    async def purge(self, now: datetime | None = None) -> int:
        """Remove from storage the files of media deleted more than
        ``retention_days`` ago and of outputs older than ``output_ttl_days`` (either
        None: that rule is off), then mark their rows purged. Returns how many rows
        were purged. A file already gone counts as removed, so a purge interrupted
        half-way is finished by the next."""
        now = now or utcnow()
        days = self.config.retention_days, self.config.output_ttl_days
        deleted_before, created_before = (
            None if d is None else now - timedelta(days=d) for d in days)
        count = 0
        while True:
            items = await self.cat.media_to_purge(
                deleted_before=deleted_before, created_before=created_before, limit=200)
            if not items:
                return count
            for item in items:
                await delete_files(item.paths)
                await self.cat.mark_purged(item.kind, item.id)
                count += 1

    async def _purge_periodically(self) -> None:
        """Run :meth:`purge` every ``purge_interval_s`` (the first after one interval);
        a failed run is logged and retried at the next."""
        while True:
            await asyncio.sleep(self.config.purge_interval_s)
            try:
                purged = await self.purge()
            except Exception:  # keep the loop alive; logged
                log.exception("media retention purge failed")
                continue
            if purged:
                log.info("media retention purge removed the files of %d rows", purged)

    async def list_predictions(self, who: Principal, *, status: str | None = None,
                               provider: str | None = None, modality: str | None = None,
                               page_size: int = 50,
                               cursor: str | None = None) -> s.Page[s.Prediction]:
        """Newest first; a non-admin sees only their own."""
        return await self.cat.predictions.list(
            page_size=page_size, cursor=cursor, status=status, provider=provider,
            modality=modality, user_id=owner_filter(who))

    async def _linked(self, prediction_id: str | None) -> s.Prediction:
        """The prediction a row links. Raises NotFound when it links none."""
        if prediction_id is None:
            raise NotFound("no prediction is linked to this row", field="prediction_id")
        return await self.cat.predictions.get(prediction_id)

    async def get_prediction(self, prediction_id: str, who: Principal) -> s.Prediction:
        pred = await self.cat.predictions.get(prediction_id)
        check_owner(who, pred.user_id)
        return pred

    async def cancel_prediction(self, prediction_id: str, who: Principal) -> s.Prediction:
        """Cancel at the provider, then mark canceled. Raises InvalidTransition (409) for a
        finished prediction."""
        pred = await self.get_prediction(prediction_id, who)
        if pred.status not in ACTIVE:
            raise InvalidTransition(f"prediction is already {pred.status}", field="status")
        provider = self.providers[pred.provider]
        if pred.provider_prediction_id:
            try:
                pjob, _ = await with_retries(
                    partial(provider.cancel, pred.provider_prediction_id), self.config.retry,
                    create=False)
            except ProviderError as exc:
                raise Unavailable(f"cancel failed: {self._redact(str(exc))}") from exc
            if pjob.terminal and pjob.status != P.canceled:
                return (await self._finalize(pred.id, pjob))[0]
        self._stop_tracking(pred.id)
        return await self.cat.transition_prediction(pred.id, P.canceled)

    async def handle_webhook(self, provider_name: str, headers: dict[str, str],
                             body: bytes) -> s.Prediction:
        """Apply a provider callback. Raises NotFound (unknown provider or prediction),
        Unauthenticated (bad signature), Unavailable (no signing secret)."""
        provider = self.providers.get(provider_name)
        if provider is None:
            raise NotFound(f"unknown provider {provider_name!r}", field="provider")
        pjob = provider.parse_webhook(headers, body)
        page = await self.cat.predictions.list(
            provider=provider_name, provider_prediction_id=pjob.provider_id, page_size=1)
        if not page.items:
            raise NotFound(f"no prediction for {provider_name} id {pjob.provider_id!r}")
        return (await self._apply(page.items[0], pjob))[0]

    async def wait(self, prediction_id: str, timeout_s: float) -> s.Prediction:
        """Block until a prediction is terminal. Raises TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self._tracking.get(prediction_id)
            if task is not None:
                await asyncio.wait_for(asyncio.shield(task),
                                       max(0.0, deadline - time.monotonic()))
            pred = await self.cat.predictions.get(prediction_id)
            if pred.status not in ACTIVE:
                return pred
            if time.monotonic() >= deadline:
                raise TimeoutError(f"prediction {prediction_id} still {pred.status}")
            await asyncio.sleep(min(self.config.poll_interval_s, 0.2))

    def health(self) -> dict[str, Any]:
        """Configured providers, cooldowns and tracked jobs (no secrets)."""
        return {
            "providers": {n: {"configured": p.configured,
                              "cooldown_s": self.cooldown.remaining_s(n)}
                          for n, p in self.providers.items()},
            "tracking": len(self._tracking),
        }

    async def resume(self) -> int:
        """Track again every unfinished prediction (after a restart). Returns how many."""
        count = 0
        for status in ACTIVE:
            cursor = None
            while True:
                page = await self.cat.predictions.list(status=status, page_size=500,
                                                       cursor=cursor)
                for pred in page.items:
                    if pred.provider_prediction_id and pred.provider in self.providers:
                        self._start_tracking(pred)
                        count += 1
                cursor = page.next_cursor
                if not cursor:
                    break
        return count

    async def close(self) -> None:
        tasks = list(self._tracking.values()) + list(self._prefetch.values())
        if self._purging is not None:
            tasks.append(self._purging)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.usage.close()
        await self.outputs.aclose()
        for provider in self.providers.values():
            await provider.aclose()

    # ----------------------------------------------------------------- submission

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

    async def _advance(self, pred: s.Prediction, pjob: ProviderJob | None,
                       target: str) -> tuple[s.Prediction, Any]:
        """After the target row (the image, edit or video with id ``target``) exists:
        finish a job the provider already finished, or start tracking it. Returns the
        prediction and the target row when it was updated (else None)."""
        if pjob is None:
            return pred, None
        if pjob.terminal:
            # A job without a provider id is known to nobody else: no re-read needed.
            return await self._finalize(pred.id, pjob, target=target,
                                        current=pred if pjob.provider_id is None else None)
        if pred.status in ACTIVE:
            self._start_tracking(pred)
        return pred, None

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

    # ----------------------------------------------------------------- lifecycle

    async def _apply(self, pred: s.Prediction, pjob: ProviderJob) -> tuple[s.Prediction, Any]:
        """Move ``pred`` to what the provider reports (finishing it when terminal)."""
        if pjob.terminal:
            return await self._finalize(pred.id, pjob)
        if pjob.status == P.processing and pred.status == P.starting:
            return await self.cat.transition_prediction(pred.id, P.processing), None
        return pred, None

    async def _finalize(self, prediction_id: str, pjob: ProviderJob, *,
                        target: str | None = None,
                        current: s.Prediction | None = None) -> tuple[s.Prediction, Any]:
        """Copy outputs and close the prediction; idempotent (webhook and poller race).
        Returns the prediction and the target row if its files were just set."""
        lock = self._locks.setdefault(prediction_id, asyncio.Lock())
        async with lock:
            pred = current or await self.cat.predictions.get(prediction_id)
            updated = None
            if pred.status in ACTIVE:
                pred, updated = await self._close(pred, pjob, target)
            if updated is None:
                updated = await self._sync_targets(pred, target)
        self._locks.pop(prediction_id, None)
        return pred, updated

    async def _close(self, pred: s.Prediction, pjob: ProviderJob,
                     target: str | None) -> tuple[s.Prediction, Any]:
        """Terminal transition; on success copy outputs first, then write the target row
        (when known), then the prediction, so a succeeded prediction's row always has
        its files. Returns ``(prediction, target row or None)``."""
        if pjob.status != P.succeeded:
            message = self._redact(pjob.error or f"{pred.provider} reported {pjob.status}")
            return await self.cat.transition_prediction(
                pred.id, pjob.status,
                error_message=message if pjob.status == P.failed else pjob.error), None
        prefetch = self._prefetch.pop(pred.id, None)
        try:
            files = await (prefetch or self.outputs.save(pred.id, pjob.outputs))
        except (OSError, ValueError, httpx.HTTPError) as exc:
            return await self.cat.transition_prediction(
                pred.id, P.failed,
                error_message=self._redact(f"could not copy outputs: {exc!r}")), None
        if not files:
            return await self.cat.transition_prediction(
                pred.id, P.failed, error_message=f"{pred.provider} returned no output"), None
        output = {"urls": [f.source_url for f in files if f.source_url]} | {
            k: v for k, v in pjob.raw.items() if k in ("seed", "revised_prompt", "metrics")}
        # The target rows first (named, or linked by prediction_id, as a webhook finds
        # them): whoever reads "succeeded" must find its files there.
        ids = [target] if target else await self._unfilled_targets(pred)
        row = await self._update_rows(pred, files, ids) if ids else None
        closed = await self.cat.transition_prediction(pred.id, P.succeeded, files=files,
                                                      output=output)
        return closed, row

    async def _sync_targets(self, pred: s.Prediction,
                            target: str | None = None) -> Any:
        """Copy a finished prediction's files onto the row that links it (``target``, or
        found by ``prediction_id``). Returns the updated row, or None."""
        if not pred.files:
            return None
        ids = [target] if target is not None else await self._unfilled_targets(pred)
        return await self._update_rows(pred, pred.files, ids)

    async def _unfilled_targets(self, pred: s.Prediction) -> list[str]:
        """Ids of the rows (images or videos) that link ``pred`` by ``prediction_id`` and
        have no files yet."""
        page = await _target_repo(self.cat, pred).list(prediction_id=pred.id, page_size=10)
        return [row.id for row in page.items if not row.files]

    async def _update_rows(self, pred: s.Prediction, files: list[s.StoredFile],
                           ids: list[str]) -> Any:
        repo = _target_repo(self.cat, pred)
        fields: dict[str, Any] = {"files": files}
        if repo.read is s.Image and files[0].width:
            fields |= {"width": files[0].width, "height": files[0].height}
        if repo.read is s.Video and files[0].mime_type.startswith("video/"):
            fields["thumbnail"] = await self.outputs.video_thumbnail(pred.id, files[0])
        rows = await asyncio.gather(*[repo.update(row_id, **fields) for row_id in ids])
        return rows[-1] if rows else None

    def _start_tracking(self, pred: s.Prediction) -> None:
        if pred.id in self._tracking:
            return
        task = asyncio.get_running_loop().create_task(self._track(pred))
        pid = pred.id
        self._tracking[pid] = task
        task.add_done_callback(lambda _task: self._tracking.pop(pid, None))

    def _stop_tracking(self, prediction_id: str) -> None:
        task = self._tracking.pop(prediction_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _track(self, pred: s.Prediction) -> None:
        """Poll the provider until the job is terminal or ``job_timeout_s`` passes."""
        provider = self.providers[pred.provider]
        provider_id = pred.provider_prediction_id
        if provider_id is None:  # never submitted: nothing to poll
            return
        deadline = time.monotonic() + self.config.job_timeout_s
        failures = 0
        while time.monotonic() < deadline:
            # +-20 % jitter so jobs submitted together do not poll in lockstep
            await asyncio.sleep(self.config.poll_interval_s * random.uniform(0.8, 1.2))
            try:
                pjob = await provider.get(provider_id)
            except ProviderError as exc:
                failures += 1
                log.warning("poll %s failed (%d in a row): %s", pred.id, failures,
                            self._redact(str(exc)))
                continue
            failures = 0
            pred, _ = await self._apply(pred, pjob)
            if pred.status not in ACTIVE:
                return
        try:
            await provider.cancel(provider_id)
        except (ProviderError, NotFound) as exc:
            log.warning("cancel after timeout of %s failed: %s", pred.id, exc)
        await self.cat.transition_prediction(
            pred.id, P.failed,
            error_message=f"timed out after {self.config.job_timeout_s:.0f}s")

    # ----------------------------------------------------------------- helpers

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

    async def _live(self, repo: AsyncRepoPort[M], row_id: str, who: Principal, *,
                    public_ok: bool = False) -> M:
        """A row that is not deleted and that ``who`` owns (or, with ``public_ok``, that
        is public). Raises NotFound (unknown or deleted), PermissionDenied."""
        row = await repo.get(row_id)
        if row.deleted_at is not None:
            raise NotFound(f"{repo.read.__name__.lower()} {row_id!r} not found", field="id")
        check_readable(who, row.user_id, public_ok and getattr(row, "is_public", False))
        return row

    def _media_repos(self) -> dict[str, Any]:
        return {"images": self.cat.images, "videos": self.cat.videos,
                "image_edits": self.cat.image_edits, "source_images": self.cat.source_images}

    async def _list_filters(self, who: Principal, filters: dict[str, Any]) -> dict[str, Any]:
        """Catalog list arguments from a route's: ``status`` (of the linked prediction),
        ``project`` (id or slug, visible to the caller), ``favorite``; owner filter."""
        out = dict(filters)
        out["prediction_status"] = out.pop("status", None)
        out["is_favorite"] = out.pop("favorite", None)
        project = out.pop("project", None)
        if project is not None:
            found = await self.cat.find_project(project)
            check_readable(who, found.user_id, found.is_published)
            out["project_id"] = found.id
        out["user_id"] = owner_filter(who)
        return out

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
        upload = ref.startswith("src_")
        pred, pjob = await self._submit(job, preferred, record | {"image_id": ref}, who)
        edit = await self.cat.image_edits.create(s.ImageEditCreate(
            kind=kind, operation=job.mode or job.operation,
            image_id=None if upload else ref, source_image_id=ref if upload else None,
            prompt=job.prompt, params={k: v for k, v in record.items() if v is not None},
            prediction_id=pred.id, user_id=who.user_id,
        ))
        pred, updated = await self._advance(pred, pjob, edit.id)
        return EditResult(edit=updated or edit, prediction=pred)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text
