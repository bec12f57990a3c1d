"""Build the Ray Train ``TorchTrainer`` of one catalog training job (the driver's side).

Each worker runs :func:`train_jobs.engine.train_func` (TRL's trainer on its share of
the batches); Ray Train keeps the checkpoints the workers report under
``<storage root>/runs/job-<id>`` (:func:`catalog.storage.ray_storage`: a shared folder
or an object store, so a worker group restarted on other nodes finds them; best
``save_total_limit`` by eval loss, plus the newest), restarts a failed worker group
from the newest (``FailureConfig``), and :class:`train_jobs.callbacks.CatalogCallback`
writes each report to the catalog. Workers are placed by the job's
``scaling.placement_strategy`` (``SPREAD``/``STRICT_SPREAD`` over nodes) and may ask
for custom resources (``scaling.resources_per_worker``) to land on chosen nodes.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import ray

from catalog import schemas as s
from catalog import storage
from catalog.config import garden_home
from catalog.errors import InvalidArgument
from catalog.port import CatalogPort
from train_jobs.engine import EngineConfig, train_func

#: Python packages each ``report_to`` tracker needs (transformers' integrations).
TRACKER_PACKAGES = {"mlflow": ("mlflow",), "tensorboard": ("tensorboard", "tensorboardX")}


def tensorboard_dir(job_id: str) -> Path:
    """TensorBoard logs of a job: ``$GARDEN_TENSORBOARD_DIR/<job id>`` (default
    ``$GARDEN_HOME/tensorboard/<job id>``)."""
    root = os.environ.get("GARDEN_TENSORBOARD_DIR") or garden_home() / "tensorboard"
    return Path(root) / job_id


def check_requirements(job: s.TrainingJob, cluster_resources: dict[str, float] | None = None,
                       alive_nodes: int | None = None):
    """Refuse, before anything starts, a job this installation or cluster cannot run.

    ``cluster_resources`` defaults to ``ray.cluster_resources()`` and ``alive_nodes`` to
    the alive nodes of ``ray.nodes()`` (both need a connected Ray).

    Raises:
        InvalidArgument: GPU-only options (``TrainingJob.gpu_only_options``, the one rule
            of which options need GPUs) without GPUs or without their libraries, a
            ``report_to`` tracker whose package is missing, fewer GPUs/CPUs or custom
            resources in the cluster than the scaling config asks for, or
            ``STRICT_SPREAD`` over more workers than alive nodes. ``field`` names the
            option.
    """
    sc = job.scaling
    resources = cluster_resources if cluster_resources is not None else ray.cluster_resources()
    for option in job.gpu_only_options():
        if not sc.use_gpu:
            raise InvalidArgument(f"{option.label} needs scaling.use_gpu=true",
                                  field=option.field)
        if importlib.util.find_spec(option.package) is None:
            raise InvalidArgument(
                f"{option.label} needs the {option.package} package "
                "(pip install 'model-garden[gpu]')", field=option.field)
    for tracker in job.report_to:
        if not any(importlib.util.find_spec(p) for p in TRACKER_PACKAGES[tracker]):
            raise InvalidArgument(
                f"report_to {tracker} needs the {TRACKER_PACKAGES[tracker][0]} package",
                field="report_to")
    if sc.use_gpu and resources.get("GPU", 0) < sc.num_workers:
        raise InvalidArgument(
            f"scaling asks for {sc.num_workers} GPU worker(s); the cluster has "
            f"{resources.get('GPU', 0):g} GPU(s)", field="scaling.use_gpu")
    if resources.get("CPU", 0) < sc.num_workers * sc.cpus_per_worker:
        raise InvalidArgument(
            f"scaling asks for {sc.num_workers * sc.cpus_per_worker:g} CPUs; the cluster has "
            f"{resources.get('CPU', 0):g}", field="scaling.num_workers")
    for name, amount in sc.resources_per_worker.items():
        if resources.get(name, 0) < sc.num_workers * amount:
            raise InvalidArgument(
                f"scaling asks for {sc.num_workers * amount:g} of resource {name!r}; the "
                f"cluster has {resources.get(name, 0):g}", field="scaling.resources_per_worker")
    if sc.placement_strategy == "STRICT_SPREAD":
        alive = alive_nodes if alive_nodes is not None else sum(
            1 for n in ray.nodes() if n.get("Alive"))
        if alive < sc.num_workers:
            raise InvalidArgument(
                f"STRICT_SPREAD puts each of {sc.num_workers} workers on its own node; the "
                f"cluster has {alive} alive node(s)", field="scaling.placement_strategy")


def has_eval(job: s.TrainingJob, train_rows: int) -> bool:
    """Whether the run evaluates: a separate eval set, or ``eval_fraction`` of at least
    one of the training rows (the split :func:`train_jobs.engine.load_datasets` makes)."""
    return bool(job.eval_dataset_id) or (job.eval_fraction > 0 and train_rows >= 2)


def check_rows(job: s.TrainingJob, train_rows: int) -> None:
    """Refuse a dataset too small for one optimizer step on every worker.

    Raises:
        InvalidArgument: ``field`` hyperparameters.per_device_train_batch_size.
    """
    hp = job.hyperparameters
    held_out = 0 if job.eval_dataset_id else math.ceil(train_rows * job.eval_fraction)
    per_step = job.scaling.num_workers * hp.per_device_train_batch_size
    if train_rows - held_out < per_step:
        raise InvalidArgument(
            f"{train_rows - held_out} training rows are too few for "
            f"{job.scaling.num_workers} worker(s) x batch {hp.per_device_train_batch_size}",
            field="hyperparameters.per_device_train_batch_size")


def engine_config(job: s.TrainingJob, catalog: CatalogPort, model_path: str) -> EngineConfig:
    """The :class:`~train_jobs.engine.EngineConfig` of a job (its files from the catalog)."""
    data = catalog.datasets.get(job.dataset_id)
    eval_data = catalog.datasets.get(job.eval_dataset_id) if job.eval_dataset_id else None
    return EngineConfig(
        job_id=job.id, method=str(job.method), model_path=model_path,
        train_path=data.path, train_format=str(data.format),
        eval_path=eval_data.path if eval_data else None,
        eval_format=str(eval_data.format) if eval_data else None,
        eval_fraction=job.eval_fraction if has_eval(job, data.num_rows) else 0.0,
        lora=job.lora.model_dump(), hyperparameters=job.hyperparameters.model_dump(),
        quantization=job.quantization.model_dump(), use_gpu=job.scaling.use_gpu,
        deepspeed_stage=job.scaling.deepspeed_stage, report_to=list(job.report_to),
        resume_from_checkpoint=job.resume_from_checkpoint,
        tensorboard_dir=str(tensorboard_dir(job.id)) if "tensorboard" in job.report_to
        else None,
        country_iso_code=job.country_iso_code,
    )


def build_trainer(job: s.TrainingJob, cfg: EngineConfig):
    """The ``TorchTrainer`` of a job (call ``.fit()`` to run it)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.callbacks import CatalogCallback

    hp = job.hyperparameters
    evaluates = bool(cfg.eval_path) or cfg.eval_fraction > 0
    storage_path, storage_filesystem = storage.ray_storage()
    return TorchTrainer(
        train_func,
        train_loop_config=cfg.to_dict(),
        scaling_config=ScalingConfig(
            num_workers=job.scaling.num_workers, use_gpu=job.scaling.use_gpu,
            resources_per_worker={"CPU": job.scaling.cpus_per_worker,
                                  **job.scaling.resources_per_worker},
            placement_strategy=job.scaling.placement_strategy,
        ),
        run_config=RunConfig(
            name=f"job-{job.id}",
            storage_path=storage_path, storage_filesystem=storage_filesystem,
            # the same rule as the catalog's add_checkpoint: best by eval loss, plus the newest
            checkpoint_config=CheckpointConfig(
                num_to_keep=hp.save_total_limit,
                checkpoint_score_attribute="eval_loss" if evaluates else None,
                checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=job.scaling.max_failures),
            callbacks=[CatalogCallback(job, keep=hp.save_total_limit)],
        ),
    )
