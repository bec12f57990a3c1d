"""Entry point of a training job: ``python -m train_jobs.run --job-id ID``.

What the gateway submits through ``JobSubmissionClient`` and what a user may run
with ``ray job submit -- python -m train_jobs.run --job-id ID``. It connects to
the cluster, marks the job running, measures energy with one codecarbon tracker
per node, runs the ``TorchTrainer``, and on success copies the final adapter
into ``$GARDEN_HOME/models`` and registers it as a Model (kind ``adapter``) with
its lineage. Whatever ends the job (success, error, SIGTERM from ``stop_job``),
the job leaves ``running``: completed, failed with ``error_message``, or cancelled.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time

import ray

from catalog import schemas as s
from catalog.errors import InvalidTransition
from catalog.lifecycle import TERMINAL_JOB_STATUSES
from catalog.port import CatalogPort
from train_jobs.base_models import folder_size, models_root
from train_jobs.carbon import CarbonTotals, NodeCarbon
from train_jobs.loop import TRAINING_STATE
from train_jobs.metrics import record_job_status, record_training_emissions

log = logging.getLogger("train_jobs.run")
MAX_ERROR_CHARS = 4000


class JobCancelled(BaseException):
    """Raised in the driver when Ray stops the job (SIGTERM from ``stop_job``)."""


def _on_sigterm(signum, frame):
    raise JobCancelled("the job was stopped (SIGTERM)")


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


def register_adapter(cat: CatalogPort, job: s.TrainingJob, checkpoint_path: str, metrics: dict,
                     carbon: CarbonTotals | None) -> s.Model:
    """Copy the final adapter (without optimizer state) into storage and register it."""
    name = job.output_model_name or f"{job.name}-lora"
    version = cat.next_version("models", name)
    dest = models_root() / f"{name}-v{version}"
    shutil.copytree(checkpoint_path, dest, ignore=shutil.ignore_patterns(TRAINING_STATE),
                    dirs_exist_ok=True)
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
        metrics=floats, size_bytes=folder_size(dest),
        energy_kwh=carbon.energy_kwh if carbon else None,
        emissions_kg=carbon.emissions_kg if carbon else None,
        user_id=job.user_id,
    ))


def _record_carbon(
    cat: CatalogPort, job: s.TrainingJob, carbon: CarbonTotals, model_id: str | None
) -> None:
    cat.record_carbon(s.CarbonCreate(
        source=s.CarbonSource.training, energy_kwh=carbon.energy_kwh,
        emissions_kg=carbon.emissions_kg, duration_s=carbon.duration_s,
        training_job_id=job.id, model_id=model_id, country_iso_code=job.country_iso_code,
        details={"nodes": carbon.nodes, "tool": "codecarbon OfflineEmissionsTracker"},
        user_id=job.user_id,
    ))
    record_training_emissions(carbon.emissions_kg)


def run_job(job_id: str, cat: CatalogPort | None = None) -> s.TrainingJob:
    """Run one catalog training job to a terminal status and return it.

    Needs a connected Ray. ``cat`` defaults to :class:`catalog.actor.Catalog`.
    Exceptions are recorded on the job (failed / cancelled) and re-raised.
    """
    from catalog.actor import Catalog
    from train_jobs.trainer import build_trainer, check_requirements, plan_run

    cat = cat or Catalog()
    job = cat.training_jobs.get(job_id)
    if job.status in TERMINAL_JOB_STATUSES:
        raise InvalidTransition(f"job {job_id} is already {job.status}", field="status")
    job = cat.transition_job(job_id, s.JobStatus.running)
    record_job_status("running")
    carbon_meter, carbon = None, None
    started = time.monotonic()
    try:
        check_requirements(job)
        base = cat.models.get(job.base_model_id)
        carbon_meter = NodeCarbon(job_id, job.country_iso_code)
        plan = plan_run(job, cat, base.path)
        cat.add_event(job_id, s.JobEvent(message=(
            f"{plan.train_rows} train / {plan.eval_rows} eval rows, "
            f"{plan.total_steps} steps on {job.scaling.num_workers} worker(s)")))
        result = build_trainer(job, base.path, plan).fit()
        carbon, carbon_meter = carbon_meter.stop(), None
        job = cat.training_jobs.get(job_id)
        metrics = dict(result.metrics or {})
        metrics["train_runtime_s"] = time.monotonic() - started
        with result.checkpoint.as_directory() as folder:
            model = register_adapter(cat, job, folder, metrics, carbon)
        _record_carbon(cat, job, carbon, model.id)
        cat.transition_job(job_id, s.JobStatus.completed,
                           eval_loss_after=metrics.get("eval_loss"))
        record_job_status("completed")
        return cat.training_jobs.get(job_id)
    except JobCancelled:
        finish(cat, job_id, s.JobStatus.cancelled)
        raise
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        finish(cat, job_id, s.JobStatus.failed, error=message)
        raise
    finally:
        if carbon_meter is not None:  # the job ended early: still record what it used
            carbon = carbon_meter.stop()
            _record_carbon(cat, job, carbon, None)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m train_jobs.run --job-id ID [--address ADDR]``. Exit 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-id", required=True, help="catalog training job id")
    parser.add_argument("--address", default=None,
                        help="Ray address (default: RAY_ADDRESS, set by `ray job submit`)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    ray.init(address=args.address, namespace="garden", log_to_driver=True)
    try:
        job = run_job(args.job_id)
    except JobCancelled:
        log.warning("job %s cancelled", args.job_id)
        return 130
    except Exception:
        log.exception("job %s failed", args.job_id)
        return 1
    log.info("job %s %s: model %s, eval loss %s -> %s", job.id, job.status,
             job.output_model_id, job.eval_loss_before, job.eval_loss_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
