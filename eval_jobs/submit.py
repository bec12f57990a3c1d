"""Submit an evaluation through Ray's job API (:mod:`ray_jobs.submit`).

``submit_evaluation`` submits ``python -m eval_jobs.run --evaluation-id ID`` under the
submission id ``garden-eval-<evaluation id>`` (beside ``garden-train-`` and
``garden-batch-``), with a job token bound to the evaluation as the driver's credential.
The evaluation records that ``ray_job_id`` before the submission (the run presents it
when it claims the evaluation); a refused submission marks it failed.
"""

from __future__ import annotations

from typing import Any

from batch_jobs.submit import FORWARDED_ENV  # the driver runs a batch: the same settings
from catalog import schemas as s
from catalog.errors import InvalidTransition
from ray_jobs import submit as ray_submit


def submission_id(evaluation_id: str) -> str:
    """The Ray job submission id of a catalog evaluation."""
    return f"garden-eval-{evaluation_id}"


def submit_evaluation(
    evaluation_id: str, *, address: str | None = None,
    runtime_env: dict[str, Any] | None = None, python: str | None = None,
    timeout_s: float = 60.0,
) -> str:
    """Submit a pending evaluation as a Ray job; return its submission id.

    Args:
        evaluation_id: a catalog evaluation in status ``pending`` with no Ray job yet.
        address: the dashboard (job API) address, e.g. ``http://127.0.0.1:8265``.
        runtime_env: merged with the catalog settings and :data:`FORWARDED_ENV`
            (:func:`ray_jobs.submit.job_runtime_env`).
        python: interpreter for the entrypoint (default: this process's).
        timeout_s: how long to retry while the cluster's job agent is not up yet.

    Raises:
        NotFound: no such evaluation. InvalidTransition: not pending, or already
            submitted. Unavailable: the job API refused or could not be reached (the
            evaluation is failed).
    """
    from catalog.actor import Catalog

    cat = Catalog()
    evaluation = cat.evaluations.get(evaluation_id)
    if evaluation.status != s.EvaluationStatus.pending or evaluation.ray_job_id:
        raise InvalidTransition(
            f"evaluation {evaluation_id} is {evaluation.status}"
            f"{' and submitted' if evaluation.ray_job_id else ''}", field="status")
    sub_id = submission_id(evaluation_id)
    return ray_submit.submit(
        cat, evaluation_id, module="eval_jobs.run", id_option="--evaluation-id",
        submission_id=sub_id, metadata_key="garden_evaluation_id",
        record=lambda: cat.evaluations.update(evaluation_id, ray_job_id=sub_id),
        refused=lambda message: cat.fail_evaluation(evaluation_id, message),
        forwarded=FORWARDED_ENV, address=address, runtime_env=runtime_env, python=python,
        timeout_s=timeout_s)
