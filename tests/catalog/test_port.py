"""The typed catalog port: every store operation listed once, run in process (sync and
async) with the store's own results and errors, and retry marks on the operations."""

from __future__ import annotations

import inspect

import pytest

from catalog import schemas as s
from catalog.errors import NotFound
from catalog.port import (
    AsyncCatalogPort,
    AsyncLocalCatalog,
    CatalogPort,
    Invocation,
    LocalCatalog,
    Operation,
    RepoOf,
)
from catalog.store import CatalogStore, Repo, is_idempotent
from tests import factories

#: Store methods that are lifecycle, not catalog operations.
NOT_OPERATIONS = {"open", "close", "session", "repo"}


def test_every_public_store_operation_is_on_the_port(store):
    ops = {n for cls in CatalogPort.__mro__ for n, v in vars(cls).items()
           if isinstance(v, Operation)}
    store_ops = {name for name, fn in inspect.getmembers(CatalogStore, inspect.isfunction)
                 if not name.startswith("_")} - NOT_OPERATIONS
    assert store_ops == ops
    repos = {n for cls in CatalogPort.__mro__ for n, v in vars(cls).items()
             if isinstance(v, RepoOf)}
    assert repos == {n for n, v in vars(store).items() if isinstance(v, Repo)}


def test_operations_name_the_store_methods_they_run():
    op = CatalogPort.transition_job  # on the class: the descriptor itself
    assert op.call.fn is CatalogStore.transition_job
    assert inspect.signature(op.call.fn) == inspect.signature(CatalogStore.transition_job)


def test_retry_marks_live_on_the_operations():
    assert Invocation(CatalogStore.find_model).idempotent
    assert Invocation(CatalogStore.record_usage).idempotent  # keyed by the caller's ids
    assert Invocation(Repo.get, s.Model).idempotent
    assert not Invocation(CatalogStore.register_model).idempotent
    assert not Invocation(Repo.create, s.Dataset).idempotent
    assert is_idempotent(CatalogStore.list_events)
    assert is_idempotent(CatalogStore.transition_job)  # a repeated move is a no-op
    assert not is_idempotent(CatalogStore.claim_job)


def test_local_port_runs_the_store(store):
    cat: CatalogPort = LocalCatalog(store)
    base = cat.register_model(s.ModelCreate(name="m", kind="base", path="/m"))
    assert cat.find_model("m") == base == store.models.get(base.id)
    assert cat.models.list(kind="base").total == 1
    data = factories.dataset(store)
    assert cat.datasets.get(data.id) == data
    with pytest.raises(NotFound):
        cat.models.get("mdl_missing")
    assert cat.dialect() in ("sqlite", "postgresql")


async def test_async_local_port_runs_the_store(store):
    cat: AsyncCatalogPort = AsyncLocalCatalog(store)
    base = await cat.register_model(s.ModelCreate(name="m", kind="base", path="/m"))
    assert await cat.find_model("m:1") == base
    updated = await cat.models.update(base.id, description="tiny")
    assert updated.description == "tiny"
    with pytest.raises(NotFound):
        await cat.training_jobs.get("job_missing")
    assert await cat.record_usage([s.UsageCreate(id="u1", model="m", prompt_tokens=3)]) == ["u1"]
    assert store.usage.get("u1").prompt_tokens == 3
    summary = await cat.usage_summary("model")
    assert [(r.key, r.prompt_tokens) for r in summary.rows] == [("m", 3)]

