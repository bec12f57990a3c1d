"""SQLAlchemy 2.0 typed ORM tables for every catalog entity.

Rows never leave :mod:`catalog.store`: it turns them into :mod:`catalog.schemas`
models first. Timestamps are stored as UTC and read back timezone-aware on both
SQLite and PostgreSQL; JSON columns are ``JSONB`` on PostgreSQL and JSON text on
SQLite. The schema itself is created by the Alembic migrations in
``catalog/migrations``; ``Base.metadata`` is their target.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    cast,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    column_property,
    mapped_column,
    relationship,
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A new opaque id such as ``job_3f2a...`` (prefix + 32 hex chars of a UUID4)."""
    return f"{prefix}_{uuid.uuid4().hex}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC; rejects naive input (ambiguous zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType}


if TYPE_CHECKING:

    class Row(Base):
        """What the store relies on in every entity table: a string id with a prefix
        for new ids, and a creation time. (For the type checker only: at run time
        ``Row`` is ``Base``, so the mapped tables are exactly as declared.)"""

        __abstract__ = True
        id_prefix: ClassVar[str]
        id: Mapped[str]
        created_at: Mapped[datetime]
else:
    Row = Base


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Owned(Timestamps):
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)


def _id() -> Mapped[str]:
    return mapped_column(String(64), primary_key=True)


# --------------------------------------------------------------------------- models, data


class ModelRow(Owned, Row):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id_prefix = "mdl"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    path: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    base_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    training_job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    merged_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    emissions_kg: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    published: Mapped[bool] = mapped_column(Boolean, default=False)


class DatasetRow(Owned, Row):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id_prefix = "ds"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    num_rows: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(16), default="jsonl", server_default="jsonl")
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    statistics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# --------------------------------------------------------------------------- training


class TrainingJobRow(Owned, Row):
    __tablename__ = "training_jobs"
    id_prefix = "job"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    method: Mapped[str] = mapped_column(String(16), default="sft", server_default="sft")
    base_model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    eval_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT")
    )
    eval_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lora: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quantization: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scaling: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resume_from_checkpoint: Mapped[str | None] = mapped_column(Text)
    country_iso_code: Mapped[str] = mapped_column(String(3), default="USA")
    output_model_name: Mapped[str | None] = mapped_column(String(200))
    report_to: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default="[]")
    ray_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    output_model_id: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    emissions_kg: Mapped[float | None] = mapped_column(Float)
    eval_loss_before: Mapped[float | None] = mapped_column(Float)
    eval_loss_after: Mapped[float | None] = mapped_column(Float)
    # progress of a running job (the trainer's state), 0 until it is sized
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    current_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    current_epoch: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    total_epochs: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()


class JobMetricRow(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    perplexity: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    memory_mb: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobCheckpointRow(Base):
    __tablename__ = "job_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- media


class PredictionRow(Owned, Row):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("provider", "provider_prediction_id"),
        Index("ix_predictions_model", "provider", "model"),
    )
    id_prefix = "pred"

    id: Mapped[str] = _id()
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(50))
    modality: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True, default="starting")
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[Any | None] = mapped_column(JSONType)
    files: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    provider_prediction_id: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    duration_s: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)


def _tag_rows(kind: str, owner: str) -> Mapped[list[TagRow]]:
    """The tags on rows of class ``owner`` (taggings with ``target_kind`` ``kind``), read
    with their rows (one extra SELECT per query, SQLAlchemy's ``selectin``); view only:
    taggings are written by :meth:`catalog.store.CatalogStore.set_tags`."""
    return relationship(
        "TagRow", secondary="taggings",
        primaryjoin=f"and_({owner}.id == foreign(TaggingRow.target_id), "
                    f"TaggingRow.target_kind == '{kind}')",
        secondaryjoin="TagRow.id == foreign(TaggingRow.tag_id)",
        viewonly=True, lazy="selectin", order_by="TagRow.name",
    )


class Tagged:
    """A row that tags can be put on: ``tags`` is their sorted names."""

    if TYPE_CHECKING:
        tag_rows: list[TagRow]

    @property
    def tags(self) -> list[str]:
        return [tag.name for tag in self.tag_rows]


class SoftDeleted:
    """A row hidden by ``deleted_at`` and whose files the retention purge removes."""

    deleted_at: Mapped[datetime | None] = mapped_column(index=True)
    purged_at: Mapped[datetime | None] = mapped_column()


class MediaMeta:
    """What a user writes about an image or a video."""

    title: Mapped[str | None] = mapped_column(String(200))
    caption: Mapped[str | None] = mapped_column(String(1000))
    alt_text: Mapped[str | None] = mapped_column(String(1000))
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    is_favorite: Mapped[bool] = mapped_column(Boolean, default=False)


class ImageRow(Tagged, SoftDeleted, MediaMeta, Owned, Row):
    __tablename__ = "images"
    id_prefix = "img"

    id: Mapped[str] = _id()
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    styled_prompt: Mapped[str | None] = mapped_column(Text)
    applied_style: Mapped[str | None] = mapped_column(Text)
    prompt_helper_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_helper_versions.id", ondelete="SET NULL")
    )
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    aspect_ratio: Mapped[str | None] = mapped_column(String(16))
    output_format: Mapped[str] = mapped_column(String(8), default="png")
    num_outputs: Mapped[int] = mapped_column(Integer, default=1)
    guidance_scale: Mapped[float | None] = mapped_column(Float)
    style_preset: Mapped[str | None] = mapped_column(String(64))
    prediction_id: Mapped[str | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), index=True
    )
    files: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    tag_rows = _tag_rows("image", "ImageRow")


class SourceImageRow(Tagged, SoftDeleted, Owned, Row):
    __tablename__ = "source_images"
    id_prefix = "src"

    id: Mapped[str] = _id()
    path: Mapped[str] = mapped_column(Text)
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16), default="reference")
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    tag_rows = _tag_rows("source_image", "SourceImageRow")
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)


class ImageEditRow(SoftDeleted, Owned, Row):
    __tablename__ = "image_edits"
    id_prefix = "edit"

    id: Mapped[str] = _id()
    kind: Mapped[str] = mapped_column(String(16), index=True)
    operation: Mapped[str] = mapped_column(String(50))
    image_id: Mapped[str | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    source_image_id: Mapped[str | None] = mapped_column(
        ForeignKey("source_images.id", ondelete="CASCADE")
    )
    prompt: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prediction_id: Mapped[str | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), index=True
    )
    files: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class VideoRow(Tagged, SoftDeleted, MediaMeta, Owned, Row):
    __tablename__ = "videos"
    id_prefix = "vid"

    id: Mapped[str] = _id()
    prompt: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200), index=True)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    source_image_id: Mapped[str | None] = mapped_column(
        ForeignKey("source_images.id", ondelete="SET NULL"))
    thumbnail: Mapped[Any | None] = mapped_column(JSONType)
    tag_rows = _tag_rows("video", "VideoRow")
    duration_s: Mapped[float] = mapped_column(Float, default=5.0)
    ratio: Mapped[str | None] = mapped_column(String(16))
    prediction_id: Mapped[str | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), index=True
    )
    files: Mapped[list[Any]] = mapped_column(JSONType, default=list)


# --------------------------------------------------------------------------- batches


class BatchRow(Owned, Row):
    """A batch inference job (OpenAI's Batch object); see :mod:`catalog.schemas.batches`.
    ``metadata`` is SQLAlchemy's name, so the column ``metadata`` maps to
    ``batch_metadata``; ``object``, ``request_counts`` and ``usage`` are read-only views
    of the columns, in OpenAI's shape."""

    __tablename__ = "batches"
    id_prefix = "batch"

    id: Mapped[str] = _id()
    api_key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    completion_window: Mapped[str] = mapped_column(String(16), default="24h")
    batch_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    status: Mapped[str] = mapped_column(String(16), index=True, default="validating")
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    request_total: Mapped[int] = mapped_column(Integer, default=0)
    request_completed: Mapped[int] = mapped_column(Integer, default=0)
    request_failed: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    emissions_kg: Mapped[float | None] = mapped_column(Float)
    ray_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    in_progress_at: Mapped[datetime | None] = mapped_column()
    finalizing_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    cancelling_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()

    @property
    def object(self) -> str:
        return "batch"

    @property
    def request_counts(self) -> dict[str, int]:
        return {"total": self.request_total or 0, "completed": self.request_completed or 0,
                "failed": self.request_failed or 0}

    @property
    def usage(self) -> dict[str, Any]:
        prompt, completion = self.prompt_tokens or 0, self.completion_tokens or 0
        return {"input_tokens": prompt, "output_tokens": completion,
                "total_tokens": prompt + completion,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}}


class BatchEventRow(Base):
    __tablename__ = "batch_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- prompt styles


class PromptHelperRow(Tagged, Owned, Row):
    __tablename__ = "prompt_helpers"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "ph"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    forked_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_helpers.id", ondelete="SET NULL")
    )
    tag_rows = _tag_rows("prompt_helper", "PromptHelperRow")


class PromptHelperVersionRow(Row):
    __tablename__ = "prompt_helper_versions"
    __table_args__ = (UniqueConstraint("helper_id", "version"),)
    id_prefix = "phv"

    id: Mapped[str] = _id()
    helper_id: Mapped[str] = mapped_column(
        ForeignKey("prompt_helpers.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    negative_text: Mapped[str | None] = mapped_column(Text)
    placement: Mapped[str] = mapped_column(String(16))
    placements: Mapped[dict[str, Any]] = mapped_column(default=dict)
    style_presets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThemeHelperRow(Tagged, Owned, Row):
    __tablename__ = "theme_helpers"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "th"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    # the current version's content, kept with the row so a theme is read in one query
    text: Mapped[str | None] = mapped_column(Text)
    negative_text: Mapped[str | None] = mapped_column(Text)
    prompt_helper_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    forked_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("theme_helpers.id", ondelete="SET NULL")
    )
    tag_rows = _tag_rows("theme_helper", "ThemeHelperRow")


class ThemeHelperVersionRow(Row):
    __tablename__ = "theme_helper_versions"
    __table_args__ = (UniqueConstraint("theme_id", "version"),)
    id_prefix = "thv"

    id: Mapped[str] = _id()
    theme_id: Mapped[str] = mapped_column(
        ForeignKey("theme_helpers.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    negative_text: Mapped[str | None] = mapped_column(Text)
    prompt_helper_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FavoriteRow(Row):
    __tablename__ = "favorites"
    __table_args__ = (UniqueConstraint("user_id", "target_kind", "target_id"),
                      Index("ix_favorites_target", "target_kind", "target_id"))
    id_prefix = "fav"

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TagRow(Owned, Row):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "tag"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(100))


class TaggingRow(Row):
    """One tag on one row of ``target_kind`` (image, video, source_image, prompt_helper,
    theme_helper): seed 001 asks for one tag model over every entity."""

    __tablename__ = "taggings"
    __table_args__ = (UniqueConstraint("tag_id", "target_kind", "target_id"),
                      Index("ix_taggings_target", "target_kind", "target_id"))
    id_prefix = "tgg"

    id: Mapped[str] = _id()
    tag_id: Mapped[str] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectRow(Owned, Row):
    __tablename__ = "projects"
    id_prefix = "prj"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)


class ProjectItemRow(Row):
    __tablename__ = "project_items"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),
                      UniqueConstraint("project_id", "video_id"))
    id_prefix = "pit"

    id: Mapped[str] = _id()
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[str | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- usage, carbon, keys


class UsageRow(Row):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_model_created", "model", "created_at"),
        # the summaries' filters: one user's, one key's, one model's records over a period
        Index("ix_usage_records_user_created", "user_id", "created_at"),
        Index("ix_usage_records_api_key_created", "api_key_id", "created_at"),
        Index("ix_usage_records_model_id_created", "model_id", "created_at"),
    )
    id_prefix = "use"

    id: Mapped[str] = _id()
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(50))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    emissions_kg: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


#: The key columns of a rollup row, in the primary key's order.
ROLLUP_KEYS = ("bucket", "user_id", "api_key_id", "model", "model_id", "adapter", "kind")
#: The summed columns of a rollup row.
ROLLUP_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "costed_requests",
               "energy_kwh", "emissions_kg")


class UsageRollupRow(Base):
    """Usage records summed per hour and per (user, key, model, model id, adapter, kind).

    Maintained by :meth:`catalog.store.CatalogStore.record_usage` in the transaction that
    inserts the records, so the summaries read these rows instead of every record. Key
    columns hold ``''`` for a record's null (NULLs never conflict in a unique key, so an
    upsert could not find the row); ``bucket`` is the hour the records were created in
    (UTC). ``cost_usd`` sums the ``costed_requests`` records that have a cost.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (
        Index("ix_usage_rollups_api_key_bucket", "api_key_id", "bucket"),
        Index("ix_usage_rollups_user_bucket", "user_id", "bucket"),
    )

    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    adapter: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    costed_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    energy_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    emissions_kg: Mapped[float] = mapped_column(Float, default=0.0)


class CarbonRow(Row):
    __tablename__ = "carbon_records"
    id_prefix = "co2"

    id: Mapped[str] = _id()
    source: Mapped[str] = mapped_column(String(16), index=True)
    energy_kwh: Mapped[float] = mapped_column(Float)
    emissions_kg: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    training_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"), index=True
    )
    model_id: Mapped[str | None] = mapped_column(String(64), index=True)
    country_iso_code: Mapped[str | None] = mapped_column(String(3))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ApiKeyRow(Timestamps, Row):
    __tablename__ = "api_keys"
    id_prefix = "key"

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    token_budget: Mapped[int | None] = mapped_column(BigInteger)
    # a job token (scope "job"): the training job or batch it registered (no foreign key:
    # either table), and when it stops authenticating
    scope: Mapped[str] = mapped_column(String(16), default="full", server_default="full")
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime | None] = mapped_column()
    # read with the row: the key's lifetime tokens, summed over its rollup rows (indexed
    # by api_key_id), so authenticating a key is one query
    tokens_used: Mapped[int] = column_property(
        select(cast(func.coalesce(
            func.sum(UsageRollupRow.prompt_tokens + UsageRollupRow.completion_tokens), 0),
            BigInteger))
        .where(UsageRollupRow.api_key_id == id)
        .correlate_except(UsageRollupRow)
        .scalar_subquery()
    )
