"""Register JSONL datasets in the catalog, validated row by row, and import chatterbot-corpus.

A dataset is a JSONL file in one of the formats of :mod:`train_jobs.formats`. It is
checked in full before anything is stored: every line must be a JSON object of the
detected format with valid fields, otherwise :class:`DatasetError` lists each bad
line and field and nothing is written. Accepted files are stored at
``datasets/<name>/v<version>/data.jsonl`` under the shared storage root
(:func:`catalog.storage.storage_uri`: ``GARDEN_STORAGE_URI``, a local folder, by default
``$GARDEN_HOME``, or an object store URI such as ``s3://bucket/prefix``), where every
node of the cluster can read them, and registered with their row count, size in bytes
and format. The catalog row's ``path`` is that full location: a plain path for a local
root, a URI for an object store; readers go through :func:`catalog.storage.local_copy`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from catalog import schemas as s
from catalog import storage
from catalog.errors import InvalidArgument
from catalog.port import CatalogPort
from train_jobs.formats import CONVERTERS, detect_format

#: At most this many problems are listed in a DatasetError (the first ones by line).
MAX_REPORTED_ERRORS = 100
CHATTERBOT_PACKAGE = "chatterbot-corpus"


class DatasetError(InvalidArgument):
    """A dataset file that cannot be used.

    ``details`` is a list of ``{"line": int, "field": str, "message": str}`` (line
    numbers start at 1; line 0 means the whole file); the message names the first.
    """

    def __init__(self, message: str, *, field: str | None = "file", details: Any = None):
        super().__init__(message, field=field, details=details)


def dataset_location(name: str, version: int) -> str:
    """A new location for version ``version`` of dataset ``name``: (a path or a URI)
    ``datasets/<name>/v<version>-<random>/data.jsonl`` under the storage root
    (:func:`catalog.storage.fresh`), with the characters of ``name`` other than letters,
    digits and ``-_.`` replaced by ``_``."""
    return storage.location("datasets", _safe_name(name), storage.fresh(f"v{version}"),
                            "data.jsonl")


def validate_jsonl(path: Path) -> tuple[s.DatasetFormat, int]:
    """Check every line of a JSONL file; return ``(format, number of rows)``.

    Blank lines are skipped. The format is detected from the first JSON object.

    Raises:
        DatasetError: unreadable file, no rows, bad JSON, a row of another format
            or invalid fields; ``details`` lists up to :data:`MAX_REPORTED_ERRORS`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} is not a file", details=[
            {"line": 0, "field": "file", "message": "not found"}])
    problems: list[dict[str, Any]] = []
    fmt: s.DatasetFormat | None = None
    rows = 0
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        try:
            lines = list(fh)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path.name}: not UTF-8 text ({exc.reason})", details=[
                {"line": 0, "field": "file", "message": "not UTF-8"}]) from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        rows += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append({"line": lineno, "field": "json",
                             "message": f"invalid JSON: {exc.msg}"})
            continue
        row_fmt = detect_format(row)
        if row_fmt is None:
            expected = "; ".join(f"{n}: {', '.join(c.needs)}" for n, c in CONVERTERS.items())
            problems.append({"line": lineno, "field": "format",
                             "message": f"not a known format: needs the keys of one of "
                                        f"{expected}"})
            continue
        if fmt is None:
            fmt = row_fmt
        elif row_fmt != fmt:
            problems.append({"line": lineno, "field": "format",
                             "message": f"row is {row_fmt}, the file is {fmt}"})
            continue
        for err in CONVERTERS[fmt].validate(row):
            problems.append({"line": lineno, "field": err.field, "message": err.message})
    if rows == 0 and not problems:
        problems.append({"line": 0, "field": "file", "message": "the file has no rows"})
    if problems:
        first = problems[0]
        raise DatasetError(
            f"{path.name}: {len(problems)} problem(s); first at line {first['line']}, "
            f"field {first['field']!r}: {first['message']}",
            details=problems[:MAX_REPORTED_ERRORS],
        )
    assert fmt is not None  # rows were read, and each has a known format
    return fmt, rows


def register_dataset(
    catalog: CatalogPort, path: str | Path, name: str, *, user_id: str | None = None,
    description: str | None = None, source: str | None = None,
) -> s.Dataset:
    """Validate a local JSONL file, store it and register it as a new version of ``name``.

    ``catalog`` is a :class:`catalog.store.CatalogStore` or :class:`catalog.actor.Catalog`.
    The file is stored at :func:`dataset_location` (under the storage root, local or
    remote); the row's ``path`` is that location and ``size_bytes`` the local file's size.

    Raises:
        DatasetError: the file is invalid (nothing is stored).
        Conflict: a concurrent registration took the same name and version.
        OSError: the store refused the write (nothing is registered).
    """
    path = Path(path)
    fmt, rows = validate_jsonl(path)
    size = path.stat().st_size
    version = catalog.next_version("datasets", name)
    dest = dataset_location(name, version)
    folder = storage.location("datasets", _safe_name(name), f"v{version}")
    try:
        storage.put(path, dest)
        return catalog.datasets.create(s.DatasetCreate(
            name=name, version=version, format=fmt, path=dest, num_rows=rows,
            size_bytes=size, description=description,
            source=source or str(path), user_id=user_id,
        ))
    except Exception:
        with contextlib.suppress(OSError):  # the first error is the one to report
            storage.delete(folder)
        raise


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def chatterbot_pairs(categories: list[str] | None = None) -> list[dict[str, Any]]:
    """Prompt/reply pairs of the installed ``chatterbot-corpus`` English YAML files.

    Each conversation ``[a, b, c, ...]`` gives the pairs ``(a, b), (b, c), ...``
    (ChatterBot's own training reads conversations the same way: each statement
    is a response to the previous one). Returns OpenAI-format rows.

    Raises:
        FileNotFoundError: the package is not installed (``pip install chatterbot-corpus``).
        DatasetError: an unknown category was asked for.
    """
    import yaml

    try:
        import chatterbot_corpus
    except ImportError as exc:
        raise FileNotFoundError(
            f"{CHATTERBOT_PACKAGE} is not installed: pip install {CHATTERBOT_PACKAGE}"
        ) from exc
    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    files = sorted(folder.glob("*.yml"))
    if categories:
        known = {f.stem for f in files}
        unknown = sorted(set(categories) - known)
        if unknown:
            raise DatasetError(f"unknown chatterbot categories {unknown}; known: {sorted(known)}",
                               field="categories")
        files = [f for f in files if f.stem in categories]
    rows = []
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            texts = [str(t).strip() for t in conversation if t is not None]
            for prompt, reply in itertools.pairwise(texts):
                if prompt and reply:
                    rows.append({"messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": reply}]})
    return rows


def preference_pairs_from_chatterbot(
    rows: list[dict[str, Any]], seed: int = 0
) -> list[dict[str, str]]:
    """Preference rows made from chat pairs, for a DPO dataset of the chatterbot corpus.

    ``rows`` are OpenAI-format rows ``{"messages": [user, assistant]}`` (what
    :func:`chatterbot_pairs` returns). Row ``i`` gives ``{"prompt": <its user text>,
    "chosen": <its assistant reply>, "rejected": <the reply of another row, drawn at
    random among the rows whose reply differs>}`` (TRL's preference format, in the
    order of ``rows``). The draws use ``random.Random(seed)``: the same rows and seed
    give the same result.

    Raises:
        DatasetError: a row is not a ``[user, assistant]`` chat (``field`` names it), or
            all rows have the same reply (no rejected reply can be drawn).
    """
    prompts: list[str] = []
    replies: list[str] = []
    for i, row in enumerate(rows):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or [
            (m.get("role"), isinstance(m.get("content"), str)) if isinstance(m, dict) else None
            for m in messages
        ] != [("user", True), ("assistant", True)]:
            raise DatasetError(f"row {i} is not a [user, assistant] chat with string contents",
                               field=f"rows.{i}")
        prompts.append(messages[0]["content"])
        replies.append(messages[1]["content"])
    if len(set(replies)) < 2:
        raise DatasetError("preference pairs need at least two different replies",
                           field="rows")
    rng = random.Random(seed)
    pairs = []
    for prompt, chosen in zip(prompts, replies, strict=True):
        for _ in range(32):  # rejection sampling: fast unless one reply dominates
            rejected = replies[rng.randrange(len(replies))]
            if rejected != chosen:
                break
        else:
            rejected = rng.choice([r for r in replies if r != chosen])
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def import_chatterbot(
    catalog: CatalogPort, name: str = "chatterbot-corpus", *, categories: list[str] | None = None
) -> s.Dataset:
    """Register the chatterbot-corpus pairs as an OpenAI-format dataset (idempotent).

    Returns the newest existing dataset called ``name`` when there is one.
    """
    existing = catalog.datasets.list(name=name, page_size=1)
    if existing.items:
        return existing.items[0]
    version = importlib.metadata.version(CHATTERBOT_PACKAGE)
    rows = chatterbot_pairs(categories)
    with tempfile.TemporaryDirectory(prefix="garden-chatterbot-") as staging:
        tmp = Path(staging) / f"{_safe_name(name)}.jsonl"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
        return register_dataset(
            catalog, tmp, name, source=f"{CHATTERBOT_PACKAGE}=={version}",
            description=f"chatterbot-corpus English prompt/reply pairs "
                        f"({', '.join(categories) if categories else 'all categories'})",
        )
