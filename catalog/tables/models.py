"""The ``models`` table: base models, adapters and merged models with their lineage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import JSONType, Row, Versions, id_column


class ModelRow(Versions, Row):
    __tablename__ = "models"
    id_prefix = "mdl"

    id: Mapped[str] = id_column()
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
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
