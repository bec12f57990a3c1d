"""The ``api_keys`` table: API keys and job tokens, with the tokens each key used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, cast, func, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

from catalog.tables.base import Row, Timestamps, id_column
from catalog.tables.usage import UsageRollupRow


class ApiKeyRow(Timestamps, Row):
    __tablename__ = "api_keys"
    id_prefix = "key"

    id: Mapped[str] = id_column()
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
