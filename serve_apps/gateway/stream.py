"""A job's life as server-sent events (``text/event-stream``), generic over the job kind.

The gateway polls the catalog (cheap reads, every :attr:`StreamSettings.poll_s`) and
sends what is new as the events of seed 002's section 8 (its WebSocket schemas, here
over SSE, https://html.spec.whatwg.org/multipage/server-sent-events.html):

- ``status_change`` ``{"type", "old_status", "new_status", "timestamp", "seq"}`` (and
  ``"error"`` when the move carried one): read from the event log the store writes with
  every transition (message ``"status -> X[: error]"``), so they come in order, each
  with its sequence number; the first ``old_status`` is the source's initial status
  (``pending`` for a training job).
- ``log`` ``{"type", "timestamp", "level" (DEBUG|INFO|WARNING|ERROR), "message", "seq"}``:
  every other event-log line.
- ``metrics`` ``{"type", "step", "metrics": MetricPoint}`` (training jobs): a point is an
  upsert keyed by ``step``. The store merges a later point of the same step into the
  step's row (the eval loss of step N joins its train loss), so the stream re-reads the
  newest step it has sent at every poll and sends that step again when its values
  changed; a client keeps the last point per step. A merge into an older step (a run
  resumed from a checkpoint re-trains steps already sent) is not re-sent live:
  ``GET .../metrics`` has the final values.
- ``progress`` ``{"type", "status", "progress", ...}``: a snapshot of the job's progress
  fields, sent once on (re)connecting and whenever it changes. Snapshots are state, not
  log: a reconnecting client gets the current one again.
- ``end`` ``{"type", "status"}``: the last event, after the terminal status change.

Every event carries an ``id:`` cursor (:class:`Cursor`: the last event-log sequence
number, the newest metric step sent with a digest of its values, and the status), so
a client reconnecting with ``Last-Event-ID`` gets only what follows, with no event-log
line or metric point twice. While nothing happens a ``: keep-alive`` comment goes out
every :attr:`StreamSettings.keepalive_s`. A client that disconnects stops the loop (its
task is cancelled, and each poll checks ``request.is_disconnected()``).

A route builds a :class:`StreamSource` for its kind (:func:`training_job_source`; a
batch gives its ``list_batch_events`` and ``request_counts``) and yields
:func:`follow`'s events from a FastAPI path operation declared with
``response_class=EventSourceResponse`` (FastAPI's own SSE encoding)::

    @router.get("/{id}/stream", response_class=EventSourceResponse,
                responses=stream_responses("My job's events."))
    async def stream(request: Request, row: Owned, cursor: LastEventId, cat: Cat):
        async for event in follow(my_source(cat, row.id), request, cursor=cursor):
            yield event

Check ownership and parse the cursor in dependencies (as above): an error raised once
the stream has started cannot become an HTTP error answer.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.sse import ServerSentEvent
from pydantic import BaseModel

from catalog import schemas as s
from catalog.errors import InvalidArgument
from catalog.lifecycle import JOB_TRANSITIONS, TERMINAL_JOB_STATUSES
from catalog.port import AsyncCatalogPort
from serve_apps.errors import ERROR_STATUSES, error_responses

#: An event-log message of a transition, as the store writes it (``_move_job``).
STATUS_MESSAGE = re.compile(r"status -> (?P<status>\w+)(?:: (?P<error>.*))?", re.DOTALL)

#: Live streams of this process (a gauge for tests and health: a client that went away
#: must not leave its polling loop behind).
_active = 0


def active_streams() -> int:
    """How many :func:`follow` loops run in this process now."""
    return _active


@dataclass(frozen=True)
class StreamSettings:
    """How often a stream reads the catalog and how it keeps an idle connection open.

    Defaults come from ``GARDEN_STREAM_POLL_S`` and ``GARDEN_STREAM_KEEPALIVE_S`` when set
    (:meth:`from_env`).
    """

    poll_s: float = 0.5
    """Seconds between two catalog reads."""
    keepalive_s: float = 15.0
    """Seconds of silence after which a ``: keep-alive`` comment is sent (the WHATWG
    spec suggests about 15 s, so proxies keep the connection)."""
    retry_ms: int = 1000
    """The SSE ``retry:`` field sent first: a browser's reconnection delay, ms."""
    page_size: int = 500
    """Event-log rows per read."""

    @classmethod
    def from_env(cls) -> StreamSettings:
        """The defaults, overridden by the environment variables named above.

        Raises:
            ValueError: a variable that is not a positive number.
        """
        def seconds(env: str, default: float) -> float:
            text = os.environ.get(env)
            if not text:
                return default
            value = float(text)
            if value <= 0:
                raise ValueError(f"{env} must be a positive number of seconds")
            return value

        return cls(poll_s=seconds("GARDEN_STREAM_POLL_S", cls.poll_s),
                   keepalive_s=seconds("GARDEN_STREAM_KEEPALIVE_S", cls.keepalive_s))


@dataclass(frozen=True)
class State:
    """One read of a job's row: its status, its progress fields (the ``progress``
    event's data, besides ``type``) and when it last changed."""

    status: str
    progress: dict[str, Any]
    updated_at: datetime | None = None


@dataclass(frozen=True)
class StreamSource:
    """Where a stream reads one job's life. All reads are awaitables on the catalog.

    Attributes:
        read_state: the job's current :class:`State` (raises NotFound if it is gone).
        read_events: event-log rows with sequence number above ``after``, at most
            ``limit``, oldest first: ``[{"seq", "level", "message", "created_at"}]``
            (the shape of ``list_events`` and ``list_batch_events``).
        statuses: every status of the kind (a message naming another is a log line).
        terminal: statuses with no way out; the stream ends after one.
        initial_status: the status before the first transition (``old_status`` of the
            first ``status_change``).
        read_metrics: metric points (pydantic models with a ``step``) at a step above
            ``after_step``, in step order; None for kinds without metrics.
    """

    read_state: Callable[[], Awaitable[State]]
    read_events: Callable[[int, int], Awaitable[Sequence[dict[str, Any]]]]
    statuses: frozenset[str]
    terminal: frozenset[str]
    initial_status: str
    read_metrics: Callable[[int], Awaitable[Sequence[BaseModel]]] | None = field(default=None)


@dataclass(frozen=True)
class Cursor:
    """A stream position, the SSE ``id`` of every event: ``SEQ:STEP:DIGEST:STATUS``.

    ``seq`` is the last event-log sequence number sent, ``step`` the newest metric step
    sent (-1: none) and ``digest`` the CRC-32 of that point's values (so a value merged
    into it while the client was away is sent again, and only then), ``status`` the
    status after the last ``status_change`` sent.
    """

    seq: int
    step: int
    digest: str
    status: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.step}:{self.digest}:{self.status}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor of an event id.

        Raises:
            InvalidArgument: not an id this stream sent (422, ``field="Last-Event-ID"``).
        """
        parts = text.strip().split(":")
        try:
            seq, step = int(parts[0]), int(parts[1])
            digest, status = parts[2], parts[3]
        except (IndexError, ValueError):
            seq = step = -2
            digest = status = ""
        if len(parts) != 4 or seq < 0 or step < -1 or not status.isidentifier():
            raise InvalidArgument(f"Last-Event-ID {text!r} is not an event id of this stream "
                                  "(SEQ:STEP:DIGEST:STATUS)", field="Last-Event-ID")
        return cls(seq, step, digest, status)


def stream_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a stream route: 200 as ``text/event-stream`` with
    ``description``, and the error statuses as JSON in the one error shape. (A route
    whose ``response_class`` is ``EventSourceResponse`` would otherwise document its
    errors under ``text/event-stream``: the route's entries replace the router's.)"""
    out: dict[int | str, dict[str, Any]] = {200: {"description": description}}
    for status, entry in error_responses(*ERROR_STATUSES).items():
        out[status] = {**{k: v for k, v in entry.items() if k != "model"}, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    return out


def last_event_id(
    last_event_id: Annotated[str | None, Header(
        description="The id of the last event received: the stream resumes after it.")] = None,
) -> Cursor | None:
    """FastAPI dependency: the ``Last-Event-ID`` header as a :class:`Cursor` (None when
    absent). Raises InvalidArgument (422) for an id this stream never sent."""
    return None if not last_event_id else Cursor.parse(last_event_id)


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def _digest(point: BaseModel) -> str:
    """CRC-32 (hex) of a metric point's values, its recording time left out."""
    return f"{zlib.crc32(point.model_dump_json(exclude={'created_at'}).encode()):08x}"


def _utc(when: datetime | None) -> datetime:
    """A sort key in time: aware UTC (a naive time is UTC); None sorts last."""
    if when is None:
        return datetime.max.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Item:
    """One event to send: when it happened, its name and data, and what it moves in the
    cursor (``seq``/``status`` for the event log, ``step``/``digest`` for metrics)."""

    when: datetime
    name: str
    data: dict[str, Any]
    moves: dict[str, Any]


def _status_item(old: str, new: str, when: datetime | None, row: dict[str, Any] | None
                 ) -> _Item:
    data: dict[str, Any] = {"old_status": old, "new_status": new, "timestamp": _iso(when)}
    moves: dict[str, Any] = {"status": new}
    if row is not None:
        data["seq"] = moves["seq"] = int(row["seq"])
        match = STATUS_MESSAGE.fullmatch(row["message"])
        if match and match["error"]:
            data["error"] = match["error"]
    return _Item(_utc(when), "status_change", data, moves)


async def _new_events(source: StreamSource, pos: Cursor, page_size: int
                      ) -> tuple[list[_Item], str]:
    """Every event-log row after ``pos`` as ``status_change``/``log`` items (oldest
    first), and the status after them."""
    out: list[_Item] = []
    status, after = pos.status, pos.seq
    while True:
        rows = await source.read_events(after, page_size)
        for row in rows:
            match = STATUS_MESSAGE.fullmatch(row["message"])
            if match and match["status"] in source.statuses and match["status"] != status:
                out.append(_status_item(status, match["status"], row.get("created_at"), row))
                status = match["status"]
            else:
                seq = int(row["seq"])
                out.append(_Item(_utc(row.get("created_at")), "log", {
                    "timestamp": _iso(row.get("created_at")),
                    "level": str(row.get("level") or "info").upper(),
                    "message": row["message"], "seq": seq}, {"seq": seq}))
        if rows:
            after = int(rows[-1]["seq"])
        if len(rows) < page_size:
            return out, status


async def _new_points(source: StreamSource, pos: Cursor) -> list[_Item]:
    """Metric points after ``pos`` (step order), the newest step sent again if its values
    changed."""
    out: list[_Item] = []
    if source.read_metrics is None:
        return out
    step_sent, digest_sent = pos.step, pos.digest
    for point in await source.read_metrics(pos.step - 1):
        step, digest = int(point.step), _digest(point)  # type: ignore[attr-defined]
        if step == step_sent and digest == digest_sent:
            continue
        out.append(_Item(_utc(getattr(point, "created_at", None)), "metrics", {
            "step": step, "metrics": point.model_dump(mode="json", exclude_none=True)},
            {"step": step, "digest": digest}))
    return out


def _event(name: str, data: dict[str, Any], cursor: Cursor) -> ServerSentEvent:
    return ServerSentEvent(event=name, data={"type": name, **data}, id=str(cursor))


async def follow(
    source: StreamSource, request: Request | None = None, *, cursor: Cursor | None = None,
    settings: StreamSettings | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The events of one job from ``cursor`` on (the start when None), until ``end``.

    Yields :class:`fastapi.sse.ServerSentEvent` items: first a comment carrying the
    ``retry:`` field, then everything recorded after ``cursor``, the current progress,
    and then what happens, polling every ``settings.poll_s``. Within one read, event-log
    lines and metric points go out in the order they were recorded (a merge by time
    that keeps each one's own order). Returns when the job has reached a terminal status
    (after the ``end`` event), or when ``request``'s client has disconnected.

    Raises:
        CatalogError: a read failed (the job deleted: NotFound; the catalog down:
            Unavailable); the stream then breaks off, and the client reconnects.
    """
    global _active
    settings = settings or StreamSettings.from_env()
    pos = cursor or Cursor(seq=0, step=-1, digest="0", status=source.initial_status)
    progress: dict[str, Any] | None = None
    _active += 1
    try:
        yield ServerSentEvent(comment="job stream", retry=settings.retry_ms)
        quiet_since = time.monotonic()
        while True:
            state = await source.read_state()  # before the events: see the terminal check
            logged, status = await _new_events(source, pos, settings.page_size)
            if state.status in source.terminal and status != state.status:
                # the transition's event shares its transaction, so it would have been
                # read above; a source whose log lacks it still gets one status_change
                logged.append(_status_item(status, state.status, state.updated_at, None))
            items = list(heapq.merge(logged, await _new_points(source, pos),
                                     key=lambda item: item.when))
            sent = bool(items)
            for item in items:
                pos = replace(pos, **item.moves)
                yield _event(item.name, item.data, pos)
            if state.progress != progress:
                progress, sent = state.progress, True
                yield _event("progress", dict(progress), pos)
            if pos.status in source.terminal:
                yield _event("end", {"status": pos.status}, pos)
                return
            now = time.monotonic()
            if sent:
                quiet_since = now
            elif now - quiet_since >= settings.keepalive_s:
                yield ServerSentEvent(comment="keep-alive")
                quiet_since = now
            await asyncio.sleep(settings.poll_s)
            if request is not None and await request.is_disconnected():
                return
    finally:
        _active -= 1


# --------------------------------------------------------------------------- training jobs

#: A training job's progress fields, sent in its ``progress`` events.
JOB_PROGRESS_FIELDS = ("status", "progress", "current_step", "total_steps", "current_epoch",
                       "total_epochs")


def training_job_source(cat: AsyncCatalogPort, job_id: str) -> StreamSource:
    """A training job's stream: its row, its event log and its metric points."""

    async def read_state() -> State:
        job = await cat.training_jobs.get(job_id)
        data = job.model_dump(mode="json", include=set(JOB_PROGRESS_FIELDS))
        return State(status=str(job.status), progress=data,
                     updated_at=job.completed_at or job.updated_at)

    async def read_events(after: int, limit: int) -> Sequence[dict[str, Any]]:
        return await cat.list_events(job_id, after=after, limit=limit)

    async def read_metrics(after_step: int) -> Sequence[BaseModel]:
        return await cat.list_metrics(job_id, after_step=after_step)

    return StreamSource(
        read_state=read_state, read_events=read_events, read_metrics=read_metrics,
        statuses=frozenset(str(st) for st in JOB_TRANSITIONS),
        terminal=frozenset(str(st) for st in TERMINAL_JOB_STATUSES),
        initial_status=str(s.JobStatus.pending),
    )
