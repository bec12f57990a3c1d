"""The ``evaluations`` table: adapters scored against their base models (see
:mod:`catalog.schemas.evaluations`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import JSONType, Owned, Row, id_column


class EvaluationRow(Owned, Row):
    __tablename__ = "evaluations"
    id_prefix = "eval"

    id: Mapped[str] = id_column()
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    base_model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    batch_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    n: Mapped[int] = mapped_column(Integer)
    max_tokens: Mapped[int] = mapped_column(Integer)
    scores: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    examples: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    ray_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column()
