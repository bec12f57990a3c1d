"""``/v1/carbon``: energy (kWh) and emissions (kg CO2eq) by period, model, source or job,
the raw records, and a CSV export. Users see their own footprint; admins everyone's."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from catalog import schemas as s
from serve_apps.auth import owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging
from serve_apps.gateway.routes.training import owned_job

router = APIRouter(prefix="/v1/carbon", tags=["carbon"])

GroupBy = Literal["model", "job", "day", "month", "source"]

#: Columns of the CSV export, in order.
CSV_COLUMNS = ("id", "created_at", "source", "energy_kwh", "emissions_kg", "duration_s",
               "training_job_id", "model_id", "country_iso_code", "user_id")


class JobCarbon(BaseModel):
    """One training job's measured footprint and its records."""

    job_id: str
    energy_kwh: float
    emissions_kg: float
    records: list[s.CarbonRecord]


@router.get("/summary", response_model=s.CarbonSummary)
async def carbon_summary(
    caller: Caller, cat: Cat,
    group_by: GroupBy = "month",
    since: Annotated[datetime | None, Query(description="Inclusive start (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive end (ISO 8601).")] = None,
) -> Any:
    """Totals grouped by ``group_by``: training and media records plus per-request usage."""
    return await cat.carbon_summary(group_by, since=since, until=until,
                                        user_id=owner_filter(caller))


@router.get("/records", response_model=s.Page[s.CarbonRecord])
async def carbon_records(
    caller: Caller, cat: Cat, paging: Paging,
    source: s.CarbonSource | None = None, model_id: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> Any:
    """Measured records (training, media), newest first."""
    return await cat.carbon.list(
        page_size=paging.page_size, cursor=paging.cursor, source=source, model_id=model_id,
        created_after=since, created_before=until, user_id=owner_filter(caller),
    )


@router.get("/jobs/{job_id}", response_model=JobCarbon)
async def job_carbon(job_id: str, caller: Caller, cat: Cat) -> JobCarbon:
    """A training job's energy and emissions with every record behind them."""
    job = await owned_job(cat, caller, job_id)
    records: list[s.CarbonRecord] = []
    cursor = None
    while True:
        page = await cat.carbon.list(page_size=1000, cursor=cursor, training_job_id=job_id)
        records.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return JobCarbon(job_id=job_id, energy_kwh=job.energy_kwh or 0.0,
                     emissions_kg=job.emissions_kg or 0.0, records=records)


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
async def carbon_export(
    caller: Caller, cat: Cat,
    since: datetime | None = None, until: datetime | None = None,
    source: s.CarbonSource | None = None,
) -> StreamingResponse:
    """Every matching record as CSV (columns :data:`CSV_COLUMNS`), streamed page by page."""
    user_id = owner_filter(caller)

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        cursor = None
        while True:
            page = await cat.carbon.list(
                page_size=1000, cursor=cursor, source=source, created_after=since,
                created_before=until, user_id=user_id,
            )
            for record in page.items:
                data = record.model_dump(mode="json")
                writer.writerow([data[c] if data[c] is not None else "" for c in CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            cursor = page.next_cursor
            if cursor is None:
                return

    return StreamingResponse(rows(), media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="carbon.csv"'})
