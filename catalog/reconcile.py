"""How a live training job or batch ends when its Ray job is over but its driver recorded
no end: the one decision behind the gateway's reconciler
(:mod:`serve_apps.gateway.reconcile`) and ``batch_jobs.submit.cancel_batch``.

A job's driver (``python -m train_jobs.run``) and a batch's (``python -m
batch_jobs.run``) record their own end. A Ray job that ends first (stopped before its
driver started, the driver killed, its node lost) would leave the row live for ever.
Given the state of the row's Ray job (Ray's ``JobStatus``: PENDING, RUNNING, STOPPED,
SUCCEEDED, FAILED; https://docs.ray.io/en/latest/cluster/running-applications/job-submission/doc/ray.job_submission.JobStatus.html):

=====================  ===========================  =================================
Ray job                training job                 batch
=====================  ===========================  =================================
PENDING, RUNNING       unchanged                    unchanged
STOPPED                cancelled                    cancelled (through cancelling)
SUCCEEDED, FAILED      failed, with Ray's message   failed; cancelled when cancelling
unknown past grace_s   failed, "Ray job … not       failed; cancelled when cancelling
                       found"
=====================  ===========================  =================================

Only rows in a live status that name a Ray job (``ray_job_id``) are concerned. Unknown
means that the job API answered and does not list the submission id (never submitted,
or deleted with ``ray job delete``); the grace period counts from the row's
``updated_at``, because a row records its ``ray_job_id`` just before the submission.

Ray reports a terminal status only once the driver process has exited, so whatever the
driver recorded is in the catalog by then; the moves are catalog transitions
(:mod:`catalog.lifecycle`), which never leave a terminal status (InvalidTransition), so a
driver's own end always wins, and a repeated move (several gateway replicas) changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog import schemas as s
from catalog.lifecycle import TERMINAL_BATCH_STATUSES, TERMINAL_JOB_STATUSES

#: Ray job statuses after which the driver no longer runs.
RAY_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
#: Seconds a live row may name a Ray job that the job API does not list before it is
#: failed: past the gateway's longest submission (``submit_timeout_s`` +
#: ``request_timeout_s``, 180 s by default), during which the row names a Ray job not
#: submitted yet.
DEFAULT_GRACE_S = 300.0
#: Longest reason stored on a row (the drivers' own limit on an error message).
MAX_REASON_CHARS = 4000
B = s.BatchStatus


@dataclass(frozen=True)
class RayJobState:
    """One Ray job as the job API lists it (``ray.job_submission.JobDetails``).

    Attributes:
        submission_id: the job's submission id, e.g. ``garden-train-job_...``.
        status: Ray's ``JobStatus`` value: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
        message: Ray's message about the status (e.g. the entrypoint's exit code), if any.
    """

    submission_id: str
    status: str
    message: str | None = None


@dataclass(frozen=True)
class Verdict:
    """How a live row ends: ``status`` (a JobStatus or BatchStatus: cancelled or failed)
    with ``reason`` (at most :data:`MAX_REASON_CHARS` characters)."""

    status: str
    reason: str


def _ended(ray_job_id: str, state: RayJobState | None, *, since: datetime, now: datetime,
           grace_s: float) -> str | None:
    """Why the Ray job ``ray_job_id`` is over, or None while it may still run."""
    if state is None:
        if (now - since).total_seconds() < grace_s:
            return None
        return (f"Ray job {ray_job_id} not found: the job API does not list it "
                f"{grace_s:g} s after the row last changed")
    if state.status not in RAY_TERMINAL:
        return None
    reason = f"Ray job {ray_job_id} ended {state.status} before its driver recorded an end"
    return (f"{reason}: {state.message}" if state.message else reason)[:MAX_REASON_CHARS]


def job_verdict(job: s.TrainingJob, state: RayJobState | None, *, now: datetime,
                grace_s: float) -> Verdict | None:
    """How ``job`` ends given ``state``, its Ray job's state (None: the job API does not
    list it), at ``now`` (aware UTC), after ``grace_s`` seconds of grace for an unknown
    Ray job; None leaves it as it is (see the module docstring's table)."""
    if job.status in TERMINAL_JOB_STATUSES or not job.ray_job_id:
        return None
    reason = _ended(job.ray_job_id, state, since=job.updated_at, now=now, grace_s=grace_s)
    if reason is None:
        return None
    stopped = state is not None and state.status == "STOPPED"
    return Verdict(s.JobStatus.cancelled if stopped else s.JobStatus.failed, reason)


def batch_verdict(batch: s.Batch, state: RayJobState | None, *, now: datetime,
                  grace_s: float) -> Verdict | None:
    """:func:`job_verdict` for a batch: cancelled when its Ray job was stopped or the
    batch was being cancelled, failed otherwise."""
    if batch.status in TERMINAL_BATCH_STATUSES or not batch.ray_job_id:
        return None
    since = batch.updated_at or batch.created_at or now  # (a row always has both)
    reason = _ended(batch.ray_job_id, state, since=since, now=now, grace_s=grace_s)
    if reason is None:
        return None
    cancel = batch.status == B.cancelling or (state is not None and state.status == "STOPPED")
    return Verdict(B.cancelled if cancel else B.failed, reason)


def job_moves(job: s.TrainingJob, verdict: Verdict) -> list[tuple[s.JobStatus, dict[str, Any]]]:
    """The ``transition_job(job.id, status, **fields)`` calls that carry out ``verdict``:
    one, recording the reason as the job's ``error_message``."""
    return [(s.JobStatus(verdict.status), {"error_message": verdict.reason})]


def batch_moves(batch: s.Batch, verdict: Verdict) -> list[tuple[s.BatchStatus, dict[str, Any]]]:
    """The ``transition_batch(batch.id, status, **fields)`` calls that carry out
    ``verdict``, in order: a batch reaches cancelled through cancelling
    (:data:`catalog.lifecycle.BATCH_TRANSITIONS`); a failed one records the reason as its
    ``errors`` (code ``ray_job_ended``) too."""
    if verdict.status == B.cancelled:
        moves: list[tuple[s.BatchStatus, dict[str, Any]]] = []
        if batch.status not in (B.validating, B.cancelling):
            moves.append((B.cancelling, {}))
        return [*moves, (B.cancelled, {"message": verdict.reason})]
    errors = s.BatchErrors(data=[s.BatchError(code="ray_job_ended", message=verdict.reason)])
    return [(B.failed, {"message": verdict.reason, "errors": errors})]
