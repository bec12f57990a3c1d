"""Batch inference jobs in the shape of OpenAI's Batch API.

A batch runs every request line of an input file (a dataset of format ``openai_batch``:
``{custom_id, method, url, body}`` lines) through one endpoint and writes an output file
and an error file (datasets of format ``openai_batch_output``: ``{id, custom_id,
response, error}`` lines). The read model :class:`Batch` is OpenAI's Batch object
(https://platform.openai.com/docs/api-reference/batch/object) plus our owner, Ray job and
carbon fields; in JSON its times are unix seconds, as ``openai.types.Batch`` reads them.

Lifecycle (:data:`catalog.lifecycle.BATCH_TRANSITIONS`): ``validating -> in_progress ->
finalizing -> completed``; ``failed`` from any live status; ``cancelling -> cancelled``;
``expired`` past ``expires_at``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PlainSerializer, field_validator

from catalog.schemas.common import Row, Schema, UserId


class BatchStatus(enum.StrEnum):
    """OpenAI's batch statuses. Terminal: completed, failed, cancelled, expired."""

    validating = "validating"
    in_progress = "in_progress"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    cancelling = "cancelling"
    cancelled = "cancelled"
    expired = "expired"


class BatchEndpoint(enum.StrEnum):
    """The endpoints a batch may call (each request line's ``url`` must be the batch's)."""

    chat_completions = "/v1/chat/completions"
    completions = "/v1/completions"


def _unix_seconds(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


#: A UTC time; unix seconds (int) in JSON, as OpenAI's Batch object has them. Reading
#: accepts an ISO-8601 string, a datetime or unix seconds.
UnixTime = Annotated[
    datetime | None,
    PlainSerializer(_unix_seconds, return_type=int | None, when_used="json"),
]

#: OpenAI's limits on ``metadata``: at most 16 pairs, keys up to 64 and values up to 512
#: characters (https://platform.openai.com/docs/api-reference/batch/create).
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


class BatchRequestCounts(Schema):
    """How many request lines the batch has, and how many ended each way."""

    total: int = Field(0, ge=0, description="Request lines in the input file.")
    completed: int = Field(0, ge=0, description="Lines answered (in the output file).")
    failed: int = Field(0, ge=0, description="Lines that failed (in the error file).")


class InputTokensDetails(Schema):
    """OpenAI's ``input_tokens_details``."""

    cached_tokens: int = Field(0, ge=0, description="Prompt tokens served from a cache.")


class OutputTokensDetails(Schema):
    """OpenAI's ``output_tokens_details``."""

    reasoning_tokens: int = Field(0, ge=0, description="Reasoning tokens (none here).")


class BatchUsage(Schema):
    """Token totals over the batch's answered lines (OpenAI's ``BatchUsage``)."""

    input_tokens: int = Field(0, ge=0, description="Prompt tokens, summed over lines.")
    output_tokens: int = Field(0, ge=0, description="Generated tokens, summed over lines.")
    total_tokens: int = Field(0, ge=0, description="input_tokens + output_tokens.")
    input_tokens_details: InputTokensDetails = Field(
        default_factory=InputTokensDetails, description="Breakdown of input_tokens.")
    output_tokens_details: OutputTokensDetails = Field(
        default_factory=OutputTokensDetails, description="Breakdown of output_tokens.")


class BatchError(Schema):
    """Why a batch (not one line: those go to the error file) failed."""

    code: str = Field(description="Stable code, e.g. invalid_input_file, engine_error.")
    message: str = Field(description="Human-readable explanation.")
    param: str | None = Field(None, description="The parameter at fault, if one is.")
    line: int | None = Field(None, description="1-based input line at fault, if one is.")


class BatchErrors(Schema):
    """OpenAI's ``errors`` list object."""

    object: Literal["list"] = Field("list", description="Always 'list'.")
    data: list[BatchError] = Field(default_factory=list, description="The errors.")


class BatchCreate(Schema):
    """``POST /v1/batches`` (OpenAI's create-batch body)."""

    input_file_id: str = Field(
        min_length=1, max_length=64,
        description="Dataset id of the request lines (format openai_batch).")
    endpoint: BatchEndpoint = Field(
        description="Endpoint every line calls: /v1/chat/completions or /v1/completions.")
    completion_window: Literal["24h"] = Field(
        "24h", description="Time frame to process the batch in; only 24h, as OpenAI.")
    metadata: dict[str, str] | None = Field(
        None, description="Up to 16 key/value pairs (keys <= 64, values <= 512 characters).",
        # the ORM row keeps it as ``batch_metadata`` (``metadata`` is SQLAlchemy's)
        validation_alias=AliasChoices("batch_metadata", "metadata"),
    )

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"at most {MAX_METADATA_PAIRS} metadata pairs")
        for key, item in value.items():
            if len(key) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
                raise ValueError(f"metadata {key[:70]!r}: keys are at most {MAX_METADATA_KEY} "
                                 f"and values at most {MAX_METADATA_VALUE} characters")
        return value


class Batch(BatchCreate, Row):
    """A batch as the catalog stores it: OpenAI's Batch object, our owner, Ray job and
    carbon fields. Times are UTC datetimes in Python, unix seconds in JSON."""

    object: Literal["batch"] = Field(description="Always 'batch'.")
    status: BatchStatus = Field(description="Lifecycle status; moves by transitions only.")
    output_file_id: str | None = Field(
        description="Dataset id of the answered lines (openai_batch_output), once written.")
    error_file_id: str | None = Field(
        description="Dataset id of the failed lines (openai_batch_output), if any failed.")
    errors: BatchErrors | None = Field(description="Why the batch itself failed, if it did.")
    request_counts: BatchRequestCounts = Field(description="Lines in total, done, failed.")
    usage: BatchUsage = Field(description="Token totals over the answered lines.")
    prompt_tokens: int = Field(ge=0, description="Prompt tokens of the answered lines.")
    completion_tokens: int = Field(ge=0, description="Generated tokens of the answered lines.")
    energy_kwh: float | None = Field(
        description="Energy codecarbon measured while the batch ran, kWh.")
    emissions_kg: float | None = Field(description="Emissions of that energy, kg CO2eq.")
    user_id: UserId
    api_key_id: str | None = Field(description="The API key that created the batch.")
    ray_job_id: str | None = Field(description="Ray job submission id, once submitted.")
    created_at: UnixTime = Field(description="When the batch was created.")
    in_progress_at: UnixTime = Field(description="When it started running.")
    finalizing_at: UnixTime = Field(description="When it started writing its files.")
    completed_at: UnixTime = Field(description="When it completed.")
    failed_at: UnixTime = Field(description="When it failed.")
    cancelling_at: UnixTime = Field(description="When its cancellation was asked for.")
    cancelled_at: UnixTime = Field(description="When it was cancelled.")
    expires_at: UnixTime = Field(description="When it expires: created_at + 24 h.")
    expired_at: UnixTime = Field(description="When it expired.")
    updated_at: UnixTime = Field(description="When the row last changed.")
