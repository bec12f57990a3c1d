"""The per-worker training function that ``TorchTrainer`` runs on every Ray Train worker.

Each worker loads the base model with transformers, wraps it with PEFT LoRA and
trains it with DDP (or DeepSpeed ZeRO when configured on GPUs) on its shard of
the tokenized Ray dataset. All workers call ``ray.train.report`` at the same
steps (Ray requires it): at step 0 with the eval loss before training, every
``logging_steps`` with the training metrics, every ``eval_steps`` with the eval
loss, and every ``save_steps`` (and at the end) with a checkpoint, a PEFT adapter
folder that rank 0 writes plus ``training_state.pt`` (optimizer, scheduler, step).
A restarted worker group resumes from ``ray.train.get_checkpoint()``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from catalog.schemas import Hyperparameters, LoraConfig, QuantizationConfig

ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINING_STATE = "training_state.pt"
#: transformers scheduler names for Hyperparameters.lr_scheduler
#: (https://huggingface.co/docs/transformers/main_classes/optimizer_schedules).
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@dataclass
class LoopConfig:
    """What each worker needs; a plain dataclass so it travels as ``train_loop_config``."""

    job_id: str
    model_path: str
    lora: dict[str, Any]
    hyperparameters: dict[str, Any]
    quantization: dict[str, Any]
    total_steps: int
    micro_batches_per_epoch: int
    pad_token_id: int
    use_gpu: bool = False
    deepspeed_stage: int | None = None
    resume_from_checkpoint: str | None = None
    has_eval: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_lora_model(cfg: LoopConfig, device):
    """The base model from ``cfg.model_path`` wrapped with PEFT LoRA (trainable adapters only).

    With ``quantization.bits`` the weights load through bitsandbytes (QLoRA) and
    PEFT's ``prepare_model_for_kbit_training`` readies them.
    """
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    lora = LoraConfig(**cfg.lora)
    quant = QuantizationConfig(**cfg.quantization)
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cfg.use_gpu else torch.float32}
    if quant.bits is not None:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quant.bits == 4, load_in_8bit=quant.bits == 8,
            bnb_4bit_quant_type=quant.quant_type, bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(cfg.model_path, **kwargs)
    if quant.bits is not None:
        model = prepare_model_for_kbit_training(model)
    targets = lora.target_modules
    peft_config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, use_rslora=lora.use_rslora,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def make_optimizer(model, hp: Hyperparameters):
    """AdamW over the trainable (LoRA) parameters; bitsandbytes' 8-bit AdamW for adamw_8bit.

    Weight decay skips biases and norm weights (the usual transformers grouping).
    """
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if hp.optimizer == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, lr=hp.learning_rate)
    return torch.optim.AdamW(groups, lr=hp.learning_rate)


def restore(folder: Path, model, optimizer=None, scheduler=None) -> int:
    """Load adapter weights (and optimizer/scheduler state when present); return the step."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(Path(folder) / ADAPTER_WEIGHTS)))
    state_file = Path(folder) / TRAINING_STATE
    if not state_file.is_file():
        return 0
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int) -> None:
    """Write a PEFT adapter folder plus ``training_state.pt`` into ``folder``."""
    import torch

    model.save_pretrained(str(folder))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step}, Path(folder) / TRAINING_STATE)


def _unwrap(model):
    return getattr(model, "module", model)


def memory_mb(device) -> float:
    """Peak accelerator memory (MiB) on GPU; this process's resident memory (MiB) on CPU."""
    import psutil
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return psutil.Process().memory_info().rss / 2**20


def _all_sum(values: list[float]) -> list[float]:
    """Sum floats over all workers (a no-op with one worker)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def evaluate(model, shard, batch_size: int, collate_fn, device) -> float:
    """Mean token cross-entropy (nats) of the assistant tokens over all workers' eval shards."""
    import torch

    net = _unwrap(model)
    net.eval()
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=batch_size, collate_fn=collate_fn):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = net(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            loss_sum += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                ignore_index=-100, reduction="sum").item()
            count += int((labels != -100).sum())
    net.train()
    loss_sum, count = _all_sum([loss_sum, float(count)])
    return loss_sum / count if count else float("nan")


def _micro_batches(shard, batch_size, collate_fn, per_epoch: int, skip: int):
    """Endless ``(epochs done after this batch, batch)`` over the shard, ``per_epoch``
    batches an epoch, after
    skipping ``skip`` batches (a resumed run continues where the checkpoint was)."""
    epoch = skip // per_epoch
    skip %= per_epoch
    while True:
        it = shard.iter_torch_batches(batch_size=batch_size, collate_fn=collate_fn,
                                      drop_last=True)
        for i, batch in enumerate(it):
            if i >= per_epoch:
                break
            if i >= skip:
                yield epoch + (i + 1) / per_epoch, batch
        skip = 0
        epoch += 1


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point (one call per worker); see the module docstring."""
    import ray.train
    import ray.train.torch
    import torch
    from transformers import get_scheduler

    from train_jobs.tokenize import collate

    cfg = LoopConfig(**config)
    hp = Hyperparameters(**cfg.hyperparameters)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.manual_seed(hp.seed)
    device = ray.train.torch.get_device()

    model = load_lora_model(cfg, device)
    optimizer = make_optimizer(model, hp)
    scheduler = get_scheduler(
        SCHEDULERS[hp.lr_scheduler], optimizer,
        num_warmup_steps=math.ceil(hp.warmup_ratio * cfg.total_steps),
        num_training_steps=cfg.total_steps,
    )
    start_step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start_step = restore(Path(folder), model, optimizer, scheduler)
    elif cfg.resume_from_checkpoint:
        start_step = restore(Path(cfg.resume_from_checkpoint), model, optimizer, scheduler)

    if cfg.deepspeed_stage is not None:
        stepper = DeepSpeedStepper(model, optimizer, scheduler, hp, cfg.deepspeed_stage)
    else:
        model = ray.train.torch.prepare_model(
            model, parallel_strategy_kwargs={"forward_sync_buffers": False})
        stepper = DDPStepper(model, optimizer, scheduler, hp)

    def collate_fn(batch):
        return collate(batch, cfg.pad_token_id)

    train_shard = ray.train.get_dataset_shard("train")
    eval_shard = ray.train.get_dataset_shard("eval") if cfg.has_eval else None
    bs = hp.per_device_batch_size
    accum = hp.gradient_accumulation_steps
    batches = _micro_batches(train_shard, bs, collate_fn, cfg.micro_batches_per_epoch,
                             start_step * accum)

    if start_step == 0 and eval_shard is not None:
        eval_loss = evaluate(stepper.model, eval_shard, bs, collate_fn, device)
        ray.train.report({"step": 0, "epoch": 0.0, "eval_loss": eval_loss,
                          "perplexity": _perplexity(eval_loss)})

    losses: list[float] = []
    tokens = 0
    window_start = time.perf_counter()
    epoch = 0.0
    for step in range(start_step + 1, cfg.total_steps + 1):
        step_loss = 0.0
        for micro in range(accum):
            epoch, batch = next(batches)
            if step == start_step + 1 and micro == 0:
                # Throughput counts training, not the data pipeline's start-up (the first
                # batch starts Ray Data's streaming executor).
                window_start = time.perf_counter()
            batch = {k: v.to(device) for k, v in batch.items()}
            step_loss += stepper.micro_step(batch, sync=micro == accum - 1) / accum
            tokens += int(batch["attention_mask"].sum())
        stepper.optimizer_step()
        losses.append(step_loss)
        last = step == cfg.total_steps
        metrics: dict[str, Any] = {"step": step, "epoch": round(epoch, 4)}
        if step % hp.logging_steps == 0 or last:
            loss_sum, n, tok = _all_sum([sum(losses), float(len(losses)), float(tokens)])
            elapsed = time.perf_counter() - window_start
            metrics.update(train_loss=loss_sum / n, learning_rate=scheduler.get_last_lr()[0],
                           tokens_per_second=tok / elapsed, memory_mb=memory_mb(device))
            losses, tokens, window_start = [], 0, time.perf_counter()
        if eval_shard is not None and (last or (hp.eval_steps and step % hp.eval_steps == 0)):
            eval_loss = evaluate(stepper.model, eval_shard, bs, collate_fn, device)
            metrics.update(eval_loss=eval_loss, perplexity=_perplexity(eval_loss))
            window_start = time.perf_counter()  # evaluation time is not training throughput
        save = last or (hp.save_steps is not None and step % hp.save_steps == 0)
        if save:
            _report_with_checkpoint(metrics, stepper, scheduler, step, rank)
        elif len(metrics) > 2:
            ray.train.report(metrics)


def _perplexity(loss: float) -> float:
    """exp(mean token cross-entropy), capped to stay a finite float."""
    return math.exp(min(loss, 80.0))


def _report_with_checkpoint(metrics, stepper, scheduler, step: int, rank: int) -> None:
    import ray.train

    folder = Path(tempfile.mkdtemp(prefix=f"garden-ckpt-{step}-"))
    try:
        if rank == 0:
            save_checkpoint(folder, _unwrap(stepper.model), stepper.optimizer, scheduler, step)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        else:
            checkpoint = None
        ray.train.report(metrics, checkpoint=checkpoint,
                         checkpoint_dir_name=f"checkpoint-{step:06d}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class DDPStepper:
    """Gradient accumulation with DDP's ``no_sync`` on all but the last micro-batch,
    gradient clipping to ``max_grad_norm``, then optimizer and scheduler steps."""

    def __init__(self, model, optimizer, scheduler, hp: Hyperparameters):
        self.model, self.optimizer, self.scheduler, self.hp = model, optimizer, scheduler, hp
        self.params = [p for p in model.parameters() if p.requires_grad]

    def micro_step(self, batch: dict, *, sync: bool) -> float:
        """Forward and backward one micro-batch; returns its mean token loss."""
        no_sync = getattr(self.model, "no_sync", None)
        with nullcontext() if sync or no_sync is None else no_sync():
            loss = self.model(**batch).loss
            (loss / self.hp.gradient_accumulation_steps).backward()
        return float(loss.detach())

    def optimizer_step(self) -> None:
        import torch

        torch.nn.utils.clip_grad_norm_(self.params, self.hp.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


class DeepSpeedStepper:
    """DeepSpeed ZeRO (stage 2 or 3) engine; accumulation and clipping are DeepSpeed's.

    Config keys: https://www.deepspeed.ai/docs/config-json/
    """

    def __init__(self, model, optimizer, scheduler, hp: Hyperparameters, stage: int):
        import deepspeed

        config = {
            "train_micro_batch_size_per_gpu": hp.per_device_batch_size,
            "gradient_accumulation_steps": hp.gradient_accumulation_steps,
            "gradient_clipping": hp.max_grad_norm,
            "zero_optimization": {"stage": stage},
            "bf16": {"enabled": True},
        }
        self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config)

    def micro_step(self, batch: dict, *, sync: bool) -> float:
        loss = self.model(**batch).loss
        self.model.backward(loss)
        self.model.step()  # DeepSpeed steps the optimizer only at accumulation boundaries
        return float(loss.detach())

    def optimizer_step(self) -> None:
        """Nothing: the engine stepped at the accumulation boundary."""
