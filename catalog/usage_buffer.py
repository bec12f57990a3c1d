"""A replica's lossless usage buffer: records wait in memory (then in a spool file) until
the catalog acknowledges them.

A Serve replica answers a request, builds its :class:`~catalog.schemas.UsageCreate` and
calls :meth:`UsageBuffer.add`, which only appends to an in-memory queue: the request
path never waits on the catalog. Background tasks of the replica's event loop then

- **send** the queue in batches: a batch leaves when ``batch_size`` records wait, or
  when the oldest has waited ``flush_interval_s``; it is one ``await
  catalog.record_usage(batch)`` (over the actor port, one actor call, which itself
  retries while the actor restarts: :data:`catalog.actor.RESTART_BACKOFF`), bounded
  by ``call_timeout_s``; at most ``max_in_flight`` batches are out at once;
- **retry**: a batch that fails (actor restarting, database down, time out) goes back
  to the front of the queue, and the next batch waits a capped exponential backoff
  with full jitter (``backoff``). Every record carries its id from :meth:`add` on, and
  the store skips ids it already holds, so a batch that committed but whose answer was
  lost is written once when it is sent again;
- **spool**: records that would stay in memory too long go to a spool file under the
  storage root (``<root>/spool/usage/usage-<host>-<pid>-<random>.jsonl``, one JSON
  record a line, one file per spill, written whole through
  :func:`catalog.storage.write_bytes`, so local folders, a shared filesystem and
  ``s3://`` all work): the oldest records once more than ``max_buffered`` wait (down
  to half of it), and any record that has waited ``spool_after_s``;
- **journal** (when given a :class:`~catalog.usage_journal.UsageJournal`): :meth:`add`
  first appends the record to the replica's local journal file (flushed to the OS, no
  ``fsync``), and the record is settled there once acknowledged, spooled or refused;
- **replay** spool files: this buffer's own when it spills them, and at
  :meth:`start` every file already in the spool folder (a dead replica's, or one left
  by :meth:`close`); and journal segments of dead processes on this node, at
  :meth:`start` and every ``journal_scan_s``. A file is sent in batches like the queue
  and deleted only once every record in it is acknowledged; after a failure, replay
  resumes when a batch of this buffer is acknowledged again (the catalog answers) or
  after the backoff. Two buffers replaying one file write each record once (the ids
  again).

Guarantees:

- While this process lives, every record :meth:`add` accepted is written exactly once
  (unless the catalog refuses it, below), however long the catalog is away: the
  memory holds it, then a spool file; retries and replays repeat its id, never its row.
- With a journal, a replica process that dies (killed, out of memory) loses nothing it
  added: every record is on the node's disk before :meth:`add` returns, and the next
  buffer started on that node (the replica's replacement, or any other buffer's next
  journal scan) replays it under its id. A lost node or disk loses its journal: then
  the bound below applies.
- Without a journal, what a replica process that dies (killed, out of memory, node
  lost) loses: the records neither acknowledged nor spooled, i.e. those in memory. In time, only
  records added in the last ``spool_after_s + call_timeout_s`` seconds, plus one tick
  of the spool check (``min(1 s, spool_after_s / 4)``) and one spool write: a record
  waits at most ``spool_after_s`` in the queue and ``call_timeout_s`` in a call before
  it is spooled (21 s with the defaults). In number, about ``max_buffered`` +
  ``max_in_flight`` x ``batch_size`` records (a burst added between two turns of the
  event loop exceeds it until the next spill). With the catalog answering, that is the
  records of about the last ``flush_interval_s`` plus one call. Spooled records are
  written by the next buffer that :meth:`start`-s over the same spool folder (shared
  storage reaches them from any node; a local folder, from the same machine).
- :meth:`close` (a replica shutting down) sends what it can within its deadline and
  spools the rest, so a clean shutdown loses nothing while the storage root accepts
  writes.
- A record the catalog refuses (invalid for the database, e.g. a value too long for
  its column) is not retried forever: a refused batch is halved until the refused
  records are alone; those are dropped, logged by id and counted (``rejected``).
- If the spool cannot be written either (storage down too), records stay in memory
  and the spill is tried again each tick: memory, not the record, is what gives.

Logs name counts, ids and error classes, never a record's contents (user ids, tokens).
Spilling and replaying live in :mod:`catalog.usage_spool` (a mixin of :class:`UsageBuffer`).

Usage (in a Serve replica)::

    buffer = UsageBuffer(AsyncCatalog())
    buffer.start()                       # in the replica's event loop
    buffer.add(s.UsageCreate(model="m", prompt_tokens=3, completion_tokens=9))
    ...
    await buffer.close()                 # on shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import pydantic

from catalog import schemas as s
from catalog.errors import Conflict, InvalidArgument, NotFound
from catalog.port import AsyncCatalogPort
from catalog.retry import Backoff
from catalog.usage_journal import UsageJournal
from catalog.usage_spool import Entry, UsageSpool, default_spool, wait_event

log = logging.getLogger(__name__)

#: Waits between failed catalog calls: full-jitter backoff from 0.1 s, capped at 5 s.
#: Only the waits are used (the buffer never gives up; it spools).
SEND_BACKOFF = Backoff(initial_s=0.1, max_delay_s=5.0)

#: Errors that mean "the catalog answered and refuses these records": retrying the same
#: records cannot succeed. The store maps the database's own refusals (a value it cannot
#: hold, a constraint) to these (:meth:`catalog.store.CatalogStore.session`). Everything
#: else (actor restarting, database unavailable, time-outs, unknown errors) is retried.
REFUSED: tuple[type[BaseException], ...] = (
    InvalidArgument, Conflict, NotFound, pydantic.ValidationError,
)


def _refused(exc: BaseException) -> bool:
    # An actor's error arrives as RayTaskError: usually an instance of its cause's class
    # too, else carrying it as ``cause``.
    return isinstance(exc, REFUSED) or isinstance(getattr(exc, "cause", None), REFUSED)


def _new_usage_id() -> str:
    return f"use_{uuid.uuid4().hex}"  # catalog.tables.new_id's form for usage rows


class UsageBuffer(UsageSpool):
    """Keeps usage records until the catalog acknowledges them; see the module docstring
    for the guarantees.

    Args:
        catalog: the port records are written through (``await catalog.record_usage``):
            :class:`catalog.actor.AsyncCatalog` in a replica.
        batch_size: most records in one catalog call; a full batch is sent at once.
        flush_interval_s: longest a record waits for its batch to fill, seconds.
        max_buffered: records kept in memory; past it the oldest are spooled (down to
            half of it).
        spool: the spool folder (a local path or an object-store URI); default
            :func:`catalog.usage_spool.default_spool` (read when the buffer is made).
        spool_after_s: a record still unacknowledged after this many seconds in the
            queue is spooled (the bound on what a dying process loses, in time).
        call_timeout_s: longest one catalog call may take before its batch counts as
            failed and is retried, seconds.
        max_in_flight: batches awaiting the catalog at once.
        backoff: waits between failed calls (:data:`SEND_BACKOFF`; only its waits).
        journal: the replica's local journal (:class:`~catalog.usage_journal.UsageJournal`);
            None keeps records in memory only (see the guarantees).
        journal_scan_s: how often the folder of ``journal`` is scanned for dead
            processes' segments, seconds (also once at :meth:`start`).

    Raises:
        ValueError: a size, count or time that is not positive.
    """

    def __init__(
        self, catalog: AsyncCatalogPort, *, batch_size: int = 512,
        flush_interval_s: float = 0.05, max_buffered: int = 20_000,
        spool: str | None = None, spool_after_s: float = 10.0,
        call_timeout_s: float = 10.0, max_in_flight: int = 2,
        backoff: Backoff = SEND_BACKOFF, journal: UsageJournal | None = None,
        journal_scan_s: float = 10.0,
    ):
        if min(batch_size, max_buffered, max_in_flight) < 1:
            raise ValueError("batch_size, max_buffered and max_in_flight must be >= 1")
        if min(flush_interval_s, spool_after_s, call_timeout_s, journal_scan_s) <= 0:
            raise ValueError("flush_interval_s, spool_after_s, call_timeout_s and "
                             "journal_scan_s must be > 0")
        self.catalog = catalog
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.spool = spool or default_spool()
        self.spool_after_s = spool_after_s
        self.call_timeout_s = call_timeout_s
        self.max_in_flight = max_in_flight
        self.backoff = backoff
        self.journal = journal
        self.journal_scan_s = journal_scan_s
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
        self._file_prefix = f"usage-{host}-{os.getpid()}"

        self._queue: deque[Entry] = deque()
        self._files: deque[str] = deque()  # spool files to replay, oldest first
        self._replay_done: dict[str, int] = {}  # file -> records already acknowledged
        self._counts = dict.fromkeys(
            ("acknowledged", "replayed", "spooled", "failures", "rejected", "spool_failures",
             "calls", "journaled", "journal_failures", "orphans_replayed"), 0)
        self._in_flight = 0
        self._spooling = 0
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        self._flushing = 0
        self._closing = False
        self._scanned = False
        self._orphans_scanned = journal is None

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._sends: set[asyncio.Task[Any]] = set()
        self._new_events()

    def _new_events(self) -> None:
        # made again by each start(): an event belongs to the loop that first waits on it
        self._wake = asyncio.Event()  # the sender: records, a free slot, a flush
        self._spill_wake = asyncio.Event()  # the keeper: over max_buffered, a failure
        self._files_wake = asyncio.Event()  # the replayer: a new spool file
        self._progress = asyncio.Event()  # flush(): anything acknowledged or spooled
        self._healthy = asyncio.Event()  # the replayer: the catalog answered
        self._healthy.set()  # until a call says otherwise
        self._slots = asyncio.Semaphore(self.max_in_flight)

    # ------------------------------------------------------------------ the request path

    def add(self, record: s.UsageCreate) -> None:
        """Queue one record for the catalog: O(1), never blocks, never raises.

        Sets the record's ``id`` (its idempotency key) and ``created_at`` (now, UTC)
        when they are missing, on the record itself, then appends it to the journal
        (when there is one) before queueing it: once this returns, a killed process
        loses nothing. Safe to call from any thread; a record added before :meth:`start`
        (or after :meth:`close`) waits for the next :meth:`start`.
        """
        try:
            if record.id is None:
                record.id = _new_usage_id()
            if record.created_at is None:
                record.created_at = datetime.now(UTC)
            if self.journal is not None:
                try:
                    self.journal.append(record)
                    self._counts["journaled"] += 1
                except OSError as exc:  # disk full, folder gone: memory still holds it
                    self._counts["journal_failures"] += 1
                    log.error("usage record %s not journaled (%s)", record.id,
                              type(exc).__name__)
            self._queue.append((time.monotonic(), record))
            n = len(self._queue)
            if n == 1 or n == self.batch_size:
                self._notify(self._wake)
            if n > self.max_buffered:
                self._notify(self._spill_wake)
        except Exception as exc:  # the request path must never fail on accounting
            log.error("usage record not queued (%s)", type(exc).__name__)

    def _notify(self, event: asyncio.Event) -> None:
        loop = self._loop
        if loop is None or event.is_set():
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(event.set)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background tasks in the running event loop (idempotent while
        running): sending, spooling, and replaying spool files, beginning with every
        file already in the spool folder.

        Raises:
            RuntimeError: no running event loop.
        """
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._new_events()
        self._closing = False
        self._scanned = False
        self._orphans_scanned = self.journal is None
        if self._queue:
            self._wake.set()
        self._tasks = [
            self._loop.create_task(self._sender(), name="usage-buffer-send"),
            self._loop.create_task(self._keeper(), name="usage-buffer-spool"),
            self._loop.create_task(self._replayer(), name="usage-buffer-replay"),
        ]

    def _idle(self) -> bool:
        return (not self._queue and self._in_flight == 0 and self._spooling == 0
                and not self._files and self._scanned and self._orphans_scanned)

    async def flush(self, timeout_s: float = 60.0) -> int:
        """Send every queued record now (partial batches too) and wait until everything
        this buffer holds, in memory and in the spool files it knows, is acknowledged.

        Returns:
            Records acknowledged while it waited (replayed ones included).

        Raises:
            RuntimeError: :meth:`start` was not called.
            TimeoutError: not everything was acknowledged within ``timeout_s`` seconds
                (the records stay queued or spooled; nothing is lost).
        """
        if not self._tasks:
            raise RuntimeError("UsageBuffer.start() was not called")
        before = self._counts["acknowledged"]
        deadline = time.monotonic() + timeout_s
        self._flushing += 1
        try:
            self._wake.set()
            while not self._idle():
                if any(t.done() for t in self._tasks):
                    raise RuntimeError("the usage buffer is stopped")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"usage not all acknowledged after {timeout_s}s: {self.stats()}")
                self._progress.clear()
                await wait_event(self._progress, min(remaining, 0.5))
        finally:
            self._flushing -= 1
        return self._counts["acknowledged"] - before

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush for at most ``timeout_s`` seconds, then stop the tasks and spool what
        is still in memory (one file). Spool files not yet replayed stay for the next
        :meth:`start` of any buffer over the same folder. Never raises for the catalog;
        if the spool cannot be written, logs how many records are lost.
        """
        if not self._tasks:
            if self._queue:
                await self._spill(len(self._queue))
            return
        self._closing = True
        try:
            await self.flush(timeout_s)
        except (TimeoutError, RuntimeError) as exc:
            log.warning("usage buffer closing before everything was acknowledged: %s", exc)
        for task in [*self._tasks, *self._sends]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sends, return_exceptions=True)
        self._tasks, self._sends = [], set()
        if self._queue:
            await self._spill(len(self._queue))
        if self._queue:
            log.error("usage buffer closed with %d records neither acknowledged nor spooled%s",
                      len(self._queue), "" if self.journal is None else
                      " (they stay in the journal for the next buffer on this node)")
        if self.journal is not None:
            self.journal.close()

    def stats(self) -> dict[str, int]:
        """Record counts:

        - ``buffered``: in memory, waiting to be sent;
        - ``in_flight``: in catalog calls not yet answered;
        - ``acknowledged``: acknowledged by the catalog (sent from memory or replayed);
        - ``replayed``: of those, sent from spool files (a dead replica's included);
        - ``spooled``: written to spool files by this buffer;
        - ``spooling``: being written to a spool file now;
        - ``spool_files``: spool files waiting to be replayed;
        - ``rejected``: refused by the catalog and dropped (see the module docstring);
        - ``failures``: failed catalog calls (sending or replaying);
        - ``spool_failures``: failed spool writes, reads or deletes;
        - ``calls``: catalog calls that were acknowledged;
        - ``journaled``: appended to the journal; ``journal_failures``: appends that
          failed (those records were kept in memory only);
        - ``orphans_replayed``: dead processes' journal segments replayed and deleted.
        """
        return {"buffered": len(self._queue), "in_flight": self._in_flight,
                "spooling": self._spooling, "spool_files": len(self._files), **self._counts}

    # ------------------------------------------------------------------ sending

    async def _sender(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                self._wake.clear()
                await self._wake.wait()
            wait = self._retry_at - time.monotonic()
            if wait > 0:  # backing off after a failure; the keeper spools meanwhile
                await asyncio.sleep(wait)
                continue
            while len(queue) < self.batch_size and not (self._flushing or self._closing):
                wait = queue[0][0] + self.flush_interval_s - time.monotonic()
                if wait <= 0:
                    break
                self._wake.clear()
                if not await wait_event(self._wake, wait):
                    break
                if not queue:
                    break
            await self._slots.acquire()
            if self._retry_at > time.monotonic():  # a batch failed while we waited
                self._slots.release()
                continue
            batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
            if not batch:  # spooled while waiting for a slot
                self._slots.release()
                continue
            self._in_flight += len(batch)
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, batch: list[Entry]) -> None:
        parts = [batch]
        try:
            await self._deliver(parts, "acknowledged")
        except asyncio.CancelledError:
            self._put_back(parts)
            raise
        except Exception as exc:
            self._counts["failures"] += 1
            self._failures_in_a_row += 1
            delay = self.backoff.delay(self._failures_in_a_row - 1)
            self._retry_at = time.monotonic() + delay
            self._healthy.clear()
            left = self._put_back(parts)
            log.warning("usage batch not acknowledged (%s); %d records kept, retry in %.2f s "
                        "(%d failures in a row)", type(exc).__name__, left, delay,
                        self._failures_in_a_row)
            self._spill_wake.set()
        else:
            self._failures_in_a_row = 0
            self._healthy.set()
        finally:
            self._in_flight -= len(batch)
            self._slots.release()
            self._wake.set()
            self._progress.set()

    async def _deliver(self, parts: list[list[Entry]], counter: str) -> None:
        """Write ``parts`` (a stack: the last is sent first), popping each once
        acknowledged; a refused part is halved until its refused records are alone,
        and those are dropped. Raises the first other error, leaving what is not
        acknowledged in ``parts``."""
        while parts:
            part = parts[-1]
            records = [record for _, record in part]
            try:
                async with asyncio.timeout(self.call_timeout_s):
                    await self.catalog.record_usage(records)
            except Exception as exc:
                if not _refused(exc):
                    raise
                parts.pop()
                if len(part) > 1:
                    mid = len(part) // 2
                    parts += [part[mid:], part[:mid]]
                else:
                    self._counts["rejected"] += 1
                    self._settle(records)
                    log.error("usage record %s refused by the catalog (%s); dropped",
                              records[0].id, type(exc).__name__)
                continue
            parts.pop()
            self._settle(records)
            self._counts["calls"] += 1
            self._counts["acknowledged"] += len(part)
            if counter != "acknowledged":
                self._counts[counter] += len(part)
            self._progress.set()

    def _settle(self, records: list[s.UsageCreate]) -> None:
        if self.journal is not None:
            self.journal.settle(record.id for record in records)

    def _put_back(self, parts: list[list[Entry]]) -> int:
        """Return undelivered entries to the front of the queue, oldest first."""
        entries = [entry for part in reversed(parts) for entry in part]
        self._queue.extendleft(reversed(entries))
        parts.clear()
        return len(entries)

__all__ = ["REFUSED", "SEND_BACKOFF", "UsageBuffer"]
