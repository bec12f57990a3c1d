"""Every text field a request can set fits its column: each request model's field that
lands in a ``String(n)`` column of catalog/tables/ says so with ``max_length`` (or
values that fit), and the store refuses an over-long value the same way on SQLite (which
would store it) and PostgreSQL (which would raise), naming the field and writing
nothing."""

from __future__ import annotations

import enum
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sqlalchemy import String, inspect

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument
from serve_apps.gateway.routes import keys, models, styles
from serve_apps.media import schemas as media

#: Each request model (what a caller or a service sends to be stored) and the tables its
#: fields are written to, by name.
REQUESTS: list[tuple[type[BaseModel], tuple[type[Any], ...]]] = [
    (s.DatasetCreate, (t.DatasetRow,)),
    (s.ModelCreate, (t.ModelRow,)),
    (s.TrainingJobCreate, (t.TrainingJobRow,)),
    (s.BatchCreate, (t.BatchRow,)),
    (s.PredictionCreate, (t.PredictionRow,)),
    (s.ImageCreate, (t.ImageRow,)),
    (s.SourceImageCreate, (t.SourceImageRow,)),
    (s.SourceImageUpdate, (t.SourceImageRow,)),
    (s.ImageEditCreate, (t.ImageEditRow,)),
    (s.VideoCreate, (t.VideoRow,)),
    (s.MediaUpdate, (t.ImageRow, t.VideoRow)),
    (s.PromptHelperCreate, (t.PromptHelperRow, t.PromptHelperVersionRow)),
    (s.PromptHelperUpdate, (t.PromptHelperRow,)),
    (s.ThemeHelperCreate, (t.ThemeHelperRow, t.ThemeHelperVersionRow)),
    (s.ThemeHelperUpdate, (t.ThemeHelperRow,)),
    (s.TagCreate, (t.TagRow,)),
    (s.ProjectCreate, (t.ProjectRow,)),
    (s.ProjectUpdate, (t.ProjectRow,)),
    (s.ProjectItemCreate, (t.ProjectItemRow,)),
    (s.CarbonCreate, (t.CarbonRow,)),
    # the gateway's own bodies
    (keys.KeyCreate, (t.ApiKeyRow,)),
    (models.ModelImport, (t.ModelRow,)),
    (models.ModelMerge, (t.ModelRow,)),
    (styles.ForkRequest, (t.PromptHelperRow, t.ThemeHelperRow)),
    # the media routes' bodies: their model becomes the prediction's
    (media.ImageGenerationRequest, (t.ImageRow, t.PredictionRow)),
    (media.UpscaleRequest, (t.PredictionRow,)),
    (media.EditRequest, (t.PredictionRow,)),
    (media.VideoRequest, (t.VideoRow, t.PredictionRow)),
]


def longest_value(field: FieldInfo) -> int | None:
    """The most characters ``field`` accepts: its ``max_length``, or the longest of its
    Literal or enum values; None when unbounded."""
    for item in field.metadata:
        if isinstance(item, annotated_types.MaxLen):
            return item.max_length
    values: list[str] = []
    annotation = field.annotation
    union = get_origin(annotation) in (Union, UnionType)
    for kind in (get_args(annotation) if union else (annotation,)):
        if get_origin(kind) is Literal:
            values += [str(v) for v in get_args(kind)]
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            values += [str(m.value) for m in kind]
        elif kind is not type(None):
            return None
    return max(map(len, values)) if values else None


def string_columns(table: type[Any]) -> dict[str, int]:
    """Attribute name -> length of each ``String(n)`` column of ``table``."""
    return {attr.key: attr.columns[0].type.length for attr in inspect(table).column_attrs
            if isinstance(attr.columns[0].type, String) and attr.columns[0].type.length}


def test_every_request_field_fits_its_string_column():
    problems = []
    for model, tables in REQUESTS:
        for table in tables:
            for name, length in string_columns(table).items():
                field = model.model_fields.get(name)
                if field is None:
                    continue
                longest = longest_value(field)
                if longest is None or longest > length:
                    problems.append(f"{model.__name__}.{name}: accepts "
                                    f"{longest or 'any number of'} characters, "
                                    f"{table.__tablename__}.{name} holds {length}")
    assert not problems, "\n".join(problems)


def test_the_store_refuses_text_longer_than_its_column_alike_on_both_databases(store):
    """SQLite would store it and PostgreSQL raise an unnamed DataError: both refuse it
    naming the field, write nothing and change nothing stored."""
    key, _ = store.create_api_key("u" * 64, "n" * 200)  # the longest values fit, whole
    assert (key.user_id, key.name) == ("u" * 64, "n" * 200)
    with pytest.raises(InvalidArgument) as info:
        store.create_api_key("u" * 65, "too long an owner")
    assert (info.value.field, info.value.message) == ("user_id",
                                                      "user_id: at most 64 characters, got 65")
    assert store.api_keys.list().total == 1

    tag = store.tags.create(s.TagCreate(name="portraits", user_id="alice"))
    with pytest.raises(InvalidArgument) as info:
        store.tags.update(tag.id, name="x" * 101)
    assert info.value.field == "name"
    assert store.tags.get(tag.id).name == "portraits"
