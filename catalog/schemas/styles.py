"""Prompt styles (seed 001): prompt helpers (styles) and their versions, themes and their
versions. Their tags and favourites are :mod:`catalog.schemas.library`'s.

Seed 001's ``PromptPlacement`` rows are folded into each helper version: a default
``placement`` and a ``placements`` map from prompt type (image, video) to placement.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from catalog.schemas.common import (
    LABEL_LENGTH,
    NAME_LENGTH,
    CreatedAt,
    Row,
    Schema,
    UpdatedAt,
    UserId,
)


class PromptPlacement(enum.StrEnum):
    """Where a prompt helper's text goes relative to the user's prompt."""

    append = "append"
    prefix = "prefix"
    # A member named like str.replace: the enum's value wins at run time; mypy sees a clash.
    replace = "replace"  # type: ignore[assignment]


#: What a prompt is for (seed 001 ``PromptPlacement.prompt_type``); media requests use
#: ``image`` and ``video``.
PromptType = Literal["image", "video", "voice", "narration", "style", "scene"]
Category = Field(None, max_length=LABEL_LENGTH, description="Free-form group, e.g. photography.")


class HelperText(Schema):
    """The versioned part of a prompt helper: what it adds and where."""

    text: str = Field(min_length=1, max_length=10000, description="Text added to prompts.")
    negative_text: str | None = Field(
        None, max_length=10000, description="Text added to the negative prompt, if any."
    )
    placement: PromptPlacement = Field(
        PromptPlacement.append, description="Where the text goes when no per-type one is set."
    )
    placements: dict[PromptType, PromptPlacement] = Field(
        default_factory=dict, description="Prompt type -> placement, overriding placement."
    )
    style_presets: dict[str, str] = Field(
        default_factory=dict,
        description="Provider -> its own style preset sent with the prompt, e.g. "
        "{'stability': 'cinematic'}.",
    )
    notes: str | None = Field(None, max_length=10000, description="What changed, free text.")


class PromptHelperSpec(Schema):
    """A helper's fields, shared by the request and the row (constraints live here)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH,
                      description="Helper name, unique per owner.")
    description: str | None = Field(None, description="Free text about the style.")
    category: str | None = Category
    is_public: bool = Field(False, description="Visible to every user (built-ins are).")


class PromptHelperCreate(PromptHelperSpec, HelperText):
    """A request for a new prompt helper; its text becomes version 1."""

    user_id: UserId = None


class HelperUpdate(Schema):
    """Changes to the unversioned fields styles and themes share (null: unchanged)."""

    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH)
    description: str | None = None
    category: str | None = Field(None, max_length=LABEL_LENGTH)
    is_public: bool | None = None


class PromptHelperUpdate(HelperUpdate):
    """Changes to a helper's unversioned fields (null: unchanged)."""


# PromptHelperCreate carries its first version's text, which the helper row does not have
# (they are PromptHelperVersion rows): the two share PromptHelperSpec only.
class PromptHelper(PromptHelperSpec, Row):
    """A prompt helper (a style); its texts are :class:`PromptHelperVersion` rows."""

    is_builtin: bool = Field(description="Shipped with Model Garden (seeded by a migration).")
    current_version: int = Field(description="The version applied when none is pinned.")
    forked_from_id: str | None = Field(description="The helper this one was forked from.")
    tags: list[str] = Field(description="Tag names, sorted.")
    user_id: UserId
    created_at: CreatedAt
    updated_at: UpdatedAt


class PromptHelperVersion(HelperText, Row):
    """One immutable version of a helper's text (seed 001 ``PromptHelperVersion``)."""

    helper_id: str = Field(description="The PromptHelper it belongs to.")
    version: int = Field(description="Version number, from 1; unique per helper.")
    created_at: CreatedAt

    def placement_for(self, prompt_type: str) -> PromptPlacement:
        """The placement for ``prompt_type`` (its own, else the default ``placement``)."""
        return self.placements.get(prompt_type, self.placement)  # type: ignore[call-overload]


class ThemeText(Schema):
    """The versioned part of a theme: its own text and its ordered recommended styles."""

    text: str | None = Field(None, max_length=10000,
                             description="The theme's own text, appended after its styles.")
    negative_text: str | None = Field(None, max_length=10000,
                                      description="Added to the negative prompt.")
    prompt_helper_ids: list[str] = Field(
        default_factory=list, description="Recommended PromptHelpers, applied in this order."
    )
    notes: str | None = Field(None, max_length=10000, description="What changed, free text.")


class ThemeHelperSpec(Schema):
    """A theme's unversioned fields (seed 001 ``ThemeHelper``)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH,
                      description="Theme name, unique per owner.")
    description: str | None = Field(None, description="Free text about the theme.")
    category: str | None = Category
    is_public: bool = Field(False, description="Visible to every user.")
    is_featured: bool = Field(False, description="Shown first in galleries.")
    is_active: bool = Field(True, description="Offered to users; inactive themes are kept.")


class ThemeHelperCreate(ThemeHelperSpec, ThemeText):
    """A request for a theme; its text and styles become version 1."""

    user_id: UserId = None


class ThemeHelperUpdate(HelperUpdate):
    """Changes to a theme's unversioned fields (null: unchanged)."""

    is_featured: bool | None = None
    is_active: bool | None = None


class ThemeHelper(ThemeHelperSpec, ThemeText, Row):
    """A theme; ``text``, ``negative_text`` and ``prompt_helper_ids`` are its current
    version's (:class:`ThemeHelperVersion` keeps every one)."""

    is_builtin: bool = Field(description="Shipped with Model Garden.")
    current_version: int = Field(description="The version applied.")
    forked_from_id: str | None = Field(description="The theme this one was forked from.")
    tags: list[str] = Field(description="Tag names, sorted.")
    user_id: UserId
    created_at: CreatedAt
    updated_at: UpdatedAt


class ThemeHelperVersion(ThemeText, Row):
    """One immutable version of a theme."""

    theme_id: str = Field(description="The ThemeHelper it belongs to.")
    version: int = Field(description="Version number, from 1; unique per theme.")
    created_at: CreatedAt
