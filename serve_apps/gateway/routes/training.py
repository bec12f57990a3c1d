"""``/v1/training/jobs``: create (registers the job and submits its Ray job), list, get,
cancel, events, metrics, checkpoints, the Ray job's logs and the live event stream; and
``/v1/training/tokens``: job tokens for ``ray job submit``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from catalog import schemas as s
from catalog.errors import InvalidArgument, NotFound, Unavailable
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging, Settings, Worker
from serve_apps.gateway.routes.datasets import owned_dataset
from serve_apps.gateway.routes.models import check_visible
from serve_apps.gateway.stream import (
    Cursor,
    follow,
    last_event_id,
    stream_responses,
    training_job_source,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/training/jobs", tags=["training"])
tokens_router = APIRouter(prefix="/v1/training/tokens", tags=["training"])


class JobEvents(BaseModel):
    """Events after ``after`` (oldest first); pass ``next_after`` back to follow the log."""

    job_id: str
    items: list[dict[str, Any]]
    next_after: int


class JobLogs(BaseModel):
    job_id: str
    ray_job_id: str | None
    logs: str


async def owned_job(cat: AsyncCatalogPort, caller: Principal, job_id: str) -> s.TrainingJob:
    """The job, if the caller may see it. Raises NotFound (404), PermissionDenied (403)."""
    job = await cat.training_jobs.get(job_id)
    check_owner(caller, job.user_id)
    return job


async def _check_refs(cat: AsyncCatalogPort, caller: Principal, body: s.TrainingJobCreate) -> None:
    """The caller must own the datasets and be able to read the base model.

    Raises InvalidArgument (422) naming the field of a missing reference, or
    PermissionDenied (403) for another user's row.
    """
    for field in ("dataset_id", "eval_dataset_id", "base_model_id"):
        ref = getattr(body, field)
        if not ref:
            continue
        try:
            if field == "base_model_id":
                check_visible(caller, await cat.models.get(ref))
            else:
                await owned_dataset(cat, caller, ref)
        except NotFound as exc:
            raise InvalidArgument(f"{field}: {exc.message}", field=field) from exc


@router.post("", status_code=201, response_model=s.TrainingJob)
async def create_job(
    body: s.TrainingJobCreate, caller: Caller, cat: Cat, config: Settings, work: Worker,
) -> Any:
    """Register a pending job owned by the caller and submit its Ray job
    (``python -m train_jobs.run --job-id ID``).

    A job this cluster cannot run (GPU-only options on CPUs) is marked failed and
    answered 422; a submission the job API refuses is marked failed (by
    ``Work.submit_training_job``) and answered 503. Both errors carry ``details.job_id``.
    The submission runs outside the gateway (:mod:`serve_apps.gateway.work`).
    """
    owner = body.user_id if caller.is_admin and body.user_id else caller.user_id
    body = body.model_copy(update={"user_id": owner})
    await _check_refs(cat, caller, body)
    job = await cat.create_training_job(body)
    details = {"job_id": job.id}
    try:
        await asyncio.wait_for(
            work.submit_training_job(job.id, timeout_s=config.submit_timeout_s),
            # a safety net over submit_training_job's own retry deadline
            timeout=config.submit_timeout_s + config.request_timeout_s,
        )
    except InvalidArgument as exc:
        await cat.transition_job(job.id, "failed", error_message=f"rejected: {exc.message}")
        raise InvalidArgument(exc.message, field=exc.field, details=details) from exc
    except Unavailable as exc:
        raise Unavailable(f"training job {job.id} could not be submitted: {exc.message}",
                          details=details) from exc
    except (RuntimeError, OSError) as exc:  # OSError: network errors and the timeout
        log.warning("submitting training job %s failed: %s", job.id, exc)
        await cat.transition_job(job.id, "failed", error_message=f"submission failed: {exc}")
        raise Unavailable(f"training job {job.id} could not be submitted: {exc}",
                          details=details) from exc
    return await cat.training_jobs.get(job.id)


@router.get("", response_model=s.Page[s.TrainingJob])
async def list_jobs(
    caller: Caller, cat: Cat, paging: Paging,
    status: s.JobStatus | None = None, base_model_id: str | None = None,
    dataset_id: str | None = None,
) -> Any:
    """The caller's jobs (an admin's: everyone's), newest first."""
    return await cat.training_jobs.list(
        page_size=paging.page_size, cursor=paging.cursor, status=status,
        base_model_id=base_model_id, dataset_id=dataset_id, user_id=owner_filter(caller),
    )


@router.get("/{job_id}", response_model=s.TrainingJob)
async def get_job(job_id: str, caller: Caller, cat: Cat) -> Any:
    return await owned_job(cat, caller, job_id)


@router.post("/{job_id}/cancel", response_model=s.TrainingJob)
async def cancel_job(
    job_id: str, caller: Caller, cat: Cat, config: Settings, work: Worker,
) -> Any:
    """Stop the job's Ray job and mark it cancelled (409 if it already finished)."""
    await owned_job(cat, caller, job_id)
    return await asyncio.wait_for(work.cancel_training_job(job_id),
                                  timeout=config.request_timeout_s)


@router.get("/{job_id}/events", response_model=JobEvents)
async def job_events(
    job_id: str, caller: Caller, cat: Cat,
    after: Annotated[int, Query(ge=0, description="Last sequence number seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobEvents:
    """The job's events with sequence number above ``after``, oldest first."""
    await owned_job(cat, caller, job_id)
    items = await cat.list_events(job_id, after=after, limit=limit)
    return JobEvents(job_id=job_id, items=items,
                     next_after=items[-1]["seq"] if items else after)


@router.get("/{job_id}/metrics", response_model=list[s.MetricPoint])
async def job_metrics(job_id: str, caller: Caller, cat: Cat) -> Any:
    """Metric points (loss, learning rate, tokens/s) in step order."""
    await owned_job(cat, caller, job_id)
    return await cat.list_metrics(job_id)


@router.get("/{job_id}/checkpoints", response_model=list[s.Checkpoint])
async def job_checkpoints(job_id: str, caller: Caller, cat: Cat) -> Any:
    await owned_job(cat, caller, job_id)
    return await cat.list_checkpoints(job_id)


def _ray_job_logs(address: str | None, ray_job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address).get_job_logs(ray_job_id)


@router.get("/{job_id}/logs", response_model=JobLogs)
async def job_logs(job_id: str, caller: Caller, cat: Cat, config: Settings) -> JobLogs:
    """The driver log of the job's Ray job (empty before submission); 503 when the Ray
    job API cannot be reached."""
    job = await owned_job(cat, caller, job_id)
    if job.ray_job_id is None:
        return JobLogs(job_id=job_id, ray_job_id=None, logs="")
    try:
        text = await asyncio.wait_for(
            run_in_threadpool(_ray_job_logs, config.dashboard_url, job.ray_job_id),
            timeout=config.request_timeout_s,
        )
    except (RuntimeError, OSError, ValueError) as exc:  # OSError: network, timeout
        raise Unavailable(f"Ray job API unavailable: {exc}") from exc
    return JobLogs(job_id=job_id, ray_job_id=job.ray_job_id, logs=text)


async def _streamed_job(job_id: str, caller: Caller, cat: Cat) -> s.TrainingJob:
    """Dependency of the stream: ownership is checked before the stream starts (404/403)."""
    return await owned_job(cat, caller, job_id)


@router.get("/{job_id}/stream", response_class=EventSourceResponse,
            responses=stream_responses("Server-sent events: status_change, log, metrics, "
                                       "progress, then end (see serve_apps.gateway.stream)."))
async def job_stream(
    request: Request, job: Annotated[s.TrainingJob, Depends(_streamed_job)], cat: Cat,
    cursor: Annotated[Cursor | None, Depends(last_event_id)],
) -> AsyncIterator[ServerSentEvent]:
    """The job's life as it happens (seed 002's events over SSE): status changes with the
    old and new status, log lines, metric points and progress, each with an ``id`` that a
    client sends back as ``Last-Event-ID`` to resume after it; ``event: end`` follows the
    terminal status. 422 for a ``Last-Event-ID`` this stream never sent."""
    async for event in follow(training_job_source(cat, job.id), request, cursor=cursor):
        yield event


class JobTokenCreate(BaseModel):
    """How long the job token lives."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(
        s.JOB_TOKEN_TTL_S, ge=s.MIN_JOB_TOKEN_TTL_S, le=s.MAX_JOB_TOKEN_TTL_S,
        description="Seconds until the token expires (used or not); it is also revoked "
        "when its job ends.")


class JobToken(BaseModel):
    key: s.ApiKey = Field(description="The token's record (scope ``job``).")
    secret: str = Field(description="The token itself (``gjt_...``): shown once.")


@tokens_router.post("", status_code=201, response_model=JobToken)
async def create_job_token(caller: Caller, cat: Cat, body: JobTokenCreate | None = None) -> Any:
    """A job token for the caller, for one ``ray job submit``: put it in the job's runtime
    env as ``GARDEN_JOB_TOKEN`` instead of an API key (the Ray dashboard shows runtime
    envs). The job's driver (``python -m train_jobs.run --config`` or ``python -m
    batch_jobs.run --config``) registers its training job or batch with it, for the
    caller; the token then reads that job only (``GET /v1/training/jobs/{id}`` and what
    is under it, or ``GET /v1/batches/{id}``...), registers no other, and stops working
    when the job ends or ``ttl_s`` passes."""
    ttl_s = (body or JobTokenCreate()).ttl_s
    record, secret = await cat.create_job_token(caller.user_id, ttl_s=ttl_s)
    return JobToken(key=record, secret=secret)
