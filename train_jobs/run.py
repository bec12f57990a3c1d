"""Entry point of a training job, what ``ray job submit`` runs.

Two ways in:

- ``python -m train_jobs.run --config job.yaml``: a ``TrainingJobCreate`` as YAML or
  JSON (base model and datasets by id or by name). The job is registered in the
  catalog with this Ray job's submission id as its ``ray_job_id``, for the user of the
  job token in ``GARDEN_JOB_TOKEN`` (runtime environment; never logged), which it binds
  to this job (:mod:`ray_jobs.credentials`; ``GARDEN_API_KEY`` is read when no token
  is set), then run.
- ``python -m train_jobs.run --job-id ID``: a job the gateway created and submitted,
  with a job token bound to it in ``GARDEN_JOB_TOKEN``.

Either way the job is claimed atomically (``claim_job``): a catalog job runs at most
once, and a second start is refused before any training. The driver runs the
``TorchTrainer`` (whose workers measure energy with one codecarbon tracker per node,
:mod:`train_jobs.carbon`) and on success copies the final adapter from its checkpoint
to ``<storage root>/models/<name>-v<version>-<random>`` (:mod:`catalog.storage`: a local
folder or an object store every node reads) and registers it as a Model (kind
``adapter``) with its lineage and the job's energy summed over its nodes. Whatever
ends the job (success, error, SIGTERM from ``stop_job``), the job leaves ``running``:
completed, failed with ``error_message``, or cancelled. A completed job with an eval set
(``eval_dataset_id``) and ``evaluate`` settings then runs its evaluation in the same Ray
job (:func:`evaluate_adapter`: the base model and the adapter answer the eval prompts
through vLLM, scored against the references); its result is written on the job and the
adapter, and a failure of it leaves the job completed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from catalog import schemas as s
from catalog import storage
from catalog.config import ADMIN_USER
from catalog.errors import InvalidArgument, InvalidTransition, NotFound
from catalog.lifecycle import TERMINAL_JOB_STATUSES
from catalog.port import CatalogPort
from ray_jobs import credentials
from ray_jobs.driver import Cancelled, Driver, SpecError, load_spec, submission_id
from train_jobs.carbon import CarbonTotals, job_records, job_totals
from train_jobs.engine import TRAINING_STATE_FILES
from train_jobs.metrics import record_job_status, record_training_emissions

log = logging.getLogger("train_jobs.run")
MAX_ERROR_CHARS = 4000


def _record_cancelled(cat: CatalogPort, job_id: str) -> None:
    try:
        finish(cat, job_id, s.JobStatus.cancelled)
    except Exception:
        log.exception("could not record job %s as cancelled", job_id)


def finish(
    cat: CatalogPort, job_id: str, status: s.JobStatus, error: str | None = None
) -> s.TrainingJob:
    """Move a job to a terminal status unless it already has one (e.g. cancelled first)."""
    job = cat.training_jobs.get(job_id)
    if job.status in TERMINAL_JOB_STATUSES:
        return job
    try:
        job = cat.transition_job(job_id, status, error_message=error)
    except InvalidTransition:  # another process finished it meanwhile
        return cat.training_jobs.get(job_id)
    record_job_status(str(status))
    return job


def register_adapter(cat: CatalogPort, job: s.TrainingJob, checkpoint: str, metrics: dict,
                     carbon: CarbonTotals | None) -> s.Model:
    """Copy the final adapter (without optimizer state) from ``checkpoint`` (a path or
    storage URI) to ``<storage root>/models/<name>-v<version>-<random>`` (a location never
    used before, :func:`catalog.storage.fresh`) and register it.

    Raises:
        FileNotFoundError: nothing at ``checkpoint``. Conflict: the name and version
            were taken meanwhile (the copy is removed).
    """
    name = job.output_model_name or f"{job.name}-lora"
    version = cat.next_version("models", name)
    dest = storage.location("models", storage.fresh(f"{name}-v{version}"))
    storage.copy(checkpoint, dest, ignore=TRAINING_STATE_FILES)
    base = cat.models.get(job.base_model_id)
    floats = {k: float(v) for k, v in metrics.items()
              if isinstance(v, int | float) and not isinstance(v, bool)}
    if job.eval_loss_before is not None:
        floats["eval_loss_before"] = job.eval_loss_before
    return cat.register_model(s.ModelCreate(
        name=name, version=version, kind=s.ModelKind.adapter, path=str(dest),
        description=f"LoRA adapter of {base.name} trained by job {job.id}",
        base_model_id=job.base_model_id, dataset_id=job.dataset_id, training_job_id=job.id,
        config={"base_model_path": base.path, "lora": job.lora.model_dump(),
                "hyperparameters": job.hyperparameters.model_dump()},
        metrics=floats, size_bytes=storage.size_bytes(dest),
        energy_kwh=carbon.energy_kwh if carbon else None,
        emissions_kg=carbon.emissions_kg if carbon else None,
        user_id=job.user_id,
    ))


def attribute_carbon(cat: CatalogPort, records: list[s.CarbonRecord], model_id: str) -> None:
    """Rewrite a job's carbon records (same figures) to name the adapter it produced,
    so carbon summaries by model count the training energy."""
    for record in records:
        fields = record.model_dump(include=set(s.CarbonCreate.model_fields))
        cat.record_carbon(s.CarbonCreate.model_validate({**fields, "model_id": model_id}))


def run_job(job_id: str, cat: CatalogPort | None = None,
            ray_job_id: str | None = None) -> s.TrainingJob:
    """Run one catalog training job to a terminal status and return it.

    Needs a connected Ray. ``cat`` defaults to :class:`catalog.actor.Catalog`;
    ``ray_job_id`` (default: this driver's submission id) must be the job's own.
    Exceptions are recorded on the job (failed / cancelled) and re-raised.

    Raises:
        InvalidTransition: the job already ran or runs (``field`` status), or belongs
            to another Ray job (``field`` ray_job_id); nothing is trained or recorded.
    """
    from catalog.actor import Catalog
    from train_jobs.trainer import (
        build_trainer,
        check_requirements,
        check_rows,
        engine_config,
    )

    cat = cat or Catalog()
    job = cat.claim_job(job_id, ray_job_id or submission_id())
    record_job_status("running")
    started = time.monotonic()
    try:
        check_requirements(job)
        base = cat.models.get(job.base_model_id)
        cfg = engine_config(job, cat, base.path)
        rows = cat.datasets.get(job.dataset_id).num_rows
        check_rows(job, rows)
        evaluation = ("an eval set" if cfg.eval_path else
                      f"{cfg.eval_fraction:g} held out" if cfg.eval_fraction else "none")
        cat.add_event(job_id, s.JobEvent(message=(
            f"{job.method} on {rows} rows (evaluation: {evaluation}), "
            f"{job.scaling.num_workers} worker(s)")))
        result = build_trainer(job, cfg).fit()
        job = cat.training_jobs.get(job_id)
        metrics = last_metrics(cat, job_id)
        metrics["train_runtime_s"] = time.monotonic() - started
        final = storage.uri_of(result.checkpoint.filesystem, result.checkpoint.path)
        records = job_records(cat, job_id)
        carbon = job_totals(records)
        model = register_adapter(cat, job, final, metrics, carbon)
        attribute_carbon(cat, records, model.id)
        record_training_emissions(carbon.emissions_kg)
        cat.transition_job(job_id, s.JobStatus.completed,
                           eval_loss_after=metrics.get("eval_loss"))
        record_job_status("completed")
        if job.evaluate is not None and job.eval_dataset_id:
            evaluate_adapter(cat, job, model)
        return cat.training_jobs.get(job_id)
    except Cancelled:
        finish(cat, job_id, s.JobStatus.cancelled)
        raise
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        finish(cat, job_id, s.JobStatus.failed, error=message)
        raise


def evaluate_adapter(cat: CatalogPort, job: s.TrainingJob, model: s.Model) -> None:
    """The evaluation a completed job with an eval set ends with (``job.evaluate``): the
    base model and the new adapter answer the eval set's first prompts in this Ray job
    (:func:`eval_jobs.run.run_evaluation`). The job stays completed whatever happens:
    a failure is logged, kept on the evaluation and added to the job's events."""
    from eval_jobs.run import run_evaluation

    assert job.evaluate is not None and job.eval_dataset_id is not None
    try:
        evaluation = cat.create_evaluation(model.id, s.EvaluationCreate(
            dataset_id=job.eval_dataset_id, n=job.evaluate.n,
            max_tokens=job.evaluate.max_tokens, user_id=job.user_id), job_id=job.id)
        cat.add_event(job.id, s.JobEvent(message=(
            f"evaluating {model.name} against its base model on {job.evaluate.n} eval "
            f"prompts: evaluation {evaluation.id}")))
        done = run_evaluation(evaluation.id, cat, country_iso_code=job.country_iso_code)
        cat.add_event(job.id, s.JobEvent(message="evaluation: " + ", ".join(
            f"{x.metric} base {x.base:.3f} adapter {x.adapter:.3f}" for x in done.scores)))
    except Exception as exc:
        log.exception("job %s: the evaluation failed", job.id)
        cat.add_event(job.id, s.JobEvent(
            level="warning", message=f"evaluation failed: {type(exc).__name__}: {exc}"[
                :MAX_ERROR_CHARS]))


def last_metrics(cat: CatalogPort, job_id: str) -> dict[str, float]:
    """The newest value of each metric of a job (train_loss, eval_loss, perplexity, ...)."""
    latest: dict[str, float] = {}
    for point in cat.list_metrics(job_id):
        for key, value in point.model_dump(exclude={"step", "created_at", "extra"}).items():
            if value is not None:
                latest[key] = float(value)
    return latest


class JobSpecError(SpecError):
    """A job file that is not a valid ``TrainingJobCreate``; the message names the file,
    the line and the field of each problem."""


def load_job_spec(path: Path) -> s.TrainingJobCreate:
    """Read a ``TrainingJobCreate`` from a YAML or JSON file.

    Raises:
        JobSpecError: unreadable or invalid; ``details`` lists ``{"line", "field",
            "message"}`` per problem.
    """
    return load_spec(path, s.TrainingJobCreate, "job", JobSpecError)


def resolve_refs(cat: CatalogPort, spec: s.TrainingJobCreate) -> s.TrainingJobCreate:
    """Let a job file name its base model and datasets by name (newest version) as well
    as by id. Raises InvalidArgument naming the field of a reference found neither way."""
    updates: dict[str, str] = {}
    for field in ("base_model_id", "dataset_id", "eval_dataset_id"):
        ref = getattr(spec, field)
        if not ref:
            continue
        repo: Any = cat.models if field == "base_model_id" else cat.datasets
        try:
            repo.get(ref)
            continue
        except NotFound:
            pass
        filters = {"kind": s.ModelKind.base} if field == "base_model_id" else {}
        found = repo.list(name=ref, page_size=1, **filters).items
        if not found:
            raise InvalidArgument(f"{field}: no row with id or name {ref!r}", field=field)
        updates[field] = found[0].id
    return spec.model_copy(update=updates)


def create_job_from_spec(
    cat: CatalogPort, path: Path, secret: str | None,
    variable: str = credentials.JOB_TOKEN_ENV,
) -> s.TrainingJob:
    """Register the job of a spec file, owned by the user of ``secret`` (if given; the
    bootstrap admin key files it for the spec's ``user_id``, else for the admin). A job
    token is bound to the job in the same transaction.

    Args:
        secret: a job token or API key, from the environment variable ``variable``
            (named in errors; :func:`ray_jobs.credentials.credential`).

    Raises:
        JobSpecError: the file is invalid. InvalidArgument: an unknown reference, or a
            secret the catalog does not know, expired, revoked, or a job token that
            already registered a job (``field`` ``variable``).
    """
    spec = resolve_refs(cat, load_job_spec(path))
    key = credentials.filer(cat, secret, variable) if secret else None
    if secret and key is None:  # the bootstrap admin may file a job for any user
        spec = spec.model_copy(update={"user_id": spec.user_id or ADMIN_USER})
    elif key is not None:
        spec = spec.model_copy(update={"user_id": key.user_id})
    with credentials.naming(variable):
        return cat.create_training_job(spec, job_token_id=credentials.job_token_id(key))


class TrainingDriver(Driver):
    """``python -m train_jobs.run (--config FILE | --job-id ID) [--address ADDR]``.

    Exit 0 on success, 1 on failure, 2 on a refused start (bad spec, job already run, a
    job token that is not valid or not this job's), 130 when cancelled.
    """

    noun, id_option = "job", "--job-id"
    config_help = "a TrainingJobCreate as YAML or JSON: register the job, then run it"
    id_help = "run this catalog job (created by the gateway)"

    def register(self, cat: CatalogPort, args: argparse.Namespace, secret: str | None,
                 variable: str) -> str:
        job_id = create_job_from_spec(cat, args.config, secret, variable).id
        log.info("registered training job %s from %s", job_id, args.config)
        return job_id

    def run(self, cat: CatalogPort, row_id: str, args: argparse.Namespace) -> int:
        job = run_job(row_id, cat)
        log.info("job %s %s: model %s, eval loss %s -> %s", job.id, job.status,
                 job.output_model_id, job.eval_loss_before, job.eval_loss_after)
        return 0

    def stopping(self, cat: CatalogPort, row_id: str) -> None:
        """Record ``cancelled`` at once from a thread: the main thread may be inside Ray
        Train's ``fit`` (starting its worker group, say), whose unwinding can outlast
        Ray's wait. The thread is not a daemon, so the interpreter waits for its write
        before it exits."""
        threading.Thread(target=_record_cancelled, args=(cat, row_id),
                         name="record-cancelled").start()


def main(argv: list[str] | None = None) -> int:
    """CLI: see :class:`TrainingDriver`."""
    return TrainingDriver(__doc__.splitlines()[0], log).main(argv)


if __name__ == "__main__":
    sys.exit(main())
