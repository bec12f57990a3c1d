"""Submit, cancel and reconcile batches through Ray's job API (as ``train_jobs.submit``
does for training jobs, whose job API helpers this module reuses).

``submit_batch`` submits ``python -m batch_jobs.run --batch-id ID`` with
``ray.job_submission.JobSubmissionClient`` under the submission id
``garden-batch-<batch id>`` (training jobs are ``garden-train-<job id>``), so the Ray
dashboard's job list names both by their catalog id. The batch records that
``ray_job_id`` *before* the submission (the run presents it when it claims the batch);
a refused submission marks it failed. The driver's credential is a job token bound to the
batch (``GARDEN_JOB_TOKEN`` in the runtime env, which the Ray dashboard shows; revoked when
the batch ends), never the user's API key.

``cancel_batch`` moves the batch to ``cancelling`` and stops its Ray job (SIGTERM): the
run stores the lines done so far and ends ``cancelled``. The job's runtime environment
sets ``RAY_JOB_STOP_WAIT_TIME_S`` (:data:`train_jobs.submit.STOP_WAIT_S`) so Ray waits
that long before a SIGKILL. A batch whose Ray job never started, or ended without moving it, is set
``cancelled`` here (:func:`reconcile_batch`).
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import UTC, datetime
from typing import Any

import ray

from catalog import schemas as s
from catalog.errors import InvalidTransition, Unavailable
from catalog.lifecycle import TERMINAL_BATCH_STATUSES
from catalog.reconcile import DEFAULT_GRACE_S, RAY_TERMINAL, batch_moves, batch_verdict
from catalog.retry import Backoff, retrying
from train_jobs.credentials import JOB_TOKEN_ENV
from train_jobs.submit import NO_AGENT, job_client, ray_job_states
from train_jobs.submit import job_runtime_env as training_job_runtime_env

#: Settings the driver takes from the submitter's environment (never secrets).
FORWARDED_ENV = ("GARDEN_DATABASE_URL", "GARDEN_STORAGE_URI", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
B = s.BatchStatus


def submission_id(batch_id: str) -> str:
    """The Ray job submission id of a catalog batch."""
    return f"garden-batch-{batch_id}"


def job_runtime_env(runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """``runtime_env`` plus the storage root, :data:`FORWARDED_ENV` where set and
    ``RAY_JOB_STOP_WAIT_TIME_S`` (``train_jobs.submit.job_runtime_env``)."""
    return training_job_runtime_env(runtime_env, forwarded=FORWARDED_ENV)


def submit_batch(
    batch_id: str, *, address: str | None = None, runtime_env: dict[str, Any] | None = None,
    python: str | None = None, engine: dict[str, Any] | None = None, timeout_s: float = 60.0,
) -> str:
    """Submit a validating batch as a Ray job; return its submission id.

    Args:
        batch_id: a catalog batch in status ``validating`` with no Ray job yet.
        address: the dashboard (job API) address, e.g. ``http://127.0.0.1:8265``.
        runtime_env: merged with the catalog settings (:func:`job_runtime_env`).
        python: interpreter for the entrypoint (default: this process's).
        engine: :class:`batch_jobs.engine.EngineSettings` fields (default: its defaults).
        timeout_s: how long to retry while the cluster's job agent is not up yet.

    Raises:
        NotFound: no such batch. InvalidTransition: not validating, or already submitted.
        Unavailable: the job API refused or could not be reached (the batch is failed).
    """
    import json

    from catalog.actor import Catalog

    cat = Catalog()
    batch = cat.batches.get(batch_id)
    if batch.status != B.validating or batch.ray_job_id:
        raise InvalidTransition(f"batch {batch_id} is {batch.status} and "
                                f"{'submitted' if batch.ray_job_id else 'not validating'}",
                                field="status")
    sub_id = submission_id(batch_id)
    entrypoint = f"{shlex.quote(python or sys.executable)} -m batch_jobs.run --batch-id {batch_id}"
    if engine:
        entrypoint += f" --engine {shlex.quote(json.dumps(engine))}"
    if ray.is_initialized():
        # pin the driver to the submitter's cluster (see train_jobs.submit)
        entrypoint += f" --address {shlex.quote(ray.get_runtime_context().gcs_address)}"
    env = job_runtime_env(runtime_env)
    # the driver's credential: a token bound to this batch, never the user's key
    env["env_vars"][JOB_TOKEN_ENV] = cat.create_job_token(job_id=batch_id)[1]
    cat.batches.update(batch_id, ray_job_id=sub_id)
    try:
        client = job_client(address)
        waiting_for_agent = retrying(
            Backoff(initial_s=2.0, max_delay_s=2.0, jitter=False, max_attempts=None,
                    deadline_s=timeout_s),
            retry_if=lambda e: isinstance(e, RuntimeError) and NO_AGENT in str(e))
        return waiting_for_agent(
            client.submit_job, entrypoint=entrypoint, submission_id=sub_id,
            runtime_env=env, metadata={"garden_batch_id": batch_id})
    except Exception as exc:
        message = f"submission failed: {type(exc).__name__}: {exc}"[:4000]
        cat.transition_batch(batch_id, B.failed, message=message, errors=s.BatchErrors(
            data=[s.BatchError(code="submission_failed", message=message)]))
        raise Unavailable(message, field="ray_job_id") from exc


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
    client = job_client(address)
    try:
        status = str(getattr(client.get_job_status(batch.ray_job_id), "value", ""))
    except RuntimeError:  # the job API does not know it: it never ran
        status = "STOPPED"
    if status not in RAY_TERMINAL:
        client.stop_job(batch.ray_job_id)
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
        state = ray_job_states([batch.ray_job_id], address=address).get(batch.ray_job_id)
    except (RuntimeError, OSError):
        return batch
    verdict = batch_verdict(batch, state, now=datetime.now(UTC), grace_s=DEFAULT_GRACE_S)
    try:
        for status, fields in batch_moves(batch, verdict) if verdict else []:
            batch = cat.transition_batch(batch_id, status, **fields)
    except InvalidTransition:  # the run (or a gateway's reconciler) ended it first
        return cat.batches.get(batch_id)
    return batch
