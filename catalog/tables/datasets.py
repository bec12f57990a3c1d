"""The ``datasets`` table: registered training data and batch input files."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import JSONType, Row, Versions, id_column


class DatasetRow(Versions, Row):
    __tablename__ = "datasets"
    id_prefix = "ds"

    id: Mapped[str] = id_column()
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    num_rows: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(16), default="jsonl", server_default="jsonl")
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    statistics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
