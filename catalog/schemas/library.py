"""The user's library (seed 001): tags shared by every media entity and by styles and
themes, favourite styles and themes, and projects (ordered galleries of images and
videos); and :class:`RowKind`, the kinds of rows tags and favourites refer to.

Seed 001's ``TagImage`` and the JSON ``tags`` lists of helpers, themes and videos are one
:class:`Tag` model attached by taggings; its ``ThemeFavorite`` and
``PromptHelper.favorited_by`` are one :class:`Favorite` model; its gallery named
``ProjectImage`` is :class:`Project`, holding ordered images and videos.
"""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from catalog.schemas.common import (
    ID_LENGTH,
    NAME_LENGTH,
    CreatedAt,
    Row,
    Schema,
    TagName,
    UpdatedAt,
    UserId,
)


class RowKind(enum.StrEnum):
    """A kind of row that tags and favourites refer to. The value is the catalog's
    spelling (a tagging's or favourite's ``target_kind``, and JSON); :attr:`route` is the
    gateway's (``PUT /v1/{route}/{id}/tags``); :meth:`parse` reads any of them and the
    CLI's words."""

    image = "image"
    video = "video"
    source_image = "source_image"
    prompt_helper = "prompt_helper"
    theme_helper = "theme_helper"

    @property
    def route(self) -> str:
        """The route's plural name: images, videos, source-images, prompt-helpers,
        theme-helpers."""
        return self.value.replace("_", "-") + "s"

    @property
    def takes_favorites(self) -> bool:
        """Whether a user can mark a row of this kind as a favourite (styles and themes;
        images and videos have ``is_favorite`` instead)."""
        return self in (RowKind.prompt_helper, RowKind.theme_helper)

    @classmethod
    def parse(cls, text: str) -> RowKind:
        """The kind ``text`` names: its value or route name, singular or plural, with
        ``_`` or ``-`` (``image``, ``source-images``, ``prompt_helpers``), or one of the
        words ``upload``, ``style``, ``theme`` (and their plurals). Raises ValueError for
        another word."""
        name = text.strip().lower().replace("-", "_")
        name = _ALIASES.get(name.removesuffix("s"), name.removesuffix("s"))
        try:
            return cls(name)
        except ValueError:
            routes = ", ".join(kind.route for kind in cls)
            raise ValueError(f"kind must be one of {routes}, not {text!r}") from None


#: The CLI's words for kinds, singular.
_ALIASES = {"upload": "source_image", "style": "prompt_helper", "theme": "theme_helper"}


class Favorite(Row):
    """A user's favourite style or theme (seed 001 ``ThemeFavorite``, ``favorited_by``)."""

    user_id: str = Field(description="Whose favourite.")
    target_kind: RowKind = Field(description="prompt_helper or theme_helper.")
    target_id: str = Field(description="The helper's or theme's id.")
    created_at: CreatedAt


class TagCreate(Schema):
    """A request for a tag (seed 001's TagImage, shared by every media entity)."""

    name: str = TagName
    user_id: UserId = None


class Tag(TagCreate, Row):
    """A tag."""

    created_at: CreatedAt
    updated_at: UpdatedAt


class ProjectSpec(Schema):
    """A project's fields (seed 001's gallery ``ProjectImage``)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="The project's name.")
    description: str | None = Field(None, max_length=10000, description="Free text.")
    is_published: bool = Field(False, description="Visible to every user.")
    is_featured: bool = Field(False, description="Shown first.")


class ProjectCreate(ProjectSpec):
    """A request for a project; ``slug`` defaults to the name's slug."""

    slug: str | None = Field(
        None, min_length=1, max_length=NAME_LENGTH, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        description="URL name, unique over all projects: lowercase letters, digits, '-'.",
    )
    user_id: UserId = None


class ProjectUpdate(Schema):
    """Changes to a project (null: unchanged)."""

    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH)
    description: str | None = Field(None, max_length=10000)
    is_published: bool | None = None
    is_featured: bool | None = None


class Project(ProjectSpec, Row):
    """A project: an ordered gallery of images and videos."""

    slug: str = Field(description="URL name, unique over all projects.")
    user_id: UserId
    created_at: CreatedAt
    updated_at: UpdatedAt


class ProjectItemCreate(Schema):
    """A request to place one image or one video in a project."""

    image_id: str | None = Field(None, max_length=ID_LENGTH, description="The Image placed.")
    video_id: str | None = Field(None, max_length=ID_LENGTH, description="The Video placed.")
    position: int | None = Field(None, ge=0, description="Order from 0; default: last.")

    @model_validator(mode="after")
    def _one(self) -> ProjectItemCreate:
        if (self.image_id is None) == (self.video_id is None):
            raise ValueError("give exactly one of image_id or video_id")
        return self


class ProjectItem(Row):
    """An image's or a video's place in a project."""

    project_id: str = Field(description="The Project.")
    image_id: str | None = Field(description="The Image, for an image item.")
    video_id: str | None = Field(description="The Video, for a video item.")
    position: int = Field(description="Order in the project, from 0.")
    created_at: CreatedAt
