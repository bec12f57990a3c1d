"""Render chats with the base model's own chat template and tokenize them for causal LM training.

The loss is masked to the assistant turns: a token is learned (its label is its
id) when its first character lies inside an assistant message as the template
renders it (the assistant's text and the template's end-of-turn marker); every
other label is ``-100``, the index ``torch.nn.CrossEntropyLoss`` ignores. The
spans come from rendering growing prefixes of the chat, as LLaMA-Factory's
``template.encode_multiturn`` does, and the offsets mapping of a fast tokenizer.
Sequences are truncated to ``max_seq_length`` tokens.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss(ignore_index=-100), transformers' default


@lru_cache(maxsize=4)
def load_tokenizer(model_path: str):
    """The fast tokenizer of a model folder, cached per process (Ray Data tasks reuse it).

    Raises:
        ValueError: the tokenizer is not a fast one (offsets are needed) or has no chat template.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if not tok.is_fast:
        raise ValueError(f"{model_path}: a fast tokenizer is needed for loss masking")
    if not tok.chat_template:
        raise ValueError(f"{model_path}: the tokenizer has no chat template")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the ``[start, end)`` character spans of its assistant turns.

    Raises:
        ValueError: the template does not render a chat's prefixes as prefixes of it.
    """
    def render(msgs, gen):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    text = render(messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:i], True) if i else ""
        upto = render(messages[: i + 1], False)
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise ValueError("the chat template does not render prefixes consistently")
        spans.append((len(prompt), len(upto)))
    return text, spans


def encode_chat(tokenizer, messages: list[dict[str, str]], max_seq_length: int) -> dict[str, Any]:
    """Tokenize one chat: ``{"input_ids": int64[n], "labels": int64[n]}``, ``n <= max_seq_length``.

    ``labels[i]`` is ``input_ids[i]`` on assistant tokens and :data:`IGNORE_INDEX` elsewhere.
    """
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=True, max_length=max_seq_length)
    ids = enc["input_ids"]
    labels = [
        tok if any(a <= start < b for a, b in spans) else IGNORE_INDEX
        for tok, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return {"input_ids": np.asarray(ids, dtype=np.int64),
            "labels": np.asarray(labels, dtype=np.int64)}


class ChatEncoder:
    """Ray Data row function: ``{"messages": [...]}`` -> ``{"input_ids", "labels"}``."""

    def __init__(self, model_path: str, max_seq_length: int):
        self.model_path = model_path
        self.max_seq_length = max_seq_length

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": str(m["role"]), "content": str(m["content"])}
                    for m in row["messages"]]
        return encode_chat(load_tokenizer(self.model_path), messages, self.max_seq_length)


def has_labels(row: dict[str, Any]) -> bool:
    """False for a row whose assistant tokens were all cut by truncation."""
    return bool((np.asarray(row["labels"]) != IGNORE_INDEX).any())


def collate(batch: dict[str, np.ndarray], pad_token_id: int) -> dict[str, Any]:
    """Right-pad a batch to its longest row: ``input_ids``, ``labels``, ``attention_mask``,
    each an int64 tensor of shape ``[batch, longest]``."""
    import torch

    rows = list(batch["input_ids"])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, batch["labels"], strict=True)):
        # rows may come as lists, int arrays or object arrays (equal-length rows)
        ids[i, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.int64))
        labels[i, : len(lab)] = torch.as_tensor(np.asarray(lab, dtype=np.int64))
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
