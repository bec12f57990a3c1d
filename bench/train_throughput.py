"""Training throughput: Ray Train with 1 worker vs the same TRL trainer in a plain process.

Both run :func:`train_jobs.engine.train` (TRL ``SFTTrainer`` on a PEFT LoRA, r=8 on
q_proj/v_proj) on the same SmolLM2-135M-Instruct and the same chatterbot rows, batch
size, sequence length and number of steps; the plain process calls it directly (the
peer), Ray Train runs it as ``TorchTrainer(train_func)`` with one worker that gets
every core. Throughput is what the engine reports at each logging step: non-padding
tokens (TRL's ``num_tokens``) over the wall time since the previous point; the first
point of each run (data loader and first-step warm-up) is left out, and a run's
figure is the median of the rest. Start-up (process, Ray, model load) is excluded
from both.

The peers alternate (Ray, plain, Ray, plain, ...) for ``--rounds`` rounds so that the
shared machine's drift hits both alike; the ratio Ray / plain is printed per round
with the median and spread (target >= 0.95). Then 2 workers against 1 (scaling
efficiency = tokens/s with 2 / (2 x tokens/s with 1)), and the figure of the
hand-written loop this engine replaced, for the record.

    python -m bench.train_throughput [--steps 40 --rounds 3 --batch-size 8 --seq-len 64]

``--packing`` measures ``hyperparameters.packing`` instead, in a plain process: the
same steps, batch size and ``max_seq_length`` unpacked (each row one example, padded to
the longest of its batch) and packed (each row whole examples filling max_seq_length,
no padding), alternating which goes first each round; tokens/s counts real tokens in
both (TRL's ``num_tokens``: the attention mask's sum unpacked, the row length packed);
the ratio packed / unpacked is printed per round with the median and spread (target
>= 1.5).

    python -m bench.train_throughput --packing [--steps 20 --rounds 5 --seq-len 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from train_jobs.engine import EngineConfig

#: The replaced hand-written loop (train_jobs/loop.py at d552a00), Ray Train 1 worker,
#: tokens/s, measured once on a 2-core shared machine with its own bench (40 steps,
#: batch 8, seq 64) on 2026-11-28; its plain-PEFT peer ran 176.6 (ratio 0.81).
OLD_LOOP_TOKENS_PER_S = 143.3


def engine_config(model: str, data: str, steps: int, batch_size: int, seq_len: int,
                  output_dir: str | None, packing: bool = False) -> EngineConfig:
    return EngineConfig(
        job_id="bench", method="sft", model_path=model, train_path=data,
        train_format="openai", eval_fraction=0.0,
        lora={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        hyperparameters={"max_steps": steps, "per_device_train_batch_size": batch_size,
                         "max_seq_length": seq_len, "logging_steps": 5,
                         "learning_rate": 1e-4, "packing": packing},
        output_dir=output_dir,
    )


def run_tokens_per_s(reports: list[dict]) -> float:
    """Median tokens/s of a run's training points after the first."""
    rates = [r["tokens_per_second"] for r in reports if "tokens_per_second" in r]
    return statistics.median(rates[1:] or rates)


def plain(cfg: EngineConfig) -> float:
    """Tokens/s of the engine in this process (no Ray): the peer."""
    from train_jobs.engine import train

    return run_tokens_per_s(train(cfg).reports)  # type: ignore[attr-defined]


class _ToFile:
    """A Ray Train callback writing rank 0's reports as JSON lines (the controller runs
    on this machine)."""

    def __init__(self, path: str):
        self.path = path

    def after_report(self, run_context, metrics, checkpoint):
        with open(self.path, "a") as fh:
            fh.write(json.dumps(metrics[0]) + "\n")


def on_ray(cfg: EngineConfig, workers: int, storage: str) -> float:
    """Tokens/s of ``TorchTrainer(train_func)`` with ``workers`` workers (all of them)."""
    from ray.train import RunConfig, ScalingConfig, UserCallback
    from ray.train.torch import TorchTrainer

    from train_jobs.engine import train_func

    out = Path(storage) / f"reports-{os.urandom(4).hex()}.jsonl"
    callback = type("ToFile", (_ToFile, UserCallback), {})(str(out))
    cpus = max(1.0, (os.cpu_count() or 1) / workers)
    TorchTrainer(
        train_func, train_loop_config={**cfg.to_dict(), "output_dir": None},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=f"bench-{out.stem}", storage_path=storage,
                             callbacks=[callback]),
    ).fit()
    return run_tokens_per_s([json.loads(line) for line in out.read_text().splitlines()])


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, " \
           f"max {max(values):.3f}, n={len(values)})"


def packing(model: str, data: str, args: argparse.Namespace, tmp: str) -> None:
    """Packed against unpacked, alternating which runs first (see the module doc)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.rounds):
        for packed in (False, True) if i % 2 == 0 else (True, False):
            rates[packed].append(plain(engine_config(
                model, data, args.steps, args.batch_size, args.seq_len,
                str(Path(tmp) / f"packing-{i}-{packed}"), packing=packed)))
        print(f"round {i + 1}: unpacked {rates[False][-1]:7.1f} tokens/s, packed "
              f"{rates[True][-1]:7.1f} tokens/s, ratio {rates[True][-1] / rates[False][-1]:.3f}",
              flush=True)
    print(f"model: {Path(model).name}  steps: {args.steps}  batch: {args.batch_size}  "
          f"max_seq_len: {args.seq_len}  cores: {os.cpu_count()}")
    print(f"unpacked: {spread(rates[False])} real tokens/s")
    print(f"packed:   {spread(rates[True])} real tokens/s")
    ratios = [p / u for p, u in zip(rates[True], rates[False], strict=True)]
    print(f"ratio packed / unpacked: {spread(ratios)}  (target >= 1.5)")


def main(argv: list[str] | None = None) -> None:
    import ray

    from corpora.chatterbot import chatterbot_pairs
    from train_jobs.base_models import convert_gguf, smollm2_gguf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--model", default=None, help="HF folder (default: SmolLM2 converted)")
    parser.add_argument("--packing", action="store_true",
                        help="packed vs unpacked rows instead of Ray vs plain")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="garden-bench-") as tmp:
        model = args.model or str(convert_gguf(smollm2_gguf(), Path(tmp) / "smollm2"))
        data = Path(tmp) / "chat.jsonl"
        # packed rows hold several examples each: every row of the corpus, repeated
        # by epochs when the steps need more
        rows = chatterbot_pairs() if args.packing else chatterbot_pairs()[
            : args.steps * args.batch_size * 2]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if args.packing:
            packing(model, str(data), args, tmp)
            return
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
        try:
            ray_rates, plain_rates = [], []
            for i in range(args.rounds):
                cfg = engine_config(model, str(data), args.steps, args.batch_size,
                                    args.seq_len, str(Path(tmp) / f"plain-{i}"))
                ray_rates.append(on_ray(cfg, 1, str(Path(tmp) / "runs")))
                plain_rates.append(plain(cfg))
                print(f"round {i + 1}: Ray Train 1 worker {ray_rates[-1]:7.1f} tokens/s, "
                      f"plain {plain_rates[-1]:7.1f} tokens/s, "
                      f"ratio {ray_rates[-1] / plain_rates[-1]:.3f}", flush=True)
            two = on_ray(cfg, 2, str(Path(tmp) / "runs"))
        finally:
            ray.shutdown()
    one = statistics.median(ray_rates)
    print(f"model: {Path(model).name}  steps: {args.steps}  batch: {args.batch_size}  "
          f"max_seq_len: {args.seq_len}  cores: {os.cpu_count()}")
    print(f"plain TRL trainer (peer): {spread(plain_rates)} tokens/s")
    print(f"Ray Train, 1 worker:      {spread(ray_rates)} tokens/s")
    ratios = [r / p for r, p in zip(ray_rates, plain_rates, strict=True)]
    print(f"ratio Ray Train / plain:  {spread(ratios)}  (target >= 0.95)")
    print(f"Ray Train, 2 workers:     {two:.1f} tokens/s; scaling efficiency "
          f"{two / (2 * one):.3f} (2 workers / 2 x 1 worker)")
    if OLD_LOOP_TOKENS_PER_S:
        print(f"replaced hand-written loop (for the record): {OLD_LOOP_TOKENS_PER_S:.1f} "
              "tokens/s, Ray Train 1 worker, same settings")


if __name__ == "__main__":
    main()
