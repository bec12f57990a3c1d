"""The style tables: prompt helpers and themes, and their numbered versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import JSONType, Owned, Row, id_column, utcnow
from catalog.tables.library import Tagged, tag_relationship


class Style(Tagged, Owned):
    """What prompt helpers and themes share: a name unique per owner, a description and
    a category, whether it is built in or public, and the number of its current version."""

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    current_version: Mapped[int] = mapped_column(Integer, default=1)


class ThemeContent:
    """A theme's versioned content: its own text and its ordered recommended styles."""

    text: Mapped[str | None] = mapped_column(Text)
    negative_text: Mapped[str | None] = mapped_column(Text)
    prompt_helper_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    notes: Mapped[str | None] = mapped_column(Text)


class Version:
    """A numbered, immutable version of a style's content."""

    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def version_of(table: str) -> Mapped[str]:
    """The column of a version naming the row of ``table`` it belongs to (and is deleted
    with)."""
    return mapped_column(ForeignKey(f"{table}.id", ondelete="CASCADE"), index=True)


class PromptHelperRow(Style, Row):
    __tablename__ = "prompt_helpers"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "ph"

    id: Mapped[str] = id_column()
    forked_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_helpers.id", ondelete="SET NULL")
    )
    tag_rows = tag_relationship("prompt_helper", "PromptHelperRow")


class PromptHelperVersionRow(Version, Row):
    __tablename__ = "prompt_helper_versions"
    __table_args__ = (UniqueConstraint("helper_id", "version"),)
    id_prefix = "phv"

    id: Mapped[str] = id_column()
    helper_id: Mapped[str] = version_of("prompt_helpers")
    text: Mapped[str] = mapped_column(Text)
    negative_text: Mapped[str | None] = mapped_column(Text)
    placement: Mapped[str] = mapped_column(String(16))
    placements: Mapped[dict[str, Any]] = mapped_column(default=dict)
    style_presets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)


class ThemeHelperRow(Style, ThemeContent, Row):
    """A theme; it keeps its current version's content (:class:`ThemeContent`) on the row,
    so a theme is read in one query."""

    __tablename__ = "theme_helpers"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "th"

    id: Mapped[str] = id_column()
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    forked_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("theme_helpers.id", ondelete="SET NULL")
    )
    tag_rows = tag_relationship("theme_helper", "ThemeHelperRow")


class ThemeHelperVersionRow(Version, ThemeContent, Row):
    __tablename__ = "theme_helper_versions"
    __table_args__ = (UniqueConstraint("theme_id", "version"),)
    id_prefix = "thv"

    id: Mapped[str] = id_column()
    theme_id: Mapped[str] = version_of("theme_helpers")
