"""The catalog as the media service sees it: awaitable store operations by name.

Two implementations with the same shape (``await cat.predictions.create(...)``,
``await cat.transition_prediction(...)``, ``cat.submit_usage([...])``):
:class:`ActorCatalog` over the cluster's catalog actor (Serve replicas) and
:class:`LocalCatalog` over an in-process :class:`~catalog.store.CatalogStore` (tests,
benchmarks, single-process tools), which runs each blocking call in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from catalog import schemas as s
from catalog.store import CatalogStore

log = logging.getLogger(__name__)


class ActorCatalog:
    """Facade over :class:`catalog.actor.Catalog`'s async side."""

    def __init__(self, catalog: Any = None):
        if catalog is None:
            from catalog.actor import Catalog

            catalog = Catalog()
        self._catalog = catalog

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._catalog.aio, name)

    def submit_usage(self, records: list[s.UsageCreate]) -> None:
        """Queue usage records in the actor's batch; do not wait."""
        self._catalog.submit_usage(records)


class LocalCatalog:
    """Store operations by dotted name, each awaited in a worker thread."""

    def __init__(self, store: CatalogStore, path: str = ""):
        self._store = store
        self._path = path
        self._pending: set[asyncio.Task] = set()

    def __getattr__(self, name: str) -> LocalCatalog:
        if name.startswith("_"):
            raise AttributeError(name)
        return LocalCatalog(self._store, f"{self._path}.{name}" if self._path else name)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target: Any = self._store
        for part in self._path.split("."):
            target = getattr(target, part)
        return await asyncio.to_thread(target, *args, **kwargs)

    def submit_usage(self, records: list[s.UsageCreate]) -> None:
        """Write usage records in the background (the store de-duplicates by id)."""
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._store.record_usage, records))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("usage write failed: %s", task.exception())

    async def drain(self) -> None:
        """Wait for background usage writes (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
