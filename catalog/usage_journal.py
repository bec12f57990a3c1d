"""A replica's local write-ahead journal of usage records: what it answered is on disk
before the answer completes, so a killed replica loses no billing.

:class:`catalog.usage_buffer.UsageBuffer` keeps records in memory until the catalog
acknowledges them; a process killed in that window (SIGKILL, out of memory) took them
with it. With a journal, :meth:`UsageJournal.append` first writes each record as one
JSON line to the replica's current *segment* file and flushes it to the operating system
(``write(2)``, no ``fsync``): the record survives the process, not the disk or the
machine. Records are *settled* once the catalog acknowledged them, a spool file holds
them, or the catalog refused them (:meth:`UsageJournal.settle`); a segment whose every
record is settled is deleted.

Files: ``<folder>/usage-<pid>-<random>.jsonl``, one folder per node (default
:func:`default_journal_folder`: ``$GARDEN_HOME/journal/usage/<host>``, or
``$GARDEN_USAGE_JOURNAL``). A writer holds an exclusive ``flock`` on each segment it
has open; the kernel drops it when the process dies, however it dies. So a segment whose
lock can be taken belongs to a dead process: :meth:`UsageJournal.claim_orphan` takes it
(a second claimant fails to lock it, so each orphan is replayed by one buffer at a time)
and the buffer sends its records under their own ids, which the store writes once
(:meth:`catalog.store.CatalogStore.record_usage` skips ids it holds), then deletes it.

Cost on the request path: one ``model_dump_json`` and one ``write`` of about 400 bytes
(``bench/accounting_overhead.py`` measures the whole).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
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
    appended: int = 0
    unsettled: int = 0


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
    buffer's event loop. Blocking file I/O: :meth:`append` writes a line (microseconds);
    :meth:`claim_orphan` reads a whole segment and belongs in a thread.

    Args:
        folder: the node's journal folder (created when missing); default
            :func:`default_journal_folder`.
        segment_records: records per segment before a new one is opened.

    Raises:
        OSError: the folder cannot be created.
    """

    def __init__(self, folder: str | Path | None = None, *,
                 segment_records: int = SEGMENT_RECORDS):
        if segment_records < 1:
            raise ValueError("segment_records must be >= 1")
        self.folder = Path(folder) if folder is not None else default_journal_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_records = segment_records
        self._lock = threading.Lock()
        self._current: _Segment | None = None
        self._segments: dict[Path, _Segment] = {}  # open, not yet wholly settled
        self._segment_of: dict[str, _Segment] = {}  # unsettled record id -> its segment

    # ------------------------------------------------------------------ writing

    def append(self, record: s.UsageCreate) -> None:
        """Write ``record`` (its ``id`` set) as one line of the current segment and flush
        it to the OS. A record whose id is already unsettled here is not written twice.

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
            if segment is None or segment.appended >= self.segment_records:
                segment = self._open_segment()
            segment.file.write(line)
            segment.file.flush()
            segment.appended += 1
            segment.unsettled += 1
            self._segment_of[record.id] = segment

    def _open_segment(self) -> _Segment:
        path = self.folder / f"usage-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        file = path.open("xb")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise
        segment = _Segment(path, file)
        self._segments[path] = segment
        self._current = segment
        return segment

    def settle(self, ids: Iterable[str | None]) -> None:
        """Mark records as no longer needing the journal (acknowledged by the catalog,
        written to a spool file, or refused by it). Ids this journal does not hold are
        ignored. Deletes each segment once every record in it is settled."""
        with self._lock:
            for record_id in ids:
                segment = self._segment_of.pop(record_id, None) if record_id else None
                if segment is None:
                    continue
                segment.unsettled -= 1
                if segment.unsettled == 0:
                    self._drop(segment)

    def _drop(self, segment: _Segment) -> None:
        """Delete a wholly settled segment (the current one too: the next append opens a
        new file, so an idle replica leaves no journal behind)."""
        with contextlib.suppress(OSError):
            segment.path.unlink()
        segment.file.close()
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
        replay; wholly settled segments are gone already."""
        with self._lock:
            for segment in list(self._segments.values()):
                segment.file.close()
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
            records, unreadable = [], 0
            for line in file.read().splitlines():
                if not line.strip():
                    continue
                try:
                    records.append(s.UsageCreate.model_validate_json(line))
                except pydantic.ValidationError:
                    unreadable += 1  # e.g. a line cut short by a full disk
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


__all__ = ["JOURNAL_ENV", "SEGMENT_FILE", "Orphan", "UsageJournal", "default_journal_folder"]
