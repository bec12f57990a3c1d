"""Dataset registration: validated files are stored and recorded; bad ones store nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.errors import InvalidArgument
from train_jobs.datasets import DatasetError, import_chatterbot, register_dataset


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


ALPACA = [{"instruction": f"Say {i}", "input": "", "output": str(i)} for i in range(5)]


def test_register_records_rows_bytes_format_and_keeps_the_file(store, home, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [*ALPACA, ""])  # a blank line is not a row
    ds = register_dataset(store, src, "numbers", description="digits", user_id="u1")
    assert (ds.format, ds.num_rows, ds.version) == ("alpaca", 5, 1)
    assert ds.size_bytes == src.stat().st_size
    assert Path(ds.path).read_bytes() == src.read_bytes()
    assert Path(ds.path).is_relative_to(home / "datasets")
    again = register_dataset(store, src, "numbers")
    assert again.version == 2 and again.path != ds.path
    assert store.datasets.get(ds.id).description == "digits"


def test_sharegpt_and_openai_files_are_detected(store, home, tmp_path):
    share = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [
        {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])
    chat = write_jsonl(tmp_path / "o.jsonl", [{"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}])
    assert register_dataset(store, share, "s").format == "sharegpt"
    assert register_dataset(store, chat, "o").format == "openai"


def test_bad_file_lists_every_bad_line_and_field_and_stores_nothing(store, home, tmp_path):
    rows = [
        ALPACA[0],
        "{not json",
        {"instruction": "x"},  # output missing
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        ALPACA[1],
        {"instruction": "x", "output": ["list"]},
    ]
    src = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DatasetError) as info:
        register_dataset(store, src, "bad")
    err = info.value
    assert isinstance(err, InvalidArgument) and err.code == "invalid_argument"
    assert [(d["line"], d["field"]) for d in err.details] == [
        (2, "json"), (3, "output"), (4, "format"), (6, "output")]
    assert "line 2" in err.message and "'json'" in err.message
    assert "row is openai, the file is alpaca" in err.details[2]["message"]
    assert store.datasets.list().total == 0
    assert not (home / "datasets" / "bad").exists()


@pytest.mark.parametrize(("content", "field"), [
    ("", "file"),
    ('{"prompt": "x", "completion": "y"}\n', "format"),
    ('["a list"]\n', "format"),
])
def test_empty_and_unknown_files_are_rejected(store, home, tmp_path, content, field):
    src = tmp_path / "x.jsonl"
    src.write_text(content)
    with pytest.raises(DatasetError) as info:
        register_dataset(store, src, "x")
    assert info.value.details[0]["field"] == field
    assert store.datasets.list().total == 0


def test_missing_file_is_rejected(store, home, tmp_path):
    with pytest.raises(DatasetError, match="not a file"):
        register_dataset(store, tmp_path / "nope.jsonl", "x")


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
