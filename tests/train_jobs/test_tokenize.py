"""Chat rendering with SmolLM2's own template: loss only on assistant tokens, truncation."""

from __future__ import annotations

import numpy as np

from train_jobs.tokenize import IGNORE_INDEX, collate, encode_chat, load_tokenizer

CHAT = [{"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4, of course."},
        {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6."}]


def test_only_assistant_turns_are_learned(smollm2_folder):
    tok = load_tokenizer(str(smollm2_folder))
    enc = encode_chat(tok, CHAT, 512)
    ids, labels = enc["input_ids"], enc["labels"]
    assert tok.decode(ids) == tok.apply_chat_template(CHAT, tokenize=False)
    learned = tok.decode(ids[labels != IGNORE_INDEX])
    assert learned == "4, of course.<|im_end|>\n6.<|im_end|>\n"
    assert (labels[labels != IGNORE_INDEX] == ids[labels != IGNORE_INDEX]).all()
    assert "What is 2+2?" in tok.decode(ids[labels == IGNORE_INDEX])


def test_truncation_and_padding(smollm2_folder):
    tok = load_tokenizer(str(smollm2_folder))
    short = encode_chat(tok, CHAT, 16)
    assert len(short["input_ids"]) == 16
    assert (short["labels"] == IGNORE_INDEX).all()  # the answers were cut off
    full = encode_chat(tok, CHAT[:2], 512)
    batch = collate({"input_ids": np.array([short["input_ids"], full["input_ids"]], dtype=object),
                     "labels": np.array([short["labels"], full["labels"]], dtype=object)},
                    tok.pad_token_id)
    width = max(16, len(full["input_ids"]))
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    assert batch["attention_mask"][0].sum() == 16
    assert (batch["labels"][0, 16:] == IGNORE_INDEX).all()


def test_collate_takes_equal_length_rows_as_an_object_matrix():
    # np.array over equal-length lists with dtype=object is 2-D: each row an object array
    rows = [[5, 6, 7], [8, 9, 10]]
    batch = collate({"input_ids": np.array(rows, dtype=object),
                     "labels": np.array([[-100, 6, 7], [-100, -100, 10]], dtype=object)}, 0)
    assert batch["input_ids"].tolist() == rows
    assert batch["labels"][1].tolist() == [-100, -100, 10]
    assert batch["attention_mask"].sum() == 6
