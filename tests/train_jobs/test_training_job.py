"""Training jobs on real Ray (job API + Ray Train running TRL), real SmolLM2, real chatterbot
data: SFT on two workers, DPO, cancel, ``ray job submit --config``. A lost worker resuming
from its checkpoint: ``tests/test_multinode.py`` (a node lost, the checkpoint in a bucket).

Tiny on purpose (2 cores): 64 rows, sequences of 96 tokens, LoRA r=8 on q_proj/v_proj.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument, InvalidTransition
from tests.conftest import wait_for

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
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpora.chatterbot import chatterbot_pairs
    from corpora.registration import register_dataset

    # Parquet with the messages as JSON text: the jobs below train on a non-JSONL upload
    # (tests/corpora/test_files.py shows it stores the rows of its JSONL twin).
    path = tmp_path_factory.mktemp("data") / "chat64.parquet"
    rows = chatterbot_pairs(["ai", "greetings"])[:64]
    pq.write_table(pa.Table.from_pylist([{"messages": json.dumps(r["messages"])}
                                         for r in rows]), path)
    dataset = register_dataset(cat, path, "chatterbot-64")
    assert (dataset.file_format, dataset.format, dataset.num_rows) == ("parquet", "openai", 64)
    return dataset


def make_job(cat, base_model, dataset, **overrides) -> s.TrainingJob:
    hp = {"max_steps": 4, "per_device_train_batch_size": 4, "max_seq_length": 96,
          "learning_rate": 1e-3, "logging_steps": 1, "eval_steps": 2, "save_steps": 1,
          "save_total_limit": 2, "warmup_ratio": 0.25, "lr_scheduler_type": "cosine"}
    hp.update(overrides.pop("hyperparameters", {}))
    request = {
        "name": "tiny", "base_model_id": base_model.id, "dataset_id": dataset.id,
        "eval_fraction": 0.25, "hyperparameters": hp,
        "lora": {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "scaling": {"num_workers": 2, "max_failures": 1},
    }
    request.update(overrides)
    return cat.create_training_job(s.TrainingJobCreate(**request))


def wait_terminal(cat, job_id: str) -> s.TrainingJob:
    terminal = {"completed", "failed", "cancelled"}
    return wait_for(lambda: (j := cat.training_jobs.get(job_id)).status in terminal and j,
                    JOB_TIMEOUT_S, f"job {job_id} to end", interval_s=2.0)


def wait_ray_job_end(address: str, submission_id: str, timeout_s: float = 120) -> str:
    from catalog.reconcile import RAY_TERMINAL
    from ray_jobs.submit import job_client

    client = job_client(address)
    return wait_for(lambda: (st := client.get_job_status(submission_id)) in RAY_TERMINAL and st,
                    timeout_s, f"Ray job {submission_id} to end")


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

    # metrics: eval before training, a point every step; eval every 2 steps, at every
    # checkpoint (every step here) and at the end
    points = cat.list_metrics(job.id)
    assert [p.step for p in points] == [0, 1, 2, 3, 4]
    assert points[0].eval_loss == done.eval_loss_before and points[0].train_loss is None
    for p in points[1:]:
        assert p.train_loss > 0 and p.tokens_per_second > 0 and p.memory_mb > 0
        assert p.learning_rate is not None and p.epoch > 0 and "grad_norm" in p.extra
    assert all(p.eval_loss is not None for p in points)
    assert points[-1].perplexity == pytest.approx(math.exp(points[-1].eval_loss))
    assert done.eval_loss_after == points[-1].eval_loss < done.eval_loss_before

    # progress (seed 002): the last step of the run's 4
    assert (done.current_step, done.total_steps, done.progress) == (4, 4, 1.0)
    assert done.total_epochs >= 1 and 0 < done.current_epoch <= done.total_epochs

    # checkpoints every step; kept: the 2 best by eval loss plus the newest, in the catalog
    # as on disk, each with its size and losses
    saved = [int(e["message"].split()[3].rstrip(":")) for e in cat.list_events(job.id)
             if e["message"].startswith("checkpoint at step")]
    assert saved == [1, 2, 3, 4]
    eval_at = {p.step: p.eval_loss for p in points}
    expected = set(sorted(saved, key=lambda st: eval_at[st])[:2]) | {4}
    checkpoints = cat.list_checkpoints(job.id)
    assert {c.step for c in checkpoints} == expected
    run_dir = Path(checkpoints[0].path).parent
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == [
        f"checkpoint-{st:06d}" for st in sorted(expected)]
    for c in checkpoints:
        files = [f for f in Path(c.path).rglob("*") if f.is_file()]
        assert c.size_bytes == sum(f.stat().st_size for f in files)
        assert c.eval_loss == eval_at[c.step] and c.train_loss > 0
        assert (Path(c.path) / "adapter_model.safetensors").is_file()
        assert (Path(c.path) / "optimizer.pt").is_file()  # resumable

    # the registered adapter: lineage, metrics, size, carbon
    model = cat.models.get(done.output_model_id)
    assert (model.kind, model.name) == ("adapter", "tiny-chatterbot")
    assert (model.base_model_id, model.dataset_id, model.training_job_id) == (
        base_model.id, small_dataset.id, job.id)
    assert model.metrics["eval_loss"] == done.eval_loss_after
    assert model.metrics["eval_loss_before"] == done.eval_loss_before
    assert model.size_bytes == sum(f.stat().st_size for f in Path(model.path).iterdir())
    assert sorted(f.name for f in Path(model.path).iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert done.energy_kwh > 0 and done.emissions_kg > 0
    carbon = catalog_store.carbon.list(training_job_id=job.id).items
    # one record per node the workers ran on (one here), its running total rewritten with
    # each report: the job's energy is that record's, counted once
    placed = [e["message"] for e in cat.list_events(job.id)
              if e["message"].startswith("workers placed")]
    assert len(placed) == 1
    assert len(carbon) == 1 and carbon[0].model_id == model.id
    assert carbon[0].details["node_id"] in placed[0] and carbon[0].details["sessions"] == 1
    assert carbon[0].country_iso_code == "USA"
    assert done.energy_kwh == pytest.approx(carbon[0].energy_kwh)
    assert model.energy_kwh == pytest.approx(carbon[0].energy_kwh)

    # PEFT loads the adapter and it changes the base model's logits
    base = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 314, 17]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, model.path)
        after = tuned(ids).logits
    assert tuned.peft_config["default"].r == 8
    assert (after - before).abs().max() > 1e-3


def test_cancel_ends_as_cancelled(cat, base_model, small_dataset, ray_job_address):
    """Stopped the way a Ray user stops any job (``ray job stop``: SIGTERM to the driver),
    the catalog job ends cancelled, not failed: the driver's own SIGTERM handler, set
    after ``ray.init`` (which installs one that exits), marks it. Cancelling through the
    catalog afterwards changes nothing."""
    from ray_jobs.submit import job_client
    from train_jobs.submit import cancel_training_job, submit_training_job

    job = make_job(cat, base_model, small_dataset, hyperparameters={"max_steps": 50})
    sub_id = submit_training_job(job.id, address=ray_job_address)
    wait_for(lambda: cat.training_jobs.get(job.id).status == "running", JOB_TIMEOUT_S,
             "the job to run")
    job_client(ray_job_address).stop_job(sub_id)
    assert wait_ray_job_end(ray_job_address, sub_id) == "STOPPED"
    final = wait_for(lambda: (j := cat.training_jobs.get(job.id)).status != "running" and j,
                     60, "the driver to record the stop")
    assert final.status == "cancelled" and final.completed_at is not None
    assert final.output_model_id is None and final.error_message is None
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


@pytest.fixture(scope="module")
def preference_dataset(cat, tmp_path_factory):
    import csv

    from corpora.chatterbot import chatterbot_pairs, preference_pairs_from_chatterbot
    from corpora.registration import register_dataset

    # CSVs of prompt,chosen,rejected columns (the DPO job trains on a CSV upload): 32
    # pairs to train on, and 8 of them to evaluate on (evaluating all 32, before and
    # after, took a third of the job's time on 2 cores)
    folder = tmp_path_factory.mktemp("data")
    rows = preference_pairs_from_chatterbot(chatterbot_pairs(["ai", "greetings"])[:32], seed=1)
    for name, part in (("prefs.csv", rows), ("prefs-eval.csv", rows[:8])):
        with (folder / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["prompt", "chosen", "rejected"])
            writer.writeheader()
            writer.writerows(part)
    dataset = register_dataset(cat, folder / "prefs.csv", "chatterbot-preferences-32")
    assert (dataset.file_format, dataset.format, dataset.num_rows) == ("csv", "preference", 32)
    eval_dataset = register_dataset(cat, folder / "prefs-eval.csv", "chatterbot-preferences-8")
    assert eval_dataset.num_rows == 8
    return dataset, eval_dataset, rows


def reply_logprob(model, tokenizer, prompt: str, reply: str) -> float:
    """Mean log-probability per token of the reply after the chat-templated prompt
    (per token, so a long reply is not disfavoured for its length alone)."""
    import torch

    chat = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*chat, {"role": "assistant", "content": reply}],
                                         tokenize=False)
    n_head = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    return float(logp[torch.arange(len(targets)), targets][n_head - 1:].mean())


def test_dpo_job_learns_the_preferred_replies(cat, base_model, preference_dataset,
                                              ray_job_address):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train_jobs.submit import submit_training_job

    dataset, eval_dataset, rows = preference_dataset
    # evaluated on 8 of its pairs, before the first step and after the last (2 epochs);
    # no answers generated and scored (evaluate: None): the main job's test does that
    job = make_job(cat, base_model, dataset, method="dpo", eval_dataset_id=eval_dataset.id,
                   evaluate=None,
                   hyperparameters={"max_steps": 16, "save_steps": None, "eval_steps": None,
                                    "learning_rate": 1e-3, "warmup_ratio": 0.0, "beta": 0.1},
                   lora={"r": 8, "lora_alpha": 16,
                         "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
                   scaling={"num_workers": 1})
    submit_training_job(job.id, address=ray_job_address)
    done = wait_terminal(cat, job.id)
    assert done.status == "completed", done.error_message
    assert (done.method, done.progress) == ("dpo", 1.0)

    points = cat.list_metrics(job.id)
    trained = [p for p in points if p.train_loss is not None]
    assert len(trained) == 16 and all("rewards/margins" in p.extra for p in trained)
    margins = [p.extra["eval_rewards/margins"] for p in points if p.eval_loss is not None]
    assert len(margins) == 2 and margins[-1] > margins[0]  # before the first step, after
    assert done.eval_loss_after < done.eval_loss_before
    assert all(p.perplexity is None for p in points)  # DPO's loss is no cross-entropy

    model = cat.models.get(done.output_model_id)
    assert model.training_job_id == job.id and model.dataset_id == dataset.id
    tokenizer = AutoTokenizer.from_pretrained(base_model.path)
    base = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)

    def preferred(net) -> int:
        return sum(reply_logprob(net, tokenizer, r["prompt"], r["chosen"])
                   > reply_logprob(net, tokenizer, r["prompt"], r["rejected"]) for r in rows)

    before = preferred(base)
    after = preferred(PeftModel.from_pretrained(base, model.path))
    assert after > before, (before, after)


def test_a_dpo_job_needs_preference_rows(cat, base_model, small_dataset):
    with pytest.raises(InvalidArgument) as info:
        make_job(cat, base_model, small_dataset, method={"type": "dpo"})
    assert info.value.field == "method"


def test_ray_job_submit_with_a_job_file(cat, catalog_store, base_model, small_dataset,
                                        ray_job_address, tmp_path):
    """The README's first way in: ``ray job submit --working-dir DIR -- python -m
    train_jobs.run --config job.yaml``, with a job token in the runtime env: it registers
    the job for its user, is bound to it, and is revoked when the job ends."""
    import ray
    import yaml

    from ray_jobs.submit import job_client

    token, secret = catalog_store.create_job_token("ada")
    spec = {"name": "from-a-file", "base_model_id": base_model.name,  # names work too
            "dataset_id": small_dataset.name, "eval_fraction": 0.25,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {
                "batch_size": 4}}},
            "hyperparameters": {"max_steps": 2, "max_seq_length": 96, "logging_steps": 1},
            "lora": {"r": 4, "target_modules": ["q_proj"]}, "scaling": {"num_workers": 1}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    client = job_client(ray_job_address)
    # --address: only because other test clusters may share this machine (the job
    # supervisor would give the driver the newest one); the README's command has none
    address = f"--address {ray.get_runtime_context().gcs_address}"
    sub_id = client.submit_job(
        entrypoint=f"{sys.executable} -m train_jobs.run --config job.yaml {address}",
        runtime_env={"working_dir": str(tmp_path), "env_vars": {"GARDEN_JOB_TOKEN": secret}})
    assert wait_ray_job_end(ray_job_address, sub_id, timeout_s=JOB_TIMEOUT_S) == "SUCCEEDED"
    logs = client.get_job_logs(sub_id)
    assert secret not in logs

    job = next(j for j in cat.training_jobs.list(status="completed", page_size=100).items
               if j.ray_job_id == sub_id)
    assert (job.name, job.user_id, job.base_model_id, job.dataset_id) == (
        "from-a-file", "ada", base_model.id, small_dataset.id)
    assert job.hyperparameters.per_device_train_batch_size == 4 and job.output_model_id
    assert catalog_store.api_keys.get(token.id).job_id == job.id
    assert catalog_store.authenticate(secret) is None  # revoked: the job ended
    points = len(cat.list_metrics(job.id))

    # the same catalog job started again (by hand, or a second submission) is refused
    # before any training, and the job keeps what its one run wrote
    again = client.submit_job(
        entrypoint=f"{sys.executable} -m train_jobs.run --job-id {job.id} {address}",
        runtime_env={"env_vars": {"GARDEN_JOB_TOKEN": secret}})
    assert wait_ray_job_end(ray_job_address, again) == "FAILED"
    refused = client.get_job_logs(again)
    assert "refused: GARDEN_JOB_TOKEN is not a valid" in refused and secret not in refused
    assert cat.training_jobs.get(job.id).status == "completed"
    assert len(cat.list_metrics(job.id)) == points
