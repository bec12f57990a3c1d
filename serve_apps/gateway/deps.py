"""FastAPI dependencies shared by the gateway's routers: the caller, the catalog,
the settings, the heavy-work port, list pagination, query times in UTC, and the CSV
export of a catalog list."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from catalog.errors import Unavailable
from catalog.port import AsyncCatalogPort, AsyncRepoPort
from serve_apps.auth import Principal, current_principal
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.work import Work

#: Declares the bearer scheme in the OpenAPI document; the check is current_principal's.
bearer_scheme = HTTPBearer(auto_error=False, description="A Model Garden API key.")


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """The authenticated caller (401 without a valid key), see :mod:`serve_apps.auth`."""
    return await current_principal(request)


def app_catalog(app: FastAPI) -> AsyncCatalogPort:
    """The replica's catalog port (:class:`catalog.actor.AsyncCatalog`), built on first use."""
    cat: AsyncCatalogPort | None = getattr(app.state, "catalog", None)
    if cat is None:
        from catalog.actor import AsyncCatalog

        cat = app.state.catalog = AsyncCatalog()
    return cat


def catalog(request: Request) -> AsyncCatalogPort:
    """The replica's catalog port (:func:`app_catalog`)."""
    return app_catalog(request.app)


def settings(request: Request) -> GatewayConfig:
    """The gateway's :class:`GatewayConfig`."""
    return request.app.state.config


def work(request: Request) -> Work:
    """The :class:`~serve_apps.gateway.work.Work` bound by ``build_gateway_app``.

    Raises:
        Unavailable: the app was built without one (503).
    """
    bound = getattr(request.app.state, "work", None)
    if bound is None:
        raise Unavailable("this gateway has no work backend for imports and training jobs")
    return bound


@dataclass(frozen=True)
class PageParams:
    """Keyset pagination: ``page_size`` rows (1..1000) after the opaque ``cursor``."""

    page_size: int
    cursor: str | None


def page_params(
    page_size: Annotated[int, Query(ge=1, le=1000, description="Rows per page.")] = 50,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(page_size=page_size, cursor=cursor)


def as_utc(when: datetime | None) -> datetime | None:
    """``when`` in UTC; a time without an offset is taken as UTC (the catalog stores UTC).

    Raises:
        ValueError: the time falls outside datetime's range once moved to UTC (a 422 for
            a query parameter).
    """
    if when is None:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range once converted to UTC") from exc


#: A query time (ISO 8601), converted to UTC by :func:`as_utc`; the catalog asks for aware
#: times. Use as ``Annotated[UtcTime, Query(description=...)] = None``.
UtcTime = Annotated[datetime | None, AfterValidator(as_utc)]
#: The ``since`` and ``until`` query parameters of the usage and carbon routes.
Since = Annotated[UtcTime, Query(
    description="Start of the period, inclusive (ISO 8601; without an offset: UTC).")]
Until = Annotated[UtcTime, Query(
    description="End of the period, exclusive (ISO 8601; without an offset: UTC).")]

Caller = Annotated[Principal, Depends(principal)]
Cat = Annotated[AsyncCatalogPort, Depends(catalog)]
Settings = Annotated[GatewayConfig, Depends(settings)]
Worker = Annotated[Work, Depends(work)]
Paging = Annotated[PageParams, Depends(page_params)]


#: Rows read from the catalog per page of a CSV export.
EXPORT_PAGE_SIZE = 1000
#: The OpenAPI ``responses`` of a CSV export route.
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "CSV, header row first."}}


def _csv_text(rows: Sequence[Any], columns: Sequence[str], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(columns)
    for row in rows:
        data = row.model_dump(mode="json", include=set(columns))
        writer.writerow(["" if data[c] is None else data[c] for c in columns])
    return buf.getvalue()


async def csv_export(repo: AsyncRepoPort, columns: Sequence[str], filename: str,
                     **filters: Any) -> StreamingResponse:
    """Every row of ``repo`` matching ``filters`` as CSV (``columns`` in order, newest
    first), streamed a page at a time. The first page is read before the answer starts,
    so a catalog that cannot answer is a 503, not a cut-off file.

    Raises:
        CatalogError: the first page's error (a bad filter, the catalog down).
    """
    first = await repo.list(page_size=EXPORT_PAGE_SIZE, **filters)

    async def chunks() -> AsyncIterator[str]:
        page = first
        yield _csv_text(page.items, columns, header=True)
        while page.next_cursor is not None:
            page = await repo.list(page_size=EXPORT_PAGE_SIZE, cursor=page.next_cursor,
                                   **filters)
            yield _csv_text(page.items, columns, header=False)

    return StreamingResponse(chunks(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})

