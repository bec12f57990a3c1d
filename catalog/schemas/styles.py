"""Prompt styles and organisation (seed 001): prompt helpers and their versions, themes,
tags and project galleries."""

from __future__ import annotations

import enum

from pydantic import Field

from catalog.schemas.common import CreatedAt, Row, Schema, UpdatedAt, UserId


class PromptPlacement(enum.StrEnum):
    """Where a prompt helper's text goes relative to the user's prompt."""

    append = "append"
    prefix = "prefix"
    # A member named like str.replace: the enum's value wins at run time; mypy sees a clash.
    replace = "replace"  # type: ignore[assignment]


class PromptHelperSpec(Schema):
    """A helper's fields, shared by the request and the row (constraints live here)."""

    name: str = Field(min_length=1, max_length=200, description="Helper name, unique per owner.")
    description: str | None = Field(None, description="Free text about the style.")


class PromptHelperCreate(PromptHelperSpec):
    """A request for a new prompt helper; its text becomes version 1."""

    text: str = Field(min_length=1, max_length=10000, description="First version's text.")
    placement: PromptPlacement = Field(
        PromptPlacement.append, description="Where the text goes relative to the prompt."
    )
    user_id: UserId = None


# PromptHelperCreate carries its first version's text and placement, which the helper row
# does not have (they are PromptHelperVersion rows): the two share PromptHelperSpec only.
class PromptHelper(PromptHelperSpec, Row):
    """A prompt helper (a style); its texts are :class:`PromptHelperVersion` rows."""

    current_version: int = Field(description="The version applied when none is pinned.")
    forked_from_id: str | None = Field(description="The helper this one was forked from.")
    user_id: UserId
    created_at: CreatedAt
    updated_at: UpdatedAt


# Not derived from PromptHelperCreate: versions after the first come from
# CatalogStore.add_prompt_helper_version(text, placement), which takes no request model,
# so the request's text limits would be checked only on the way out (an error after the
# write instead of a 422 before it).
class PromptHelperVersion(Row):
    """One immutable version of a helper's text."""

    helper_id: str = Field(description="The PromptHelper it belongs to.")
    version: int = Field(description="Version number, from 1; unique per helper.")
    text: str = Field(description="The text added to prompts.")
    placement: PromptPlacement = Field(description="Where the text goes relative to the prompt.")
    created_at: CreatedAt


class ThemeHelperCreate(Schema):
    """A request for a theme: an ordered list of prompt helpers applied together."""

    name: str = Field(min_length=1, max_length=200, description="Theme name, unique per owner.")
    description: str | None = Field(None, description="Free text about the theme.")
    prompt_helper_ids: list[str] = Field(
        default_factory=list, description="PromptHelpers applied in this order."
    )
    user_id: UserId = None


class ThemeHelper(ThemeHelperCreate, Row):
    """A theme."""

    forked_from_id: str | None = Field(description="The theme this one was forked from.")
    created_at: CreatedAt
    updated_at: UpdatedAt


class TagCreate(Schema):
    """A request for a tag (seed 001's TagImage)."""

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[\w\- ]+$",
        description="Letters, digits, '_', '-' and spaces; unique per owner.",
    )
    user_id: UserId = None


class Tag(TagCreate, Row):
    """A tag."""

    created_at: CreatedAt
    updated_at: UpdatedAt


class ProjectImageCreate(Schema):
    """A request to place an image in a project gallery (seed 001's ProjectImage)."""

    project: str = Field(min_length=1, max_length=200, description="The project's name.")
    image_id: str = Field(description="The Image placed.")
    position: int = Field(0, ge=0, description="Order in the project, from 0.")
    user_id: UserId = None


class ProjectImage(ProjectImageCreate, Row):
    """An image's place in a project."""

    created_at: CreatedAt
    updated_at: UpdatedAt
