"""A replica's local write-ahead journal of usage records: what it answered is on disk
before the answer completes, so a killed replica loses no billing.

:class:`catalog.usage_buffer.UsageBuffer` keeps records in memory until the catalog
acknowledges them; a process killed in that window (SIGKILL, out of memory) took them
with it. With a journal, :meth:`UsageJournal.append` first writes each record as one
JSON line into the replica's current *segment* file, mapped into memory (``mmap``,
``MAP_SHARED``): the bytes are in the operating system's page cache as soon as they are
copied (no ``fsync``): the record survives the process, not the disk or the machine.
Records are *settled* once the catalog acknowledged them, a spool file holds them, or
the catalog refused them (:meth:`UsageJournal.settle`); a full segment whose every
record is settled is deleted, and the current one, once all its records are settled, is
zeroed and written again from its start (an idle replica keeps one segment of zeros).

Why a mapping and not ``write(2)``: CPython releases the GIL around a file write, and
takes it back only when another busy thread yields it, up to the switch interval (5 ms)
later. A replica has such threads (Ray Serve's own event loop, vLLM's), and
``bench/accounting_overhead.py --peer no-journal`` measured 0.5 to 1.7 ms added at p50
with a ``write``-and-``flush`` journal; a copy into a mapping makes no system call and
keeps the GIL. A segment file is created at its full size (``ftruncate``: sparse until
written), so its tail is zero bytes, which readers skip.

Files: ``<folder>/usage-<pid>-<random>.jsonl``, one folder per node (default
:func:`default_journal_folder`: ``$GARDEN_HOME/journal/usage/<host>``, or
``$GARDEN_USAGE_JOURNAL``). A writer holds an exclusive ``flock`` on each segment it
has open; the kernel drops it when the process dies, however it dies. So a segment whose
lock can be taken belongs to a dead process: :meth:`UsageJournal.claim_orphan` takes it
(a second claimant fails to lock it, so each orphan is replayed by one buffer at a time)
and the buffer sends its records under their own ids, which the store writes once
(:meth:`catalog.store.CatalogStore.record_usage` skips ids it holds), then deletes it.

Cost on the request path: one ``model_dump_json`` and a copy of about 400 bytes into the
mapping (``bench/accounting_overhead.py`` measures the whole); a new segment (every
:data:`SEGMENT_BYTES`) costs an ``open``, ``flock``, ``ftruncate`` and ``mmap``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pydantic

from catalog import schemas as s
from catalog.config import garden_home

log = logging.getLogger(__name__)

#: Environment variable naming the journal folder of this node.
JOURNAL_ENV = "GARDEN_USAGE_JOURNAL"
#: Name of the segment files (others in the folder are left alone).
SEGMENT_FILE = re.compile(r"usage-\d+-[0-9a-f]+\.jsonl")
#: Records a segment takes before the next append opens a new one.
SEGMENT_RECORDS = 4096
#: A segment's size, bytes: room for :data:`SEGMENT_RECORDS` records of up to 1 KiB (a
#: chat's record is about 450 bytes). A longer record gets a segment of its own size.
SEGMENT_BYTES = SEGMENT_RECORDS * 1024


def default_journal_folder(home: Path | None = None) -> Path:
    """``$GARDEN_USAGE_JOURNAL``, else ``<home>/journal/usage/<host name>``, ``home``
    being the storage root ``$GARDEN_HOME`` unless given. Per cluster (a journal is
    replayed into the catalog of its own storage root) and per host (the host name keeps
    machines apart when ``GARDEN_HOME`` is a shared filesystem)."""
    if os.environ.get(JOURNAL_ENV) and home is None:
        return Path(os.environ[JOURNAL_ENV])
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
    return (home or garden_home()) / "journal" / "usage" / host


@dataclass
class _Segment:
    path: Path
    file: IO[bytes]
    map: mmap.mmap
    appended: int = 0
    unsettled: int = 0
    end: int = 0  # bytes written

    def fits(self, line: bytes, records: int) -> bool:
        return self.appended < records and self.end + len(line) <= len(self.map)

    def write(self, line: bytes) -> None:
        self.map[self.end:self.end + len(line)] = line
        self.end += len(line)
        self.appended += 1
        self.unsettled += 1

    def reset(self) -> None:
        """Zero what was written (every record settled) and start again at byte 0."""
        self.map[:self.end] = bytes(self.end)
        self.end = self.appended = 0

    def close(self) -> None:
        self.map.close()
        self.file.close()


def read_records(data: bytes) -> tuple[list[s.UsageCreate], int]:
    """The records of a segment's bytes, and how many non-empty lines were not one (a
    line cut short when its writer died mid-copy); zero bytes (the unwritten tail, zeroed
    records) are skipped."""
    records, unreadable = [], 0
    for line in data.split(b"\n"):
        line = line.strip(b"\0").strip()
        if not line:
            continue
        try:
            records.append(s.UsageCreate.model_validate_json(line))
        except pydantic.ValidationError:
            unreadable += 1
    return records, unreadable


@dataclass
class Orphan:
    """A dead writer's segment, locked by this process until :meth:`UsageJournal.release`:
    its readable ``records`` and how many lines could not be read (``unreadable``)."""

    path: Path
    records: list[s.UsageCreate]
    unreadable: int = 0
    _file: IO[bytes] | None = field(default=None, repr=False)


class UsageJournal:
    """Appends usage records to locked local segment files until they are settled.

    Thread-safe: :meth:`append` may run on any thread (the request path), the rest on the
    buffer's event loop. :meth:`append` copies a line into the mapped segment (a few
    microseconds, no system call but when a new segment opens); :meth:`claim_orphan`
    reads a whole segment and belongs in a thread.

    Args:
        folder: the node's journal folder (created when missing); default
            :func:`default_journal_folder`.
        segment_records: records per segment before a new one is opened.
        segment_bytes: a segment file's size in bytes.

    Raises:
        OSError: the folder cannot be created.
    """

    def __init__(self, folder: str | Path | None = None, *,
                 segment_records: int = SEGMENT_RECORDS, segment_bytes: int = SEGMENT_BYTES):
        if segment_records < 1 or segment_bytes < 1:
            raise ValueError("segment_records and segment_bytes must be >= 1")
        self.segment_bytes = segment_bytes
        self.folder = Path(folder) if folder is not None else default_journal_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_records = segment_records
        self._lock = threading.Lock()
        self._current: _Segment | None = None
        self._segments: dict[Path, _Segment] = {}  # open, not yet wholly settled
        self._segment_of: dict[str, _Segment] = {}  # unsettled record id -> its segment

    # ------------------------------------------------------------------ writing

    def append(self, record: s.UsageCreate) -> None:
        """Write ``record`` (its ``id`` set) as one line of the current segment (a copy
        into its mapping: in the OS page cache once this returns). A record whose id is
        already unsettled here is not written twice.

        Raises:
            ValueError: the record has no id.
            OSError: the segment could not be written (the caller keeps the record in
                memory; it is then as safe as without a journal).
        """
        if record.id is None:
            raise ValueError("a journaled usage record needs its id")
        line = record.model_dump_json().encode() + b"\n"
        with self._lock:
            if record.id in self._segment_of:
                return
            segment = self._current
            if segment is None or not segment.fits(line, self.segment_records):
                segment = self._open_segment(max(self.segment_bytes, len(line)))
            segment.write(line)
            self._segment_of[record.id] = segment

    def _open_segment(self, size: int) -> _Segment:
        path = self.folder / f"usage-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        file = path.open("x+b")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(file.fileno(), size)
            mapped = mmap.mmap(file.fileno(), size)
        except OSError:
            file.close()
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        segment = _Segment(path, file, mapped)
        self._segments[path] = segment
        self._current = segment
        return segment

    def settle(self, ids: Iterable[str | None]) -> None:
        """Mark records as no longer needing the journal (acknowledged by the catalog,
        written to a spool file, or refused by it). Ids this journal does not hold are
        ignored. Deletes a full segment once every record in it is settled, and zeroes
        the current one for reuse (no file to create on the next request)."""
        with self._lock:
            for record_id in ids:
                segment = self._segment_of.pop(record_id, None) if record_id else None
                if segment is None:
                    continue
                segment.unsettled -= 1
                if segment.unsettled == 0:
                    if segment is self._current:
                        segment.reset()
                    else:
                        self._drop(segment)

    def _drop(self, segment: _Segment) -> None:
        """Delete a wholly settled segment."""
        with contextlib.suppress(OSError):
            segment.path.unlink()
        segment.close()
        self._segments.pop(segment.path, None)
        if self._current is segment:
            self._current = None

    @property
    def unsettled(self) -> int:
        """Records written and not yet settled."""
        return len(self._segment_of)

    def close(self) -> None:
        """Close the segments (idempotent; a later :meth:`append` opens a new one).
        Unsettled records stay on disk, unlocked, for the next buffer on this node to
        replay; wholly settled segments are deleted."""
        with self._lock:
            for segment in list(self._segments.values()):
                if segment.unsettled == 0:
                    self._drop(segment)
                else:
                    segment.close()
            self._segments.clear()
            self._segment_of.clear()
            self._current = None

    # ------------------------------------------------------------------ replaying

    def orphans(self) -> list[Path]:
        """Segment files in the folder that this journal does not have open, oldest
        first (their writers may be alive: :meth:`claim_orphan` tells)."""
        try:
            found = [p for p in self.folder.iterdir() if SEGMENT_FILE.fullmatch(p.name)
                     and p not in self._segments]
        except FileNotFoundError:
            return []

        def mtime(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except FileNotFoundError:
                return 0.0

        return sorted(found, key=mtime)

    def claim_orphan(self, path: Path) -> Orphan | None:
        """Lock the segment ``path`` and read it, if its writer is dead. Returns None
        when the writer still holds it (alive), another buffer is replaying it, or it is
        gone. The lock is held until :meth:`release`.

        Raises:
            OSError: the file exists but cannot be opened or read.
        """
        try:
            file = path.open("rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        try:
            if not path.exists():  # replayed and deleted between our open and lock
                file.close()
                return None
            records, unreadable = read_records(file.read())
        except BaseException:
            file.close()
            raise
        return Orphan(path, records, unreadable, file)

    def release(self, orphan: Orphan, *, delete: bool) -> None:
        """Unlock a claimed segment, deleting it first when ``delete`` (every record of it
        acknowledged)."""
        if delete:
            with contextlib.suppress(FileNotFoundError):
                orphan.path.unlink()
        if orphan._file is not None:
            orphan._file.close()
            orphan._file = None


__all__ = ["JOURNAL_ENV", "SEGMENT_FILE", "Orphan", "UsageJournal", "default_journal_folder",
           "read_records"]
