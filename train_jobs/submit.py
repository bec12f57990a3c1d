"""Submit and cancel training jobs through Ray's job API (:mod:`ray_jobs.submit`).

``submit_training_job`` submits ``python -m train_jobs.run --job-id ID`` under the
submission id ``garden-train-<job id>``. The catalog job moves to ``queued`` with its
``ray_job_id`` *before* the submission, so the job's own ``running`` can never be
overwritten; a refused submission marks it failed. The driver's credential is a job token
bound to the job (:mod:`ray_jobs.credentials`).
"""

from __future__ import annotations

from typing import Any

from catalog import schemas as s
from catalog.errors import InvalidTransition
from ray_jobs import submit as ray_submit

#: Settings a job's driver and workers take from the submitter's environment (never
#: secrets: storage credentials come from each node's own environment or instance role).
FORWARDED_ENV = ("GARDEN_DATABASE_URL", "GARDEN_STORAGE_URI", "GARDEN_TENSORBOARD_DIR",
                 "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                 "AWS_DEFAULT_REGION")


def submission_id(job_id: str) -> str:
    """The Ray job submission id of a catalog training job."""
    return f"garden-train-{job_id}"


def submit_training_job(
    job_id: str, *, address: str | None = None, runtime_env: dict[str, Any] | None = None,
    python: str | None = None, timeout_s: float = 60.0,
) -> str:
    """Submit a pending job as a Ray job; return its submission id.

    Args:
        job_id: a catalog training job in status ``pending``.
        address: the dashboard (job API) address, e.g. ``http://127.0.0.1:8265``.
        runtime_env: merged with the catalog settings and :data:`FORWARDED_ENV`
            (:func:`ray_jobs.submit.job_runtime_env`).
        python: interpreter for the entrypoint (default: this process's, which has
            the project installed; plain ``python`` may be another one).
        timeout_s: how long to retry while the cluster's job agent is not up yet.

    Raises:
        NotFound: no such job. InvalidTransition: the job is not pending.
        InvalidArgument: the job cannot run on this cluster (GPU-only options).
        Unavailable: the job API refused or could not be reached (the job is failed).
    """
    from catalog.actor import Catalog
    from train_jobs.trainer import check_requirements

    cat = Catalog()
    job = cat.training_jobs.get(job_id)
    if job.status != s.JobStatus.pending:
        raise InvalidTransition(f"job {job_id} is {job.status}, not pending", field="status")
    check_requirements(job)
    sub_id = submission_id(job_id)
    return ray_submit.submit(
        cat, job_id, module="train_jobs.run", id_option="--job-id", submission_id=sub_id,
        metadata_key="garden_job_id",
        record=lambda: cat.transition_job(job_id, s.JobStatus.queued, ray_job_id=sub_id),
        refused=lambda message: cat.transition_job(job_id, s.JobStatus.failed,
                                                   error_message=message),
        forwarded=FORWARDED_ENV, address=address, runtime_env=runtime_env, python=python,
        timeout_s=timeout_s)


def cancel_training_job(job_id: str, *, address: str | None = None) -> s.TrainingJob:
    """Cancel a job: mark it ``cancelled`` then stop its Ray job (SIGTERM, then SIGKILL).

    Raises NotFound, or InvalidTransition when the job already ended.
    """
    from catalog.actor import Catalog

    job = Catalog().transition_job(job_id, s.JobStatus.cancelled)
    if job.ray_job_id:
        ray_submit.stop(job.ray_job_id, address=address)
    return job
