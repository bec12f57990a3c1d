"""UsageBuffer against real catalogs: every record acknowledged once, batches by size and
time, a catalog that fails (a SQLite file taken away, a killed actor) never reaches the
request path, and what it cannot send is spooled and replayed exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog import schemas as s
from catalog import storage
from catalog import tables as t
from catalog.port import AsyncLocalCatalog
from catalog.retry import Backoff
from catalog.store import CatalogStore
from catalog.usage_buffer import UsageBuffer

#: Fast retries for tests (the defaults back off up to 5 s).
QUICK = Backoff(initial_s=0.01, max_delay_s=0.05)


def records(n: int, **fields) -> list[s.UsageCreate]:
    return [s.UsageCreate(model="m", prompt_tokens=i, completion_tokens=1, **fields)
            for i in range(n)]


def stored_ids(store: CatalogStore) -> list[str]:
    """Every usage row id in the database (duplicates would show twice)."""
    with store.session() as session:
        return list(session.scalars(select(t.UsageRow.id)))


def row_count(store: CatalogStore) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(t.UsageRow.__table__))


def spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("usage-*.jsonl")) if folder.exists() else []


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


class SqliteOutage:
    """A real SQLite catalog whose database file can be taken away and given back:
    while it is away a folder stands at its path, so every new connection fails
    ("unable to open database file": the store raises Unavailable)."""

    def __init__(self, path: Path):
        self.path = path
        self.store = CatalogStore.open(f"sqlite:///{path}")
        self.aside = path.with_name(path.name + ".away")

    def take_down(self) -> None:
        self.store.engine.dispose()  # closes the pool; WAL checkpointed into the file
        self.path.rename(self.aside)
        self.path.mkdir()

    def bring_up(self) -> None:
        self.path.rmdir()
        self.aside.rename(self.path)
        self.store.engine.dispose()


@pytest.fixture
def outage(tmp_path):
    db = SqliteOutage(tmp_path / "catalog.db")
    yield db
    db.store.close()


async def test_every_record_is_acknowledged_once_in_batches_of_batch_size(store, tmp_path):
    buf = UsageBuffer(AsyncLocalCatalog(store), batch_size=100, flush_interval_s=30.0,
                      spool=str(tmp_path / "spool"))
    buf.start()
    recs = records(1000)
    for r in recs:
        buf.add(r)
    assert all(r.id and r.created_at and r.created_at.tzinfo for r in recs)
    # full batches leave at once: no wait for the 30 s interval, no flush
    await until(lambda: buf.stats()["acknowledged"] == 1000, 20, "1000 acknowledged")
    assert buf.stats()["calls"] == 10
    ids = stored_ids(store)
    assert sorted(ids) == sorted(r.id for r in recs)
    buf.add(s.UsageCreate(model="m"))
    await asyncio.sleep(0.2)
    assert buf.stats()["buffered"] == 1  # a partial batch waits for its interval ...
    assert await buf.flush(timeout_s=10) == 1  # ... or a flush
    await buf.close()
    assert row_count(store) == 1001
    assert buf.stats() | {"acknowledged": 0} == {
        "buffered": 0, "in_flight": 0, "spooling": 0, "spool_files": 0, "acknowledged": 0,
        "replayed": 0, "spooled": 0, "failures": 0, "rejected": 0, "spool_failures": 0,
        "calls": 11, "journaled": 0, "journal_failures": 0, "orphans_replayed": 0}
    assert spool_files(tmp_path / "spool") == []


async def test_a_partial_batch_leaves_after_flush_interval(sqlite_url, tmp_path):
    store = CatalogStore.open(sqlite_url)
    buf = UsageBuffer(AsyncLocalCatalog(store), batch_size=1000, flush_interval_s=0.5,
                      spool=str(tmp_path / "spool"))
    buf.start()
    began = time.monotonic()
    for r in records(5):
        buf.add(r)
    await asyncio.sleep(0.1)
    assert buf.stats()["acknowledged"] == 0
    await until(lambda: buf.stats()["acknowledged"] == 5, 10, "the timed batch")
    assert time.monotonic() - began >= 0.5
    assert buf.stats()["calls"] == 1
    assert row_count(store) == 5
    await buf.close()
    store.close()


async def test_add_never_raises_and_retries_until_the_catalog_answers(outage, tmp_path):
    buf = UsageBuffer(AsyncLocalCatalog(outage.store), batch_size=10, flush_interval_s=0.01,
                      spool=str(tmp_path / "spool"), backoff=QUICK)
    buf.start()
    outage.take_down()
    with pytest.raises(Exception):  # noqa: B017 - the catalog itself does fail
        await AsyncLocalCatalog(outage.store).record_usage(records(1))
    recs = records(95, user_id="u1")
    for r in recs:
        buf.add(r)  # never raises, never waits
    buf.add(None)  # type: ignore[arg-type]  # not even for garbage
    await until(lambda: buf.stats()["failures"] >= 3, 10, "failed calls")
    assert buf.stats()["acknowledged"] == 0
    assert buf.stats()["buffered"] + buf.stats()["in_flight"] == 95
    outage.bring_up()
    assert await buf.flush(timeout_s=30) == 95
    await buf.close()
    assert sorted(stored_ids(outage.store)) == sorted(r.id for r in recs)
    assert buf.stats()["spooled"] == 0


async def test_a_catalog_down_longer_than_the_buffer_spools_and_a_fresh_buffer_replays(
        outage, tmp_path):
    spool = tmp_path / "spool"
    buf = UsageBuffer(AsyncLocalCatalog(outage.store), batch_size=20, flush_interval_s=0.01,
                      max_buffered=50, spool=str(spool), backoff=QUICK)
    buf.start()
    outage.take_down()
    recs = records(300)
    for i, r in enumerate(recs):
        buf.add(r)
        if i % 25 == 0:
            await asyncio.sleep(0.01)
    await until(lambda: buf.stats()["spooled"] >= 200, 10, "records spooled")
    await buf.close(timeout_s=0.2)  # what is left goes to one more file
    stats = buf.stats()
    assert (stats["spooled"], stats["acknowledged"], stats["buffered"]) == (300, 0, 0)
    files = spool_files(spool)
    assert len(files) >= 3
    host = socket.gethostname()
    assert all(f.name.startswith(f"usage-{host}-{os.getpid()}-") for f in files)
    spooled = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(spooled) == sorted(r.id for r in recs)

    outage.bring_up()
    fresh = UsageBuffer(AsyncLocalCatalog(outage.store), batch_size=64, spool=str(spool))
    fresh.start()  # finds the files a dead (here: closed) replica left
    assert await fresh.flush(timeout_s=30) == 300
    await fresh.close()
    assert fresh.stats()["replayed"] == 300
    ids = stored_ids(outage.store)
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {r.id for r in recs}
    assert spool_files(spool) == []


async def test_the_same_buffer_replays_its_spool_when_the_catalog_answers_again(
        outage, tmp_path):
    spool = tmp_path / "spool"
    buf = UsageBuffer(AsyncLocalCatalog(outage.store), batch_size=20, flush_interval_s=0.01,
                      max_buffered=40, spool_after_s=0.3, spool=str(spool), backoff=QUICK)
    buf.start()
    outage.take_down()
    recs = records(200)
    for r in recs[:150]:
        buf.add(r)
        await asyncio.sleep(0)
    # "spooled" counts a file once written (records being written are "spooling")
    await until(lambda: buf.stats()["spooled"] == 150, 10,
                "everything spooled by size, then by age")
    assert buf.stats()["buffered"] == buf.stats()["in_flight"] == buf.stats()["spooling"] == 0
    outage.bring_up()
    for r in recs[150:]:
        buf.add(r)
    await buf.flush(timeout_s=30)
    stats = buf.stats()
    assert stats["acknowledged"] == 200
    assert stats["replayed"] == stats["spooled"] >= 150  # 50 more than max_buffered: spilled
    await buf.close()
    ids = stored_ids(outage.store)
    assert sorted(ids) == sorted(r.id for r in recs)
    assert spool_files(spool) == []


async def test_spool_on_s3_is_written_listed_and_replayed(outage, s3_bucket):
    spool = f"s3://{s3_bucket}/garden/spool/usage"
    buf = UsageBuffer(AsyncLocalCatalog(outage.store), batch_size=10, flush_interval_s=0.01,
                      spool_after_s=0.2, spool=spool, backoff=QUICK)
    buf.start()
    outage.take_down()
    recs = records(30)
    for r in recs:
        buf.add(r)
    await until(lambda: buf.stats()["spooled"] == 30, 20, "records spooled to S3")
    await buf.close(timeout_s=0.1)
    files = storage.list_files(spool)
    assert files and all(f.startswith(spool + "/usage-") for f in files)

    outage.bring_up()
    fresh = UsageBuffer(AsyncLocalCatalog(outage.store), spool=spool)
    fresh.start()
    assert await fresh.flush(timeout_s=30) == 30
    await fresh.close()
    assert sorted(stored_ids(outage.store)) == sorted(r.id for r in recs)
    assert storage.list_files(spool) == []


async def test_a_record_the_database_refuses_is_dropped_alone(pg_url, tmp_path):
    store = CatalogStore.open(pg_url)
    buf = UsageBuffer(AsyncLocalCatalog(store), batch_size=100, flush_interval_s=0.01,
                      spool=str(tmp_path / "spool"))
    buf.start()
    recs = records(99)
    # too long for the model column (VARCHAR(200)): PostgreSQL refuses the whole INSERT
    bad = s.UsageCreate.model_construct(model="x" * 300, prompt_tokens=1)
    for r in [*recs[:50], bad, *recs[50:]]:
        buf.add(r)
    assert await buf.flush(timeout_s=30) == 99
    await buf.close()
    assert buf.stats()["rejected"] == 1
    assert sorted(stored_ids(store)) == sorted(r.id for r in recs)
    store.close()


@pytest.mark.ray
async def test_no_record_lost_or_doubled_while_the_actor_is_killed_5_times(
        ray_cluster, ray_job_address, tmp_path):
    import ray
    from ray.util.state import get_actor

    from catalog.actor import AsyncCatalog, get_catalog

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    handle = get_catalog(url, name=f"catalog-usage-{uuid.uuid4().hex[:8]}")
    try:
        cat = AsyncCatalog(handle)
        assert await cat.ping()
        buf = UsageBuffer(cat, spool=str(tmp_path / "spool"))
        buf.start()
        recs = records(5000)

        async def feed() -> None:  # ~830 records/s for ~6 s
            for i, r in enumerate(recs):
                buf.add(r)
                if i % 50 == 49:
                    await asyncio.sleep(0.06)

        async def kill() -> None:
            for _ in range(5):
                await asyncio.sleep(1.0)
                assert await cat.ping()  # back (restarted) before each kill
                ray.kill(handle, no_restart=False)

        await asyncio.gather(feed(), kill())
        await buf.flush(timeout_s=120)
        await buf.close()
        # the state API (at this cluster's address: another cluster may run on the
        # machine) reports restarts a moment late
        await until(lambda: get_actor(handle._actor_id.hex(),
                                      address=ray_job_address).num_restarts == 5,
                    30, "5 restarts reported")
        store = CatalogStore.open(url)
        ids = stored_ids(store)
        store.close()
        assert len(ids) == len(set(ids)) == 5000
        assert set(ids) == {r.id for r in recs}
        assert buf.stats()["acknowledged"] == 5000
    finally:
        ray.kill(handle, no_restart=True)


@pytest.mark.ray
async def test_the_actor_fails_only_the_caller_whose_records_the_store_refuses(
        ray_cluster, pg_url, tmp_path):
    import ray

    from catalog.actor import AsyncCatalog, get_catalog

    handle = get_catalog(pg_url, name=f"catalog-usage-{uuid.uuid4().hex[:8]}")
    try:
        assert await AsyncCatalog(handle).ping()
        good, other = records(10, user_id="a"), records(10, user_id="b")
        bad = s.UsageCreate.model_construct(id="use_bad", model="x" * 300)  # VARCHAR(200)
        for r in [*good, *other]:
            r.id = f"use_{uuid.uuid4().hex}"
        # three callers within the actor's flush interval: one transaction, which fails
        results = await asyncio.gather(
            handle.record_usage.remote(good), handle.record_usage.remote([*other[:5], bad]),
            handle.record_usage.remote(other[5:]), return_exceptions=True)
        assert results[0] == [r.id for r in good]
        assert isinstance(results[1], Exception)
        assert results[2] == [r.id for r in other[5:]]

        # through a UsageBuffer the refused record is dropped alone, the rest written
        buf = UsageBuffer(AsyncCatalog(handle), spool=str(tmp_path / "spool"))
        buf.start()
        for r in [*other[:5], s.UsageCreate.model_construct(model="y" * 300)]:
            buf.add(r)
        assert await buf.flush(timeout_s=60) == 5
        await buf.close()
        assert buf.stats()["rejected"] == 1
        store = CatalogStore.open(pg_url)
        assert sorted(stored_ids(store)) == sorted(r.id for r in [*good, *other])
        store.close()
    finally:
        ray.kill(handle, no_restart=True)
