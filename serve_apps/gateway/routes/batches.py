"""``/v1/batches``: OpenAI's Batch API (https://platform.openai.com/docs/api-reference/batch)
on Ray Data LLM: create (registers the batch and submits its Ray job, ``python -m
batch_jobs.run --batch-id ID``), list, get, cancel, the output and error files as JSONL,
the event log and its live stream.

Bodies are OpenAI's Batch object (times in unix seconds), so the official ``openai``
client reads them (``client.batches.retrieve(id)``); errors use the gateway's one error
shape. A caller sees its own batches (an admin: everyone's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from catalog import schemas as s
from catalog import storage
from catalog.errors import InvalidArgument, NotFound, Unavailable
from catalog.lifecycle import BATCH_TRANSITIONS, TERMINAL_BATCH_STATUSES
from catalog.port import AsyncCatalogPort
from catalog.store import encode_cursor
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Settings, Worker
from serve_apps.gateway.routes.datasets import owned_dataset
from serve_apps.gateway.stream import (
    Cursor,
    State,
    StreamSource,
    follow,
    last_event_id,
    stream_responses,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class BatchList(BaseModel):
    """OpenAI's list object of batches, newest first; page on with ``after=last_id``."""

    object: Literal["list"] = "list"
    data: list[s.Batch] = Field(description="The batches of this page.")
    first_id: str | None = Field(description="Id of the first batch of the page.")
    last_id: str | None = Field(description="Id of the last batch (pass as ``after``).")
    has_more: bool = Field(description="Whether more batches follow.")


class BatchEvents(BaseModel):
    """Events after ``after`` (oldest first); pass ``next_after`` back to follow the log."""

    batch_id: str
    items: list[dict[str, Any]]
    next_after: int


async def owned_batch(cat: AsyncCatalogPort, caller: Principal, batch_id: str) -> s.Batch:
    """The batch, if the caller may see it. Raises NotFound (404), PermissionDenied (403)."""
    batch = await cat.batches.get(batch_id)
    check_owner(caller, batch.user_id)
    return batch


@router.post("", status_code=200, response_model=s.Batch)
async def create_batch(
    body: s.BatchCreate, caller: Caller, cat: Cat, config: Settings, work: Worker,
) -> Any:
    """Create a batch of the caller's input file (a dataset of format ``openai_batch``)
    and submit its Ray job. 200 with the Batch object, as OpenAI answers.

    422 for an input file that is missing or not request lines; 503 (``details.batch_id``)
    when the job API refuses the submission (the batch is marked failed).
    """
    try:
        await owned_dataset(cat, caller, body.input_file_id)
    except NotFound as exc:
        raise InvalidArgument(f"input_file_id: {exc.message}", field="input_file_id") from exc
    batch = await cat.create_batch(body, user_id=caller.user_id, api_key_id=caller.key_id)
    details = {"batch_id": batch.id}
    try:
        await asyncio.wait_for(work.submit_batch(batch.id, timeout_s=config.submit_timeout_s),
                               timeout=config.submit_timeout_s + config.request_timeout_s)
    except Unavailable as exc:
        raise Unavailable(f"batch {batch.id} could not be submitted: {exc.message}",
                          details=details) from exc
    except (RuntimeError, OSError) as exc:  # OSError: network errors and the timeout
        log.warning("submitting batch %s failed: %s", batch.id, exc)
        message = f"submission failed: {exc}"[:4000]
        await cat.transition_batch(batch.id, s.BatchStatus.failed, message=message,
                                   errors=s.BatchErrors(data=[s.BatchError(
                                       code="submission_failed", message=message)]))
        raise Unavailable(f"batch {batch.id} could not be submitted: {exc}",
                          details=details) from exc
    return await cat.batches.get(batch.id)


@router.get("", response_model=BatchList)
async def list_batches(
    caller: Caller, cat: Cat,
    after: Annotated[str | None, Query(description="A batch id: list those after it.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Most batches returned.")] = 20,
    status: s.BatchStatus | None = None,
) -> BatchList:
    """The caller's batches (an admin's: everyone's), newest first (OpenAI's paging:
    ``after`` the last id seen, ``limit`` per page)."""
    cursor = None
    if after:
        last = await owned_batch(cat, caller, after)
        cursor = encode_cursor(last.created_at or last.updated_at, last.id)  # type: ignore[arg-type]
    page = await cat.batches.list(page_size=limit, cursor=cursor, status=status,
                                  user_id=owner_filter(caller))
    items = list(page.items)
    return BatchList(data=items, first_id=items[0].id if items else None,
                     last_id=items[-1].id if items else None,
                     has_more=page.next_cursor is not None)


@router.get("/{batch_id}", response_model=s.Batch)
async def get_batch(batch_id: str, caller: Caller, cat: Cat) -> Any:
    return await owned_batch(cat, caller, batch_id)


@router.post("/{batch_id}/cancel", response_model=s.Batch)
async def cancel_batch(
    batch_id: str, caller: Caller, cat: Cat, config: Settings, work: Worker,
) -> Any:
    """Move the batch to ``cancelling`` and stop its Ray job; it ends ``cancelled`` with
    the lines done so far in its output file. 409 if it already ended."""
    await owned_batch(cat, caller, batch_id)
    return await asyncio.wait_for(work.cancel_batch(batch_id),
                                  timeout=config.request_timeout_s)


def _chunks(location: str) -> Iterator[bytes]:
    path = storage.local_copy(location)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            yield chunk


async def _file_response(cat: AsyncCatalogPort, batch: s.Batch,
                         kind: Literal["output", "errors"]) -> StreamingResponse:
    file_id = batch.output_file_id if kind == "output" else batch.error_file_id
    if file_id is None:
        state = "has not ended" if batch.status not in TERMINAL_BATCH_STATUSES else "has none"
        raise NotFound(f"batch {batch.id} {state}: no {kind} file", field=f"{kind}_file_id")
    data = await cat.datasets.get(file_id)
    try:
        await run_in_threadpool(storage.local_copy, data.path)
    except FileNotFoundError as exc:
        raise NotFound(f"the {kind} file of batch {batch.id} is missing from storage",
                       field="path") from exc
    return StreamingResponse(
        _chunks(data.path), media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{batch.id}_{kind}.jsonl"'})


@router.get("/{batch_id}/output", response_class=StreamingResponse, responses={
    200: {"content": {"application/jsonl": {}},
          "description": "The output file: one {id, custom_id, response, error} line per "
                         "answered request."}})
async def batch_output(batch_id: str, caller: Caller, cat: Cat) -> StreamingResponse:
    """The output file (JSONL); 404 before it is written."""
    return await _file_response(cat, await owned_batch(cat, caller, batch_id), "output")


@router.get("/{batch_id}/errors", response_class=StreamingResponse, responses={
    200: {"content": {"application/jsonl": {}},
          "description": "The error file: one {id, custom_id, response, error} line per "
                         "failed request."}})
async def batch_errors(batch_id: str, caller: Caller, cat: Cat) -> StreamingResponse:
    """The error file (JSONL); 404 when no line failed or before it is written."""
    return await _file_response(cat, await owned_batch(cat, caller, batch_id), "errors")


@router.get("/{batch_id}/events", response_model=BatchEvents)
async def batch_events(
    batch_id: str, caller: Caller, cat: Cat,
    after: Annotated[int, Query(ge=0, description="Last sequence number seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BatchEvents:
    """The batch's events (status changes, progress notes) above ``after``, oldest first."""
    await owned_batch(cat, caller, batch_id)
    items = await cat.list_batch_events(batch_id, after=after, limit=limit)
    return BatchEvents(batch_id=batch_id, items=items,
                       next_after=items[-1]["seq"] if items else after)


def batch_source(cat: AsyncCatalogPort, batch_id: str) -> StreamSource:
    """A batch's stream: its row (progress = ``request_counts``) and its event log."""

    async def read_state() -> State:
        batch = await cat.batches.get(batch_id)
        counts = batch.request_counts
        done = counts.completed + counts.failed
        progress = {"status": str(batch.status),
                    "progress": done / counts.total if counts.total else 0.0,
                    "request_counts": counts.model_dump()}
        return State(status=str(batch.status), progress=progress,
                     updated_at=batch.updated_at)

    async def read_events(after: int, limit: int) -> list[dict[str, Any]]:
        return await cat.list_batch_events(batch_id, after=after, limit=limit)

    return StreamSource(
        read_state=read_state, read_events=read_events,
        statuses=frozenset(str(st) for st in BATCH_TRANSITIONS),
        terminal=frozenset(str(st) for st in TERMINAL_BATCH_STATUSES),
        initial_status=str(s.BatchStatus.validating),
    )


async def _streamed_batch(batch_id: str, caller: Caller, cat: Cat) -> s.Batch:
    """Dependency of the stream: ownership is checked before the stream starts (404/403)."""
    return await owned_batch(cat, caller, batch_id)


@router.get("/{batch_id}/stream", response_class=EventSourceResponse,
            responses=stream_responses("Server-sent events: status_change, log, progress "
                                       "(request_counts), then end (see "
                                       "serve_apps.gateway.stream)."))
async def batch_stream(
    request: Request, batch: Annotated[s.Batch, Depends(_streamed_batch)], cat: Cat,
    cursor: Annotated[Cursor | None, Depends(last_event_id)],
) -> AsyncIterator[ServerSentEvent]:
    """The batch's life as it happens: status changes, log lines and progress
    (``request_counts``), each with an ``id`` to resume from with ``Last-Event-ID``;
    ``event: end`` follows the terminal status."""
    async for event in follow(batch_source(cat, batch.id), request, cursor=cursor):
        yield event
