"""``client.datasets``: upload dataset files (JSONL, JSON, CSV, Parquet), list, get (with
schema and statistics), preview, delete."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from catalog.schemas import Dataset, DatasetFormat, Page
from garden.client.base import Namespace

#: Content type sent for a file, by extension (others: application/octet-stream; the
#: gateway recognises the format by content and name either way).
CONTENT_TYPES = {
    ".jsonl": "application/jsonl", ".ndjson": "application/jsonl",
    ".json": "application/json", ".csv": "text/csv", ".tsv": "text/tab-separated-values",
    ".parquet": "application/vnd.apache.parquet", ".pq": "application/vnd.apache.parquet",
}


class Datasets(Namespace):
    def upload(
        self, file: str | Path | bytes, name: str | None = None, *,
        description: str | None = None, column_mapping: Mapping[str, str] | None = None,
        base_model_id: str | None = None, filename: str | None = None,
    ) -> Dataset:
        """Upload a dataset file as a new version of dataset ``name`` (default: the file's
        stem): JSONL, a JSON array of rows, CSV (header first) or Parquet, rows in any row
        format (alpaca, sharegpt, OpenAI messages, preference pairs, batch requests).

        Args:
            file: a path (streamed from disk) or the bytes.
            column_mapping: ``{file column: row field}``, e.g. ``{"question":
                "instruction", "answer": "output"}``.
            base_model_id: a model (id or name) whose tokenizer counts the statistics'
                lengths; characters when None.
            filename: the file's name for bytes (default ``<name>.jsonl``).

        Raises ValidationFailedError listing bad lines (Parquet: rows) and columns in
        ``error.details``.
        """
        data: dict[str, str] = {}
        with _opened(file, name, filename) as (content, upload_name):
            data["name"] = name or Path(upload_name).stem
            if description:
                data["description"] = description
            if column_mapping:
                data["column_mapping"] = json.dumps(dict(column_mapping))
            if base_model_id:
                data["base_model_id"] = base_model_id
            ctype = CONTENT_TYPES.get(Path(upload_name).suffix.lower(),
                                      "application/octet-stream")
            files = {"file": (upload_name, content, ctype)}
            response = self._client.request("POST", "/v1/datasets", files=files, data=data)
        return Dataset.model_validate(response.json())

    def list(
        self, *, name: str | None = None, format: DatasetFormat | str | None = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> Page[Dataset]:
        """One page of the caller's datasets, newest first (``.total`` counts all pages)."""
        return self._page(Dataset, "/v1/datasets", {"name": name, "format": format,
                                                    "page_size": page_size, "cursor": cursor})

    def iterate(self, **filters: Any) -> Iterator[Dataset]:
        """Every dataset matching ``filters`` (``name``, ``format``), across pages."""
        return self._iterate(Dataset, "/v1/datasets", {"page_size": 200, **filters})

    def get(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(self._client.request(
            "GET", f"/v1/datasets/{dataset_id}").json())

    def preview(self, dataset_id: str, *, offset: int = 0, limit: int = 10) -> builtins.list[Any]:
        """Rows ``offset..offset+limit`` of the dataset, as parsed JSON."""
        return self._client.request("GET", f"/v1/datasets/{dataset_id}/preview",
                                    params={"offset": offset, "limit": limit}).json()["rows"]

    def delete(self, dataset_id: str) -> None:
        self._client.request("DELETE", f"/v1/datasets/{dataset_id}")


class _opened:
    """``(content, file name)`` of an upload: an open binary file for a path (httpx streams
    it), the bytes as they are."""

    def __init__(self, file: str | Path | bytes, name: str | None, filename: str | None):
        self.file, self.name, self.filename = file, name, filename
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> tuple[IO[bytes] | bytes, str]:
        if isinstance(self.file, bytes):
            if not self.name:
                raise ValueError("name is required when uploading bytes")
            return self.file, self.filename or f"{self.name}.jsonl"
        path = Path(self.file)
        self.handle = path.open("rb")
        return self.handle, path.name

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
