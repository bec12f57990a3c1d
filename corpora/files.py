"""Read dataset files of every upload format row by row, map their columns to a row format,
and measure the rows' prompt and answer lengths.

Formats (:class:`catalog.schemas.DatasetFileFormat`), recognised by :func:`detect_file_format`:

- jsonl: one JSON object per line, read line by line;
- json: one JSON array of objects, decoded one element at a time
  (:meth:`json.JSONDecoder.raw_decode` over a buffer refilled in :data:`CHUNK_CHARS` chunks);
- csv (and tsv): pyarrow's streaming reader (:func:`pyarrow.csv.open_csv`), every column read
  as text, a header row first; the delimiter (``,``, ``;``, tab or ``|``) is detected by
  :func:`csv_delimiter`, a UTF-8 byte order mark is dropped and lines may end in CRLF (as a
  spreadsheet exports them);
- parquet: :meth:`pyarrow.parquet.ParquetFile.iter_batches`.

Nothing loads a whole file: memory is bounded by blocks (CSV, :data:`CSV_BLOCK_BYTES`), a
record batch (Parquet, :data:`PARQUET_BATCH_ROWS`; pyarrow decodes a row group's columns at a
time) or a chunk plus one row (JSON, JSONL).

Positions: JSONL and JSON rows are numbered by the line their text starts on; CSV rows by
their line with the header as line 1 (a cell holding line breaks is counted in full); Parquet
rows by row, the first being 1 (:func:`position_key`).

Tabular files (CSV, Parquet) map columns by name to a row format (:func:`tabular_mapping`):
``instruction``/``input``/``output``/``system`` are alpaca, ``prompt``/``response`` become
alpaca's ``instruction``/``output``, ``messages`` (JSON text) is openai, ``conversations``
(JSON text) sharegpt, ``prompt``/``chosen``/``rejected`` preference, and
``custom_id``/``method``/``url``/``body`` (JSON text) openai_batch; an explicit
``column_mapping`` (``{file column: row field}``) renames columns of any format first.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.schemas import DatasetFileFormat, DatasetStatistics
from corpora.formats import RowError

#: Characters of a JSON array file read per refill of the decoder's buffer.
CHUNK_CHARS = 1 << 20
#: Bytes of a CSV file pyarrow parses per block (each block becomes one record batch).
#: pyarrow's streaming reader reads some 36 blocks ahead (measured with pyarrow 26), so this
#: sets the reader's memory: small blocks keep it near 5 MB. A row longer than a block is
#: read by starting again with blocks 4 times larger, up to :data:`CSV_MAX_BLOCK_BYTES`.
CSV_BLOCK_BYTES = 1 << 17
#: The largest CSV block (and so the longest CSV row) read.
CSV_MAX_BLOCK_BYTES = 1 << 26
#: The delimiters a CSV file may use: comma; semicolon, what spreadsheets write in the
#: locales whose decimal separator is a comma (most of Europe); tab; pipe.
CSV_DELIMITERS = ",;\t|"
#: Bytes at the start of a CSV file that :func:`csv_delimiter` reads: the header and the
#: first rows. Kept small because :class:`csv.Sniffer`'s quote search takes time quadratic
#: in its sample (measured with CPython 3.11 on 2 cores: 1.7 s for 16 KiB of unclosed
#: quotes, 0.45 s for 8 KiB; a few milliseconds for ordinary rows).
CSV_SNIFF_BYTES = 1 << 13
#: Rows per record batch read from a Parquet file.
PARQUET_BATCH_ROWS = 1024
#: Rows whose texts are tokenized in one call of the tokenizer.
TOKENIZE_BATCH_ROWS = 256

_EXTENSIONS = {
    ".jsonl": DatasetFileFormat.jsonl, ".ndjson": DatasetFileFormat.jsonl,
    ".json": DatasetFileFormat.json, ".csv": DatasetFileFormat.csv,
    ".tsv": DatasetFileFormat.csv, ".parquet": DatasetFileFormat.parquet,
    ".pq": DatasetFileFormat.parquet,
}
#: Columns whose cells in a CSV or Parquet file are JSON text (decoded before validation).
JSON_COLUMNS = ("messages", "conversations", "body")
#: Columns whose text cells are decoded when they hold a JSON list (preference messages).
MAYBE_JSON_COLUMNS = ("prompt", "chosen", "rejected")
#: Implicit renames of tabular columns: prompt/response rows are alpaca rows.
PROMPT_RESPONSE = {"prompt": "instruction", "response": "output"}


class FileReadError(ValueError):
    """A problem that stops reading a file: ``position`` (line or row, 0 for the whole
    file), ``field`` and ``message``."""

    def __init__(self, position: int, field: str, message: str):
        super().__init__(message)
        self.position = position
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SourceRow:
    """One row read from a file: its ``position`` (line or row number, from 1), the parsed
    ``row`` (None when it could not be parsed) and the parse ``error``, if any."""

    position: int
    row: Any
    error: RowError | None = None


def position_key(file_format: DatasetFileFormat | str) -> str:
    """``"row"`` for Parquet (rows are numbered from 1), ``"line"`` for the text formats."""
    return "row" if DatasetFileFormat(file_format) == DatasetFileFormat.parquet else "line"


def detect_file_format(path: Path, filename: str | None = None) -> DatasetFileFormat:
    """The format of the file at ``path``, by its content and the extension of ``filename``
    (the user's file name; default ``path``'s name).

    Content decides when it can: Parquet's magic bytes ``PAR1``; else the first character
    that is not white space (after a UTF-8 byte order mark): ``[`` is a JSON array, ``{``
    JSON Lines. Otherwise the extension decides (``.csv``/``.tsv``; a ``.json``/``.jsonl``
    file whose content starts otherwise is read as JSON Lines, so its first line is
    reported), and a file with neither is CSV.

    Raises:
        FileReadError: a ``.parquet`` file without the Parquet magic bytes.
    """
    with Path(path).open("rb") as fh:
        head = fh.read(4096)
    ext = Path(filename or Path(path).name).suffix.lower()
    by_ext = _EXTENSIONS.get(ext)
    if head.startswith(b"PAR1"):
        return DatasetFileFormat.parquet
    if by_ext == DatasetFileFormat.parquet:
        raise FileReadError(0, "file", "not a Parquet file (no PAR1 magic bytes)")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"["):
        return DatasetFileFormat.json
    if text.startswith(b"{") or by_ext in (DatasetFileFormat.json, DatasetFileFormat.jsonl):
        return DatasetFileFormat.jsonl
    return DatasetFileFormat.csv


def csv_delimiter(path: Path, filename: str | None = None) -> str:
    """The delimiter of the CSV file at ``path``: the one of :data:`CSV_DELIMITERS` that
    :class:`csv.Sniffer` finds in its first :data:`CSV_SNIFF_BYTES` (without a UTF-8 byte
    order mark, up to the last line break); when it finds none (a file of one column), tab
    for a ``filename`` (the user's name; default ``path``'s) ending in ``.tsv``, else comma.

    Raises:
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as fh:
        head = fh.read(CSV_SNIFF_BYTES).decode("utf-8", errors="replace").removeprefix("\ufeff")
    end = max(head.rfind("\n"), head.rfind("\r"))
    try:
        return csv.Sniffer().sniff(head[:end + 1] if end > 0 else head,
                                   delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:  # "Could not determine delimiter"
        return "\t" if Path(filename or Path(path).name).suffix.lower() == ".tsv" else ","


def read_rows(path: Path, file_format: DatasetFileFormat | str, *,
              filename: str | None = None, delimiter: str | None = None,
              ) -> Iterator[SourceRow]:
    """Every row of the file, in order, as parsed (dicts for rows that parse; a CSV row's
    cells are text, empty cells ``""``). ``delimiter`` is a CSV file's; None detects it
    (:func:`csv_delimiter`, with ``filename``, the user's name of the file).

    Raises:
        FileReadError: the file cannot be read on (not UTF-8 where text is needed, a JSON
            array broken mid-way, a CSV row with the wrong number of cells, a corrupt
            Parquet file).
    """
    fmt = DatasetFileFormat(file_format)
    path = Path(path)
    if fmt == DatasetFileFormat.jsonl:
        return _jsonl_rows(path)
    if fmt == DatasetFileFormat.json:
        return _json_array_rows(path)
    if fmt == DatasetFileFormat.csv:
        return _csv_rows(path, delimiter or csv_delimiter(path, filename))
    return _parquet_rows(path)


def _jsonl_rows(path: Path) -> Iterator[SourceRow]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield SourceRow(lineno, None, RowError("file", f"not UTF-8 text ({exc.reason})"))
                continue
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield SourceRow(lineno, None, RowError("json", f"invalid JSON: {exc.msg}"))
                continue
            yield SourceRow(lineno, row)


def _json_array_rows(path: Path) -> Iterator[SourceRow]:
    """The elements of a JSON array, decoded one at a time from a buffer of at most
    :data:`CHUNK_CHARS` characters plus one element."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig", errors="strict") as fh:
        buf, pos, eof = "", 0, False
        line = 1  # the line of buf[counted]
        counted = 0

        def refill() -> bool:
            nonlocal buf, pos, counted, eof
            try:
                chunk = fh.read(CHUNK_CHARS)
            except UnicodeDecodeError as exc:
                raise FileReadError(line_at(len(buf)), "file",
                                    f"not UTF-8 text ({exc.reason})") from exc
            advance(pos)
            buf, counted, pos = buf[pos:] + chunk, 0, 0
            eof = not chunk
            return bool(chunk)

        def advance(to: int) -> None:
            nonlocal line, counted
            line += buf.count("\n", counted, to)
            counted = to

        def line_at(index: int) -> int:
            return line + buf.count("\n", counted, index)

        def skip_space() -> str:
            """The next character that is not white space ('' at the end of the file)."""
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf):
                    return buf[pos]
                if not refill():
                    return ""

        if skip_space() != "[":
            raise FileReadError(line_at(pos), "json", "a JSON file must hold an array of rows")
        pos += 1
        first = True
        while True:
            char = skip_space()
            if char == "]":
                pos += 1
                if skip_space():
                    raise FileReadError(line_at(pos), "json",
                                        "invalid JSON: extra data after the array")
                return
            if not first:
                if char != ",":
                    raise FileReadError(line_at(pos), "json",
                                        "invalid JSON: expected ',' or ']' between rows")
                pos += 1
                char = skip_space()
            if not char:
                raise FileReadError(line_at(pos), "json", "invalid JSON: the array is not closed")
            first = False
            while True:
                try:
                    row, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if not eof and refill():  # the element may continue in the next chunk
                        continue
                    raise FileReadError(line_at(exc.pos), "json",
                                        f"invalid JSON: {exc.msg}") from exc
                if end < len(buf) or eof or not refill():
                    break
                # a value ending exactly at the buffer's end may go on (a number): decode again
            advance(pos)
            yield SourceRow(line, row)
            pos = end
            if pos > CHUNK_CHARS:  # keep the buffer small: drop what was read
                advance(pos)
                buf, counted, pos = buf[pos:], 0, 0


def _csv_rows(path: Path, delimiter: str) -> Iterator[SourceRow]:
    """The rows of a CSV file, every cell as text; the header (read with the ``csv``
    module, to type every column as text) names the columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        names = next(csv.reader(fh, delimiter=delimiter), None)
    if not names:
        raise FileReadError(0, "file", "the file has no rows")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise FileReadError(1, "header", f"duplicate column names {dupes}")
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                   strings_can_be_null=False)
    line = 2  # the header is line 1 (a header cell with a line break is not counted)
    done = 0  # rows yielded (skipped when the file is read again with larger blocks)
    block = CSV_BLOCK_BYTES
    while True:
        read = pacsv.ReadOptions(block_size=block, use_threads=False)
        skip = done
        try:
            with pacsv.open_csv(path, read_options=read, parse_options=parse,
                                convert_options=convert, memory_pool=_reader_pool()) as reader:
                for batch in reader:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    for row in batch.slice(skip).to_pylist():
                        yield SourceRow(line, row)
                        done += 1
                        line += 1 + sum(v.count("\n") for v in row.values() if v)
                    skip = 0
            return
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and block < CSV_MAX_BLOCK_BYTES:
                block *= 4  # a row longer than a block: read again with larger blocks
                continue
            raise FileReadError(*_csv_problem(path, delimiter, len(names), line, exc)) from exc


def _reader_pool() -> Any:
    """The memory pool of the CSV reader: jemalloc (where pyarrow has it), which returns
    freed blocks to the system more readily than the default pool, so the resident memory
    of a long read stays near what the reader holds; else the system allocator."""
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.system_memory_pool()


def _csv_problem(path: Path, delimiter: str, columns: int, after: int,
                 exc: Exception) -> tuple[int, str, str]:
    """``(line, field, message)`` of the problem pyarrow stopped at (it does not say where):
    the first record at or after line ``after`` with a number of cells other than
    ``columns``, or the first line that is not UTF-8, found with the standard ``csv``
    module; else line 0 with pyarrow's message."""
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    return lineno, "file", f"not UTF-8 text ({err.reason})"
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start = 1
        for record in reader:
            if start >= after and record and len(record) != columns:
                return (start, "row", f"expected {columns} cells (the header's), "
                                      f"got {len(record)}")
            start = reader.line_num + 1
    return 0, "file", f"unreadable CSV: {text}"


def _parquet_rows(path: Path) -> Iterator[SourceRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileReadError(0, "file", f"not a readable Parquet file: {exc}") from exc
    number = 1
    with parquet:
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise FileReadError(number, "file", f"unreadable Parquet data: {exc}") from exc
            for row in batch.to_pylist():
                yield SourceRow(number, row)
                number += 1


def tabular_mapping(columns: list[str], column_mapping: Mapping[str, str] | None,
                    ) -> dict[str, str]:
    """The renames of a CSV or Parquet file's columns: ``column_mapping`` (file column ->
    row field), then :data:`PROMPT_RESPONSE` when the columns (after the explicit renames)
    hold ``prompt`` and ``response`` and no ``chosen``, ``rejected`` or ``instruction``.

    Raises:
        FileReadError: (``field="column_mapping"``) a mapped column is not in the file, or
            two columns would get the same name.
    """
    renames = check_mapping(column_mapping, columns)
    mapped = [renames.get(c, c) for c in columns]
    if ({"prompt", "response"} <= set(mapped)
            and not {"chosen", "rejected", "instruction"} & set(mapped)):
        for source, target in zip(columns, mapped, strict=True):
            if target in PROMPT_RESPONSE:
                renames[source] = PROMPT_RESPONSE[target]
        mapped = [renames.get(c, c) for c in columns]
    clashes = sorted({m for m in mapped if mapped.count(m) > 1})
    if clashes:
        raise FileReadError(0, "column_mapping",
                            f"two columns would both be named {clashes[0]!r}")
    return renames


def check_mapping(column_mapping: Mapping[str, str] | None,
                  columns: list[str] | None = None) -> dict[str, str]:
    """``column_mapping`` as a plain dict after checking it maps text to non-empty text and,
    when ``columns`` are known, that every mapped column is one of them.

    Raises:
        FileReadError: (``field="column_mapping"``) a bad mapping.
    """
    renames = dict(column_mapping or {})
    for source, target in renames.items():
        if not isinstance(source, str) or not isinstance(target, str) or not target:
            raise FileReadError(0, "column_mapping",
                                "must map column names to field names (text to text)")
        if columns is not None and source not in columns:
            raise FileReadError(0, "column_mapping",
                                f"column {source!r} is not in the file; its columns: {columns}")
    return renames


def rename(row: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """``row`` with its keys renamed by ``renames`` (others kept, in order)."""
    if not renames:
        return row
    return {renames.get(k, k): v for k, v in row.items()}


def decode_cells(row: dict[str, Any]) -> tuple[dict[str, Any], list[RowError]]:
    """A tabular row with its JSON text cells decoded: :data:`JSON_COLUMNS` always (an
    empty cell is a missing value), :data:`MAYBE_JSON_COLUMNS` when the text is a JSON
    list. Returns the row and the problems (``field`` the row field, before any mapping
    back to the file's column)."""
    errors: list[RowError] = []
    out = dict(row)
    for key in JSON_COLUMNS:
        value = out.get(key)
        if isinstance(value, str):
            if not value.strip():
                out[key] = None
                continue
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                errors.append(RowError(key, f"invalid JSON text: {exc.msg}"))
    for key in MAYBE_JSON_COLUMNS:
        value = out.get(key)
        if isinstance(value, str) and value.lstrip().startswith("[{"):
            try:
                decoded = json.loads(value)
            except json.JSONDecodeError:
                continue  # plain text that looks like JSON: kept as text
            if isinstance(decoded, list):
                out[key] = decoded
    return out, errors


# ------------------------------------------------------------------------- statistics


def record_texts(record: dict[str, Any]) -> tuple[list[str], str]:
    """``(prompt texts, answer text)`` of an internal record (``corpora.formats``): a
    chat's turns but the last, and its last (assistant) turn; a preference record's prompt
    turns and its chosen reply."""
    if "messages" in record:
        turns = record["messages"]
        return [t["content"] for t in turns[:-1]], turns[-1]["content"]
    return [t["content"] for t in record["prompt"]], record["chosen"][-1]["content"]


@dataclass
class LengthStatistics:
    """Running prompt and answer lengths of rows (see :class:`DatasetStatistics`).

    ``tokenizer``: a Hugging Face tokenizer (``tokenizer(texts, add_special_tokens=False)``
    gives ``input_ids``) counting tokens, batched over :data:`TOKENIZE_BATCH_ROWS` rows;
    None counts characters. ``tokenizer_id``: the catalog id of its model.
    """

    tokenizer: Any = None
    tokenizer_id: str | None = None
    rows: int = 0
    prompt_total: int = 0
    answer_total: int = 0
    longest: int = 0
    shortest: int | None = None
    _pending: list[tuple[list[str], str]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        """Count one internal record."""
        prompt, answer = record_texts(record)
        if self.tokenizer is None:
            self._count(sum(len(t) for t in prompt), len(answer))
            return
        self._pending.append((prompt, answer))
        if len(self._pending) >= TOKENIZE_BATCH_ROWS:
            self._flush()

    def _count(self, prompt: int, answer: int) -> None:
        self.rows += 1
        self.prompt_total += prompt
        self.answer_total += answer
        self.longest = max(self.longest, prompt + answer)
        self.shortest = prompt + answer if self.shortest is None else min(
            self.shortest, prompt + answer)

    def _flush(self) -> None:
        if not self._pending:
            return
        texts = [t for prompt, answer in self._pending for t in (*prompt, answer)]
        lengths = iter(len(ids) for ids in self.tokenizer(
            texts, add_special_tokens=False)["input_ids"])
        for prompt, _ in self._pending:
            self._count(sum(next(lengths) for _ in prompt), next(lengths))
        self._pending.clear()

    def result(self) -> DatasetStatistics:
        """The statistics of every row added (zeros for no rows)."""
        self._flush()
        tokens = self.tokenizer is not None
        return DatasetStatistics(
            num_rows=self.rows,
            avg_input_length=self.prompt_total / self.rows if self.rows else 0.0,
            avg_output_length=self.answer_total / self.rows if self.rows else 0.0,
            max_length=self.longest, min_length=self.shortest or 0,
            total_tokens=self.prompt_total + self.answer_total if tokens else None,
            length_unit="tokens" if tokens else "characters",
            tokenizer=self.tokenizer_id if tokens else None,
        )
