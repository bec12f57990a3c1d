"""``client.training``: create LoRA jobs, list, get; :class:`Job` carries the lifecycle
methods (``wait``, ``reload``, ``cancel``, ``events``, ``metrics``, ...)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import PrivateAttr

from catalog.lifecycle import TERMINAL_JOB_STATUSES
from catalog.schemas import Checkpoint, JobStatus, MetricPoint, Page, TrainingJob, TrainingJobCreate
from garden.client.base import Namespace
from garden.errors import JobFailedError

#: Called by :meth:`Job.wait` after each poll with the job and its metric points so far.
ProgressCallback = Callable[["Job", list[MetricPoint]], None]


class Job(TrainingJob):
    """A training job (the catalog's :class:`~catalog.schemas.TrainingJob`) bound to a client."""

    _ns: Any = PrivateAttr(None)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    def reload(self) -> Job:
        """Fetch the job again and update this object in place; returns it."""
        fresh = self._ns.get(self.id)
        for name in TrainingJob.model_fields:
            object.__setattr__(self, name, getattr(fresh, name))
        return self

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

    def wait(
        self, *, timeout_s: float = 3600.0, poll_interval_s: float = 2.0,
        on_progress: ProgressCallback | None = None, raise_on_failure: bool = True,
    ) -> Job:
        """Poll until the job is completed, failed or cancelled; returns it.

        ``on_progress(job, metric_points)`` runs after every poll (a progress bar).

        Raises:
            TimeoutError: still running after ``timeout_s`` seconds.
            JobFailedError: it ended failed or cancelled (unless ``raise_on_failure``
                is False).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.reload()
            if on_progress is not None:
                on_progress(self, self.metrics())
            if self.done:
                break
            if time.monotonic() + poll_interval_s > deadline:
                raise TimeoutError(f"training job {self.id} still {self.status} "
                                   f"after {timeout_s} s")
            time.sleep(poll_interval_s)
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
