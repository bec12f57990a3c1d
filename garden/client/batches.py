"""``client.batches``: batch inference jobs in the shape of OpenAI's Batch API: create
(from an uploaded ``openai_batch`` dataset), list, get, cancel, download the output or
error file, wait. :class:`BatchJob` carries the lifecycle methods (``reload``, ``cancel``,
``wait``, ``download``).

The server's body is OpenAI's Batch object, so ``client.openai().batches.retrieve(id)``
reads the same batch with the official ``openai`` client.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr

from catalog.lifecycle import TERMINAL_BATCH_STATUSES
from catalog.schemas import Batch, BatchCreate, BatchStatus
from garden.client.base import Namespace

#: Which file :meth:`Batches.download` fetches.
FileKind = Literal["output", "errors"]


class BatchFailedError(Exception):
    """A batch that :meth:`BatchJob.wait` saw end failed, cancelled or expired."""

    def __init__(self, batch: Batch):
        errors = "; ".join(e.message for e in batch.errors.data) if batch.errors else ""
        super().__init__(f"batch {batch.id} {batch.status}" + (f": {errors}" if errors else ""))
        self.batch = batch


class BatchJob(Batch):
    """A batch (the catalog's :class:`~catalog.schemas.Batch`) bound to a client."""

    _ns: Any = PrivateAttr(None)

    @property
    def done(self) -> bool:
        """Whether the batch reached a terminal status."""
        return self.status in TERMINAL_BATCH_STATUSES

    def reload(self) -> BatchJob:
        """Fetch the batch again and update this object in place; returns it."""
        fresh = self._ns.get(self.id)
        for name in Batch.model_fields:
            object.__setattr__(self, name, getattr(fresh, name))
        return self

    def cancel(self) -> BatchJob:
        """Ask for cancellation (the batch moves to ``cancelling``, then ``cancelled``)."""
        return self._ns.cancel(self.id)

    def download(self, kind: FileKind = "output", path: str | Path | None = None) -> Path:
        """Save the output or error file; see :meth:`Batches.download`."""
        return self._ns.download(self.id, kind, path)

    def wait(self, *, timeout_s: float = 3600.0, poll_interval_s: float = 2.0,
             raise_on_failure: bool = True) -> BatchJob:
        """Poll until the batch reaches a terminal status; returns it.

        Raises:
            TimeoutError: still running after ``timeout_s`` seconds.
            BatchFailedError: it ended failed, cancelled or expired (unless
                ``raise_on_failure`` is False).
        """
        deadline = time.monotonic() + timeout_s
        while not self.reload().done:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"batch {self.id} still {self.status} after {timeout_s} s")
            time.sleep(min(poll_interval_s, max(deadline - time.monotonic(), 0.0)))
        if raise_on_failure and self.status != BatchStatus.completed:
            raise BatchFailedError(self)
        return self


class Batches(Namespace):
    """``/v1/batches``."""

    def _batch(self, data: dict[str, Any]) -> BatchJob:
        batch = BatchJob.model_validate(data)
        batch._ns = self
        return batch

    def create(self, *, input_file_id: str, endpoint: str = "/v1/chat/completions",
               completion_window: str = "24h",
               metadata: dict[str, str] | None = None) -> BatchJob:
        """Create a batch of the request lines in dataset ``input_file_id`` (uploaded with
        ``client.datasets.upload``, format ``openai_batch``) and start its Ray job.

        Invalid fields raise ``pydantic.ValidationError`` before any request.
        """
        body = BatchCreate.model_validate({
            "input_file_id": input_file_id, "endpoint": endpoint,
            "completion_window": completion_window, "metadata": metadata})
        data = self._client.request("POST", "/v1/batches",
                                    json=body.model_dump(mode="json")).json()
        return self._batch(data)

    def list(self, *, after: str | None = None, limit: int = 20,
             status: str | None = None) -> builtins.list[BatchJob]:
        """One page of the caller's batches, newest first (``after``: the last id of the
        previous page)."""
        params = {k: v for k, v in {"after": after, "limit": limit, "status": status}.items()
                  if v is not None}
        data = self._client.request("GET", "/v1/batches", params=params).json()
        return [self._batch(item) for item in data["data"]]

    def iterate(self, *, status: str | None = None, page_size: int = 100) -> Iterator[BatchJob]:
        """Every batch of the caller, newest first, over all pages."""
        after = None
        while True:
            params = {k: v for k, v in {"after": after, "limit": page_size,
                                        "status": status}.items() if v is not None}
            data = self._client.request("GET", "/v1/batches", params=params).json()
            for item in data["data"]:
                yield self._batch(item)
            if not data["has_more"]:
                return
            after = data["last_id"]

    def get(self, batch_id: str) -> BatchJob:
        """The batch; raises NotFoundError."""
        return self._batch(self._client.request("GET", f"/v1/batches/{batch_id}").json())

    def cancel(self, batch_id: str) -> BatchJob:
        """Cancel it; raises InvalidTransitionError (409) when it already ended."""
        return self._batch(
            self._client.request("POST", f"/v1/batches/{batch_id}/cancel").json())

    def events(self, batch_id: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Its event log above ``after``: ``{"batch_id", "items", "next_after"}``."""
        return self._client.request("GET", f"/v1/batches/{batch_id}/events",
                                    params={"after": after, "limit": limit}).json()

    def download(self, batch_id: str, kind: FileKind = "output",
                 path: str | Path | None = None) -> Path:
        """Save the batch's output (or ``errors``) file as JSONL at ``path`` (default
        ``<batch id>_<kind>.jsonl`` here); returns the path. Raises NotFoundError when the
        batch has no such file (yet)."""
        if kind not in ("output", "errors"):
            raise ValueError(f"kind must be 'output' or 'errors', not {kind!r}")
        dest = Path(path) if path is not None else Path(f"{batch_id}_{kind}.jsonl")
        with self._client.stream("GET", f"/v1/batches/{batch_id}/{kind}") as response, \
                dest.open("wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
        return dest

    def wait(self, batch_id: str, **kwargs: Any) -> BatchJob:
        """:meth:`BatchJob.wait` on the batch ``batch_id``."""
        return self.get(batch_id).wait(**kwargs)
