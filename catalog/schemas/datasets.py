"""Datasets: JSONL files of training rows in one of three chat formats (seed 002's
Dataset)."""

from __future__ import annotations

import enum

from pydantic import Field

from catalog.schemas.common import CreatedAt, Row, Schema, UpdatedAt, UserId


class DatasetFormat(enum.StrEnum):
    """Row formats (``train_jobs.formats``).

    Chats, for sft: alpaca ``{"instruction", "input"?, "output"}``, sharegpt
    ``{"conversations": [{"from", "value"}]}``, openai ``{"messages": [{"role",
    "content"}]}``. Preference pairs, for dpo: preference (TRL's) ``{"prompt", "chosen",
    "rejected"}`` (strings or message lists), openai_preference (OpenAI's DPO format)
    ``{"input": {"messages"}, "preferred_output", "non_preferred_output"}``.
    """

    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"
    preference = "preference"
    openai_preference = "openai_preference"


#: Formats of preference pairs (what method=dpo trains on); the others are chats (sft).
PREFERENCE_FORMATS = frozenset({DatasetFormat.preference, DatasetFormat.openai_preference})


class DatasetCreate(Schema):
    """A request to register a dataset file already in storage."""

    name: str = Field(min_length=1, max_length=200, description="Dataset name.")
    version: int = Field(1, ge=1, description="Version under name; (name, version) is unique.")
    format: DatasetFormat = Field(description="Row format of the file.")
    path: str = Field(min_length=1, description="The JSONL file (local path or storage URI).")
    num_rows: int = Field(ge=0, description="Rows (examples) in the file.")
    size_bytes: int = Field(ge=0, description="File size, bytes.")
    description: str | None = Field(None, description="Free text about the dataset.")
    source: str | None = Field(None, description="Where the rows came from (package, upload).")
    user_id: UserId = None


class Dataset(DatasetCreate, Row):
    """A registered dataset."""

    created_at: CreatedAt
    updated_at: UpdatedAt
