"""The batch tables: batches of requests and their event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import Base, Event, JSONType, Owned, Row, id_column


class BatchRow(Owned, Row):
    """A batch inference job (OpenAI's Batch object); see :mod:`catalog.schemas.batches`.
    ``metadata`` is SQLAlchemy's name, so the column ``metadata`` maps to
    ``batch_metadata``; ``object``, ``request_counts`` and ``usage`` are read-only views
    of the columns, in OpenAI's shape."""

    __tablename__ = "batches"
    id_prefix = "batch"

    id: Mapped[str] = id_column()
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


class BatchEventRow(Event, Base):
    __tablename__ = "batch_events"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
