"""The library tables: tags and what they are put on (``Tagged``), favourites, projects
and their items."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.tables.base import Owned, Row, id_column, utcnow


def tag_relationship(kind: str, owner: str) -> Mapped[list[TagRow]]:
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


class FavoriteRow(Row):
    __tablename__ = "favorites"
    __table_args__ = (UniqueConstraint("user_id", "target_kind", "target_id"),
                      Index("ix_favorites_target", "target_kind", "target_id"))
    id_prefix = "fav"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TagRow(Owned, Row):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id_prefix = "tag"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(100))


class TaggingRow(Row):
    """One tag on one row of ``target_kind`` (image, video, source_image, prompt_helper,
    theme_helper): seed 001 asks for one tag model over every entity."""

    __tablename__ = "taggings"
    __table_args__ = (UniqueConstraint("tag_id", "target_kind", "target_id"),
                      Index("ix_taggings_target", "target_kind", "target_id"))
    id_prefix = "tgg"

    id: Mapped[str] = id_column()
    tag_id: Mapped[str] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectRow(Owned, Row):
    __tablename__ = "projects"
    id_prefix = "prj"

    id: Mapped[str] = id_column()
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

    id: Mapped[str] = id_column()
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[str | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
