"""The catalog as one named, detached Ray actor shared by every driver, job and replica.

``get_catalog()`` returns the handle to the one :class:`CatalogActor` of the
cluster (namespace ``garden``, name ``catalog``), creating it on first use; the
creation is race-safe because Ray's ``get_if_exists=True`` makes the name the
lock. The actor is ``lifetime="detached"`` and ``max_restarts=-1``: when it dies
Ray starts it again, and since all state is in the database a restart loses
nothing that was acknowledged.

Callers use :class:`Catalog`, a thin facade with the store's method names::

    cat = Catalog()                      # sync, for jobs and scripts
    job = cat.training_jobs.get(job_id)
    job = await cat.aio.transition_job(job_id, "running")   # async, for replicas

Per-request usage records go through :meth:`CatalogActor.record_usage`, which
buffers them and writes each batch in one transaction when it reaches
``flush_size`` records or ``flush_interval_s`` seconds; the call returns only
after its batch has committed, so an acknowledged record is durable. Callers that
must not wait (Serve replicas) fire the call and drop the reference.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from catalog import schemas as s
from catalog.config import database_url
from catalog.store import CatalogStore

NAMESPACE = "garden"
ACTOR_NAME = "catalog"

#: Operations that read, or whose writes are idempotent, so a caller may repeat
#: them after the actor restarted mid-call.
RETRYABLE = frozenset({
    "get", "list", "find_model", "next_version", "list_metrics", "list_checkpoints",
    "list_events", "carbon_summary", "get_prompt_helper_version",
    "list_prompt_helper_versions", "authenticate", "ping", "record_usage",
})


def _public_ops(store: CatalogStore) -> dict[str, Any]:
    """Map of ``"op"`` and ``"repo.op"`` names to the store's bound methods."""
    ops: dict[str, Any] = {}
    for name in dir(store):
        if name.startswith("_") or name in ("open", "close", "session", "engine"):
            continue
        attr = getattr(store, name)
        if callable(attr):
            ops[name] = attr
        elif hasattr(attr, "row") and hasattr(attr, "read"):  # a Repo
            for op in ("create", "get", "list", "update", "delete"):
                ops[f"{name}.{op}"] = getattr(attr, op)
    return ops


@ray.remote(num_cpus=0)
class CatalogActor:
    """Async actor over one :class:`~catalog.store.CatalogStore`.

    Args:
        url: SQLAlchemy URL; resolved by the creator so every node uses the same one.
        flush_size: usage records that trigger a batch write at once.
        flush_interval_s: longest a usage record waits for its batch, in seconds.
    """

    def __init__(self, url: str, flush_size: int = 256, flush_interval_s: float = 0.2):
        self._store = CatalogStore.open(url, migrate=True)
        self._ops = _public_ops(self._store)
        # SQLite allows one writer at a time; more threads would only queue on its lock.
        workers = 1 if url.startswith("sqlite") else 8
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catalog-db")
        self._flush_size = flush_size
        self._flush_interval_s = flush_interval_s
        self._pending: list[tuple[list[s.UsageCreate], asyncio.Future]] = []
        self._pending_count = 0
        self._timer: asyncio.Task | None = None
        self._flush_lock: asyncio.Lock | None = None

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run store operation ``op`` (e.g. ``"transition_job"``, ``"models.get"``).

        Raises:
            AttributeError: ``op`` is not a public store operation.
            CatalogError: whatever the store raises, with its own class.
        """
        fn = self._ops.get(op)
        if fn is None:
            raise AttributeError(f"catalog has no operation {op!r}")
        return await self._run(fn, *args, **kwargs)

    async def record_usage(self, records: list[s.UsageCreate]) -> list[str]:
        """Queue usage records; return their ids once their batch has committed."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(records), future))
        self._pending_count += len(records)
        if self._pending_count >= self._flush_size:
            self._timer = asyncio.ensure_future(self.flush())
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.ensure_future(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_interval_s)
        await self.flush()

    async def flush(self) -> int:
        """Write every queued usage record now, in one transaction. Returns how many."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            batch, self._pending, self._pending_count = self._pending, [], 0
            if not batch:
                return 0
            records = [r for recs, _ in batch for r in recs]
            try:
                ids = await self._run(self._store.record_usage, records)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                return 0
            i = 0
            for recs, fut in batch:
                if not fut.done():
                    fut.set_result(ids[i : i + len(recs)])
                i += len(recs)
            return len(records)

    async def ping(self) -> bool:
        """True when the actor and its database answer."""
        return await self._run(self._store.ping)

    async def database_dialect(self) -> str:
        """``sqlite`` or ``postgresql``: the backend behind this catalog."""
        return self._store.engine.dialect.name


def get_catalog(url: str | None = None, *, name: str = ACTOR_NAME) -> ray.actor.ActorHandle:
    """The cluster's one catalog actor handle, created on first use (race-safe).

    Needs a connected Ray (``ray.init()`` or inside a job, task or replica).
    ``url`` only matters to the call that creates the actor; it defaults to
    :func:`catalog.config.database_url` as seen by that caller. ``name`` exists
    so tests can run a private catalog beside the cluster's.
    """
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        pass
    return CatalogActor.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_concurrency=1000,
    ).remote(url or database_url())


class _Op:
    """One named store operation, callable sync (``op(...)``) or async (``await op.aio``)."""

    def __init__(self, catalog: Catalog, path: str):
        self._catalog = catalog
        self._path = path

    def __getattr__(self, name: str) -> _Op:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Op(self._catalog, f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._catalog._call_sync(self._path, args, kwargs)


class _AsyncOps:
    def __init__(self, catalog: Catalog, path: str = ""):
        self._catalog = catalog
        self._path = path

    def __getattr__(self, name: str) -> _AsyncOps:
        if name.startswith("_"):
            raise AttributeError(name)
        return _AsyncOps(self._catalog, f"{self._path}.{name}" if self._path else name)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self._catalog._call_async(self._path, args, kwargs)


class Catalog:
    """Facade over the catalog actor with :class:`~catalog.store.CatalogStore`'s names.

    ``cat.models.get(id)`` blocks; ``await cat.aio.models.get(id)`` does not.
    Reads and idempotent writes (:data:`RETRYABLE`) are retried while the actor
    restarts, for up to ``retry_deadline_s``; other writes raise the Ray error,
    since they may or may not have committed.

    Args:
        handle: an actor handle (default :func:`get_catalog`).
        timeout_s: longest one call may take, in seconds.
        retry_deadline_s: how long retryable calls keep retrying a restarting actor.
    """

    def __init__(
        self, handle: Any = None, *, timeout_s: float = 120.0, retry_deadline_s: float = 60.0
    ):
        self.handle = handle if handle is not None else get_catalog()
        self.timeout_s = timeout_s
        self.retry_deadline_s = retry_deadline_s
        self.aio = _AsyncOps(self)

    def __getattr__(self, name: str) -> _Op:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Op(self, name)

    def _remote(self, path: str, args: tuple, kwargs: dict) -> ray.ObjectRef:
        if path == "record_usage":
            return self.handle.record_usage.remote(*args, **kwargs)
        if path in ("flush", "ping", "database_dialect"):
            return getattr(self.handle, path).remote(*args, **kwargs)
        return self.handle.call.remote(path, *args, **kwargs)

    def _retryable(self, path: str) -> bool:
        return path.rpartition(".")[2] in RETRYABLE

    def _call_sync(self, path: str, args: tuple, kwargs: dict) -> Any:
        deadline = time.monotonic() + self.retry_deadline_s
        delay = 0.1
        while True:
            try:
                return ray.get(self._remote(path, args, kwargs), timeout=self.timeout_s)
            except (ActorUnavailableError, RayActorError):
                if not self._retryable(path) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _call_async(self, path: str, args: tuple, kwargs: dict) -> Any:
        deadline = time.monotonic() + self.retry_deadline_s
        delay = 0.1
        while True:
            try:
                return await asyncio.wait_for(
                    self._remote(path, args, kwargs), timeout=self.timeout_s
                )
            except (ActorUnavailableError, RayActorError):
                if not self._retryable(path) or time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def submit_usage(self, records: list[s.UsageCreate]) -> ray.ObjectRef:
        """Queue usage records without waiting (fire and forget); returns the ref."""
        return self.handle.record_usage.remote(records)
