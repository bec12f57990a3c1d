"""Datasets: files of training rows (or batch requests) in one of the row formats, with
their schema and statistics (seed 002's Dataset, DatasetSchema, DatasetStatistics)."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import ConfigDict, Field

from catalog.schemas.common import NAME_LENGTH, CreatedAt, Row, Schema, UpdatedAt, UserId


class DatasetFormat(enum.StrEnum):
    """Row formats (``corpora.formats``).

    Chats, for sft: alpaca ``{"instruction", "input"?, "output"}``, sharegpt
    ``{"conversations": [{"from", "value"}]}``, openai ``{"messages": [{"role",
    "content"}]}``. Preference pairs, for dpo: preference (TRL's) ``{"prompt", "chosen",
    "rejected"}`` (strings or message lists), openai_preference (OpenAI's DPO format)
    ``{"input": {"messages"}, "preferred_output", "non_preferred_output"}``.
    Batch files, not trainable: openai_batch, the request lines of OpenAI's Batch API
    ``{"custom_id", "method", "url", "body"}``; openai_batch_output, its output and
    error lines ``{"id", "custom_id", "response", "error"}``
    (https://platform.openai.com/docs/guides/batch).
    """

    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"
    preference = "preference"
    openai_preference = "openai_preference"
    openai_batch = "openai_batch"
    openai_batch_output = "openai_batch_output"


#: Formats of preference pairs (what method=dpo trains on).
PREFERENCE_FORMATS = frozenset({DatasetFormat.preference, DatasetFormat.openai_preference})
#: Formats of batch inference files (OpenAI's Batch API): nothing trains on them.
BATCH_FORMATS = frozenset({DatasetFormat.openai_batch, DatasetFormat.openai_batch_output})
#: Formats of chats (what method=sft trains on).
CHAT_FORMATS = frozenset(DatasetFormat) - PREFERENCE_FORMATS - BATCH_FORMATS


class DatasetFileFormat(enum.StrEnum):
    """The uploaded file's format (seed 002's DatasetFormat): JSON Lines, a JSON array of
    rows, CSV (header row first) or Apache Parquet. Whatever the upload, the stored file
    is JSON Lines of rows in the row format (:class:`DatasetFormat`)."""

    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


class DatasetSchema(Schema):
    """What an uploaded file holds (seed 002's DatasetSchema)."""

    columns: list[str] = Field(
        description="The file's columns: a CSV's header, a Parquet file's fields, or the keys "
        "of JSON rows in order of first appearance (after any column mapping).")
    sample: dict[str, Any] = Field(description="The first row, as stored (after mapping).")
    required_columns: list[str] = Field(
        description="The columns the detected row format needs (e.g. alpaca: instruction, "
        "output).")


class DatasetStatistics(Schema):
    """Lengths of the rows' prompts and answers (seed 002's DatasetStatistics).

    A row's prompt is every turn of its chat but the final assistant turn (alpaca:
    instruction and input as the user turn ``instruction + "\n\n" + input``; preference
    rows: the prompt), its answer the final assistant turn (preference rows: ``chosen``).
    Lengths are tokens of ``tokenizer`` (each turn's text encoded without special tokens
    or chat template, summed) when one counted, characters otherwise.
    """

    num_rows: int = Field(ge=0, description="Rows counted.")
    avg_input_length: float = Field(ge=0, description="Mean prompt length per row.")
    avg_output_length: float = Field(ge=0, description="Mean answer length per row.")
    max_length: int = Field(ge=0, description="Longest row (prompt + answer).")
    min_length: int = Field(ge=0, description="Shortest row (prompt + answer).")
    total_tokens: int | None = Field(
        None, ge=0, description="Tokens of all prompts and answers; null when counted in "
        "characters.")
    length_unit: Literal["tokens", "characters"] = Field(
        description="What the lengths count.")
    tokenizer: str | None = Field(
        None, description="Id of the model whose tokenizer counted; null for characters.")


class DatasetCreate(Schema):
    """A request to register a dataset file already in storage.

    The JSON key of ``dataset_schema`` is ``schema`` (the Python name avoids pydantic's
    ``BaseModel.schema``); both names are accepted on input.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="Dataset name.")
    version: int = Field(1, ge=1, description="Version under name; (name, version) is unique.")
    format: DatasetFormat = Field(description="Row format of the file.")
    path: str = Field(min_length=1, description="The JSONL file (local path or storage URI).")
    num_rows: int = Field(ge=0, description="Rows (examples) in the file.")
    size_bytes: int = Field(ge=0, description="File size, bytes.")
    description: str | None = Field(None, description="Free text about the dataset.")
    source: str | None = Field(None, description="Where the rows came from (package, upload).")
    user_id: UserId = None
    file_format: DatasetFileFormat = Field(
        DatasetFileFormat.jsonl, description="Format of the uploaded file (the stored file "
        "is JSONL of rows whatever it was).")
    dataset_schema: DatasetSchema | None = Field(
        None, alias="schema", description="Columns, a sample row and the row format's "
        "required columns; null for datasets registered before schemas were recorded.")
    statistics: DatasetStatistics | None = Field(
        None, description="Prompt and answer lengths; null for batch request files and "
        "datasets registered before statistics were recorded.")


class Dataset(DatasetCreate, Row):
    """A registered dataset."""

    created_at: CreatedAt
    updated_at: UpdatedAt
