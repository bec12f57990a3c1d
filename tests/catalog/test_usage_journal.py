"""The usage journal: a record added to a buffer is on disk before ``add`` returns, a
settled segment is deleted (the current one zeroed for reuse), a killed process's
records are replayed once by the next buffer on the node, and a live writer's segment
is left to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog import schemas as s
from catalog.port import AsyncLocalCatalog
from catalog.store import CatalogStore
from catalog.usage_buffer import UsageBuffer
from catalog.usage_journal import UsageJournal, read_records
from tests.catalog.test_usage_buffer import QUICK, records, stored_ids


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("usage-*.jsonl"))


def on_disk(folder: Path) -> list[str]:
    """The ids of the records in the folder's segments, in file order."""
    ids = []
    for f in segments(folder):
        records, unreadable = read_records(f.read_bytes())
        assert unreadable == 0
        ids.extend(r.id for r in records)
    return ids


def test_a_segment_is_deleted_once_every_record_in_it_is_settled(tmp_path):
    journal = UsageJournal(tmp_path, segment_records=3)
    recs = records(5)
    for i, r in enumerate(recs):
        r.id = f"use_{i}"
        journal.append(r)
    journal.append(recs[0])  # an id it holds is not written twice
    assert len(segments(tmp_path)) == 2 and journal.unsettled == 5
    assert sorted(on_disk(tmp_path)) == [f"use_{i}" for i in range(5)]
    journal.settle(["use_0", "use_1", "use_3", "nobody"])
    assert len(segments(tmp_path)) == 2  # each segment still holds an unsettled record
    journal.settle(["use_2"])
    assert len(segments(tmp_path)) == 1  # the full first segment is gone
    current = segments(tmp_path)
    journal.settle(["use_4"])
    # the current segment is zeroed, kept for the next record: no records on disk
    assert segments(tmp_path) == current and on_disk(tmp_path) == []
    assert journal.unsettled == 0
    journal.append(s.UsageCreate(id="use_5", model="m"))
    assert segments(tmp_path) == current and on_disk(tmp_path) == ["use_5"]
    journal.close()  # use_5 is unsettled: its segment stays for the next buffer
    assert on_disk(tmp_path) == ["use_5"]


def test_a_closed_journal_whose_records_are_settled_leaves_no_file(tmp_path):
    journal = UsageJournal(tmp_path, segment_bytes=1024)
    big = s.UsageCreate(id="use_big", model="m", details={"text": "x" * 2000})
    journal.append(s.UsageCreate(id="use_small", model="m"))
    journal.append(big)  # longer than a segment: one of its own size
    assert len(segments(tmp_path)) == 2 and sorted(on_disk(tmp_path)) == [
        "use_big", "use_small"]
    journal.settle(["use_small", "use_big"])
    journal.close()
    assert segments(tmp_path) == []


#: A replica stand-in: a buffer with a journal over a catalog that is down (a real SQLite
#: file taken away), so every record stays in memory; it prints how many it added and
#: waits to be killed. Spooling is pushed out of reach: only the journal can keep them.
WRITER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from catalog import schemas as s
    from catalog.port import AsyncLocalCatalog
    from catalog.retry import Backoff
    from catalog.usage_buffer import UsageBuffer
    from catalog.usage_journal import UsageJournal, read_records
    from tests.catalog.test_usage_buffer import SqliteOutage

    async def main(db, journal_folder, spool, n):
        outage = SqliteOutage(Path(db))
        outage.take_down()
        journal = UsageJournal(journal_folder) if journal_folder != "-" else None
        buf = UsageBuffer(AsyncLocalCatalog(outage.store), spool=spool, journal=journal,
                          spool_after_s=3600, backoff=Backoff(initial_s=0.01, max_delay_s=0.05))
        buf.start()
        for i in range(n):
            buf.add(s.UsageCreate(id=f"use_killed_{i:05d}", model="m", prompt_tokens=i))
        await asyncio.sleep(0.5)  # a few failed sends: the records are in memory
        print(buf.stats()["buffered"] + buf.stats()["in_flight"], flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(*sys.argv[1:4], int(sys.argv[4])))
""")


def run_and_kill_writer(db: Path, journal: Path | None, spool: Path, n: int) -> int:
    """Run :data:`WRITER` until it has added ``n`` records, SIGKILL it; returns how many
    records it held in memory when killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(journal) if journal else "-", str(spool),
         str(n)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        held = int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # the writer took the database away (SqliteOutage.take_down): put it back
    db.rmdir()
    db.with_name(db.name + ".away").rename(db)
    return held


@pytest.mark.parametrize("journaled", [True, False], ids=["journal", "no-journal"])
async def test_a_killed_writers_records_are_replayed_once_by_the_next_buffer(
        tmp_path, journaled):
    db = tmp_path / "catalog.db"
    CatalogStore.open(f"sqlite:///{db}").close()  # migrated, empty
    folder, spool = tmp_path / "journal", tmp_path / "spool"
    held = run_and_kill_writer(db, folder if journaled else None, spool, 300)
    assert held == 300  # none acknowledged, none spooled: all in the dead process's memory
    store = CatalogStore.open(f"sqlite:///{db}")
    nxt = UsageBuffer(AsyncLocalCatalog(store), spool=str(spool), backoff=QUICK,
                      journal=UsageJournal(folder))
    nxt.start()
    await nxt.flush(timeout_s=30)
    await nxt.close()
    ids = stored_ids(store)
    store.close()
    if journaled:
        assert sorted(ids) == [f"use_killed_{i:05d}" for i in range(300)]  # each once
        assert nxt.stats()["orphans_replayed"] == 1 and nxt.stats()["replayed"] == 300
        assert segments(folder) == []
    else:  # the peer: without the journal the same kill loses every record
        assert ids == [] and nxt.stats()["orphans_replayed"] == 0


async def test_a_live_writers_segment_is_not_replayed_by_another_buffer(store, tmp_path):
    folder = tmp_path / "journal"
    live = UsageJournal(folder)
    for r in records(5):
        r.id = f"use_live_{r.prompt_tokens}"
        live.append(r)  # held by a living writer, not yet sent
    other = UsageBuffer(AsyncLocalCatalog(store), spool=str(tmp_path / "spool"),
                        journal=UsageJournal(folder), journal_scan_s=0.05)
    other.start()
    recs = records(3)
    for r in recs:
        other.add(r)
    await other.flush(timeout_s=30)
    await other.close()
    assert sorted(stored_ids(store)) == sorted(r.id for r in recs)  # its own, not live's
    assert other.stats()["orphans_replayed"] == 0 and other.stats()["journaled"] == 3
    assert len(segments(folder)) == 1  # live's, untouched
    live.close()  # its process "dies": the segment is an orphan now
    last = UsageBuffer(AsyncLocalCatalog(store), spool=str(tmp_path / "spool"),
                       journal=UsageJournal(folder))
    last.start()
    await last.flush(timeout_s=30)
    await last.close()
    assert len(stored_ids(store)) == 8 and segments(folder) == []


async def test_journaled_records_acknowledged_or_spooled_leave_no_segment(store, tmp_path):
    folder = tmp_path / "journal"
    buf = UsageBuffer(AsyncLocalCatalog(store), spool=str(tmp_path / "spool"),
                      journal=UsageJournal(folder), batch_size=50, flush_interval_s=0.01)
    buf.start()
    recs = records(200)
    for r in recs:
        buf.add(r)
    # no await yet, so nothing was sent: every record is on disk already
    assert on_disk(folder) == [r.id for r in recs]
    await buf.flush(timeout_s=30)
    assert buf.stats()["journaled"] == 200 and buf.journal.unsettled == 0
    assert on_disk(folder) == []
    await buf.close()
    assert segments(folder) == []
    assert sorted(stored_ids(store)) == sorted(r.id for r in recs)
