"""Build and run the Ray Train ``TorchTrainer`` of one catalog training job.

The driver side of a job: checks that the job can run on this cluster, reads the
dataset(s) with Ray Data, converts and tokenizes them (train/eval split by an
explicit eval dataset or a seeded held-out fraction), sizes the run in steps and
calls ``TorchTrainer.fit()`` with checkpointing, failure handling and the catalog
callback configured from the job.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from catalog import schemas as s
from catalog.config import garden_home
from catalog.errors import InvalidArgument
from catalog.port import CatalogPort
from train_jobs.formats import to_messages
from train_jobs.loop import LoopConfig, train_loop_per_worker
from train_jobs.tokenize import ChatEncoder, has_labels, load_tokenizer


def runs_root() -> Path:
    """``$GARDEN_HOME/runs``: Ray Train's storage path (checkpoints live under it)."""
    root = garden_home() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_requirements(job: s.TrainingJob, cluster_resources: dict[str, float] | None = None):
    """Refuse, before anything starts, a job this installation or cluster cannot run.

    ``cluster_resources`` defaults to ``ray.cluster_resources()`` (needs a connected Ray).

    Raises:
        InvalidArgument: GPU-only options (``TrainingJob.gpu_only_options``, the one rule
            of which options need GPUs) without GPUs or without their libraries, or
            fewer GPUs/CPUs in the cluster than the scaling config asks for. ``field``
            names the option.
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
    if sc.use_gpu and resources.get("GPU", 0) < sc.num_workers:
        raise InvalidArgument(
            f"scaling asks for {sc.num_workers} GPU worker(s); the cluster has "
            f"{resources.get('GPU', 0):g} GPU(s)", field="scaling.use_gpu")
    if resources.get("CPU", 0) < sc.num_workers * sc.cpus_per_worker:
        raise InvalidArgument(
            f"scaling asks for {sc.num_workers * sc.cpus_per_worker:g} CPUs; the cluster has "
            f"{resources.get('CPU', 0):g}", field="scaling.num_workers")


class _ToMessages:
    """Ray Data row function: a raw row of format ``fmt`` -> ``{"messages": [...]}``."""

    def __init__(self, fmt: str):
        self.fmt = fmt

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return to_messages(_plain(row), self.fmt)


def _plain(value: Any) -> Any:
    """Arrow/numpy values of a Ray Data row as plain Python (lists, dicts, str)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def tokenized_dataset(dataset: s.Dataset, model_path: str, max_seq_length: int) -> ray.data.Dataset:
    """Ray Data pipeline: read the JSONL file, convert rows to chats, tokenize, drop rows
    whose assistant tokens were all truncated away."""
    # One block: the files are small, and each extra task would start a process that
    # imports transformers to load the tokenizer.
    return (
        ray.data.read_json(dataset.path, override_num_blocks=1)
        .map(_ToMessages(str(dataset.format)))
        .map(ChatEncoder(model_path, max_seq_length))
        .filter(has_labels)
    )


@dataclass
class Plan:
    """The datasets and step counts of one run."""

    train: ray.data.Dataset
    eval: ray.data.Dataset | None
    train_rows: int
    eval_rows: int
    micro_batches_per_epoch: int
    total_steps: int


def plan_run(job: s.TrainingJob, catalog: CatalogPort, model_path: str) -> Plan:
    """Tokenize and split the data, then size the run.

    Steps: each of ``num_workers`` workers gets ``train_rows // num_workers`` rows
    (Ray's equal split), i.e. ``// per_device_batch_size`` micro-batches per epoch;
    an optimizer step takes ``gradient_accumulation_steps`` micro-batches;
    ``max_steps`` (when set) overrides ``ceil(num_epochs * steps_per_epoch)``.

    Raises:
        InvalidArgument: too few rows for one optimizer step on every worker.
    """
    hp = job.hyperparameters
    data = catalog.datasets.get(job.dataset_id)
    train = tokenized_dataset(data, model_path, hp.max_seq_length)
    eval_ds = None
    if job.eval_dataset_id:
        eval_ds = tokenized_dataset(catalog.datasets.get(job.eval_dataset_id), model_path,
                                    hp.max_seq_length)
        train = train.random_shuffle(seed=hp.seed)
    elif job.eval_fraction > 0:  # shuffles, then holds out the last eval_fraction of rows
        train, eval_ds = train.train_test_split(test_size=job.eval_fraction, shuffle=True,
                                                seed=hp.seed)
    else:
        train = train.random_shuffle(seed=hp.seed)
    train = train.materialize()
    eval_ds = eval_ds.materialize() if eval_ds is not None else None
    train_rows = train.count()
    eval_rows = eval_ds.count() if eval_ds is not None else 0
    workers = job.scaling.num_workers
    micro_per_epoch = train_rows // workers // hp.per_device_batch_size
    steps_per_epoch = micro_per_epoch // hp.gradient_accumulation_steps
    if steps_per_epoch < 1:
        raise InvalidArgument(
            f"{train_rows} training rows are too few for {workers} worker(s) x batch "
            f"{hp.per_device_batch_size} x {hp.gradient_accumulation_steps} accumulation steps",
            field="hyperparameters.per_device_batch_size")
    if eval_ds is not None and eval_rows < workers:
        eval_ds, eval_rows = None, 0
    total = hp.max_steps or math.ceil(hp.num_epochs * steps_per_epoch)
    return Plan(train, eval_ds, train_rows, eval_rows, micro_per_epoch, total)


def build_trainer(job: s.TrainingJob, model_path: str, plan: Plan):
    """The ``TorchTrainer`` of a job (call ``.fit()`` to run it)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.callbacks import CatalogCallback

    hp = job.hyperparameters
    tokenizer = load_tokenizer(model_path)
    cfg = LoopConfig(
        job_id=job.id, model_path=model_path, lora=job.lora.model_dump(),
        hyperparameters=hp.model_dump(), quantization=job.quantization.model_dump(),
        total_steps=plan.total_steps, micro_batches_per_epoch=plan.micro_batches_per_epoch,
        pad_token_id=tokenizer.pad_token_id, use_gpu=job.scaling.use_gpu,
        deepspeed_stage=job.scaling.deepspeed_stage,
        resume_from_checkpoint=job.resume_from_checkpoint, has_eval=plan.eval is not None,
    )
    datasets = {"train": plan.train}
    if plan.eval is not None:
        datasets["eval"] = plan.eval
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=cfg.to_dict(),
        scaling_config=ScalingConfig(
            num_workers=job.scaling.num_workers, use_gpu=job.scaling.use_gpu,
            resources_per_worker={"CPU": job.scaling.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=f"job-{job.id}",
            storage_path=str(runs_root()),
            checkpoint_config=CheckpointConfig(num_to_keep=hp.save_total_limit),
            failure_config=FailureConfig(max_failures=job.scaling.max_failures),
            callbacks=[CatalogCallback(job.id, keep=hp.save_total_limit)],
        ),
        datasets=datasets,
    )
