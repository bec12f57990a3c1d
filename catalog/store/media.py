"""The media aggregate: the repositories of predictions, images, source images, image
edits and videos, a prediction's status transitions, and the retention purge of media
files (:meth:`MediaMixin.media_to_purge`, :meth:`MediaMixin.mark_purged`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.lifecycle import PREDICTION_TRANSITIONS, check_transition
from catalog.store.base import StoreBase
from catalog.store.events import set_status
from catalog.store.marks import idempotent
from catalog.store.repo import Repo, RepoField, plain

#: Columns of images and videos that :meth:`Repo.update` may set besides their own: what a
#: user writes about them, and when they were deleted and purged.
MEDIA_META = ("title", "caption", "alt_text", "is_public", "is_favorite", "deleted_at",
              "purged_at")


@dataclass(frozen=True)
class PurgeItem:
    """A row whose stored files the retention purge removes: its table (``images``,
    ``image_edits``, ``videos``, ``source_images``), id and file locations."""

    kind: str
    id: str
    paths: list[str]


class MediaMixin(StoreBase):
    """Provider predictions and the images and videos they make or take."""

    predictions = RepoField(
        t.PredictionRow, s.Prediction,
        filters=("status", "provider", "model", "modality", "provider_prediction_id"),
        updatable=("output", "files", "provider_prediction_id", "cost_usd", "retry_count"),
    )
    images = RepoField(
        t.ImageRow, s.Image,
        filters=("model", "provider", "prediction_id", "is_favorite", "is_public"),
        updatable=("files", "width", "height", *MEDIA_META),
        tag_kind=s.RowKind.image, item_column="image_id", public_column="is_public",
    )
    source_images = RepoField(
        t.SourceImageRow, s.SourceImage, filters=("purpose", "format"),
        updatable=("title", "description", "purpose", "is_public", "deleted_at",
                   "purged_at"),
        tag_kind=s.RowKind.source_image, public_column="is_public",
    )
    image_edits = RepoField(
        t.ImageEditRow, s.ImageEdit,
        filters=("kind", "image_id", "source_image_id", "prediction_id"),
        updatable=("files", "deleted_at", "purged_at"),
    )
    videos = RepoField(
        t.VideoRow, s.Video,
        filters=("model", "provider", "prediction_id", "is_favorite", "is_public"),
        updatable=("files", "thumbnail", *MEDIA_META),
        tag_kind=s.RowKind.video, item_column="video_id", public_column="is_public",
    )

    def _purgeable(self) -> dict[str, Repo[Any]]:
        """The tables whose rows hold stored files the retention purge removes, by name."""
        return {r.name: r for r in (self.images, self.image_edits, self.videos,
                                    self.source_images)}

    @idempotent
    def transition_prediction(
        self, prediction_id: str, status: s.PredictionStatus | str, *,
        error_message: str | None = None, **fields: Any,
    ) -> s.Prediction:
        """Move a prediction along Replicate's lifecycle (see :mod:`catalog.lifecycle`).

        Sets ``started_at`` on processing, ``completed_at`` and ``duration_s`` on a
        terminal status. A move to the current status changes only ``fields`` (to the
        same values when retried), so a repeated call is harmless. Raises NotFound,
        InvalidTransition (nothing written).
        """
        status = s.PredictionStatus(status)

        def move(_session: Session, row: t.PredictionRow) -> None:
            changed = check_transition(PREDICTION_TRANSITIONS, row.status, status)
            self.predictions.check_updatable(fields)
            for key, value in fields.items():
                setattr(row, key, plain(value))
            if changed:
                done = set_status(row, status, PREDICTION_TRANSITIONS,
                                  started=s.PredictionStatus.processing)
                if done is not None:
                    row.duration_s = (done - (row.started_at or row.created_at)).total_seconds()
                if error_message is not None:
                    row.error_message = error_message

        return self.predictions.change(prediction_id, move)

    # ----------------------------------------------------------------- retention

    @idempotent
    def media_to_purge(self, *, deleted_before: datetime | None,
                       created_before: datetime | None, limit: int = 500) -> list[PurgeItem]:
        """Rows whose files the retention purge removes: not purged yet, holding files,
        and deleted before ``deleted_before`` or created before ``created_before`` (None
        skips that rule). At most ``limit`` per table, oldest first."""
        if deleted_before is None and created_before is None:
            return []
        out: list[PurgeItem] = []
        with self.session() as session:
            for repo in self._purgeable().values():
                row = repo.row
                rules = []
                if deleted_before is not None:
                    rules.append(row.deleted_at < deleted_before)  # type: ignore[attr-defined]
                if created_before is not None:
                    rules.append(row.created_at < created_before)
                rows = session.scalars(select(row).where(
                    row.purged_at.is_(None), or_(*rules),  # type: ignore[attr-defined]
                ).order_by(row.created_at).limit(limit))
                for r in rows:
                    paths = _stored_paths(r)
                    if paths or repo is self.source_images:
                        out.append(PurgeItem(kind=repo.name, id=r.id, paths=paths))
            return out

    @idempotent
    def mark_purged(self, kind: str, row_id: str) -> None:
        """Record that a row's files are gone: ``purged_at`` now and its file list empty,
        and its prediction's too (source images keep their paths, which name nothing any
        more). Raises NotFound."""
        repo = self._purgeable()[kind]
        with self.session() as session:
            row = repo._get_row(session, row_id, lock=True)
            row.purged_at = t.utcnow()
            if hasattr(row, "files"):
                row.files = []
            if getattr(row, "prediction_id", None):  # the prediction listed the same files
                session.execute(update(t.PredictionRow).where(
                    t.PredictionRow.id == row.prediction_id).values(files=[]))


def _stored_paths(row: Any) -> list[str]:
    """Every storage location a media row holds (files, thumbnail, upload and its
    thumbnail)."""
    paths = [f["path"] for f in getattr(row, "files", None) or [] if f.get("path")]
    thumb = getattr(row, "thumbnail", None)
    if isinstance(thumb, dict) and thumb.get("path"):
        paths.append(thumb["path"])
    for column in ("path", "thumbnail_path"):
        value = getattr(row, column, None)
        if isinstance(value, str) and value:
            paths.append(value)
    return paths
