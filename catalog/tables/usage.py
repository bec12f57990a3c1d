"""The usage tables: one row per request, and the hourly rollups the summaries read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import Base, Row, id_column, utcnow


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

    id: Mapped[str] = id_column()
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
