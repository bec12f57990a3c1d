"""``/v1/carbon``: energy (kWh) and emissions (kg CO2eq) by period, model, source or job,
a job's footprint in seed 002's ``JobCarbonDetails`` shape, the raw records, and a CSV
export. Users see their own footprint; admins everyone's."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from catalog import schemas as s
from serve_apps.auth import owner_filter
from serve_apps.gateway.deps import (
    CSV_RESPONSES,
    Caller,
    Cat,
    Paging,
    Since,
    Until,
    as_utc,
    csv_export,
)
from serve_apps.gateway.routes.training import owned_job

router = APIRouter(prefix="/v1/carbon", tags=["carbon"])

#: Columns of the CSV export, in order.
CSV_COLUMNS = ("id", "created_at", "source", "energy_kwh", "emissions_kg", "duration_s",
               "training_job_id", "model_id", "country_iso_code", "user_id")

#: Rows fetched from the catalog per page of a job's carbon records.
PAGE_SIZE = 1000


class CarbonBreakdown(BaseModel):
    """Where a job's energy went, summed over its nodes (seed 002's ``CarbonBreakdown``):
    codecarbon's CPU, GPU and RAM parts of each node's latest measurement. Power is W
    (each node's mean since its tracker started; nodes run at once, so their powers
    add), energy kWh."""

    cpu_power_w: float = Field(0.0, ge=0, description="CPU power, W.")
    gpu_power_w: float = Field(0.0, ge=0, description="GPU power, W.")
    ram_power_w: float = Field(0.0, ge=0, description="RAM power, W.")
    cpu_energy_kwh: float = Field(0.0, ge=0, description="CPU energy, kWh.")
    gpu_energy_kwh: float = Field(0.0, ge=0, description="GPU energy, kWh.")
    ram_energy_kwh: float = Field(0.0, ge=0, description="RAM energy, kWh.")


class CarbonTimepoint(BaseModel):
    """The job at one moment (seed 002's ``CarbonTimepoint``), over all its nodes."""

    timestamp: datetime = Field(description="When a node reported (UTC).")
    emissions_kg: float = Field(
        ge=0, description="Cumulative emissions of the job up to then, kg CO2eq: each "
        "node's latest cumulative value at or before this time, summed.")
    power_w: float = Field(
        ge=0, description="The job's power then, W: the latest power of each node whose "
        "timeline spans this time, summed.")


class JobCarbonDetails(BaseModel):
    """A training job's measured footprint (seed 002's ``JobCarbonDetails``) and the
    carbon records behind it (one per node the job ran on)."""

    job_id: str
    total_emissions_kg: float = Field(ge=0, description="Sum over the records, kg CO2eq.")
    total_energy_kwh: float = Field(ge=0, description="Sum over the records, kWh.")
    duration_seconds: float = Field(
        ge=0, description="Longest time a node was measured, s (nodes run at once).")
    carbon_intensity: float = Field(
        ge=0, description="total_emissions_kg / total_energy_kwh x 1000, g CO2eq/kWh; 0 "
        "without energy.")
    location: str | None = Field(
        description="The grids codecarbon priced the energy with (country ISO code, "
        "'/region' when it used one), comma-separated when nodes differ; null when no "
        "record names one.")
    breakdown: CarbonBreakdown = Field(
        description="CPU/GPU/RAM power and energy summed over the nodes (zeros for records "
        "written before breakdowns were measured).")
    timeline: list[CarbonTimepoint] = Field(
        description="The nodes' report points merged by time, oldest first (empty for "
        "records written before timelines were kept).")
    records: list[s.CarbonRecord] = Field(description="The job's carbon records.")


class _Point(BaseModel):
    """One point of a node's ``details["timeline"]`` (extra keys ignored)."""

    timestamp: datetime
    emissions_kg: float = 0.0
    power_w: float = 0.0


def _node_timeline(record: s.CarbonRecord) -> list[_Point]:
    """A record's timeline points, oldest first; points that do not parse are skipped."""
    raw = record.details.get("timeline")
    points = []
    for item in raw if isinstance(raw, list) else []:
        try:
            point = _Point.model_validate(item)
        except ValidationError:
            continue
        points.append(point.model_copy(update={"timestamp": as_utc(point.timestamp)}))
    return sorted(points, key=lambda p: p.timestamp)


def merge_breakdowns(records: Sequence[s.CarbonRecord]) -> CarbonBreakdown:
    """The sum of the records' ``details["breakdown"]`` (missing or non-numeric parts
    count 0; negative ones too, as codecarbon never reports them)."""
    totals = dict.fromkeys(CarbonBreakdown.model_fields, 0.0)
    for record in records:
        part = record.details.get("breakdown")
        if not isinstance(part, dict):
            continue
        for name in totals:
            value = part.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                totals[name] += float(value)
    return CarbonBreakdown(**totals)


def merge_timelines(records: Sequence[s.CarbonRecord]) -> list[CarbonTimepoint]:
    """The records' ``details["timeline"]`` merged into the job's timeline.

    One point per distinct timestamp of any node, oldest first. Emissions are
    cumulative per node, so at time ``t`` the job's value is the sum over nodes of each
    node's last value at or before ``t`` (0 before its first point, kept after its
    last). Power is instantaneous: the sum over the nodes whose timeline spans ``t``
    (first point <= ``t`` <= last point) of their last power at or before ``t``.
    """
    nodes = [points for points in map(_node_timeline, records) if points]
    stamps = sorted({p.timestamp for points in nodes for p in points})
    times = [[p.timestamp for p in points] for points in nodes]
    merged = []
    for t in stamps:
        emissions = power = 0.0
        for points, when in zip(nodes, times, strict=True):
            i = bisect.bisect_right(when, t) - 1
            if i < 0:
                continue
            emissions += max(points[i].emissions_kg, 0.0)
            if t <= when[-1]:
                power += max(points[i].power_w, 0.0)
        merged.append(CarbonTimepoint(timestamp=t, emissions_kg=emissions, power_w=power))
    return merged


def job_carbon_details(job_id: str, records: Sequence[s.CarbonRecord]) -> JobCarbonDetails:
    """A job's :class:`JobCarbonDetails` from its carbon records (any order)."""
    energy = sum(r.energy_kwh for r in records)
    emissions = sum(r.emissions_kg for r in records)
    places = set()
    for record in records:
        place = record.details.get("location") or record.country_iso_code
        if isinstance(place, str) and place:
            places.add(place)
    return JobCarbonDetails(
        job_id=job_id, total_emissions_kg=emissions, total_energy_kwh=energy,
        duration_seconds=max((r.duration_s for r in records), default=0.0),
        carbon_intensity=emissions / energy * 1000.0 if energy > 0 else 0.0,
        location=", ".join(sorted(places)) or None,
        breakdown=merge_breakdowns(records), timeline=merge_timelines(records),
        records=list(records),
    )


@router.get("/summary", response_model=s.CarbonSummary)
async def carbon_summary(
    caller: Caller, cat: Cat,
    group_by: Annotated[s.CarbonGroupBy, Query(
        description="What ``rows`` are grouped by: model, job, day, month or source.")
    ] = "month",
    since: Since = None, until: Until = None,
) -> Any:
    """Seed 002's summary over ``[since, until)``: total, training and inference
    emissions, energy, training jobs, inference requests, emissions per model with its
    share; plus ``rows`` grouped by ``group_by``. Training is the jobs' measured records;
    inference is per-request usage and media records."""
    return await cat.carbon_summary(group_by, since=since, until=until,
                                        user_id=owner_filter(caller))


@router.get("/records", response_model=s.Page[s.CarbonRecord])
async def carbon_records(
    caller: Caller, cat: Cat, paging: Paging,
    source: s.CarbonSource | None = None, model_id: str | None = None,
    since: Since = None, until: Until = None,
) -> Any:
    """Measured records (training, media), newest first."""
    return await cat.carbon.list(
        page_size=paging.page_size, cursor=paging.cursor, source=source, model_id=model_id,
        created_after=since, created_before=until, user_id=owner_filter(caller),
    )


@router.get("/jobs/{job_id}", response_model=JobCarbonDetails)
async def job_carbon(job_id: str, caller: Caller, cat: Cat) -> JobCarbonDetails:
    """A training job's energy, emissions, carbon intensity, CPU/GPU/RAM breakdown and
    timeline, with every record behind them."""
    await owned_job(cat, caller, job_id)
    records: list[s.CarbonRecord] = []
    cursor = None
    while True:
        page = await cat.carbon.list(page_size=PAGE_SIZE, cursor=cursor, training_job_id=job_id)
        records.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return job_carbon_details(job_id, records)


@router.get("/export.csv", response_class=StreamingResponse, responses=CSV_RESPONSES)
async def carbon_export(
    caller: Caller, cat: Cat,
    since: Since = None, until: Until = None,
    source: s.CarbonSource | None = None,
) -> StreamingResponse:
    """Every matching record as CSV, streamed page by page. Columns, in order: id,
    created_at, source, energy_kwh, emissions_kg, duration_s, training_job_id, model_id,
    country_iso_code, user_id (a null value is an empty cell).
    The first page is read before the answer starts, so a catalog that cannot answer is
    a 503, not a cut-off file."""
    filters: dict[str, Any] = {"source": source, "created_after": since,
                               "created_before": until, "user_id": owner_filter(caller)}
    return await csv_export(cat.carbon, CSV_COLUMNS, "carbon.csv", **filters)
