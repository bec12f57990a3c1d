"""Fine-tune SmolLM2 on chatterbot-corpus (10% held out) and print eval loss before/after.

The proof run of the training stack on real data, outside the test suite::

    python -m train_jobs.chatterbot_demo [--steps 40 --workers 1 --batch-size 8]

Starts a local Ray cluster (or joins ``--address``), imports the base model and the
data set into the catalog under ``$GARDEN_HOME``, and runs the job in this process
through :func:`train_jobs.run.run_job` (the same code ``ray job submit`` runs).
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv: list[str] | None = None) -> None:
    import ray

    from catalog import schemas as s
    from catalog.actor import Catalog
    from catalog.config import garden_home
    from train_jobs.base_models import import_base_model
    from train_jobs.datasets import import_chatterbot
    from train_jobs.run import run_job

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="local")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)

    home = str(garden_home())
    ray.init(address=args.address, num_cpus=max(4, os.cpu_count() or 1),
             include_dashboard=False, namespace="garden", log_to_driver=False,
             runtime_env={"env_vars": {"GARDEN_HOME": home}})
    cat = Catalog()
    base = import_base_model(cat)
    data = import_chatterbot(cat)
    job = cat.create_training_job(s.TrainingJobCreate(
        name="chatterbot-demo", base_model_id=base.id, dataset_id=data.id, eval_fraction=0.1,
        hyperparameters=s.Hyperparameters(
            max_steps=args.steps, per_device_batch_size=args.batch_size,
            max_seq_length=args.seq_len, learning_rate=args.lr, warmup_ratio=0.1,
            lr_scheduler="cosine", logging_steps=5, save_steps=args.steps),
        lora=s.LoraConfig(r=16, alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                          "o_proj"]),
        scaling=s.ScalingSpec(num_workers=args.workers, cpus_per_worker=1),
    ))
    started = time.monotonic()
    done = run_job(job.id, cat)
    print(f"job {done.id}: {done.status} in {time.monotonic() - started:.0f} s; "
          f"{data.num_rows} rows, 10% held out; {args.steps} steps x {args.workers} worker(s) x "
          f"batch {args.batch_size}, max_seq_len {args.seq_len}, lr {args.lr}")
    print(f"eval loss before: {done.eval_loss_before:.4f}  after: {done.eval_loss_after:.4f}")
    print(f"energy {done.energy_kwh:.6f} kWh, emissions {done.emissions_kg:.6f} kg CO2eq; "
          f"adapter model {done.output_model_id}")
    ray.shutdown()


if __name__ == "__main__":
    main()
