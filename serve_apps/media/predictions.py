"""Prediction tracking: keep each Prediction row following its provider job — polling
(with jitter, until ``job_timeout_s``), provider webhooks, cancellation, resuming after
a restart — and, when a job finishes, copy its outputs and fill the Image, ImageEdit or
Video row that links it before the prediction reads "succeeded".
:class:`PredictionsMixin` of :class:`serve_apps.media.service.MediaService`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from functools import partial
from typing import Any

import httpx

from catalog import schemas as s
from catalog.errors import InvalidTransition, NotFound, Unavailable
from catalog.port import AsyncCatalogPort, AsyncRepoPort
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.media.providers import ProviderError
from serve_apps.media.providers.base import ProviderJob
from serve_apps.media.retry import with_retries
from serve_apps.media.state import ACTIVE, MediaState, P

log = logging.getLogger(__name__)

Target = AsyncRepoPort[s.Image] | AsyncRepoPort[s.ImageEdit] | AsyncRepoPort[s.Video]


def _target_repo(cat: AsyncCatalogPort, pred: s.Prediction) -> Target:
    """The catalog repository whose rows link ``pred``: videos, images or image edits."""
    if pred.modality == s.Modality.video:
        return cat.videos
    return cat.images if pred.operation == "generate" else cat.image_edits


class PredictionsMixin(MediaState):
    """The predictions' routes (list, get, cancel, webhooks) and their tracking."""

    async def list_predictions(self, who: Principal, *, status: str | None = None,
                               provider: str | None = None, modality: str | None = None,
                               page_size: int = 50,
                               cursor: str | None = None) -> s.Page[s.Prediction]:
        """Newest first; a non-admin sees only their own."""
        return await self.cat.predictions.list(
            page_size=page_size, cursor=cursor, status=status, provider=provider,
            modality=modality, user_id=owner_filter(who))

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
