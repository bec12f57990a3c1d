"""The gateway's reconciler: ends catalog training jobs and batches whose Ray job is over
without their driver having recorded an end (stopped before the driver started, the
driver killed, its node lost), so that no row stays live for ever.

Each gateway replica runs :func:`reconcile_forever` from the app's lifespan
(:func:`serve_apps.gateway.app.create_app`): a round at start, then one every
``GatewayConfig.reconcile_period_s`` seconds. A round (:func:`reconcile_once`) lists the
live rows that name a Ray job, asks the :class:`~serve_apps.gateway.work.Work` port for
those Ray jobs' states in one call (one ``JobSubmissionClient.list_jobs``, run as a Ray
task), lets :mod:`catalog.reconcile` decide each row's end (STOPPED: cancelled; FAILED, or
SUCCEEDED with the row still live: failed with Ray's message; not listed past
``reconcile_grace_s``: failed, "Ray job ... not found") and makes the moves through the
catalog's transitions, logging each. The driver's own end, or another replica's move,
may come first: the transition then raises InvalidTransition (or is a no-op), which is
ignored. A round whose job API or catalog cannot answer changes nothing and is logged;
the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from catalog import schemas as s
from catalog.errors import InvalidTransition, NotFound
from catalog.lifecycle import BATCH_TRANSITIONS, JOB_TRANSITIONS, is_terminal
from catalog.port import AsyncCatalogPort, AsyncRepoPort
from catalog.reconcile import batch_moves, batch_verdict, job_moves, job_verdict
from catalog.store import MAX_PAGE_SIZE
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.work import Work

log = logging.getLogger(__name__)

#: Statuses in which a training job's or a batch's driver may still record its end.
LIVE_JOB_STATUSES = tuple(s.JobStatus(x) for x in JOB_TRANSITIONS
                          if not is_terminal(JOB_TRANSITIONS, x))
LIVE_BATCH_STATUSES = tuple(s.BatchStatus(x) for x in BATCH_TRANSITIONS
                            if not is_terminal(BATCH_TRANSITIONS, x))

Live = TypeVar("Live", s.TrainingJob, s.Batch)


@dataclass(frozen=True)
class Change:
    """One row the reconciler ended: ``kind`` ("training job" or "batch"), its id, the
    status it left and the one it reached, and why."""

    kind: str
    row_id: str
    before: str
    after: str
    reason: str


def _logged(change: Change) -> Change:
    """``change``, logged as a warning: an end that no driver recorded deserves a look."""
    log.warning("reconciler: %s %s %s -> %s: %s", change.kind, change.row_id, change.before,
                change.after, change.reason)
    return change


async def _live(repo: AsyncRepoPort[Live], statuses: Iterable[str]) -> list[Live]:
    """Every row of ``repo`` in one of ``statuses`` that names a Ray job."""
    rows: list[Live] = []
    for status in statuses:
        cursor = None
        while True:
            page = await repo.list(page_size=MAX_PAGE_SIZE, cursor=cursor, status=status)
            rows += [row for row in page.items if row.ray_job_id]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return rows


async def reconcile_once(cat: AsyncCatalogPort, work: Work, *, grace_s: float,
                         timeout_s: float, now: datetime | None = None) -> list[Change]:
    """One round (see the module docstring): returns the rows it ended.

    Args:
        grace_s: seconds a row may name a Ray job the job API does not list, counted from
            the row's last change (``GatewayConfig.reconcile_grace_s``).
        timeout_s: longest wait on the job API, s.
        now: the time the grace is measured to (default: now, UTC).

    Raises:
        CatalogError, RuntimeError, OSError or TimeoutError: the catalog or the job API
        could not answer; rows ended before the error stay ended.
    """
    jobs = await _live(cat.training_jobs, LIVE_JOB_STATUSES)
    batches = await _live(cat.batches, LIVE_BATCH_STATUSES)
    if not jobs and not batches:
        return []
    # (every row listed names a Ray job: ``or ""`` only narrows the type)
    ids = sorted({job.ray_job_id or "" for job in jobs}
                 | {batch.ray_job_id or "" for batch in batches})
    states = await asyncio.wait_for(work.ray_job_states(ids), timeout=timeout_s)
    now = now or datetime.now(UTC)
    changes = []
    for job in jobs:
        verdict = job_verdict(job, states.get(job.ray_job_id or ""), now=now, grace_s=grace_s)
        if verdict is not None and await _moved(cat.transition_job, job.id,
                                                job_moves(job, verdict)):
            changes.append(_logged(Change("training job", job.id, job.status, verdict.status,
                                          verdict.reason)))
    for batch in batches:
        verdict = batch_verdict(batch, states.get(batch.ray_job_id or ""), now=now,
                                grace_s=grace_s)
        if verdict is not None and await _moved(cat.transition_batch, batch.id,
                                                batch_moves(batch, verdict)):
            changes.append(_logged(Change("batch", batch.id, batch.status, verdict.status,
                                          verdict.reason)))
    return changes


async def _moved(transition: Callable[..., Awaitable[object]], row_id: str,
                 moves: Iterable[tuple[str, dict[str, Any]]]) -> bool:
    """Make ``moves`` (``transition(row_id, status, **fields)`` each, in order); False when
    the row ended (or was deleted) meanwhile: InvalidTransition or NotFound."""
    try:
        for status, fields in moves:
            await transition(row_id, status, **fields)
    except (InvalidTransition, NotFound):
        return False
    return True


async def reconcile_forever(catalog: Callable[[], AsyncCatalogPort], work: Work,
                            config: GatewayConfig) -> None:
    """Run :func:`reconcile_once` now and then every ``config.reconcile_period_s``
    seconds until cancelled. ``catalog`` returns the replica's catalog port (asked each
    round, so a catalog that is not up yet is tried again). A failed round is logged with
    its error, never raised: the loop outlives a job API or catalog that is down."""
    while True:
        try:
            await reconcile_once(catalog(), work, grace_s=config.reconcile_grace_s,
                                 timeout_s=config.request_timeout_s)
        except Exception as exc:  # logged; the next round tries again
            log.warning("reconciler: round failed: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(config.reconcile_period_s)
