"""The built-in chatterbot corpus: its pairs register once as an OpenAI-format dataset, and
preference rows drawn from them are valid, deterministic and name what they cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.chatterbot import chatterbot_pairs, import_chatterbot, preference_pairs_from_chatterbot
from corpora.formats import CONVERTERS, to_record
from corpora.registration import DatasetError


def test_chatterbot_import_is_idempotent(store, home):
    ds = import_chatterbot(store, categories=["ai", "greetings"])
    assert ds.format == "openai" and ds.source.startswith("chatterbot-corpus==")
    lines = Path(ds.path).read_text().splitlines()
    assert len(lines) == ds.num_rows > 50
    first = json.loads(lines[0])
    assert first["messages"][0] == {"role": "user", "content": "What is AI?"}
    assert first["messages"][1]["role"] == "assistant"
    assert import_chatterbot(store, categories=["ai", "greetings"]).id == ds.id
    assert store.datasets.list(name="chatterbot-corpus").total == 1


def test_chatterbot_unknown_category(store, home):
    with pytest.raises(DatasetError, match="unknown chatterbot categories"):
        import_chatterbot(store, categories=["klingon"])


def test_preference_pairs_from_chatterbot_are_valid_deterministic_and_differ():
    rows = chatterbot_pairs(["ai", "greetings"])
    pairs = preference_pairs_from_chatterbot(rows, seed=7)
    assert len(pairs) == len(rows)
    assert pairs == preference_pairs_from_chatterbot(rows, seed=7)
    assert pairs != preference_pairs_from_chatterbot(rows, seed=8)
    replies = {r["messages"][1]["content"] for r in rows}
    for row, pair in zip(rows, pairs, strict=True):
        assert set(pair) == {"prompt", "chosen", "rejected"}
        assert pair["prompt"] == row["messages"][0]["content"]
        assert pair["chosen"] == row["messages"][1]["content"]
        assert pair["rejected"] != pair["chosen"] and pair["rejected"] in replies
        assert CONVERTERS["preference"].validate(pair) == []
    assert len({p["rejected"] for p in pairs}) > 10  # drawn from many rows, not one
    assert to_record(pairs[0], "preference")["prompt"] == [
        {"role": "user", "content": "What is AI?"}]


def test_preference_pairs_skip_rows_with_the_same_reply():
    def chat(q, a):
        return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}

    rows = [chat("a", "same"), chat("b", "same"), chat("c", "same"), chat("d", "other")]
    for seed in range(5):
        pairs = preference_pairs_from_chatterbot(rows, seed=seed)
        assert [p["rejected"] for p in pairs] == ["other", "other", "other", "same"]


@pytest.mark.parametrize(("rows", "field"), [
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
      {"messages": [{"role": "assistant", "content": "a"}]}], "rows.1"),
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
      {"messages": [{"role": "user", "content": "r"}, {"role": "assistant", "content": "a"}]}],
     "rows"),
    ([], "rows"),
])
def test_preference_pairs_reject_unusable_rows(rows, field):
    with pytest.raises(DatasetError) as info:
        preference_pairs_from_chatterbot(rows)
    assert info.value.field == field
