"""Training jobs on real Ray (job API + Ray Train + Ray Data), real SmolLM2, real chatterbot data.

Tiny on purpose (2 cores): 64 rows, sequences of 96 tokens, LoRA r=8 on q_proj/v_proj.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument, InvalidTransition

pytestmark = [pytest.mark.ray, pytest.mark.slow]

JOB_TIMEOUT_S = 540


@pytest.fixture(scope="module")
def cat(catalog_handle):
    from catalog.actor import Catalog

    return Catalog(catalog_handle)


@pytest.fixture(scope="module")
def base_model(cat, smollm2_folder):
    from train_jobs.base_models import import_base_model

    return import_base_model(cat, smollm2_folder, name="SmolLM2-135M-Instruct")


@pytest.fixture(scope="module")
def small_dataset(cat, tmp_path_factory):
    from train_jobs.datasets import chatterbot_pairs, register_dataset

    path = tmp_path_factory.mktemp("data") / "chat64.jsonl"
    rows = chatterbot_pairs(["ai", "greetings"])[:64]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return register_dataset(cat, path, "chatterbot-64")


def make_job(cat, base_model, dataset, **overrides) -> s.TrainingJob:
    hp = {"max_steps": 4, "per_device_batch_size": 4, "max_seq_length": 96,
          "learning_rate": 1e-3, "logging_steps": 1, "eval_steps": 2, "save_steps": 1,
          "save_total_limit": 2, "warmup_ratio": 0.25, "lr_scheduler": "cosine"}
    hp.update(overrides.pop("hyperparameters", {}))
    request = {
        "name": "tiny", "base_model_id": base_model.id, "dataset_id": dataset.id,
        "eval_fraction": 0.25, "hyperparameters": hp,
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "scaling": {"num_workers": 2, "max_failures": 1},
    }
    request.update(overrides)
    return cat.create_training_job(s.TrainingJobCreate(**request))


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def wait_terminal(cat, job_id: str) -> s.TrainingJob:
    terminal = {"completed", "failed", "cancelled"}
    return wait_for(lambda: (j := cat.training_jobs.get(job_id)).status in terminal and j,
                    JOB_TIMEOUT_S, f"job {job_id} to end", interval_s=2.0)


def wait_ray_job_end(address: str, submission_id: str) -> str:
    from train_jobs.submit import RAY_TERMINAL, job_client

    client = job_client(address)
    return wait_for(lambda: (st := client.get_job_status(submission_id)) in RAY_TERMINAL and st,
                    120, f"Ray job {submission_id} to end")


def test_end_to_end_job(cat, base_model, small_dataset, ray_job_address, catalog_store):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from train_jobs.submit import cancel_training_job, submit_training_job

    job = make_job(cat, base_model, small_dataset, output_model_name="tiny-chatterbot")
    sub_id = submit_training_job(job.id, address=ray_job_address)
    queued = cat.training_jobs.get(job.id)
    assert queued.ray_job_id == sub_id and queued.status in ("queued", "running", "completed")
    done = wait_terminal(cat, job.id)
    assert done.status == "completed", done.error_message
    assert wait_ray_job_end(ray_job_address, sub_id) == "SUCCEEDED"

    with pytest.raises(InvalidTransition):  # a finished job cannot be cancelled
        cancel_training_job(job.id, address=ray_job_address)
    statuses = [e["message"] for e in cat.list_events(job.id) if "status ->" in e["message"]]
    assert statuses == ["status -> queued", "status -> running", "status -> completed"]
    assert done.started_at and done.completed_at and done.error_message is None

    # metrics: eval before training, then every step; eval every 2 steps and at the end
    points = cat.list_metrics(job.id)
    assert [p.step for p in points] == [0, 1, 2, 3, 4]
    assert points[0].eval_loss == done.eval_loss_before and points[0].train_loss is None
    for p in points[1:]:
        assert p.train_loss > 0 and p.tokens_per_second > 0 and p.memory_mb > 0
        assert p.learning_rate is not None and p.epoch > 0
    assert [p.step for p in points if p.eval_loss is not None] == [0, 2, 4]
    assert points[-1].perplexity == pytest.approx(2.718281828 ** points[-1].eval_loss)
    assert done.eval_loss_after == points[-1].eval_loss < done.eval_loss_before

    # checkpoints every step, 2 kept (in the catalog and on disk)
    checkpoints = cat.list_checkpoints(job.id)
    assert [c.step for c in checkpoints] == [3, 4]
    run_dir = Path(checkpoints[0].path).parent
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == [
        "checkpoint-000003", "checkpoint-000004"]

    # the registered adapter: lineage, metrics, size, carbon
    model = cat.models.get(done.output_model_id)
    assert (model.kind, model.name) == ("adapter", "tiny-chatterbot")
    assert (model.base_model_id, model.dataset_id, model.training_job_id) == (
        base_model.id, small_dataset.id, job.id)
    assert model.metrics["eval_loss"] == done.eval_loss_after
    assert model.metrics["eval_loss_before"] == done.eval_loss_before
    assert model.size_bytes == sum(f.stat().st_size for f in Path(model.path).iterdir())
    assert not (Path(model.path) / "training_state.pt").exists()
    assert done.energy_kwh > 0 and done.emissions_kg > 0
    carbon = catalog_store.carbon.list(training_job_id=job.id).items
    assert len(carbon) == 1 and carbon[0].model_id == model.id
    assert carbon[0].details["nodes"] == 1 and carbon[0].country_iso_code == "USA"

    # PEFT loads the adapter and it changes the base model's logits
    base = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 314, 17]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, model.path)
        after = tuned(ids).logits
    assert tuned.peft_config["default"].r == 8
    assert (after - before).abs().max() > 1e-3


def test_killed_worker_resumes_from_last_checkpoint(cat, base_model, small_dataset,
                                                    ray_job_address):
    from ray.util.state import list_actors

    from train_jobs.submit import submit_training_job

    job = make_job(cat, base_model, small_dataset, eval_fraction=0.0,
                   hyperparameters={"max_steps": 6, "save_steps": 2, "eval_steps": None},
                   scaling={"num_workers": 1, "max_failures": 1})
    submit_training_job(job.id, address=ray_job_address)
    wait_for(lambda: cat.list_checkpoints(job.id), JOB_TIMEOUT_S, "the first checkpoint")
    workers = list_actors(address=ray_job_address, detail=True, filters=[
        ("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)

    done = wait_terminal(cat, job.id)
    assert done.status == "completed", done.error_message
    events = [e["message"] for e in cat.list_events(job.id)]
    assert any("worker 0 failed" in m for m in events), events
    steps = [p.step for p in cat.list_metrics(job.id)]
    # resumed after the first checkpoint, not restarted; steps trained again are not repeated
    resumed = [int(m.split()[3]) for m in events if m.startswith("resumed at step")]
    assert resumed and resumed[0] > 2, events
    assert steps == sorted(set(steps)) and steps[-1] == 6
    assert [c.step for c in cat.list_checkpoints(job.id)] == [4, 6]


def test_cancel_ends_as_cancelled(cat, base_model, small_dataset, ray_job_address):
    from train_jobs.submit import cancel_training_job, submit_training_job

    job = make_job(cat, base_model, small_dataset, hyperparameters={"max_steps": 50})
    sub_id = submit_training_job(job.id, address=ray_job_address)
    wait_for(lambda: cat.training_jobs.get(job.id).status == "running", JOB_TIMEOUT_S,
             "the job to run")
    cancelled = cancel_training_job(job.id, address=ray_job_address)
    assert cancelled.status == "cancelled"
    assert wait_ray_job_end(ray_job_address, sub_id) == "STOPPED"
    final = cat.training_jobs.get(job.id)
    assert final.status == "cancelled" and final.completed_at is not None
    assert final.output_model_id is None
    again = cancel_training_job(job.id, address=ray_job_address)  # idempotent
    assert again.status == "cancelled" and again.completed_at == final.completed_at


def test_gpu_only_options_are_refused_at_submission(cat, base_model, small_dataset,
                                                    ray_job_address):
    from train_jobs.submit import submit_training_job

    job = make_job(cat, base_model, small_dataset,
                   quantization={"bits": 4}, scaling={"num_workers": 1, "use_gpu": True})
    with pytest.raises(InvalidArgument) as info:
        submit_training_job(job.id, address=ray_job_address)
    assert info.value.field in ("quantization.bits", "scaling.use_gpu")
    assert cat.training_jobs.get(job.id).status == "pending"  # nothing was submitted
