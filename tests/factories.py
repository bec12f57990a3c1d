"""Small builders of valid catalog rows, shared by the tests (keyword arguments override
or add fields of the create model). Each takes a store, or any sync catalog port (the
actor facade included): they call the same operations."""

from __future__ import annotations

import uuid

from catalog import schemas as s
from catalog.port import CatalogPort
from catalog.store import CatalogStore

Catalog = CatalogStore | CatalogPort


def base_model(store: Catalog, name: str = "smollm2-135m", **fields) -> s.Model:
    fields = {"kind": "base", "path": f"/models/{name}", **fields}
    return store.register_model(s.ModelCreate(name=name, **fields))


def base_and_adapter(store: Catalog, owner: str = "alice") -> tuple[s.Model, s.Model]:
    """A published base model and ``owner``'s adapter of it, under fresh names."""
    tag = uuid.uuid4().hex[:6]
    base = store.register_model(s.ModelCreate(
        name=f"base-{tag}", kind="base", path=f"/models/base-{tag}", published=True))
    adapter = store.register_model(s.ModelCreate(
        name=f"lora-{tag}", kind="adapter", path=f"/models/lora-{tag}",
        base_model_id=base.id, user_id=owner))
    return base, adapter


def dataset(store: Catalog, name: str = "chat", rows: int = 3, **fields) -> s.Dataset:
    fields = {"format": "openai", "path": f"/data/{name}.jsonl", "size_bytes": 100, **fields}
    return store.datasets.create(s.DatasetCreate(name=name, num_rows=rows, **fields))


def job(store: Catalog, **overrides) -> s.TrainingJob:
    base = overrides.pop("base", None) or base_model(store)
    data = overrides.pop("data", None) or dataset(store)
    fields = {"name": "job", "base_model_id": base.id, "dataset_id": data.id, **overrides}
    return store.create_training_job(s.TrainingJobCreate(**fields))
