"""The spool of a :class:`~catalog.usage_buffer.UsageBuffer`: spilling queued usage records
to spool files under the storage root, and replaying spool files and dead processes'
journal segments to the catalog (then deleting them).

:class:`UsageSpool` is a mixin of ``UsageBuffer``: its tasks (``_keeper`` spills,
``_replayer`` replays) share the buffer's queue, counts and events, declared below, and
send through the buffer's ``_deliver``. A spool file is
``<spool>/usage-<host>-<pid>-<random>.jsonl``, one JSON record a line, written whole
through :func:`catalog.storage.write_bytes` (local folders, a shared filesystem and
``s3://`` alike), and deleted only once every record in it is acknowledged. The
guarantees are the buffer's (its module docstring).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic

from catalog import schemas as s
from catalog import storage
from catalog.retry import Backoff
from catalog.usage_journal import Orphan, UsageJournal

#: the buffer's logger: the spool's lines are the usage buffer's to whoever filters logs
log = logging.getLogger("catalog.usage_buffer")

#: Name of the spool files this buffer writes and replays (others in the folder are left).
SPOOL_FILE = re.compile(r"usage-.+\.jsonl")

#: A queued record and the ``time.monotonic()`` at which it was added.
Entry = tuple[float, s.UsageCreate]


def default_spool() -> str:
    """The spool folder under the storage root: ``<root>/spool/usage``."""
    return storage.location("spool", "usage")


class _SpoolUnavailable(Exception):
    """Reading or deleting a spool file failed (the storage, not the catalog)."""


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait at most ``timeout_s`` seconds for ``event``; return whether it is set.

    Uses ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` drops
    a cancellation that arrives as the awaited event fires (CPython gh-86296, fixed by
    3.12's rewrite on ``asyncio.timeout``), and a background loop that drops the one
    cancellation ``close()`` (or an event loop's shutdown) sends never ends.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


def _added_before(queue: deque[Entry], when: float) -> int:
    """How many entries at the front of ``queue`` were added before ``when``."""
    return sum(1 for _ in itertools.takewhile(lambda entry: entry[0] < when, queue))


class UsageSpool:
    """Spilling and replaying, mixed into :class:`~catalog.usage_buffer.UsageBuffer`,
    which sets the attributes below (its ``__init__`` and ``start``)."""

    spool: str
    spool_after_s: float
    max_buffered: int
    batch_size: int
    backoff: Backoff
    journal: UsageJournal | None
    journal_scan_s: float
    _file_prefix: str
    _queue: deque[Entry]
    _files: deque[str]  # spool files to replay, oldest first
    _replay_done: dict[str, int]  # file -> records already acknowledged
    _counts: dict[str, int]
    _spooling: int
    _scanned: bool
    _orphans_scanned: bool
    _tasks: list[asyncio.Task[Any]]
    _spill_wake: asyncio.Event
    _files_wake: asyncio.Event
    _progress: asyncio.Event
    _healthy: asyncio.Event
    #: the buffer's catalog calls: send ``parts`` counting them under a name; settle
    #: records in the journal
    _deliver: Callable[[list[list[Entry]], str], Awaitable[None]]
    _settle: Callable[[list[s.UsageCreate]], None]

    # ------------------------------------------------------------------ spooling

    async def _keeper(self) -> None:
        tick = min(1.0, self.spool_after_s / 4)
        while True:
            await wait_event(self._spill_wake, tick)
            self._spill_wake.clear()
            count = 0
            if len(self._queue) > self.max_buffered:
                count = len(self._queue) - self.max_buffered // 2
            count = max(count, _added_before(self._queue, time.monotonic() - self.spool_after_s))
            if count:
                await self._spill(count)

    async def _spill(self, count: int) -> None:
        """Move the ``count`` oldest queued records to a new spool file (in a thread);
        on failure put them back."""
        entries = [self._queue.popleft() for _ in range(min(count, len(self._queue)))]
        if not entries:
            return
        location = storage.join(self.spool, f"{self._file_prefix}-{uuid.uuid4().hex[:8]}.jsonl")
        data = b"".join(record.model_dump_json().encode() + b"\n" for _, record in entries)
        self._spooling += len(entries)
        try:
            await asyncio.to_thread(storage.write_bytes, location, data)
        except asyncio.CancelledError:
            self._queue.extendleft(reversed(entries))  # the file may exist too: ids dedupe
            raise
        except Exception as exc:
            self._queue.extendleft(reversed(entries))
            self._counts["spool_failures"] += 1
            log.error("could not spool %d usage records to %s (%s); kept in memory",
                      len(entries), self.spool, type(exc).__name__)
        else:
            self._counts["spooled"] += len(entries)
            self._settle([record for _, record in entries])
            self._files.append(location)
            if self._tasks:
                self._files_wake.set()
            log.warning("spooled %d unacknowledged usage records to %s", len(entries),
                        location)
        finally:
            self._spooling -= len(entries)
            if self._tasks:
                self._progress.set()

    # ------------------------------------------------------------------ replay

    async def _replayer(self) -> None:
        try:
            found = await asyncio.to_thread(storage.list_files, self.spool)
        except Exception as exc:
            log.error("could not list the usage spool %s (%s)", self.spool, type(exc).__name__)
            found = []
        known = set(self._files)
        self._files.extend(f for f in found
                           if SPOOL_FILE.fullmatch(storage.name_of(f)) and f not in known)
        self._scanned = True
        self._progress.set()
        failures = 0
        next_scan = time.monotonic()  # dead processes' journal segments: now, then often
        while True:
            if self.journal is not None and time.monotonic() >= next_scan:
                try:
                    await self._replay_orphans(self.journal)
                except Exception as exc:
                    failures += 1
                    next_scan = time.monotonic() + self.backoff.delay(failures - 1)
                    log.warning("usage journal replay paused (%s)", type(exc).__name__)
                    self._healthy.clear()
                else:
                    next_scan = time.monotonic() + self.journal_scan_s
                    self._orphans_scanned = True
                    self._progress.set()
            if not self._files:
                self._files_wake.clear()
                if self.journal is None:
                    await self._files_wake.wait()
                else:
                    await wait_event(self._files_wake, max(0.0, next_scan - time.monotonic()))
                continue
            location = self._files[0]
            try:
                await self._replay(location)
            except _SpoolUnavailable as exc:
                self._counts["spool_failures"] += 1
                delay = self.backoff.delay(failures)
                failures += 1
                log.warning("usage spool replay of %s paused: storage error (%s); again in "
                            "%.2f s", storage.name_of(location), exc, delay)
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                self._counts["failures"] += 1
                delay = self.backoff.delay(failures)
                failures += 1
                log.warning("usage spool replay of %s paused (%s); again when the catalog "
                            "answers or in %.2f s", storage.name_of(location),
                            type(exc).__name__, delay)
                self._healthy.clear()
                await wait_event(self._healthy, delay)
                continue
            failures = 0
            self._files.popleft()
            self._replay_done.pop(location, None)
            self._progress.set()

    async def _replay_orphans(self, journal: UsageJournal) -> None:
        """Send the records of every journal segment of a dead process on this node, then
        delete the segment. Raises the first catalog error (the segment is kept, unlocked,
        for the next scan; its records already sent are skipped by id then)."""
        for path in await asyncio.to_thread(journal.orphans):
            orphan: Orphan | None = await asyncio.to_thread(journal.claim_orphan, path)
            if orphan is None:  # its writer lives, or another buffer replays it
                continue
            try:
                for start in range(0, len(orphan.records), self.batch_size):
                    chunk = orphan.records[start:start + self.batch_size]
                    await self._deliver([[(0.0, record) for record in chunk]], "replayed")
            except BaseException:
                journal.release(orphan, delete=False)
                raise
            if orphan.unreadable:  # a line cut short: its request was never answered
                log.error("usage journal segment %s: %d unreadable lines dropped",
                          path.name, orphan.unreadable)
            journal.release(orphan, delete=True)
            self._counts["orphans_replayed"] += 1
            log.warning("replayed %d usage records of a dead process's journal segment %s",
                        len(orphan.records), path.name)

    async def _replay(self, location: str) -> None:
        """Send one spool file's records (from where an earlier attempt stopped), then
        delete the file. A file that is gone was replayed by another buffer."""
        try:
            data = await asyncio.to_thread(storage.read_bytes, location)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise _SpoolUnavailable(type(exc).__name__) from exc
        records, unreadable = [], 0
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                records.append(s.UsageCreate.model_validate_json(line))
            except pydantic.ValidationError:
                unreadable += 1
        done = self._replay_done.get(location, 0)
        for start in range(done, len(records), self.batch_size):
            chunk = records[start:start + self.batch_size]
            await self._deliver([[(0.0, record) for record in chunk]], "replayed")
            self._replay_done[location] = start + len(chunk)
        if unreadable:
            log.error("usage spool file %s: %d unreadable lines; the file is kept",
                      location, unreadable)
            return
        try:
            await asyncio.to_thread(storage.delete, location)
        except Exception as exc:
            raise _SpoolUnavailable(type(exc).__name__) from exc


__all__ = ["SPOOL_FILE", "Entry", "UsageSpool", "default_spool", "wait_event"]
