"""Submit, stop and list Ray jobs through Ray's job API: the plumbing behind
``train_jobs.submit`` and ``batch_jobs.submit``.

:func:`submit` submits ``python -m <module> <id option> <id>`` with
``ray.job_submission.JobSubmissionClient`` (dashboard address; Ray 2.60 turns token auth
on for local clusters and the client reads the token from ``~/.ray/auth_token``; set
``RAY_AUTH_MODE=token`` before importing ray where the cluster enforces it). The catalog
row records its Ray job *before* the submission (the caller's ``record``), so the driver's
own moves can never be overwritten; a refused submission is recorded by the caller's
``refused``. The driver's credential is a job token bound to the row
(``GARDEN_JOB_TOKEN`` in the runtime env, which the Ray dashboard shows; revoked when the
job ends), never the user's API key. The runtime env sets ``RAY_JOB_STOP_WAIT_TIME_S``
(:data:`STOP_WAIT_S`), how long Ray waits after :func:`stop`'s SIGTERM before a SIGKILL.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ray

from catalog.config import garden_home
from catalog.errors import Unavailable
from catalog.port import CatalogPort
from catalog.reconcile import RAY_TERMINAL, RayJobState
from catalog.retry import Backoff, retrying
from ray_jobs.credentials import JOB_TOKEN_ENV

#: The job API's answer while no dashboard agent can take jobs yet (transient).
NO_AGENT = "No available agent"
#: Most characters of a refused submission's message.
MAX_MESSAGE_CHARS = 4000
#: Seconds Ray waits after a job's SIGTERM (``ray job stop``) before its SIGKILL
#: (``RAY_JOB_STOP_WAIT_TIME_S``, read by Ray's job supervisor from the job's runtime env).
#: Ray's default, 3 s, is shorter than a driver needs to unwind Ray Train's ``fit`` and
#: record ``cancelled`` on a loaded machine, or to store a cancelled batch's files.
STOP_WAIT_S = 30


def dashboard_address(address: str | None = None) -> str | None:
    """``address``, else ``RAY_DASHBOARD_ADDRESS``, else the connected cluster's dashboard."""
    if address:
        return address
    if os.environ.get("RAY_DASHBOARD_ADDRESS"):
        return os.environ["RAY_DASHBOARD_ADDRESS"]
    if ray.is_initialized():
        from ray._private.worker import get_dashboard_url

        url = get_dashboard_url()
        if url:
            return url if url.startswith("http") else f"http://{url}"
    return None


def job_client(address: str | None = None):
    """A JobSubmissionClient for the cluster's job API (see :func:`dashboard_address`)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard_address(address))


def job_runtime_env(
    runtime_env: dict[str, Any] | None, forwarded: Sequence[str],
) -> dict[str, Any]:
    """``runtime_env`` plus the settings the driver needs: the storage root, the
    variables named in ``forwarded`` (each job package's ``FORWARDED_ENV``: database URL,
    storage, trackers' locations; never secrets) where set here, and
    ``RAY_JOB_STOP_WAIT_TIME_S``
    (:data:`STOP_WAIT_S`); ``runtime_env``'s own ``env_vars`` win."""
    env = dict(runtime_env or {})
    env_vars = {"GARDEN_HOME": str(garden_home()), "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)}
    for name in forwarded:
        if os.environ.get(name):
            env_vars[name] = os.environ[name]
    env_vars.update(env.get("env_vars") or {})
    env["env_vars"] = env_vars
    return env


def submit(
    cat: CatalogPort, row_id: str, *, module: str, id_option: str, submission_id: str,
    metadata_key: str, record: Callable[[], object], refused: Callable[[str], object],
    forwarded: Sequence[str], arguments: Sequence[str] = (),
    address: str | None = None, runtime_env: dict[str, Any] | None = None,
    python: str | None = None, timeout_s: float = 60.0,
) -> str:
    """Submit the driver of one catalog row as a Ray job; return its submission id.

    Args:
        cat: the catalog, which mints the job token bound to ``row_id``.
        row_id: the training job's or batch's id.
        module, id_option: the entrypoint is ``python -m <module> <id_option> <row_id>``
            followed by ``arguments`` (each quoted here) and ``--address <GCS address>``
            when Ray is connected here.
        submission_id: the Ray job's submission id (``garden-train-<id>``, say).
        metadata_key: the job's metadata names the row under this key.
        record: called just before the submission (the row records its Ray job).
        refused: called with the message when the job API refused the job or could not
            be reached (the row is failed).
        forwarded: the variables :func:`job_runtime_env` forwards from this environment.
        address: the dashboard (job API) address, e.g. ``http://127.0.0.1:8265``.
        runtime_env: merged with the catalog settings (:func:`job_runtime_env`).
        python: interpreter for the entrypoint (default: this process's, which has
            the project installed; plain ``python`` may be another one).
        timeout_s: how long to retry while the cluster's job agent is not up yet.

    Raises:
        Unavailable: the job API refused or could not be reached (after ``refused``; the
            message at most :data:`MAX_MESSAGE_CHARS` characters).
    """
    entrypoint = " ".join(shlex.quote(part) for part in (
        python or sys.executable, "-m", module, id_option, row_id, *arguments))
    if ray.is_initialized():
        # Ray's job supervisor gives the driver the cluster named in the machine-wide
        # <temp dir>/ray_current_cluster file, i.e. the most recently started cluster when
        # several share a machine; the GCS address pins it to the submitter's cluster.
        entrypoint += f" --address {shlex.quote(ray.get_runtime_context().gcs_address)}"
    env = job_runtime_env(runtime_env, forwarded)
    env["env_vars"][JOB_TOKEN_ENV] = cat.create_job_token(job_id=row_id)[1]
    record()
    try:
        client = job_client(address)
        # A freshly started cluster answers 500 until its dashboard agent is up; nothing
        # was submitted, so trying again is safe: every 2 s until ``timeout_s``.
        waiting_for_agent = retrying(
            Backoff(initial_s=2.0, max_delay_s=2.0, jitter=False, max_attempts=None,
                    deadline_s=timeout_s),
            retry_if=lambda e: isinstance(e, RuntimeError) and NO_AGENT in str(e))
        return waiting_for_agent(
            client.submit_job, entrypoint=entrypoint, submission_id=submission_id,
            runtime_env=env, metadata={metadata_key: row_id})
    except Exception as exc:
        message = f"submission failed: {type(exc).__name__}: {exc}"[:MAX_MESSAGE_CHARS]
        refused(message)
        raise Unavailable(message, field="ray_job_id") from exc


def stop(submission_id: str, *, address: str | None = None) -> str:
    """Stop a Ray job unless it already ended (SIGTERM, then SIGKILL after
    :data:`STOP_WAIT_S`); return the status it had: Ray's ``JobStatus`` value (PENDING,
    RUNNING, STOPPED, SUCCEEDED, FAILED), ``STOPPED`` for a job the job API does not know
    (it never ran).

    Raises:
        RuntimeError: the job API refused to stop it. OSError: it could not be reached.
    """
    client = job_client(address)
    try:
        status = str(getattr(client.get_job_status(submission_id), "value", ""))
    except RuntimeError:  # the job API does not know it: it never ran
        status = "STOPPED"
    if status not in RAY_TERMINAL:
        client.stop_job(submission_id)
    return status


def ray_job_states(
    submission_ids: Iterable[str], *, address: str | None = None,
) -> dict[str, RayJobState]:
    """The states of the Ray jobs ``submission_ids`` that the job API lists, by submission
    id, from one ``JobSubmissionClient.list_jobs()`` call; an id it does not list is absent.

    Raises:
        RuntimeError: the job API answered an error. OSError: it could not be reached
            (``requests``' connection errors are OSErrors).
    """
    wanted = set(submission_ids)
    return {
        job.submission_id: RayJobState(job.submission_id,
                                       str(getattr(job.status, "value", job.status)),
                                       job.message or None)
        for job in job_client(address).list_jobs() if job.submission_id in wanted
    }
