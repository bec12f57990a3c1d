"""Register dataset files in the catalog, validated row by row.

A dataset is a file of rows (JSONL, a JSON array, CSV or Parquet: read by
:mod:`corpora.files`) in one of the row formats of :mod:`corpora.formats`. It
is checked in full, streaming, before anything is stored: every row must be an object of the
detected format with valid fields, otherwise :class:`DatasetError` lists each bad
line (row, for Parquet) and field and nothing is written. Accepted rows are stored as JSONL at
``datasets/<name>/v<version>/data.jsonl`` under the shared storage root
(:func:`catalog.storage.storage_uri`: ``GARDEN_STORAGE_URI``, a local folder, by default
``$GARDEN_HOME``, or an object store URI such as ``s3://bucket/prefix``), where every
node of the cluster can read them, and registered with their row count, size in bytes
and format. The catalog row's ``path`` is that full location: a plain path for a local
root, a URI for an object store; readers go through :func:`catalog.storage.local_copy`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import schemas as s
from catalog import storage
from catalog.errors import InvalidArgument, NotFound
from catalog.port import CatalogPort
from corpora import files
from corpora.formats import CONVERTERS, detect_format

#: At most this many problems are listed in a DatasetError (the first ones by line).
MAX_REPORTED_ERRORS = 100


class DatasetError(InvalidArgument):
    """A dataset file that cannot be used.

    ``details`` is a list of ``{"line": int, "field": str, "message": str}`` (line
    numbers start at 1; line 0 means the whole file; a Parquet file's problems have
    ``"row"`` instead of ``"line"``); the message names the user's file and the first.
    """

    def __init__(self, message: str, *, field: str | None = "file", details: Any = None):
        super().__init__(message, field=field, details=details)


def dataset_location(name: str, version: int) -> str:
    """A new location for version ``version`` of dataset ``name``: (a path or a URI)
    ``datasets/<name>/v<version>-<random>/data.jsonl`` under the storage root
    (:func:`catalog.storage.fresh`), with the characters of ``name`` other than letters,
    digits and ``-_.`` replaced by ``_``."""
    return storage.location("datasets", storage.safe_name(name), storage.fresh(f"v{version}"),
                            "data.jsonl")


def validate_jsonl(path: Path) -> tuple[s.DatasetFormat, int]:
    """Check every line of a JSONL file; return ``(format, number of rows)``.

    Blank lines are skipped. The format is detected from the first JSON object. Reads
    the file line by line (bounded memory).

    Raises:
        DatasetError: unreadable file, no rows, bad JSON, a row of another format
            or invalid fields; ``details`` lists up to :data:`MAX_REPORTED_ERRORS`.
    """
    scan = scan_file(Path(path), s.DatasetFileFormat.jsonl)
    return scan.format, scan.num_rows


@dataclass
class ScanResult:
    """What :func:`scan_file` found in a valid file."""

    format: s.DatasetFormat
    num_rows: int
    schema: s.DatasetSchema
    statistics: s.DatasetStatistics | None


def scan_file(
    path: Path, file_format: s.DatasetFileFormat | str | None = None, *,
    filename: str | None = None, column_mapping: Mapping[str, str] | None = None,
    tokenizer: Any = None, tokenizer_id: str | None = None, out: Path | None = None,
) -> ScanResult:
    """Read every row of a dataset file once, streaming: map columns, detect the row format,
    validate each row, measure lengths and (when ``out`` is given) write the rows, as
    stored, to the JSONL file ``out``.

    Args:
        path: the file (any of :class:`catalog.schemas.DatasetFileFormat`).
        file_format: its format; None detects it
            (:func:`corpora.files.detect_file_format`).
        filename: the user's name of the file, for messages and the extension (default:
            ``path``'s name).
        column_mapping: ``{file column or key: row field}`` renames applied to every row
            first; CSV and Parquet columns then map by name
            (:func:`corpora.files.tabular_mapping`).
        tokenizer, tokenizer_id: count lengths in this tokenizer's tokens (and record the
            model id), else in characters.
        out: where to write the rows as stored (mapped, JSON text cells decoded).

    Returns the row format, the number of rows, the schema and the statistics (None for
    batch request files).

    Raises:
        DatasetError: the file cannot be used; ``details`` lists up to
            :data:`MAX_REPORTED_ERRORS` problems as ``{"line"|"row", "field", "message"}``
            (the field is the file's column, or a path inside it such as
            ``messages.1.content``). ``out`` may hold part of the rows.
    """
    path = Path(path)
    display = filename or path.name
    if not path.is_file():
        raise DatasetError(f"{display} is not a file", details=[
            {"line": 0, "field": "file", "message": "not found"}])
    key = "line"
    ffmt: s.DatasetFileFormat | None = None
    scan: _Scan | None = None
    try:
        ffmt = s.DatasetFileFormat(file_format) if file_format else \
            files.detect_file_format(path, display)
        key = files.position_key(ffmt)
        tabular = ffmt in (s.DatasetFileFormat.csv, s.DatasetFileFormat.parquet)
        explicit = files.check_mapping(column_mapping)
        delimiter = files.csv_delimiter(path, display) \
            if ffmt == s.DatasetFileFormat.csv else None
        scan = _Scan(display, key, tokenizer, tokenizer_id, delimiter)
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(out.open("w", encoding="utf-8")) if out else None
            renames: dict[str, str] | None = None if tabular else explicit
            for item in files.read_rows(path, ffmt, filename=display, delimiter=delimiter):
                if renames is None:  # the first row of a table: its columns are the header's
                    renames = files.tabular_mapping(list(item.row or {}), explicit)
                row = scan.add(item, renames, tabular)
                if sink is not None and row is not None and not scan.problems:
                    sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    except files.FileReadError as exc:
        problems = [*(scan.problems if scan else []),
                    {key: exc.position, "field": exc.field, "message": exc.message}]
        count = scan.problem_count + 1 if scan else 1
        raise _dataset_error(display, problems, key, ffmt, count) from exc
    return scan.result(ffmt)


class _Scan:
    """The state of one pass over a file's rows (see :func:`scan_file`); ``delimiter`` is
    a CSV file's (None for other formats)."""

    def __init__(self, display: str, key: str, tokenizer: Any, tokenizer_id: str | None,
                 delimiter: str | None = None):
        self.display = display
        self.key = key
        self.delimiter = delimiter
        self.problems: list[dict[str, Any]] = []
        self.problem_count = 0
        self.format: s.DatasetFormat | None = None
        self.rows = 0
        self.columns: dict[str, None] = {}
        self.sample: dict[str, Any] | None = None
        self.custom_ids: dict[str, int] = {}
        self.lengths = files.LengthStatistics(tokenizer, tokenizer_id)

    def problem(self, position: int, field: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_ERRORS:
            self.problems.append({self.key: position, "field": field, "message": message})

    def add(self, item: files.SourceRow, renames: dict[str, str],
            tabular: bool) -> dict[str, Any] | None:
        """Check one row; return it as stored when it is valid."""
        self.rows += 1
        if item.error is not None:
            self.problem(item.position, item.error.field, item.error.message)
            return None
        inverse = {v: k for k, v in renames.items()}

        def column(field: str) -> str:  # a row field as the file names it
            head, dot, rest = field.partition(".")
            return inverse.get(head, head) + dot + rest

        row = item.row
        if isinstance(row, dict):
            row = files.rename(row, renames)
            if tabular:
                row, errors = files.decode_cells(row)
                for err in errors:
                    self.problem(item.position, column(err.field), err.message)
                if errors:
                    return None
            for k in row:
                if k not in self.columns:
                    self.columns[k] = None
        row_fmt = detect_format(row)
        if row_fmt is None:
            expected = "; ".join(f"{n}: {', '.join(c.needs)}" for n, c in CONVERTERS.items())
            found = f"; found columns {list(item.row)}" if isinstance(item.row, dict) else ""
            if self.delimiter is not None:
                found += f" reading with delimiter {self.delimiter!r}"
            self.problem(item.position, "format",
                         f"not a known format: needs the keys of one of {expected}{found}")
            return None
        if self.format is None:
            self.format = row_fmt
        elif row_fmt != self.format:
            self.problem(item.position, "format", f"row is {row_fmt}, the file is {self.format}")
            return None
        converter = CONVERTERS[self.format]
        errors = converter.validate(row)
        for err in errors:
            self.problem(item.position, column(err.field), err.message)
        if errors:
            return None
        if self.format in s.BATCH_FORMATS:
            first = self.custom_ids.setdefault(row["custom_id"], item.position)
            if first != item.position:
                self.problem(item.position, column("custom_id"),
                             f"duplicate custom_id {row['custom_id']!r} (first at {self.key} "
                             f"{first})")
                return None
        else:
            self.lengths.add(converter.convert(row))
        if self.sample is None:
            self.sample = row
        return row

    def result(self, file_format: s.DatasetFileFormat) -> ScanResult:
        if self.rows == 0 and not self.problems:
            self.problem(0, "file", "the file has no rows")
        if self.problems:
            raise _dataset_error(self.display, self.problems, self.key, file_format,
                                 self.problem_count)
        assert self.format is not None and self.sample is not None  # rows were read, all valid
        statistics = None if self.format in s.BATCH_FORMATS else self.lengths.result()
        return ScanResult(
            format=self.format, num_rows=self.rows,
            schema=s.DatasetSchema(columns=list(self.columns), sample=self.sample,
                                   required_columns=list(CONVERTERS[self.format].needs)),
            statistics=statistics,
        )


def _dataset_error(display: str, problems: list[dict[str, Any]], key: str,
                   file_format: s.DatasetFileFormat | None, count: int | None = None,
                   ) -> DatasetError:
    """The DatasetError listing ``problems``; the message names the user's file, the count
    and the first problem's line (or row) and field (a column, for CSV and Parquet)."""
    first = problems[0]
    where = "column" if file_format in (s.DatasetFileFormat.csv,
                                        s.DatasetFileFormat.parquet) else "field"
    return DatasetError(
        f"{display}: {count or len(problems)} problem(s); first at {key} {first[key]}, "
        f"{where} {first['field']!r}: {first['message']}",
        details=problems[:MAX_REPORTED_ERRORS],
    )


def load_tokenizer(catalog: CatalogPort, model_id: str) -> Any:
    """The tokenizer of catalog model ``model_id`` (a base model, or an adapter saved with
    its tokenizer), loaded with ``transformers.AutoTokenizer`` from the model's stored
    folder (:func:`catalog.storage.local_copy`).

    Raises:
        InvalidArgument: (``field="base_model_id"``) no such model, or its folder holds no
            tokenizer.
    """
    from transformers import AutoTokenizer

    try:
        model = catalog.models.get(model_id)
    except NotFound as exc:
        raise InvalidArgument(f"model {model_id!r} not found", field="base_model_id") from exc
    try:
        return AutoTokenizer.from_pretrained(str(storage.local_copy(model.path)))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"model {model_id!r} has no usable tokenizer: {exc}",
                              field="base_model_id") from exc


def register_dataset(
    catalog: CatalogPort, path: str | Path, name: str, *, user_id: str | None = None,
    description: str | None = None, source: str | None = None, filename: str | None = None,
    file_format: s.DatasetFileFormat | str | None = None,
    column_mapping: Mapping[str, str] | None = None, base_model_id: str | None = None,
) -> s.Dataset:
    """Validate a local dataset file, store it and register it as a new version of ``name``.

    ``catalog`` is a :class:`catalog.store.CatalogStore` or :class:`catalog.actor.Catalog`.
    The file (JSONL, a JSON array, CSV or Parquet: ``file_format``, or detected from its
    content and ``filename``'s extension) is read once, streaming (:func:`scan_file`). The
    stored file, at :func:`dataset_location` under the storage root (local or remote), is
    JSONL of the rows in their row format: the uploaded bytes for a JSONL file without
    ``column_mapping``, else the rows as mapped and decoded. The row's ``path`` is that
    location, ``size_bytes`` the uploaded file's size, ``schema`` and ``statistics`` what the
    scan found (lengths in tokens of ``base_model_id``'s tokenizer when given, characters
    otherwise).

    Args:
        filename: the user's name of the file (messages name it; default ``path``'s name).
        column_mapping: ``{file column: row field}``, e.g. ``{"question": "instruction",
            "answer": "output"}``.
        base_model_id: catalog id of the model whose tokenizer counts lengths.

    Raises:
        DatasetError: the file is invalid (nothing is stored).
        InvalidArgument: ``base_model_id`` names no model with a tokenizer.
        Conflict: a concurrent registration took the same name and version.
        OSError: the store refused the write (nothing is registered).
    """
    path = Path(path)
    tokenizer = load_tokenizer(catalog, base_model_id) if base_model_id else None
    with tempfile.TemporaryDirectory(prefix="garden-dataset-") as staging:
        display = filename or path.name
        if file_format is None and path.is_file():
            try:
                file_format = files.detect_file_format(path, display)
            except files.FileReadError as exc:
                raise DatasetError(f"{display}: {exc.message}", details=[
                    {"row": 0, "field": exc.field, "message": exc.message}]) from exc
        keep = file_format in (None, s.DatasetFileFormat.jsonl) and not column_mapping
        out = None if keep else Path(staging) / "data.jsonl"
        scan = scan_file(path, file_format, filename=display, column_mapping=column_mapping,
                         tokenizer=tokenizer, tokenizer_id=base_model_id, out=out)
        size = path.stat().st_size
        version = catalog.next_version("datasets", name)
        dest = dataset_location(name, version)
        folder = storage.location("datasets", storage.safe_name(name), f"v{version}")
        try:
            storage.put(out or path, dest)
            return catalog.datasets.create(s.DatasetCreate(
                name=name, version=version, format=scan.format, path=dest,
                num_rows=scan.num_rows, size_bytes=size, description=description,
                source=source or str(path), user_id=user_id,
                file_format=s.DatasetFileFormat(file_format or s.DatasetFileFormat.jsonl),
                dataset_schema=scan.schema, statistics=scan.statistics,
            ))
        except Exception:
            with contextlib.suppress(OSError):  # the first error is the one to report
                storage.delete(folder)
            raise
