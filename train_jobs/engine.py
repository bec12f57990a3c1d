"""The training function: TRL's ``SFTTrainer`` or ``DPOTrainer`` on a PEFT LoRA adapter.

:func:`train_func` is what every Ray Train worker of a job runs (``TorchTrainer``'s
``train_loop_per_worker``), and :func:`train` runs the same code in a plain process
(world size 1, no Ray needed: torch, transformers, peft and trl are enough), e.g.
``python -m train_jobs.engine config.json --output-dir out`` on a GPU machine.

What is ours is glue; the mechanics are the libraries':

- data: the dataset file's rows become TRL's conversational records
  (:func:`corpora.formats.to_record`); sft trains on prompt/completion pairs, so
  TRL's completion-only loss learns the assistant's reply only (the last assistant
  turn; earlier turns are context), dpo on prompt/chosen/rejected;
- training: ``SFTConfig``/``DPOConfig`` (``TrainingArguments``) carry every
  hyperparameter, bf16/fp16, gradient checkpointing, ``optim`` and DeepSpeed ZeRO
  (a config we generate, "auto" values filled by transformers); QLoRA is
  transformers' ``BitsAndBytesConfig``; the reference model of dpo is the base
  model with the adapter disabled (TRL's default with ``peft_config``);
- reporting (:class:`ReportCallback`): every logging step and evaluation becomes a
  metric report, every checkpoint a checkpoint report; under Ray Train they go to
  ``ray.train.report`` (Ray persists checkpoints to the run's storage and restarts a
  failed worker group from the latest), in a plain process to a list and the log;
- files: the base model, the dataset files and a checkpoint to resume from may be
  local paths or storage URIs (``s3://``, ``gs://``); a URI is copied once per node
  into the local cache (:func:`catalog.storage.local_copy`);
- energy: the lowest-ranked worker on each node runs one codecarbon tracker
  (:class:`train_jobs.carbon.NodeEnergy`) and its running totals ride on its metric
  reports as ``carbon``.

Evaluation runs before the first step (``eval_on_start``), every ``eval_steps``, at
every checkpoint (so Ray can keep the best by eval loss) and after the last step.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from catalog import storage
from catalog.schemas import Hyperparameters, LoraConfig, QuantizationConfig, TrainingMethod

log = logging.getLogger("train_jobs.engine")

#: transformers' scheduler names for Hyperparameters.lr_scheduler_type
#: (https://huggingface.co/docs/transformers/main_classes/optimizer_schedules).
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
#: An interval no run reaches: "only at the end" for eval_steps/save_steps.
NEVER = 10**9
#: Files of a Trainer checkpoint that are training state or the base model's tokenizer,
#: not the adapter (what a registered adapter folder leaves out).
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json",
                        "training_args.bin", "global_step*", "latest", "zero_to_fp32.py",
                        "tokenizer*", "special_tokens_map.json", "chat_template.jinja")
#: Keys of a report that are not metrics of the step.
REPORT_KIND = "report"


@dataclass
class EngineConfig:
    """Everything one worker needs; plain JSON so it travels as ``train_loop_config``.

    Attributes:
        job_id: the catalog job (names the scratch folder; "local" outside a job).
        method: ``sft`` or ``dpo``.
        model_path: the base model folder (transformers format), a path or storage URI.
        train_path / train_format: the dataset file (JSONL; path or URI) and its
            :class:`catalog.schemas.DatasetFormat`.
        eval_path / eval_format: a separate eval file, or None to hold out
            ``eval_fraction`` of the training rows (0: no evaluation).
        lora / hyperparameters / quantization: the job's
            :class:`~catalog.schemas.LoraConfig`, :class:`~catalog.schemas.Hyperparameters`,
            :class:`~catalog.schemas.QuantizationConfig` as dicts.
        use_gpu: train on CUDA (one GPU per worker).
        deepspeed_stage: ZeRO stage 2 or 3, or None (DDP).
        report_to: extra trackers (``mlflow``, ``tensorboard``).
        output_dir: where the Trainer writes checkpoints; None: a scratch folder per
            worker (under Ray, whose storage keeps the checkpoints).
        resume_from_checkpoint: a Trainer checkpoint folder to start from.
        tensorboard_dir: TensorBoard's log folder when ``report_to`` has it.
        country_iso_code: the grid whose carbon intensity prices the energy (3-letter
            ISO code); None measures nothing.
    """

    job_id: str
    method: str
    model_path: str
    train_path: str
    train_format: str
    eval_path: str | None = None
    eval_format: str | None = None
    eval_fraction: float = 0.1
    lora: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    use_gpu: bool = False
    deepspeed_stage: int | None = None
    report_to: list[str] = field(default_factory=list)
    output_dir: str | None = None
    resume_from_checkpoint: str | None = None
    tensorboard_dir: str | None = None
    country_iso_code: str | None = None

    def local(self) -> EngineConfig:
        """This config with its model and dataset locations as local paths (URIs copied
        once per node into the cache)."""
        def here(location: str | None) -> str | None:
            return str(storage.local_copy(location)) if location else None

        return EngineConfig(**{**asdict(self), "model_path": here(self.model_path),
                               "train_path": here(self.train_path),
                               "eval_path": here(self.eval_path)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- data


def read_records(path: str, fmt: str) -> list[dict[str, Any]]:
    """The rows of a registered dataset file as internal records (chats or preference
    pairs, :func:`corpora.formats.to_record`). The file was validated at upload."""
    from corpora.formats import to_record

    with open(path, encoding="utf-8") as fh:
        return [to_record(json.loads(line), fmt) for line in fh if line.strip()]


def sft_example(record: dict[str, Any]) -> dict[str, Any]:
    """A chat ``{"messages": [..., assistant]}`` as TRL's conversational prompt-completion
    ``{"prompt": messages[:-1], "completion": [messages[-1]]}`` (completion-only loss)."""
    messages = record["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def load_datasets(cfg: EngineConfig, hp: Hyperparameters):
    """``(train, eval or None)`` as Hugging Face ``datasets.Dataset`` in TRL's format.

    Every worker builds the same split (``seed``); the Trainer shards batches over workers.
    """
    from datasets import Dataset

    def build(path: str, fmt: str):
        records = read_records(path, fmt)
        if cfg.method == TrainingMethod.dpo:
            return Dataset.from_list(records)
        # TRL drops examples whose reply was truncated away ("fully masked")
        return Dataset.from_list([sft_example(r) for r in records])

    train = build(cfg.train_path, cfg.train_format)
    if cfg.eval_path:
        return train, build(cfg.eval_path, cfg.eval_format or cfg.train_format)
    if cfg.eval_fraction > 0 and len(train) >= 2:
        split = train.train_test_split(test_size=cfg.eval_fraction, seed=hp.seed)
        return split["train"], split["test"]
    return train, None


# --------------------------------------------------------------------------- model


def load_tokenizer(model_path: str):
    """The model's tokenizer, with the end-of-sequence token as padding when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: EngineConfig, hp: Hyperparameters):
    """The base model, in bf16/fp16 when mixed precision asks for it (fp32 otherwise), or
    quantized by bitsandbytes (QLoRA: ``BitsAndBytesConfig``) on this worker's GPU."""
    import torch
    from transformers import AutoModelForCausalLM

    quant = QuantizationConfig(**cfg.quantization)
    dtype = torch.bfloat16 if hp.bf16 else torch.float16 if hp.fp16 else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quant.bits is not None:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quant.bits == 4, load_in_8bit=quant.bits == 8,
            bnb_4bit_quant_type=quant.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=quant.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=getattr(torch, quant.bnb_4bit_compute_dtype),
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return AutoModelForCausalLM.from_pretrained(cfg.model_path, **kwargs)


def peft_config(lora: LoraConfig):
    """PEFT's ``LoraConfig`` for causal LM from ours (the same names)."""
    from peft import LoraConfig as PeftLoraConfig

    targets = lora.target_modules
    return PeftLoraConfig(
        r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
        use_rslora=lora.use_rslora, task_type="CAUSAL_LM",
        target_modules="all-linear" if targets == ["all-linear"] else targets,
    )


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A DeepSpeed ZeRO config for ``TrainingArguments.deepspeed``; "auto" values are
    filled from the TrainingArguments (https://huggingface.co/docs/transformers/deepspeed).
    Stage 3 gathers the 16-bit weights on save so the adapter is written whole."""
    config: dict[str, Any] = {
        "zero_optimization": {"stage": stage, "overlap_comm": True,
                              "contiguous_gradients": True},
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    }
    if stage == 3:
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    return config


def training_args(cfg: EngineConfig, hp: Hyperparameters, *, output_dir: str, has_eval: bool,
                  resuming: bool, keep: int):
    """The ``SFTConfig``/``DPOConfig`` of a run: every ``TrainingArguments`` setting of the job.

    ``keep``: checkpoints the Trainer keeps in ``output_dir`` (Ray keeps the job's own).
    """
    from trl import DPOConfig, SFTConfig

    common: dict[str, Any] = dict(
        output_dir=output_dir, seed=hp.seed, data_seed=hp.seed,
        learning_rate=hp.learning_rate, num_train_epochs=hp.num_train_epochs,
        max_steps=hp.max_steps or -1,
        per_device_train_batch_size=hp.per_device_train_batch_size,
        per_device_eval_batch_size=hp.per_device_train_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        lr_scheduler_type=SCHEDULERS[hp.lr_scheduler_type],
        warmup_steps=hp.warmup_steps if hp.warmup_steps else hp.warmup_ratio,
        weight_decay=hp.weight_decay, max_grad_norm=hp.max_grad_norm, optim=hp.optim,
        bf16=hp.bf16, fp16=hp.fp16, use_cpu=not cfg.use_gpu,
        gradient_checkpointing=hp.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_strategy="steps", logging_steps=hp.logging_steps,
        eval_strategy="steps" if has_eval else "no", eval_steps=hp.eval_steps or NEVER,
        eval_on_start=has_eval and not resuming,
        save_strategy="steps", save_steps=hp.save_steps or NEVER, save_total_limit=keep,
        report_to=list(cfg.report_to) or "none", disable_tqdm=True,
        ddp_find_unused_parameters=False, dataloader_num_workers=0,
        max_length=hp.max_seq_length,
    )
    if cfg.deepspeed_stage is not None:
        common["deepspeed"] = deepspeed_config(cfg.deepspeed_stage)
    if cfg.method == TrainingMethod.dpo:
        return DPOConfig(beta=hp.beta, **common)
    # packing: TRL's best-fit decreasing bins whole examples into rows of max_length and
    # goes padding-free (no attention mask, per-example position ids); transformers then
    # masks attention within each example (masking_utils.find_packed_sequence_indices)
    return SFTConfig(packing=hp.packing, packing_strategy="bfd", **common)


# --------------------------------------------------------------------------- reporting


class Reporter:
    """Where a worker's reports go. :class:`LocalReporter` and :class:`RayReporter`."""

    rank: int = 0
    node_id: str = ""
    #: whether this worker measures its node's energy (one worker per node does)
    measures_energy: bool = True
    #: this worker's final energy totals, when it measured its node
    carbon: dict[str, Any] | None = None
    #: the checkpoint this worker resumed from (a location in the storage's form), if any
    resumed_from: str | None = None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        """Deliver one report (a metric point, or a checkpoint with its metrics)."""
        raise NotImplementedError

    def resume_from(self) -> Any:
        """A context manager giving the checkpoint folder to resume from, or None."""
        raise NotImplementedError


class LocalReporter(Reporter):
    """A plain process: reports are kept in :attr:`reports` and logged; checkpoints stay
    where the Trainer wrote them."""

    def __init__(self, resume_from_checkpoint: str | None = None):
        import socket

        self.reports: list[dict[str, Any]] = []
        self._resume = resume_from_checkpoint
        self.node_id = socket.gethostname()

    def report(self, metrics, checkpoint_dir=None):
        entry = dict(metrics, checkpoint=checkpoint_dir) if checkpoint_dir else dict(metrics)
        self.reports.append(entry)
        log.info("report %s", json.dumps(entry, default=str))

    def resume_from(self):
        from contextlib import nullcontext

        return nullcontext(str(storage.local_copy(self._resume)) if self._resume else None)


class RayReporter(Reporter):
    """Ray Train: ``ray.train.report`` from every worker at the same steps (Ray requires
    it); each worker reports its own part of a checkpoint (rank 0 the adapter, optimizer
    and trainer state; every rank its RNG state or ZeRO shard), which Ray merges into
    one folder ``checkpoint-<step>`` of the run's storage."""

    def __init__(self, resume_from_checkpoint: str | None = None):
        import ray
        import ray.train

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.measures_energy = self._first_on_node(context)
        self._fallback = resume_from_checkpoint
        self._announced = False

    def _first_on_node(self, context) -> bool:
        """Whether this is the lowest-ranked worker of its Ray node. The node ids of all
        ranks are gathered over the process group Ray Train set up (Ray's own local rank
        groups workers by IP address, which several Ray nodes of one host share)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return context.get_local_rank() == 0
        nodes: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(nodes, self.node_id)
        return nodes.index(self.node_id) == self.rank

    def report(self, metrics, checkpoint_dir=None):
        import ray.train

        if self.resumed_from is not None and not self._announced:
            self._announced = True  # the first report after a resume names its source
            metrics = {**metrics, "resumed_from": self.resumed_from}
        if checkpoint_dir is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="garden-ckpt-") as tmp:
            if Path(checkpoint_dir).is_dir():
                shutil.copytree(checkpoint_dir, tmp, dirs_exist_ok=True)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=f"checkpoint-{metrics['step']:06d}")

    def resume_from(self):
        import contextlib

        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            fallback = str(storage.local_copy(self._fallback)) if self._fallback else None
            return contextlib.nullcontext(fallback)
        self.resumed_from = storage.uri_of(checkpoint.filesystem, checkpoint.path)
        return checkpoint.as_directory()


def memory_mb(use_gpu: bool) -> float:
    """Peak GPU memory of this process (MiB) on GPU; its resident memory (MiB) on CPU."""
    import psutil
    import torch

    if use_gpu and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return psutil.Process().memory_info().rss / 2**20


#: Trainer log keys that become MetricPoint fields (the rest of the numbers go to extra).
_FIELDS = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate"}
#: Log keys that are bookkeeping, not metrics of the step.
_SKIP = {"epoch", "step", "num_tokens", "eval_num_tokens", "total_flos", "eval_runtime",
         "eval_samples_per_second", "eval_steps_per_second"}


class ReportCallback(TrainerCallback):
    """Turns the Trainer's logs and saves into reports (every worker calls it alike).

    A metric report: ``{"report": "log", "step", "epoch", "total_steps", "total_epochs",
    "train_loss"?, "eval_loss"?, "learning_rate"?, "tokens_per_second"?, "memory_mb",
    "extra": {other logged numbers}}``. ``tokens_per_second``: non-padding tokens of all
    workers (TRL's ``num_tokens``) trained since the last training log, over the wall
    time since then less the time spent evaluating. Every report also has ``node_id``
    (the worker's node) and, from the worker that measures its node's energy
    (``energy``), ``carbon`` (:meth:`train_jobs.carbon.NodeEnergy.totals`). A checkpoint
    report: ``{"report": "checkpoint", "step", "eval_loss"?, "train_loss"?}`` plus the
    folder.

    It also asks the Trainer to evaluate whenever it saves (so every checkpoint has an
    eval loss to be ranked by) and to log after the last step.
    """

    def __init__(self, reporter: Reporter, *, has_eval: bool, use_gpu: bool,
                 energy: Any = None):
        self.reporter = reporter
        self.energy = energy
        self.has_eval = has_eval
        self.use_gpu = use_gpu
        self._window_start = time.perf_counter()
        self._tokens_at_start: float | None = None
        self._last: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self._window_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True
        if control.should_save and self.has_eval:
            control.should_evaluate = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            return
        now = time.perf_counter()
        point: dict[str, Any] = {
            REPORT_KIND: "log", "step": state.global_step, "epoch": state.epoch or 0.0,
            "total_steps": state.max_steps, "total_epochs": float(state.num_train_epochs or 0),
            "memory_mb": memory_mb(self.use_gpu), "node_id": self.reporter.node_id,
        }
        if self.energy is not None:
            point["carbon"] = self.energy.totals()
        extra: dict[str, float] = {}
        for key, value in logs.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or key in _SKIP:
                continue
            if key in _FIELDS:
                point[_FIELDS[key]] = float(value)
            else:
                extra[key] = float(value)
        if "loss" in logs and "num_tokens" in logs:
            tokens = float(logs["num_tokens"])
            if self._tokens_at_start is not None and now > self._window_start:
                point["tokens_per_second"] = (tokens - self._tokens_at_start) / (
                    now - self._window_start)
            elif state.global_step > 0 and now > self._window_start:
                point["tokens_per_second"] = tokens / (now - self._window_start)
            self._tokens_at_start, self._window_start = tokens, now
        if "eval_loss" in logs:
            # evaluation time is not training throughput
            self._window_start += float(logs.get("eval_runtime", 0.0))
        if extra:
            point["extra"] = extra
        self._last.update({k: point[k] for k in ("train_loss", "eval_loss") if k in point})
        if "eval_loss" in point:
            self._last["eval_step"] = state.global_step
        self.reporter.report(point)

    def on_save(self, args, state, control, **kwargs):
        step = state.global_step
        metrics: dict[str, Any] = {REPORT_KIND: "checkpoint", "step": step,
                                   "node_id": self.reporter.node_id}
        if "train_loss" in self._last:
            metrics["train_loss"] = self._last["train_loss"]
        if self._last.get("eval_step") == step:
            metrics["eval_loss"] = self._last["eval_loss"]
        folder = Path(args.output_dir) / f"checkpoint-{step}"
        self.reporter.report(metrics, checkpoint_dir=str(folder))


# --------------------------------------------------------------------------- the run


def train(cfg: EngineConfig, reporter: Reporter | None = None) -> Reporter:
    """Run one job's training in this process (one worker of a group, or alone).

    Returns the reporter (a :class:`LocalReporter` holds every report). Raises what
    the libraries raise (bad paths, CUDA out of memory, ...).
    """
    from trl import DPOTrainer, SFTTrainer

    reporter = reporter or LocalReporter(cfg.resume_from_checkpoint)
    cfg = cfg.local()
    hp = Hyperparameters(**cfg.hyperparameters)
    if "tensorboard" in cfg.report_to and cfg.tensorboard_dir:
        # transformers' TensorBoardCallback reads its folder from the environment
        os.environ["TENSORBOARD_LOGGING_DIR"] = cfg.tensorboard_dir
    tokenizer = load_tokenizer(cfg.model_path)
    train_ds, eval_ds = load_datasets(cfg, hp)
    has_eval = eval_ds is not None and len(eval_ds) > 0
    scratch = cfg.output_dir is None
    output_dir = cfg.output_dir or tempfile.mkdtemp(
        prefix=f"garden-{cfg.job_id}-rank{reporter.rank}-")
    energy = None
    if cfg.country_iso_code and reporter.measures_energy:  # one tracker per node
        from train_jobs.carbon import NodeEnergy

        energy = NodeEnergy(cfg.job_id, cfg.country_iso_code, reporter.node_id)
    try:
        with reporter.resume_from() as resume:
            args = training_args(
                cfg, hp, output_dir=output_dir, has_eval=has_eval, resuming=bool(resume),
                keep=1 if scratch else hp.save_total_limit)
            trainer_cls = DPOTrainer if cfg.method == TrainingMethod.dpo else SFTTrainer
            trainer = trainer_cls(
                model=load_model(cfg, hp), args=args, train_dataset=train_ds,
                eval_dataset=eval_ds if has_eval else None, processing_class=tokenizer,
                peft_config=peft_config(LoraConfig(**cfg.lora)),
                callbacks=[ReportCallback(reporter, has_eval=has_eval, use_gpu=cfg.use_gpu,
                                          energy=energy)],
            )
            if isinstance(reporter, RayReporter):
                from ray.train.huggingface.transformers import prepare_trainer

                trainer = prepare_trainer(trainer)
            trainer.train(resume_from_checkpoint=resume)
    finally:
        if energy is not None:
            reporter.carbon = energy.stop()
            log.info("energy on node %s: %s", reporter.node_id, reporter.carbon)
        if scratch:
            shutil.rmtree(output_dir, ignore_errors=True)
    return reporter


def train_func(config: dict[str, Any]) -> None:
    """Ray Train entry point (``TorchTrainer(train_func, train_loop_config=...)``): one
    call per worker, ``config`` an :class:`EngineConfig` as a dict."""
    cfg = EngineConfig(**config)
    train(cfg, RayReporter(cfg.resume_from_checkpoint))


def perplexity(loss: float) -> float:
    """exp(mean token cross-entropy), capped at exp(80) to stay a finite float."""
    return math.exp(min(loss, 80.0))


def main(argv: list[str] | None = None) -> int:
    """``python -m train_jobs.engine CONFIG.json [--output-dir DIR]``: train without Ray.

    CONFIG is an :class:`EngineConfig` as JSON. Prints each report as a JSON line.
    """
    parser = argparse.ArgumentParser(description="Train a LoRA adapter without Ray.")
    parser.add_argument("config", type=Path, help="an EngineConfig as JSON")
    parser.add_argument("--output-dir", default=None, help="checkpoints (default: config's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = EngineConfig(**json.loads(args.config.read_text()))
    if args.output_dir:
        cfg.output_dir = args.output_dir
    if cfg.output_dir is None:
        parser.error("give --output-dir (or output_dir in the config)")
    reporter = train(cfg)
    assert isinstance(reporter, LocalReporter)
    for entry in reporter.reports:
        print(json.dumps(entry, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
