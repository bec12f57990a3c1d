"""Submit, cancel and reconcile batches through Ray's job API (:mod:`ray_jobs.submit`).

``submit_batch`` submits ``python -m batch_jobs.run --batch-id ID`` under the submission id
``garden-batch-<batch id>`` (training jobs are ``garden-train-<job id>``), so the Ray
dashboard's job list names both by their catalog id. The batch records that
``ray_job_id`` *before* the submission (the run presents it when it claims the batch);
a refused submission marks it failed. The driver's credential is a job token bound to the
batch (:mod:`ray_jobs.credentials`).

``cancel_batch`` moves the batch to ``cancelling`` and stops its Ray job (SIGTERM): the
run stores the lines done so far and ends ``cancelled``. The job's runtime environment
sets ``RAY_JOB_STOP_WAIT_TIME_S`` (:data:`ray_jobs.submit.STOP_WAIT_S`) so Ray waits
that long before a SIGKILL. A batch whose Ray job never started, or ended without moving it, is set
``cancelled`` here (:func:`reconcile_batch`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from catalog import schemas as s
from catalog.errors import InvalidTransition
from catalog.lifecycle import TERMINAL_BATCH_STATUSES
from catalog.reconcile import DEFAULT_GRACE_S, RAY_TERMINAL, batch_moves, batch_verdict
from ray_jobs import submit as ray_submit

#: Settings the driver takes from the submitter's environment (never secrets).
FORWARDED_ENV = ("GARDEN_DATABASE_URL", "GARDEN_STORAGE_URI", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
B = s.BatchStatus


def submission_id(batch_id: str) -> str:
    """The Ray job submission id of a catalog batch."""
    return f"garden-batch-{batch_id}"


def submit_batch(
    batch_id: str, *, address: str | None = None, runtime_env: dict[str, Any] | None = None,
    python: str | None = None, engine: dict[str, Any] | None = None, timeout_s: float = 60.0,
) -> str:
    """Submit a validating batch as a Ray job; return its submission id.

    Args:
        batch_id: a catalog batch in status ``validating`` with no Ray job yet.
        address: the dashboard (job API) address, e.g. ``http://127.0.0.1:8265``.
        runtime_env: merged with the catalog settings and :data:`FORWARDED_ENV`
            (:func:`ray_jobs.submit.job_runtime_env`).
        python: interpreter for the entrypoint (default: this process's).
        engine: :class:`batch_jobs.engine.EngineSettings` fields (default: its defaults).
        timeout_s: how long to retry while the cluster's job agent is not up yet.

    Raises:
        NotFound: no such batch. InvalidTransition: not validating, or already submitted.
        Unavailable: the job API refused or could not be reached (the batch is failed).
    """
    from catalog.actor import Catalog

    cat = Catalog()
    batch = cat.batches.get(batch_id)
    if batch.status != B.validating or batch.ray_job_id:
        raise InvalidTransition(f"batch {batch_id} is {batch.status} and "
                                f"{'submitted' if batch.ray_job_id else 'not validating'}",
                                field="status")
    sub_id = submission_id(batch_id)

    def refused(message: str) -> None:
        cat.transition_batch(batch_id, B.failed, message=message, errors=s.BatchErrors(
            data=[s.BatchError(code="submission_failed", message=message)]))

    return ray_submit.submit(
        cat, batch_id, module="batch_jobs.run", id_option="--batch-id", submission_id=sub_id,
        metadata_key="garden_batch_id",
        arguments=("--engine", json.dumps(engine)) if engine else (),
        record=lambda: cat.batches.update(batch_id, ray_job_id=sub_id), refused=refused,
        forwarded=FORWARDED_ENV, address=address, runtime_env=runtime_env, python=python,
        timeout_s=timeout_s)


def cancel_batch(batch_id: str, *, address: str | None = None,
                 wait_s: float = 5.0) -> s.Batch:
    """Cancel a batch: mark it ``cancelling`` and stop its Ray job (the run then stores
    the lines done so far and ends ``cancelled``). Waits up to ``wait_s`` for a Ray job
    that had not started yet to end, then marks such a batch ``cancelled`` itself.
    Cancelling a cancelling batch again is harmless.

    Raises NotFound, or InvalidTransition when the batch already ended.
    """
    from catalog.actor import Catalog

    cat = Catalog()
    batch = cat.transition_batch(batch_id, B.cancelling)
    if not batch.ray_job_id:
        return cat.transition_batch(batch_id, B.cancelled, message="never submitted")
    status = ray_submit.stop(batch.ray_job_id, address=address)
    if status in ("PENDING", *RAY_TERMINAL):
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if reconcile_batch(batch_id, address=address).status in TERMINAL_BATCH_STATUSES:
                break
            time.sleep(0.5)
    return cat.batches.get(batch_id)


def reconcile_batch(batch_id: str, *, address: str | None = None) -> s.Batch:
    """End a live batch whose Ray job has already ended without ending it (a driver
    killed, or stopped before it started), as :func:`catalog.reconcile.batch_verdict`
    decides: ``cancelled`` when it was cancelling or its Ray job was stopped, else
    ``failed``. A job API that cannot answer leaves it as it is. Returns the batch as it
    is afterwards. Raises NotFound."""
    from catalog.actor import Catalog

    cat = Catalog()
    batch = cat.batches.get(batch_id)
    if batch.status in TERMINAL_BATCH_STATUSES or not batch.ray_job_id:
        return batch
    try:
        states = ray_submit.ray_job_states([batch.ray_job_id], address=address)
        state = states.get(batch.ray_job_id)
    except (RuntimeError, OSError):
        return batch
    verdict = batch_verdict(batch, state, now=datetime.now(UTC), grace_s=DEFAULT_GRACE_S)
    try:
        for status, fields in batch_moves(batch, verdict) if verdict else []:
            batch = cat.transition_batch(batch_id, status, **fields)
    except InvalidTransition:  # the run (or a gateway's reconciler) ended it first
        return cat.batches.get(batch_id)
    return batch
