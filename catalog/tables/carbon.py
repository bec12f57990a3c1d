"""The ``carbon_records`` table: energy and emissions measurements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import Row, id_column, utcnow


class CarbonRow(Row):
    __tablename__ = "carbon_records"
    id_prefix = "co2"

    id: Mapped[str] = id_column()
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
