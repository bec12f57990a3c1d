"""The media tables: provider predictions, images, uploaded source images, image edits and
videos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import JSONType, Owned, Row, id_column
from catalog.tables.library import Tagged, tag_relationship


class PredictionRow(Owned, Row):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("provider", "provider_prediction_id"),
        Index("ix_predictions_model", "provider", "model"),
    )
    id_prefix = "pred"

    id: Mapped[str] = id_column()
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

    id: Mapped[str] = id_column()
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
    tag_rows = tag_relationship("image", "ImageRow")


class SourceImageRow(Tagged, SoftDeleted, Owned, Row):
    __tablename__ = "source_images"
    id_prefix = "src"

    id: Mapped[str] = id_column()
    path: Mapped[str] = mapped_column(Text)
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16), default="reference")
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    tag_rows = tag_relationship("source_image", "SourceImageRow")
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)


class ImageEditRow(SoftDeleted, Owned, Row):
    __tablename__ = "image_edits"
    id_prefix = "edit"

    id: Mapped[str] = id_column()
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

    id: Mapped[str] = id_column()
    prompt: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200), index=True)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    source_image_id: Mapped[str | None] = mapped_column(
        ForeignKey("source_images.id", ondelete="SET NULL"))
    thumbnail: Mapped[Any | None] = mapped_column(JSONType)
    tag_rows = tag_relationship("video", "VideoRow")
    duration_s: Mapped[float] = mapped_column(Float, default=5.0)
    ratio: Mapped[str | None] = mapped_column(String(16))
    prediction_id: Mapped[str | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), index=True
    )
    files: Mapped[list[Any]] = mapped_column(JSONType, default=list)
