"""``client.training``: create LoRA jobs, list, get; :class:`Job` carries the lifecycle
methods (``wait``, ``stream``, ``reload``, ``cancel``, ``events``, ``metrics``, ...).

``Job.stream()`` follows ``GET /v1/training/jobs/{id}/stream`` (server-sent events, see
:mod:`serve_apps.gateway.stream` for the events), reconnecting with ``Last-Event-ID``
after a dropped connection; ``Job.wait()`` is built on it.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import PrivateAttr

from catalog.lifecycle import TERMINAL_JOB_STATUSES
from catalog.retry import Backoff
from catalog.schemas import (
    ApiKey,
    Checkpoint,
    JobStatus,
    MetricPoint,
    Page,
    TrainingJob,
    TrainingJobCreate,
)
from garden.client.base import Namespace
from garden.errors import JobFailedError

#: Called by :meth:`Job.wait` with the job and its metric points so far (one per step,
#: oldest first), on every ``metrics`` and ``progress`` event of the stream.
ProgressCallback = Callable[["Job", list[MetricPoint]], None]

#: Failures after which a stream reconnects (with ``Last-Event-ID``).
STREAM_ERRORS = (httpx.TransportError, httpx.StreamError)
#: The progress fields a ``progress`` event carries (copied onto the :class:`Job`).
PROGRESS_FIELDS = ("status", "progress", "current_step", "total_steps", "current_epoch",
                   "total_epochs")


@dataclass
class ServerSentEvent:
    """One dispatched server-sent event: its ``event`` type (``message`` by default),
    ``data`` (the data lines joined by newlines), ``id`` (the last id seen, which a
    reconnecting client sends back) and ``retry`` (ms) when the server set it."""

    event: str
    data: str
    id: str | None
    retry: int | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Parse ``text/event-stream`` lines (without their line ends, as ``httpx``'s
    ``iter_lines`` gives them) into events, per the WHATWG HTML standard, section
    9.2.6 "Interpreting an event stream": comment lines (``:``) are ignored, an empty
    line dispatches, an event without data lines is dropped, an ``id`` containing NUL
    is ignored, ``retry`` must be all digits."""
    event, last_id, retry = "", None, None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id, retry)
            event, data, retry = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


class Job(TrainingJob):
    """A training job (the catalog's :class:`~catalog.schemas.TrainingJob`) bound to a client."""

    _ns: Any = PrivateAttr(None)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    def reload(self) -> Job:
        """Fetch the job again and update this object in place; returns it."""
        return self._update(self._ns.get(self.id))

    def _update(self, fresh: TrainingJob) -> Job:
        for name in TrainingJob.model_fields:
            object.__setattr__(self, name, getattr(fresh, name))
        return self

    def _apply(self, event: dict[str, Any]) -> None:
        """Copy a stream event's status and progress fields onto this object (validated)."""
        if event["type"] == "status_change":
            fields = {"status": event["new_status"]}
        elif event["type"] == "progress":
            fields = {k: event[k] for k in PROGRESS_FIELDS if k in event}
        else:
            return
        self._update(TrainingJob.model_validate({**self.model_dump(), **fields}))

    def cancel(self) -> Job:
        return self._ns.cancel(self.id)

    def events(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return self._ns.events(self.id, after=after, limit=limit)

    def metrics(self) -> list[MetricPoint]:
        return self._ns.metrics(self.id)

    def checkpoints(self) -> list[Checkpoint]:
        return self._ns.checkpoints(self.id)

    def logs(self) -> str:
        return self._ns.logs(self.id)

    def stream(self, *, last_event_id: str | None = None, timeout_s: float | None = None,
               max_reconnects: int = 5) -> Iterator[dict[str, Any]]:
        """The job's live events, oldest first, until (and including) ``end``: see
        :meth:`Training.stream`."""
        return self._ns.stream(self.id, last_event_id=last_event_id, timeout_s=timeout_s,
                               max_reconnects=max_reconnects)

    def wait(
        self, *, timeout_s: float = 3600.0, poll_interval_s: float = 2.0,
        on_progress: ProgressCallback | None = None, raise_on_failure: bool = True,
    ) -> Job:
        """Follow the job's stream until it is completed, failed or cancelled; returns it,
        reloaded.

        ``on_progress(job, metric_points)`` runs on every ``metrics`` and ``progress``
        event, and once more at the end (a progress bar): ``job`` carries the streamed
        status and progress, ``metric_points`` one point per step so far (a point sent
        again with a merged eval loss replaces its step's). A dropped connection is
        resumed with ``Last-Event-ID``, the first retry after up to ``poll_interval_s``
        seconds.

        Raises:
            TimeoutError: still running after ``timeout_s`` seconds.
            JobFailedError: it ended failed or cancelled (unless ``raise_on_failure``
                is False).
            GardenError: the stream was refused (404, 403), or the connection could not
                be resumed.
        """
        points: dict[int, MetricPoint] = {}

        def report() -> None:
            if on_progress is not None:
                on_progress(self, [points[k] for k in sorted(points)])

        try:
            for event in self._ns.stream(self.id, timeout_s=timeout_s,
                                         reconnect_delay_s=poll_interval_s):
                if event["type"] == "metrics":
                    points[int(event["step"])] = MetricPoint.model_validate(event["metrics"])
                self._apply(event)
                if event["type"] in ("metrics", "progress"):
                    report()
        except TimeoutError:
            raise TimeoutError(f"training job {self.id} still {self.status} "
                               f"after {timeout_s} s") from None
        self.reload()
        report()
        if raise_on_failure and self.status != JobStatus.completed:
            raise JobFailedError(self)
        return self


class Training(Namespace):
    def _job(self, data: dict[str, Any]) -> Job:
        job = Job.model_validate(data)
        job._ns = self
        return job

    def create(
        self, request: TrainingJobCreate | None = None, *, timeout_s: float = 600.0,
        **fields: Any,
    ) -> Job:
        """Create and submit a job: pass a :class:`TrainingJobCreate` or its fields
        (``name``, ``base_model_id``, ``dataset_id``, ``hyperparameters={...}``, ...).
        Invalid fields raise ``pydantic.ValidationError`` before any request.

        ``timeout_s`` covers the submission, which waits for the job API of a freshly
        started cluster (the gateway's ``submit_timeout_s``, two minutes by default).
        Never retried: a retry could create a second job.
        """
        request = request or TrainingJobCreate(**fields)
        body = request.model_dump(mode="json", exclude_none=True)
        if "evaluate" in request.model_fields_set and request.evaluate is None:
            body["evaluate"] = None  # no evaluation, not the default one
        return self._job(self._client.request("POST", "/v1/training/jobs", json=body,
                                              timeout=timeout_s).json())

    def list(
        self, *, status: JobStatus | str | None = None, base_model_id: str | None = None,
        dataset_id: str | None = None, page_size: int = 50, cursor: str | None = None,
    ) -> Page[Job]:
        page = self._page(TrainingJob, "/v1/training/jobs", {
            "status": status, "base_model_id": base_model_id, "dataset_id": dataset_id,
            "page_size": page_size, "cursor": cursor})
        return Page[Job](items=[self._job(j.model_dump()) for j in page.items],
                         total=page.total, page_size=page.page_size,
                         next_cursor=page.next_cursor)

    def iterate(self, **filters: Any) -> Iterator[TrainingJob]:
        return self._iterate(TrainingJob, "/v1/training/jobs", {"page_size": 200, **filters})

    def get(self, job_id: str) -> Job:
        return self._job(self._client.request("GET", f"/v1/training/jobs/{job_id}").json())

    def token(self, *, ttl_s: int | None = None) -> tuple[ApiKey, str]:
        """A job token (``POST /v1/training/tokens``) for one ``ray job submit``: pass the
        secret as ``GARDEN_JOB_TOKEN`` in the job's runtime env instead of your API key.
        The job's driver (``train_jobs.run --config`` or ``batch_jobs.run --config``)
        registers its training job or batch with it, for you; the token can then only read
        that job, and stops working when the job ends or after ``ttl_s`` seconds (default
        :data:`catalog.schemas.JOB_TOKEN_TTL_S`, 4 h; at most 7 days).

        Returns ``(record, secret)``; the secret is never shown again. Never retried.
        """
        body = {} if ttl_s is None else {"ttl_s": ttl_s}
        data = self._client.request("POST", "/v1/training/tokens", json=body).json()
        return ApiKey.model_validate(data["key"]), data["secret"]

    def cancel(self, job_id: str) -> Job:
        return self._job(self._client.request(
            "POST", f"/v1/training/jobs/{job_id}/cancel").json())

    def events(self, job_id: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """``{"items": [{"seq", "level", "message", "created_at"}], "next_after": int}``."""
        return self._client.request("GET", f"/v1/training/jobs/{job_id}/events",
                                    params={"after": after, "limit": limit}).json()

    def metrics(self, job_id: str) -> builtins.list[MetricPoint]:
        data = self._client.request("GET", f"/v1/training/jobs/{job_id}/metrics").json()
        return [MetricPoint.model_validate(p) for p in data]

    def checkpoints(self, job_id: str) -> builtins.list[Checkpoint]:
        data = self._client.request("GET", f"/v1/training/jobs/{job_id}/checkpoints").json()
        return [Checkpoint.model_validate(c) for c in data]

    def logs(self, job_id: str) -> str:
        return self._client.request("GET", f"/v1/training/jobs/{job_id}/logs").json()["logs"]

    def stream(
        self, job_id: str, *, last_event_id: str | None = None, timeout_s: float | None = None,
        max_reconnects: int = 5, reconnect_delay_s: float = 0.5, read_timeout_s: float = 60.0,
    ) -> Iterator[dict[str, Any]]:
        """Follow ``GET /v1/training/jobs/{id}/stream``: each event's data as a dict
        (``type``: ``status_change``, ``log``, ``metrics``, ``progress``, ``end``) with its
        ``id``, oldest first, ending after ``end``; starts after ``last_event_id`` when
        given (an ``id`` of an earlier event).

        A dropped connection (a network error, a read silent for ``read_timeout_s``
        seconds, while the server sends a keep-alive every 15 s, or a stream cut before
        ``end``) is resumed with ``Last-Event-ID``, waiting a capped, jittered backoff from
        ``reconnect_delay_s`` seconds; after ``max_reconnects`` failures in a row without
        an event the last error is raised.

        Raises:
            TimeoutError: ``timeout_s`` seconds passed before ``end``.
            GardenError: the server refused the stream (404, 403, 422 for a bad
                ``last_event_id``).
            httpx.TransportError: the connection failed ``max_reconnects + 1`` times in a row.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        backoff = Backoff(initial_s=reconnect_delay_s, max_delay_s=8.0, max_attempts=None,
                          deadline_s=timeout_s if timeout_s is not None else 24 * 3600.0)
        path = f"/v1/training/jobs/{job_id}/stream"
        cursor, failures = last_event_id, 0

        def remaining() -> float:
            if deadline is None:
                return read_timeout_s
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"stream of {job_id} did not end within {timeout_s} s")
            return min(read_timeout_s, left)

        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if cursor:
                headers["Last-Event-ID"] = cursor
            error: Exception | None = None
            try:
                with self._client.stream("GET", path, headers=headers, timeout=httpx.Timeout(
                        30.0, read=remaining())) as response:
                    for sse in iter_sse(response.iter_lines()):
                        failures = 0
                        cursor = sse.id or cursor
                        yield {**json.loads(sse.data), "id": sse.id}
                        if sse.event == "end":
                            return
                        remaining()
            except STREAM_ERRORS as exc:
                error = exc
            remaining()
            failures += 1
            if failures > max_reconnects:
                if error is not None:
                    raise error
                raise httpx.RemoteProtocolError(
                    f"the stream of {job_id} ended before its end event")
            time.sleep(min(backoff.delay(failures - 1), remaining()))
