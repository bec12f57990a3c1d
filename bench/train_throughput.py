"""Training throughput: a Ray Train job (1 worker) vs a plain single-process PEFT loop.

Both train the same LoRA (r=8 on q_proj/v_proj) on the same SmolLM2-135M-Instruct,
the same tokenized chatterbot-corpus rows, batch size and number of steps, with
the same functions (``train_jobs.loop``: model loading, optimizer, step). Throughput
is tokens (non-padding) per second over all optimizer steps, measured the same
way in both (the loop's own ``tokens_per_second``, timed from the first batch in
hand; process, model and data-pipeline start-up are excluded from both). The Ray
worker gets every core of the machine, as the plain process has. Prints both and
the ratio Ray / plain (target >= 0.95).

    python -m bench.train_throughput [--steps 12 --batch-size 8 --seq-len 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from catalog.schemas import Hyperparameters, LoraConfig


def tokenized_rows(model_path: str, rows: int, seq_len: int) -> list[dict]:
    """The first ``rows`` chatterbot pairs, encoded as training rows."""
    from train_jobs.datasets import chatterbot_pairs
    from train_jobs.tokenize import ChatEncoder, has_labels

    encode = ChatEncoder(model_path, seq_len)
    out = [encode(r) for r in chatterbot_pairs()[:rows]]
    return [r for r in out if has_labels(r)]


def loop_config(model_path: str, steps: int, batch_size: int, seq_len: int, rows: int):
    from train_jobs.loop import LoopConfig
    from train_jobs.tokenize import load_tokenizer

    hp = Hyperparameters(max_steps=steps, per_device_batch_size=batch_size,
                         max_seq_length=seq_len, logging_steps=steps, learning_rate=1e-4)
    return LoopConfig(
        job_id="bench", model_path=model_path, lora=LoraConfig(
            r=8, alpha=16, target_modules=["q_proj", "v_proj"]).model_dump(),
        hyperparameters=hp.model_dump(), quantization={}, total_steps=steps,
        micro_batches_per_epoch=rows // batch_size,
        pad_token_id=load_tokenizer(model_path).pad_token_id, has_eval=False,
    )


def plain_peft(cfg, rows: list[dict]) -> float:
    """Tokens/s of a single-process PEFT loop (no Ray): the peer."""
    import numpy as np
    import torch
    from transformers import get_scheduler

    from train_jobs.loop import DDPStepper, load_lora_model, make_optimizer
    from train_jobs.tokenize import collate

    hp = Hyperparameters(**cfg.hyperparameters)
    torch.manual_seed(hp.seed)
    model = load_lora_model(cfg, torch.device("cpu"))
    optimizer = make_optimizer(model, hp)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0,
                              num_training_steps=cfg.total_steps)
    stepper = DDPStepper(model, optimizer, scheduler, hp)
    bs = hp.per_device_batch_size
    batches = [
        collate({k: np.array([r[k] for r in rows[i:i + bs]], dtype=object)
                 for k in ("input_ids", "labels")}, cfg.pad_token_id)
        for i in range(0, len(rows) - bs + 1, bs)
    ]
    tokens, start = 0, time.perf_counter()
    for step in range(cfg.total_steps):
        batch = batches[step % len(batches)]
        stepper.micro_step(batch, sync=True)
        stepper.optimizer_step()
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def ray_train(cfg, rows: list[dict], storage: str) -> float:
    """Tokens/s reported by the Ray Train job (``train_jobs.loop``) with one worker."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.loop import train_loop_per_worker

    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=cfg.to_dict(),
        scaling_config=ScalingConfig(num_workers=1,
                                     resources_per_worker={"CPU": os.cpu_count() or 1}),
        run_config=RunConfig(name="bench", storage_path=storage),
        datasets={"train": ray.data.from_items(rows)},
    )
    return float(trainer.fit().metrics["tokens_per_second"])


def main(argv: list[str] | None = None) -> None:
    import ray

    from train_jobs.base_models import convert_gguf, smollm2_gguf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--model", default=None, help="HF folder (default: SmolLM2 converted)")
    args = parser.parse_args(argv)
    rows_needed = args.steps * args.batch_size
    with tempfile.TemporaryDirectory(prefix="garden-bench-") as tmp:
        model = args.model or str(convert_gguf(smollm2_gguf(), Path(tmp) / "smollm2"))
        rows = tokenized_rows(model, rows_needed + args.batch_size, args.seq_len)
        cfg = loop_config(model, args.steps, args.batch_size, args.seq_len, len(rows))
        plain = plain_peft(cfg, rows)
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
        try:
            on_ray = ray_train(cfg, rows, str(Path(tmp) / "runs"))
        finally:
            ray.shutdown()
    print(f"model: {Path(model).name}  steps: {args.steps}  batch: {args.batch_size}  "
          f"max_seq_len: {args.seq_len}  cores: {os.cpu_count()}")
    print(f"plain PEFT loop (peer): {plain:8.1f} tokens/s")
    print(f"Ray Train, 1 worker:    {on_ray:8.1f} tokens/s")
    print(f"ratio Ray Train / plain: {on_ray / plain:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
