"""Bases and shared pieces of the catalog contract: :class:`Schema`, :class:`Row`, pages,
the one error shape, the annotated id, owner and time types every entity uses, and the
rule for tag names (tags go on media, styles and themes).

Read models derive from their create models so that a constraint lives in one place::

    class Dataset(DatasetCreate, Row):   # Row adds ``id``; the create model the rest
        created_at: CreatedAt
        updated_at: UpdatedAt

Field order follows the bases: ``id`` first, then the create model's fields, then the
read model's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined


class Schema(BaseModel):
    """Base for every contract model: reads ORM attributes, rejects unknown fields."""

    model_config = ConfigDict(from_attributes=True, extra="forbid", protected_namespaces=())


# The lengths of the catalog's ``String(n)`` columns that requests set, in characters.
# A request field gets its column's length as ``max_length``, so an over-long value is a
# 422 naming the field instead of a database error; tests/catalog/test_lengths.py checks
# every request field against its column in catalog/tables/.
#: Row ids and user ids (``String(64)``).
ID_LENGTH = 64
#: Names, titles and model names (``String(200)``).
NAME_LENGTH = 200
#: Tag names and categories (``String(100)``).
LABEL_LENGTH = 100
#: Captions and alt texts (``String(1000)``).
CAPTION_LENGTH = 1000
#: Provider names and operations (``String(50)``).
PROVIDER_LENGTH = 50

#: A row's opaque id: the table's prefix, ``_`` and 32 hex digits (``mdl_3f2a…``).
RowId = Annotated[str, Field(description="Opaque row id: a type prefix, '_', 32 hex digits.")]
#: The owner of a row (``None``: owned by the system, e.g. an imported base model).
UserId = Annotated[
    str | None,
    Field(max_length=ID_LENGTH,
          description="Owner: the user id of the API key that created it; null for the system."),
]
#: A tag's name (``name: str = TagName``).
TagName = Field(min_length=1, max_length=LABEL_LENGTH, pattern=r"^[\w\- ]+$",
                description="Letters, digits, '_', '-' and spaces; unique per owner.")
#: When a row was inserted, timezone-aware UTC.
CreatedAt = Annotated[datetime, Field(description="When the row was created (UTC).")]
#: When a row last changed, timezone-aware UTC.
UpdatedAt = Annotated[datetime, Field(description="When the row last changed (UTC).")]


class Row(Schema):
    """Base of every read model (what the catalog returns): adds the row's ``id``.

    A row always has every column, so a read model has no defaults: in every subclass,
    each field inherited from a create model loses its default and becomes required
    (its type, constraints and description stay). This keeps responses' JSON Schema
    listing every field as required, and makes a missing field an error when a client
    reads a response, instead of a silent create-time default.
    """

    id: RowId

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for field in cls.model_fields.values():  # per-class copies: the bases keep theirs
            if not field.is_required():
                field.default = PydanticUndefined
                field.default_factory = None
                changed = True
        if changed:
            cls.model_rebuild(force=True)


# --------------------------------------------------------------------------- pages, errors

T = TypeVar("T")


class Page(Schema, Generic[T]):
    """One page of a list. ``next_cursor`` is opaque; pass it back to get the next page."""

    items: list[T] = Field(description="The rows of this page, newest first.")
    total: int = Field(description="Rows matching the filters, over all pages.")
    page_size: int = Field(description="Most rows a page holds (the request's page_size).")
    next_cursor: str | None = Field(
        default=None, description="Cursor of the next page; null on the last page."
    )


class ErrorBody(Schema):
    """What went wrong: a stable code (mapped to the HTTP status), a message, the field."""

    code: str = Field(description="Stable machine-readable code, e.g. not_found, conflict.")
    message: str = Field(description="Human-readable explanation.")
    field: str | None = Field(default=None, description="The offending field, if one is.")
    details: Any | None = Field(
        default=None, description="Extra facts (e.g. every invalid field, the job_id)."
    )
    request_id: str | None = Field(
        default=None, description="The request's id, to find it in the server logs."
    )


class ErrorResponse(Schema):
    """The one error shape of every non-OpenAI route: ``{"error": {...}}``."""

    error: ErrorBody = Field(description="The error.")
