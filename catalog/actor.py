"""The catalog as one named, detached Ray actor shared by every driver, job and replica.

``get_catalog()`` returns the handle to the one :class:`CatalogActor` of the
cluster (namespace ``garden``, name ``catalog``), creating it on first use; the
creation is race-safe because Ray's ``get_if_exists=True`` makes the name the
lock. It runs on the head node. The actor is ``lifetime="detached"`` and
``max_restarts=-1``: when it dies Ray starts it again, and since all state is in the
database a restart loses nothing that was acknowledged.

Callers hold a port (:mod:`catalog.port`) over the actor::

    cat = Catalog()                      # CatalogPort: blocking, for jobs and scripts
    job = cat.training_jobs.get(job_id)
    acat = AsyncCatalog()                # AsyncCatalogPort: for Serve replicas
    job = await acat.transition_job(job_id, "running")

Each call ships an :class:`~catalog.port.Invocation` (a reference to the store
method) to :meth:`CatalogActor.run`. Idempotent operations are retried by the ports
while the actor restarts (:data:`RESTART_BACKOFF`).

Usage records: a replica keeps its records in a
:class:`catalog.usage_buffer.UsageBuffer` and sends them in batches (about 500), each
``await cat.record_usage(batch)``, which returns only after the batch has committed,
so an acknowledged record is durable and an unacknowledged one is still the replica's
to retry (same ids: the store skips ids it holds). The actor merges the batches of
all callers that arrive while it writes into one transaction (group commit, one
multi-row INSERT, :meth:`CatalogStore.record_usage`): a write starts at once when
``flush_size`` records wait, else after ``flush_interval_s``; usage writes are one
transaction at a time. If a merged transaction fails for a reason other than the
database being unavailable, each caller's batch is written again on its own, so a
batch the store refuses fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError

from catalog import schemas as s
from catalog.config import database_url
from catalog.errors import SchemaOutOfDate, Unavailable
from catalog.port import AsyncCatalogPort, CatalogPort, Invocation
from catalog.retry import Backoff, async_retrying, retrying
from catalog.store import CatalogStore

NAMESPACE = "garden"
ACTOR_NAME = "catalog"
#: The resource only Ray's head node has (``ray._common.constants.HEAD_NODE_RESOURCE_NAME``).
HEAD_NODE_RESOURCE = "node:__internal_head__"

T = TypeVar("T")


@ray.remote(num_cpus=0)
class CatalogActor:
    """Async actor over one :class:`~catalog.store.CatalogStore`.

    Args:
        url: SQLAlchemy URL; resolved by the creator so every node uses the same one.
        flush_size: queued usage records that start a write at once (a replica's batch
            of ~500 does by itself; writes arriving during a write wait for the next,
            so they merge).
        flush_interval_s: longest a usage record waits for a write to start, seconds
            (small callers only: single records, a replica's partial batch).
    """

    def __init__(self, url: str, flush_size: int = 256, flush_interval_s: float = 0.02):
        self._store = CatalogStore.open(url, migrate=True)
        # SQLite allows one writer at a time; more threads would only queue on its lock.
        workers = 1 if url.startswith("sqlite") else 8
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catalog-db")
        self._flush_size = flush_size
        self._flush_interval_s = flush_interval_s
        self._pending: list[tuple[list[s.UsageCreate], asyncio.Future[list[str]]]] = []
        self._pending_count = 0
        self._timer: asyncio.Future[Any] | None = None
        self._flush_lock: asyncio.Lock | None = None

    async def _in_pool(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def run(self, call: Invocation, *args: Any, **kwargs: Any) -> Any:
        """Run one store operation; usage records join the current batch.

        Raises:
            CatalogError: whatever the store raises, with its own class.
        """
        if call.fn is CatalogStore.record_usage:
            return await self.record_usage(*args, **kwargs)
        return await self._in_pool(call.apply, self._store, *args, **kwargs)

    async def record_usage(self, records: Sequence[s.UsageCreate]) -> list[str]:
        """Queue usage records; return their ids once their transaction has committed.

        Raises:
            CatalogError: the store's error for this caller's records (see
                :meth:`flush`); the records are then not stored.
        """
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
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
        """Write every queued usage record now, in one transaction. Returns how many
        were written (acknowledged to their callers).

        When that transaction fails and it held several callers' records, each
        caller's records are written again in a transaction of their own, so one
        caller's bad record fails only that caller; a database that is unavailable
        fails them all at once (no point in asking again now).
        """
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        try:
            return await self._flush_locked(self._flush_lock)
        finally:
            # records queued while this write ran found a timer that was not done (this
            # one) and scheduled none: schedule theirs, or they would wait for the next
            # caller
            if self._pending and (self._timer is None or self._timer.done()
                                  or self._timer is asyncio.current_task()):
                self._timer = asyncio.ensure_future(self._flush_later())

    async def _flush_locked(self, lock: asyncio.Lock) -> int:
        async with lock:
            batch, self._pending, self._pending_count = self._pending, [], 0
            if not batch:
                return 0
            records = [r for recs, _ in batch for r in recs]
            try:
                ids = await self._in_pool(self._store.record_usage, records)
            except Exception as exc:
                if len(batch) == 1 or isinstance(exc, Unavailable | SchemaOutOfDate):
                    for _, fut in batch:
                        _fail(fut, exc)
                    return 0
                return await self._write_each(batch)
            i = 0
            for recs, fut in batch:
                if not fut.done():
                    fut.set_result(ids[i : i + len(recs)])
                i += len(recs)
            return len(records)

    async def _write_each(
        self, batch: list[tuple[list[s.UsageCreate], asyncio.Future[list[str]]]]
    ) -> int:
        written = 0
        for recs, fut in batch:
            try:
                ids = await self._in_pool(self._store.record_usage, recs)
            except Exception as exc:
                _fail(fut, exc)
                continue
            if not fut.done():
                fut.set_result(ids)
            written += len(recs)
        return written


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def get_catalog(url: str | None = None, *, name: str = ACTOR_NAME) -> ActorHandle:
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
    return CatalogActor.options(  # type: ignore[attr-defined]
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_concurrency=1000,
        # the head node: it holds the embedded SQLite file, and a cluster survives losing
        # any worker node but not its head (Ray's own head-node resource)
        resources={HEAD_NODE_RESOURCE: 0.001},
    ).remote(url or database_url())


#: Errors of an actor that is restarting or unreachable: the call may be repeated
#: when its operation is idempotent.
ACTOR_DOWN = (ActorUnavailableError, RayActorError)

#: Retries of idempotent calls while the actor restarts: full-jitter backoff from
#: 0.1 s, capped at 2 s, for at most 60 s.
RESTART_BACKOFF = Backoff(initial_s=0.1, max_delay_s=2.0, max_attempts=None, deadline_s=60.0)


def _retry_if(call: Invocation) -> Callable[[BaseException], bool]:
    return lambda exc: call.idempotent and isinstance(exc, ACTOR_DOWN)


class _OnActor:
    """What both actor ports hold: the handle, the per-call timeout and the retry policy.

    Idempotent operations (:func:`catalog.store.idempotent`) are retried while the
    actor restarts, per ``backoff``; other writes raise the Ray error, since they may
    or may not have committed. ``retries`` counts, by operation name (``record_usage``,
    ``models.get``, ...), the calls that met a dead or restarting actor and were sent
    again: what a replica shows of the restarts its writes went through.

    Args:
        handle: an actor handle (default :func:`get_catalog`).
        timeout_s: longest one call may take, in seconds (a timeout error after).
        backoff: retries while the actor restarts (default :data:`RESTART_BACKOFF`).
    """

    def __init__(self, handle: ActorHandle | None = None, *, timeout_s: float = 120.0,
                 backoff: Backoff = RESTART_BACKOFF):
        self.handle = handle if handle is not None else get_catalog()
        self.timeout_s = timeout_s
        self.backoff = backoff
        self.retries: Counter[str] = Counter()

    def _counted(self, call: Invocation) -> Callable[[Any], None]:
        """tenacity's ``before_sleep``: count one more retry of ``call``."""
        def count(_state: Any) -> None:
            self.retries[call.name] += 1

        return count

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "retries": Counter()}  # counts stay in their process


class Catalog(_OnActor, CatalogPort):
    """:class:`~catalog.port.CatalogPort` over the catalog actor (blocking calls); the
    arguments and retry rule are :class:`_OnActor`'s."""

    def _invoke(self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return retrying(self.backoff, retry_if=_retry_if(call),
                        before_sleep=self._counted(call))(
            lambda: ray.get(self.handle.run.remote(call, *args, **kwargs), timeout=self.timeout_s))

    def flush(self) -> int:
        """Write the actor's queued usage records now; returns how many. Sent again while
        the actor restarts, as idempotent operations are: a restarted actor holds no
        queue, since it acknowledged only what it had written."""
        return retrying(self.backoff, retry_if=lambda exc: isinstance(exc, ACTOR_DOWN))(
            lambda: ray.get(self.handle.flush.remote(), timeout=self.timeout_s))


class AsyncCatalog(_OnActor, AsyncCatalogPort):
    """:class:`~catalog.port.AsyncCatalogPort` over the catalog actor (Serve replicas);
    the arguments and retry rule are :class:`_OnActor`'s."""

    async def _invoke(
        self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        async def once() -> Any:
            return await asyncio.wait_for(
                self.handle.run.remote(call, *args, **kwargs), timeout=self.timeout_s)

        return await async_retrying(self.backoff, retry_if=_retry_if(call),
                                    before_sleep=self._counted(call))(once)
