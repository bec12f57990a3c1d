"""Usage and carbon: one record per inference request or provider call, carbon
measurements (codecarbon), and their summaries (usage per user, key, model, adapter or
period; seed 002's ``CarbonSummary`` and ``CarbonByModel``)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from catalog.schemas.common import ID_LENGTH, CreatedAt, Row, Schema, UserId


class CarbonSource(enum.StrEnum):
    """What consumed the energy."""

    training = "training"
    inference = "inference"
    media = "media"


class UsageSpec(Schema):
    """A usage record's fields, shared by the request and the row (constraints live here)."""

    model: str = Field(
        min_length=1, description="The base model's name (llm) or the provider's model (media)."
    )
    adapter: str | None = Field(None, description="The LoRA adapter served, if any.")
    provider: str | None = Field(None, description="The media provider.")
    prompt_tokens: int = Field(0, ge=0, description="Prompt tokens, as the engine counted them.")
    completion_tokens: int = Field(0, ge=0, description="Generated tokens.")
    latency_ms: float = Field(0.0, ge=0, description="Request wall time, milliseconds.")
    ttft_ms: float | None = Field(None, ge=0, description="Time to first token, milliseconds.")
    energy_kwh: float = Field(
        0.0, ge=0,
        description="Energy attributed to the request, kWh (a share of codecarbon's "
        "measurement).",
    )
    emissions_kg: float = Field(0.0, ge=0, description="Emissions attributed, kg CO2eq.")
    cost_usd: float | None = Field(None, ge=0, description="Estimated cost, USD.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra facts (route, stream, operation, ...; an LLM record's request_id "
        "is the id of the response it billed, chatcmpl-...).",
    )
    user_id: UserId = None
    model_id: str | None = Field(
        None, max_length=64,
        description="Catalog id of the model that answered: the adapter's id for an adapter "
        "request, the base model's id otherwise; null for media provider models.",
    )
    api_key_id: str | None = Field(
        None, max_length=64,
        description="Catalog id of the API key that made the request; null for the bootstrap "
        "admin key or internal calls.",
    )


class UsageCreate(UsageSpec):
    """One request's usage. ``id`` may be set by the caller, which makes writes idempotent:
    a record written again under a stored ``id`` (a retried batch) is skipped."""

    id: str | None = Field(
        None, max_length=64, description="Caller-chosen id; null lets the catalog pick one."
    )
    kind: Literal["llm", "media"] = Field(
        "llm", description="llm: an inference request; media: a provider call."
    )
    created_at: AwareDatetime | None = Field(
        None,
        description="When the request finished (timezone-aware; stored as UTC); null: the "
        "time of the write. Set by the replica so a record written late (retried, spooled) "
        "keeps its time.",
    )


# Derives from UsageSpec, not UsageCreate: the row's id is always set and its kind is a
# plain string (the response schema stays a string), types a subclass of UsageCreate
# could not declare without breaking UsageCreate's.
class UsageRecord(UsageSpec, Row):
    """A stored usage record."""

    kind: str = Field(description="llm: an inference request; media: a provider call.")
    total_tokens: int = Field(description="prompt_tokens + completion_tokens.")
    created_at: CreatedAt


class CarbonCreate(Schema):
    """One energy and emissions measurement (seed 002's CarbonMetrics).

    A measurement that runs on (a node's running total during a training job) is
    written again under the same caller-chosen ``id``; each write replaces the last.
    """

    id: str | None = Field(
        None, max_length=64,
        description="Caller-chosen id: a second write with it replaces the first (a running "
        "total); null lets the catalog pick one.")
    source: CarbonSource = Field(description="What consumed the energy.")
    energy_kwh: float = Field(ge=0, description="Energy consumed, kWh.")
    emissions_kg: float = Field(ge=0, description="Emissions, kg CO2eq.")
    duration_s: float = Field(0.0, ge=0, description="Time measured, seconds.")
    training_job_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The TrainingJob measured.")
    model_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The Model it produced or served.")
    country_iso_code: str | None = Field(
        None, max_length=3,
        description="ISO 3166-1 alpha-3 code of the grid, for its carbon intensity."
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="Extra facts (nodes measured, tool, ...)."
    )
    user_id: UserId = None


class CarbonRecord(CarbonCreate, Row):
    """A stored measurement."""

    created_at: CreatedAt


class CarbonSummaryRow(Schema):
    """Totals of one group."""

    key: str | None = Field(
        description="The group: a model id or name, job id, source, or period (YYYY-MM-DD, "
        "YYYY-MM); null for records without one."
    )
    energy_kwh: float = Field(description="Energy, kWh.")
    emissions_kg: float = Field(description="Emissions, kg CO2eq.")
    records: int = Field(description="Carbon and usage records summed.")


class CarbonByModel(Schema):
    """One model's share of the emissions (seed 002's ``CarbonByModel``)."""

    model_id: str | None = Field(
        description="The catalog model: usage under its ``model_id``, carbon records under "
        "theirs; null for usage of a media provider's model (see ``model_name``) and carbon "
        "records of no model."
    )
    model_name: str | None = Field(
        description="The model's name in the catalog; for usage without a model id, the "
        "``model`` the usage records name (a provider's model); null when unknown."
    )
    emissions_kg: float = Field(ge=0, description="Emissions, kg CO2eq.")
    energy_kwh: float = Field(ge=0, description="Energy, kWh.")
    percentage: float = Field(
        ge=0, le=100, description="Share of the summary's total emissions, percent (0-100)."
    )


CarbonGroupBy = Literal["model", "job", "day", "month", "source"]


class CarbonSummary(Schema):
    """Energy and emissions over a period: seed 002's ``CarbonSummary`` (totals, the
    training/inference split, ``by_model``) plus ``rows`` grouped by model, job, day,
    month or source.

    Training is carbon records of source ``training``; inference is everything else: usage
    records (LLM requests and media provider calls) and carbon records of source
    ``inference`` or ``media``.
    """

    total_emissions_kg: float = Field(
        ge=0, description="Emissions of everything in the period, kg CO2eq.")
    training_emissions_kg: float = Field(
        ge=0, description="Emissions of training (carbon records of source training), kg CO2eq.")
    inference_emissions_kg: float = Field(
        ge=0, description="Emissions of inference (usage records and carbon records of source "
        "inference or media), kg CO2eq.")
    total_energy_kwh: float = Field(ge=0, description="Energy of everything in the period, kWh.")
    num_training_jobs: int = Field(
        ge=0, description="Distinct training jobs with carbon records in the period.")
    num_inference_requests: int = Field(
        ge=0, description="Usage records (inference requests and provider calls) in the period.")
    period: dict[str, str | None] = Field(
        description='The period summed: {"since": ISO-8601 or null, "until": ISO-8601 or null} '
        "(since inclusive, until exclusive).")
    by_model: list[CarbonByModel] = Field(
        description="Emissions per model, largest first; percentages sum to 100 when the "
        "total is above 0.")
    group_by: CarbonGroupBy = Field(description="What ``rows`` are grouped by.")
    rows: list[CarbonSummaryRow] = Field(
        description="One row per group. Usage records group under their model_id (else their "
        "model name), by day, month, or under source inference; grouped by job, rows hold "
        "carbon records only.")


# --------------------------------------------------------------------------- usage summaries

UsageGroupBy = Literal["user", "key", "model", "adapter", "day", "month"]


class UsageSummaryRow(Schema):
    """Usage totals of one group (or of all groups: ``UsageSummary.total``)."""

    key: str | None = Field(
        description="The group: user id (user), API key id (key), model name (model), "
        "adapter model id (adapter), YYYY-MM-DD (day) or YYYY-MM (month), UTC; null for "
        "records without one (and for the total)."
    )
    requests: int = Field(ge=0, description="Usage records (requests or provider calls).")
    prompt_tokens: int = Field(ge=0, description="Prompt tokens.")
    completion_tokens: int = Field(ge=0, description="Completion tokens.")
    total_tokens: int = Field(ge=0, description="prompt_tokens + completion_tokens.")
    cost_usd: float | None = Field(
        ge=0, description="Cost over the records with a known cost, USD; null when none has "
        "one.")
    energy_kwh: float = Field(ge=0, description="Energy, kWh.")
    emissions_kg: float = Field(ge=0, description="Emissions, kg CO2eq.")


class UsageSummary(Schema):
    """Usage grouped by user, API key, model, adapter, day or month over a period."""

    group_by: UsageGroupBy = Field(description="What rows are grouped by.")
    since: datetime | None = Field(description="Start of the period (inclusive), UTC; null: "
                                   "from the first record.")
    until: datetime | None = Field(description="End of the period (exclusive), UTC; null: up "
                                   "to now.")
    rows: list[UsageSummaryRow] = Field(description="One row per group, by key (null last).")
    total: UsageSummaryRow = Field(description="Totals over all rows (key null).")
