"""Packing (``hyperparameters.packing``): the loss of a packed row equals the loss of the
same examples unpacked, because each packed example attends to itself only.

Real SmolLM2-135M in float32 on CPU, the engine's own ``SFTConfig``
(:func:`train_jobs.engine.training_args`) and TRL's dataset preparation and collator,
so what is checked is what a job trains on. The control packs the same row without its
per-example position ids: attention then crosses examples and the loss moves, so the
equality is not one the check would find anyway.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from catalog import schemas as s
from train_jobs.engine import EngineConfig, load_tokenizer, sft_example, training_args

#: Relative difference allowed between packed and unpacked loss: float32 sums over 149
#: tokens in another order (measured: 1.4e-7; attention across examples moved it 5.4e-2).
RTOL = 1e-5

CHATS = [
    [("What is a LoRA adapter?", "Low-rank update matrices added to a frozen model.")],
    [("Hi", "Hello! How can I help?")],
    [("Name a prime number.", "Seven.")],
    [("Who wrote Hamlet?", "William Shakespeare wrote Hamlet around 1600."),
     ("And Macbeth?", "Shakespeare too, around 1606.")],
]


def examples():
    from datasets import Dataset

    rows = []
    for turns in CHATS:
        messages = [{"role": "system", "content": "Be brief."}]
        for question, answer in turns:
            messages += [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]
        rows.append(sft_example({"messages": messages}))
    return Dataset.from_list(rows)


def batch_of(model, model_path, packing: bool, tmp_path):
    """Every example of :data:`CHATS` in one batch, as the engine's trainer builds it."""
    from trl import SFTTrainer

    hp = s.Hyperparameters(packing=packing, max_seq_length=512,
                           per_device_train_batch_size=len(CHATS))
    cfg = EngineConfig(job_id="local", method="sft", model_path=str(model_path),
                       train_path="", train_format="openai")
    args = training_args(cfg, hp, output_dir=str(tmp_path / str(packing)), has_eval=False,
                         resuming=False, keep=1)
    trainer = SFTTrainer(model=model, args=args, train_dataset=examples(),
                         processing_class=load_tokenizer(str(model_path)))
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    return rows, trainer.data_collator(rows)


def test_a_packed_row_has_the_loss_of_its_examples_unpacked(smollm2_folder, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    packed_rows, packed = batch_of(model, smollm2_folder, True, tmp_path)
    plain_rows, plain = batch_of(model, smollm2_folder, False, tmp_path)
    assert len(packed_rows) == 1 and len(plain_rows) == len(CHATS)  # one row holds all four
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    # no padding: the packed row is exactly the examples' tokens, each numbered from 0
    lengths = sorted(len(r["input_ids"]) for r in plain_rows)
    assert packed["input_ids"].shape[1] == sum(lengths)
    assert sorted(packed_rows[0]["seq_lengths"]) == lengths
    assert int((packed["position_ids"][0] == 0).sum()) == len(CHATS)
    # the same tokens are learnt: the completions (the first token of each example
    # predicts nothing in either layout)
    assert int((packed["labels"] != -100).sum()) == int((plain["labels"] != -100).sum())

    with torch.no_grad():
        packed_loss = model(**packed).loss.item()
        plain_loss = model(**plain).loss.item()
        crossed = model(input_ids=packed["input_ids"], labels=packed["labels"]).loss.item()
    assert packed_loss == pytest.approx(plain_loss, rel=RTOL)
    # control: one causal sequence, every example seeing those before it
    assert abs(crossed - plain_loss) > 100 * RTOL * plain_loss


def test_packing_is_refused_for_dpo():
    with pytest.raises(ValidationError, match="packing is for method sft only"):
        s.TrainingJobCreate(name="p", base_model_id="m" * 32, dataset_id="d" * 32,
                            method="dpo", hyperparameters={"packing": True})
