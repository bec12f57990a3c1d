"""``client.datasets``: upload JSONL files, list, get, preview, delete."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from catalog.schemas import Dataset, DatasetFormat, Page
from garden.client.base import Namespace


class Datasets(Namespace):
    def upload(
        self, file: str | Path | bytes, name: str | None = None, *,
        description: str | None = None,
    ) -> Dataset:
        """Upload a JSONL file (a path or the bytes) as a new version of dataset ``name``
        (default: the file's stem). Raises ValidationFailedError listing bad lines in
        ``error.details``."""
        if isinstance(file, bytes):
            if not name:
                raise ValueError("name is required when uploading bytes")
            content, filename = file, f"{name}.jsonl"
        else:
            path = Path(file)
            content, filename = path.read_bytes(), path.name
            name = name or path.stem
        data = {"name": name}
        if description:
            data["description"] = description
        files = {"file": (filename, content, "application/jsonl")}
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
