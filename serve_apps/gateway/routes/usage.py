"""``/v1/usage``: who used what. Requests, tokens, cost, energy (kWh) and emissions
(kg CO2eq) grouped by user, API key, model, adapter, day or month; the raw usage records;
and a CSV export. A user sees their own usage; an admin everyone's, or one user's with
``user_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from catalog import schemas as s
from catalog.errors import InvalidArgument, PermissionDenied
from serve_apps.auth import Principal, owner_filter
from serve_apps.gateway.deps import CSV_RESPONSES, Caller, Cat, Paging, Since, Until, csv_export

router = APIRouter(prefix="/v1/usage", tags=["usage"])

#: Columns of the CSV export, in order (fields of :class:`catalog.schemas.UsageRecord`).
CSV_COLUMNS = ("id", "created_at", "kind", "user_id", "api_key_id", "model", "model_id",
               "adapter", "provider", "prompt_tokens", "completion_tokens", "total_tokens",
               "latency_ms", "ttft_ms", "cost_usd", "energy_kwh", "emissions_kg")

UserFilter = Annotated[str | None, Query(
    max_length=200, description="Admins: only this user's usage. A user may name only "
    "themselves (403 otherwise).")]
KeyFilter = Annotated[str | None, Query(max_length=64, description="Only this API key's usage.")]


def usage_owner(caller: Principal, user_id: str | None) -> str | None:
    """The ``user_id`` filter for a usage query: the caller themselves for a user (403
    when they name another user), ``user_id`` (None: everyone) for an admin.

    Raises:
        PermissionDenied: a user asked for another user's usage.
    """
    own = owner_filter(caller)
    if own is None:
        return user_id
    if user_id is not None and user_id != own:
        raise PermissionDenied("only admins may read another user's usage")
    return own


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Raise InvalidArgument (422, field ``until``) unless ``since`` is before ``until``
    (both aware, :data:`serve_apps.gateway.deps.UtcTime`)."""
    if since is not None and until is not None and since >= until:
        raise InvalidArgument("until must be after since", field="until")


@router.get("", response_model=s.UsageSummary)
async def usage_summary(
    caller: Caller, cat: Cat,
    group_by: Annotated[s.UsageGroupBy, Query(
        description="user, key (API key id), model (base model or provider model), adapter "
        "(the adapter's model id), day or month (UTC).")] = "model",
    since: Since = None, until: Until = None,
    user_id: UserFilter = None, api_key_id: KeyFilter = None,
) -> Any:
    """Requests, prompt and completion tokens, cost (where known), energy and emissions
    per group over ``[since, until)``, with the total."""
    check_period(since, until)
    return await cat.usage_summary(group_by, since=since, until=until,
                                   user_id=usage_owner(caller, user_id),
                                   api_key_id=api_key_id)


@router.get("/records", response_model=s.Page[s.UsageRecord])
async def usage_records(
    caller: Caller, cat: Cat, paging: Paging,
    model: Annotated[str | None, Query(max_length=200, description="Base or provider model.")
                     ] = None,
    model_id: Annotated[str | None, Query(max_length=64, description="Catalog model id.")
                        ] = None,
    api_key_id: KeyFilter = None,
    kind: Literal["llm", "media"] | None = None,
    since: Since = None, until: Until = None,
    user_id: UserFilter = None,
) -> Any:
    """Usage records, newest first (one per inference request or provider call)."""
    check_period(since, until)
    return await cat.usage.list(
        page_size=paging.page_size, cursor=paging.cursor, model=model, model_id=model_id,
        api_key_id=api_key_id, kind=kind, created_after=since, created_before=until,
        user_id=usage_owner(caller, user_id),
    )


@router.get("/export.csv", response_class=StreamingResponse, responses=CSV_RESPONSES)
async def usage_export(
    caller: Caller, cat: Cat,
    since: Since = None, until: Until = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    kind: Literal["llm", "media"] | None = None,
    user_id: UserFilter = None, api_key_id: KeyFilter = None,
) -> StreamingResponse:
    """Every matching usage record as CSV, newest first, streamed a page at a time.
    Columns, in order: id, created_at, kind, user_id, api_key_id, model, model_id, adapter,
    provider, prompt_tokens, completion_tokens, total_tokens, latency_ms, ttft_ms,
    cost_usd, energy_kwh, emissions_kg (a null value is an empty cell). The first page is
    read before the answer starts, so a catalog that cannot answer is a 503, not a
    cut-off file."""
    check_period(since, until)
    filters: dict[str, Any] = {
        "model": model, "kind": kind, "api_key_id": api_key_id, "created_after": since,
        "created_before": until, "user_id": usage_owner(caller, user_id)}
    return await csv_export(cat.usage, CSV_COLUMNS, "usage.csv", **filters)
