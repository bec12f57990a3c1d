"""Usage and carbon: one record per inference request or provider call, carbon
measurements (codecarbon), and their summaries (seed 002's carbon schemas)."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import Field

from catalog.schemas.common import CreatedAt, Row, Schema, UserId


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
        default_factory=dict, description="Extra facts (route, stream, operation, ...)."
    )
    user_id: UserId = None


class UsageCreate(UsageSpec):
    """One request's usage. ``id`` may be set by the caller, which makes writes idempotent."""

    id: str | None = Field(
        None, max_length=64, description="Caller-chosen id; null lets the catalog pick one."
    )
    kind: Literal["llm", "media"] = Field(
        "llm", description="llm: an inference request; media: a provider call."
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
    training_job_id: str | None = Field(None, description="The TrainingJob measured.")
    model_id: str | None = Field(None, description="The Model it produced or served.")
    country_iso_code: str | None = Field(
        None, description="ISO 3166-1 alpha-3 code of the grid, for its carbon intensity."
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


class CarbonSummary(Schema):
    """Energy and emissions grouped by model, job, day, month or source."""

    group_by: Literal["model", "job", "day", "month", "source"] = Field(
        description="What rows are grouped by."
    )
    rows: list[CarbonSummaryRow] = Field(description="One row per group.")
    total_energy_kwh: float = Field(description="Energy over all rows, kWh.")
    total_emissions_kg: float = Field(description="Emissions over all rows, kg CO2eq.")
