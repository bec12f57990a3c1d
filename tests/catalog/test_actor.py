"""CatalogActor on a real local Ray cluster: one handle everywhere, concurrent writers,
batched usage, and no acknowledged write lost while the actor is killed repeatedly."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.util.state import get_actor

from catalog import schemas as s
from catalog.actor import ACTOR_NAME, NAMESPACE, AsyncCatalog, Catalog, get_catalog
from catalog.errors import Conflict, InvalidTransition, NotFound
from catalog.store import CatalogStore
from tests import factories

pytestmark = pytest.mark.ray


@pytest.fixture
def catalog(ray_cluster, db_url):
    """A private catalog actor on a fresh ``db_url``, killed for good afterwards.

    Private (its own name) so the cluster's shared catalog, used by other test
    modules, is left alone.
    """
    name = f"catalog-test-{uuid.uuid4().hex[:8]}"
    handle = get_catalog(db_url, name=name)
    yield Catalog(handle)
    ray.kill(handle, no_restart=True)


def test_get_catalog_returns_one_actor_from_tasks_and_threads(catalog_handle):
    @ray.remote(num_cpus=0)
    def actor_id_from_task() -> str:
        return get_catalog()._actor_id.hex()

    ids = set(ray.get([actor_id_from_task.remote() for _ in range(8)]))
    threads, seen = [], []
    for _ in range(8):
        th = threading.Thread(target=lambda: seen.append(get_catalog()._actor_id.hex()))
        threads.append(th)
        th.start()
    for th in threads:
        th.join()
    assert ids | set(seen) == {catalog_handle._actor_id.hex()}
    assert ray.get_actor(ACTOR_NAME, namespace=NAMESPACE)._actor_id == catalog_handle._actor_id
    assert Catalog(catalog_handle).ping()


def test_errors_keep_their_class_across_the_actor(catalog):
    with pytest.raises(NotFound):
        catalog.models.get("mdl_missing")
    job = factories.job(catalog)
    catalog.transition_job(job.id, "cancelled")
    with pytest.raises(InvalidTransition):
        catalog.transition_job(job.id, "running")
    with pytest.raises(AttributeError):
        catalog.session()


async def test_async_facade(catalog):
    acat = AsyncCatalog(catalog.handle)
    base = await acat.register_model(s.ModelCreate(name="b", kind="base", path="/b"))
    got = await acat.models.get(base.id)
    assert got == base
    page = await acat.models.list(kind="base")
    assert page.total == 1
    assert catalog.find_model("b") == base  # the sync port sees the same catalog


def test_eight_concurrent_writers(catalog, db_url):
    @ray.remote(num_cpus=0)
    def writer(handle, w: int, n: int) -> list[str]:
        cat = Catalog(handle)
        ids = []
        for i in range(n):
            ds = cat.datasets.create(s.DatasetCreate(
                name=f"w{w}-{i}", format="openai", path="/p", num_rows=i, size_bytes=i))
            ids += cat.record_usage([s.UsageCreate(id=f"w{w}-{i}", model="m",
                                                   completion_tokens=i)])
            ids.append(ds.id)
        return ids

    results = ray.get([writer.remote(catalog.handle, w, 15) for w in range(8)])
    assert sum(len(r) for r in results) == 8 * 15 * 2
    store = CatalogStore.open(db_url)
    assert store.datasets.list().total == 120
    assert store.usage.list().total == 120
    store.close()


def test_a_record_queued_during_a_write_is_written_without_another_caller(ray_cluster, pg_url):
    """A call arriving while a batch is being written must not wait for a later caller
    to start its write. The write is held in progress by a table lock (PostgreSQL)."""
    from sqlalchemy import create_engine, text

    handle = get_catalog(pg_url, name=f"catalog-test-{uuid.uuid4().hex[:8]}")
    try:
        ray.get(handle.__ray_ready__.remote(), timeout=60)
        engine = create_engine(pg_url)
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE usage_records IN EXCLUSIVE MODE"))
            big = handle.record_usage.remote(  # >= flush_size: its write starts at once
                [s.UsageCreate(id=f"big{i}", model="m") for i in range(300)])
            time.sleep(2.0)  # the write now waits on the lock
            small = handle.record_usage.remote([s.UsageCreate(id="small", model="m")])
            time.sleep(1.0)
            conn.commit()  # releases the lock
        engine.dispose()
        assert len(ray.get(big, timeout=60)) == 300
        assert ray.get(small, timeout=30) == ["small"]
    finally:
        ray.kill(handle, no_restart=True)


def test_usage_is_batched_and_durable_when_acknowledged(catalog, db_url):
    # 50 concurrent callers: their batches are merged into few transactions
    refs = [catalog.handle.record_usage.remote(
        [s.UsageCreate(id=f"b{i}", model="m", prompt_tokens=1)]) for i in range(50)]
    acked = ray.get(refs, timeout=30)
    assert [a[0] for a in acked] == [f"b{i}" for i in range(50)]
    store = CatalogStore.open(db_url)
    assert store.usage.list(page_size=100).total == 50
    store.close()


def test_no_acknowledged_write_is_lost_when_the_actor_is_killed(catalog, db_url):
    """8 writers; the actor is killed (and restarted by Ray) 3 times mid-stream.

    A writer that sees its call fail retries it; a write counts once acknowledged.
    Usage ids are idempotent, so retries must not duplicate rows either.
    """
    acked_usage: list[str] = []
    acked_datasets: list[str] = []
    committed_unanswered: list[str] = []  # created, but the reply was lost in a kill
    lock = threading.Lock()
    stop = time.monotonic() + 60

    def writer(w: int) -> None:
        cat = Catalog(catalog.handle)  # retries idempotent calls for up to 60 s
        for i in range(40):
            rid = f"k{w}-{i}"
            cat.record_usage([s.UsageCreate(id=rid, model="m", completion_tokens=i)])
            with lock:
                acked_usage.append(rid)
            while time.monotonic() < stop:
                try:
                    ds = cat.datasets.create(s.DatasetCreate(
                        name=rid, format="openai", path="/p", num_rows=1, size_bytes=1))
                except (ActorUnavailableError, RayActorError):
                    time.sleep(0.2)  # unknown outcome: a retry may hit Conflict
                    continue
                except Conflict:  # the lost reply had committed
                    with lock:
                        committed_unanswered.append(rid)
                    break
                with lock:
                    acked_datasets.append(ds.id)
                break

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    for _ in range(3):
        time.sleep(1.5)
        assert catalog.ping()  # alive again (restarted) before each kill
        ray.kill(catalog.handle, no_restart=False)
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert get_actor(catalog.handle._actor_id.hex()).num_restarts == 3
    assert len(acked_usage) == 8 * 40

    store = CatalogStore.open(db_url)
    stored_usage = {u.id for u in store.usage.list(page_size=1000).items}
    assert store.usage.list().total == len(stored_usage) == 8 * 40
    assert set(acked_usage) <= stored_usage
    # every dataset create answered, or found committed when retried after a lost reply
    assert len(acked_datasets) + len(committed_unanswered) == 8 * 40
    assert len(acked_datasets) > 0
    stored = store.datasets.list(page_size=1000).items
    assert sorted(d.name for d in stored) == sorted(f"k{w}-{i}" for w in range(8)
                                                    for i in range(40))
    assert set(acked_datasets) <= {d.id for d in stored}
    store.close()
