"""The training function in a plain process (no Ray): what a GPU machine without Ray runs.

Real SmolLM2-135M and chatterbot rows, a few steps on CPU; the ``gpu`` tests run the
same function with QLoRA 4-bit and DeepSpeed ZeRO-2 where CUDA is present.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from train_jobs.engine import EngineConfig, LocalReporter, deepspeed_config, sft_example, train

REPO = Path(__file__).resolve().parents[2]

HP = {"max_steps": 3, "per_device_train_batch_size": 4, "max_seq_length": 96,
      "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 2, "save_total_limit": 1}
LORA = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    from corpora.chatterbot import chatterbot_pairs

    path = tmp_path_factory.mktemp("data") / "chat.jsonl"
    rows = chatterbot_pairs(["ai", "greetings"])[:40]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(model: Path, data: Path, out: Path, **overrides) -> EngineConfig:
    values = dict(job_id="local", method="sft", model_path=str(model), train_path=str(data),
                  train_format="openai", eval_fraction=0.2, lora=LORA, hyperparameters=HP,
                  output_dir=str(out))
    values.update(overrides)
    return EngineConfig(**values)


def test_sft_example_learns_the_last_assistant_turn_only():
    chat = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
                         {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": "q2"},
                         {"role": "assistant", "content": "a2"}]}
    example = sft_example(chat)
    assert example["completion"] == [{"role": "assistant", "content": "a2"}]
    assert example["prompt"] == chat["messages"][:-1]


def test_deepspeed_config_leaves_the_numbers_to_training_arguments():
    two, three = deepspeed_config(2), deepspeed_config(3)
    assert two["zero_optimization"]["stage"] == 2
    assert two["train_micro_batch_size_per_gpu"] == "auto"  # filled by transformers
    assert "stage3_gather_16bit_weights_on_model_save" not in two["zero_optimization"]
    assert three["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_trains_without_ray_and_the_adapter_loads_back(smollm2_folder, chat_file, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reporter = train(config(smollm2_folder, chat_file, tmp_path / "out",
                            report_to=["tensorboard"], tensorboard_dir=str(tmp_path / "tb")))
    assert isinstance(reporter, LocalReporter)
    logs = [r for r in reporter.reports if r["report"] == "log"]
    # eval before training, a training point each step, eval at the checkpoint (2) and end
    assert [r["step"] for r in logs if "train_loss" in r] == [1, 2, 3]
    assert [r["step"] for r in logs if "eval_loss" in r] == [0, 2, 3]
    for r in logs:
        assert r["total_steps"] == 3 and r["memory_mb"] > 0
    for r in (r for r in logs if "train_loss" in r):
        assert math.isfinite(r["train_loss"]) and r["tokens_per_second"] > 0
        assert r["learning_rate"] > 0 and "grad_norm" in r["extra"]
    saves = [r for r in reporter.reports if r["report"] == "checkpoint"]
    assert [r["step"] for r in saves] == [2, 3]
    assert all("eval_loss" in r and "train_loss" in r for r in saves)
    # the Trainer kept one checkpoint (save_total_limit) in the output folder
    assert [p.name for p in (tmp_path / "out").glob("checkpoint-*")] == ["checkpoint-3"]
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))  # report_to tensorboard

    base = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 314, 17]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, saves[-1]["checkpoint"])
        after = tuned(ids).logits
    assert tuned.peft_config["default"].r == 8
    assert (after - before).abs().max() > 1e-4


#: Relative difference allowed between the resumed and the unbroken run's train loss:
#: the same float32 operations in the same order on CPU (measured: identical).
RESUME_RTOL = 1e-6


def test_a_killed_run_resumed_from_its_checkpoint_has_the_unbroken_loss_curve(
        smollm2_folder, chat_file, tmp_path):
    """The run is SIGKILLed in its own process once checkpoint 2 is reported; resumed
    from it, steps 3 and 4 have the losses of a run never stopped (RNG state for LoRA
    dropout, data order, optimizer and scheduler all restored), and no step repeats."""
    hp = {**HP, "max_steps": 4, "save_steps": 2, "save_total_limit": 2}
    unbroken = train(config(smollm2_folder, chat_file, tmp_path / "a", eval_fraction=0.0,
                            hyperparameters=hp))
    curve = {r["step"]: r["train_loss"] for r in unbroken.reports if "train_loss" in r}
    assert sorted(curve) == [1, 2, 3, 4]

    killed = tmp_path / "b"
    spec = tmp_path / "b.json"
    spec.write_text(json.dumps(config(smollm2_folder, chat_file, killed, eval_fraction=0.0,
                                      hyperparameters=hp).to_dict()))
    log = (tmp_path / "b.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "train_jobs.engine", str(spec)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: '"report": "checkpoint"' in (tmp_path / "b.log").read_text()
                 or proc.poll() is not None, 300, "checkpoint 2 of the run to kill",
                 interval_s=0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "b.log").read_text()[-2000:]
    assert not (killed / "checkpoint-4").exists()  # killed before the end

    resumed = train(config(smollm2_folder, chat_file, tmp_path / "c", eval_fraction=0.0,
                           hyperparameters=hp,
                           resume_from_checkpoint=str(killed / "checkpoint-2")))
    after = {r["step"]: r["train_loss"] for r in resumed.reports if "train_loss" in r}
    assert sorted(after) == [3, 4]  # steps 1 and 2 came from the checkpoint
    for step, loss in after.items():
        assert loss == pytest.approx(curve[step], rel=RESUME_RTOL), (step, after, curve)


cuda = pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("options", [
    {"quantization": {"bits": 4, "bnb_4bit_quant_type": "nf4",
                      "bnb_4bit_use_double_quant": True},
     "hyperparameters": {**HP, "bf16": True}},
    {"deepspeed_stage": 2, "hyperparameters": {**HP, "bf16": True}},
], ids=["qlora-4bit", "deepspeed-zero2"])
def test_gpu_options_train_a_few_steps(smollm2_folder, chat_file, tmp_path, options):
    reporter = train(config(smollm2_folder, chat_file, tmp_path / "out", use_gpu=True,
                            **options))
    losses = [r["train_loss"] for r in reporter.reports if "train_loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert any(r["report"] == "checkpoint" for r in reporter.reports)
