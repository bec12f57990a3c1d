"""Dataset registration: validated files are stored and recorded; bad ones store nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.errors import InvalidArgument
from corpora.registration import DatasetError, register_dataset, validate_jsonl


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


PREFS = [{"prompt": f"Say {i}", "chosen": str(i), "rejected": str(i + 1)} for i in range(4)]
OPENAI_PREFS = [{"input": {"messages": [{"role": "user", "content": f"Say {i}"}]},
                 "preferred_output": [{"role": "assistant", "content": str(i)}],
                 "non_preferred_output": [{"role": "assistant", "content": "no"}]}
                for i in range(3)]


def test_preference_files_are_detected_and_registered(store, home, tmp_path):
    prefs = write_jsonl(tmp_path / "p.jsonl", PREFS)
    openai_prefs = write_jsonl(tmp_path / "op.jsonl", OPENAI_PREFS)
    assert validate_jsonl(prefs) == ("preference", 4)
    assert validate_jsonl(openai_prefs) == ("openai_preference", 3)
    ds = register_dataset(store, openai_prefs, "dpo")
    assert (ds.format, ds.num_rows) == ("openai_preference", 3)


def test_bad_preference_lines_are_numbered(tmp_path):
    rows = [
        PREFS[0],
        {"prompt": "q", "chosen": "a"},
        PREFS[1],
        "",
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "chosen": [{"role": "user", "content": "b"}], "rejected": "c"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {**OPENAI_PREFS[0], "preferred_output": "0"},
    ]
    with pytest.raises(DatasetError) as info:
        validate_jsonl(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert [(d["line"], d["field"]) for d in info.value.details] == [
        (2, "rejected"), (5, "rejected"), (6, "prompt.1"), (6, "chosen.0.role"),
        (7, "format"), (8, "format")]
    assert "line 2" in info.value.message and "'rejected'" in info.value.message
    assert info.value.details[1]["message"] == "must differ from chosen"
    assert info.value.details[4]["message"] == "row is openai, the file is preference"


def test_openai_preference_bad_line_names_the_nested_field(tmp_path):
    bad = {**OPENAI_PREFS[1], "input": {"messages": [{"role": "user", "content": "q"},
                                                     {"role": "robot", "content": "x"}]}}
    src = write_jsonl(tmp_path / "bad.jsonl", [OPENAI_PREFS[0], OPENAI_PREFS[2], bad])
    with pytest.raises(DatasetError) as info:
        validate_jsonl(src)
    assert info.value.details == [{"line": 3, "field": "input.messages.1.role",
                                   "message": "must be one of ['assistant', 'system', 'user']"}]


def test_unknown_format_message_lists_what_each_format_needs(tmp_path):
    with pytest.raises(DatasetError) as info:
        validate_jsonl(write_jsonl(tmp_path / "x.jsonl", [{"text": "hello"}]))
    message = info.value.details[0]["message"]
    for needed in ("alpaca: instruction, output", "sharegpt: conversations",
                   "openai: messages", "preference: prompt, chosen, rejected",
                   "openai_preference: input, preferred_output, non_preferred_output"):
        assert needed in message
