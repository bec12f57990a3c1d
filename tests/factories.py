"""Small builders of valid catalog rows, shared by the catalog tests."""

from __future__ import annotations

from catalog import schemas as s
from catalog.store import CatalogStore


def base_model(store: CatalogStore, name: str = "smollm2-135m") -> s.Model:
    return store.register_model(s.ModelCreate(name=name, kind="base", path=f"/models/{name}"))


def dataset(store: CatalogStore, name: str = "chat", rows: int = 3) -> s.Dataset:
    return store.datasets.create(s.DatasetCreate(
        name=name, format="openai", path=f"/data/{name}.jsonl", num_rows=rows, size_bytes=100,
    ))


def job(store: CatalogStore, **overrides) -> s.TrainingJob:
    base = overrides.pop("base", None) or base_model(store)
    data = overrides.pop("data", None) or dataset(store)
    return store.create_training_job(s.TrainingJobCreate(
        name="job", base_model_id=base.id, dataset_id=data.id, **overrides
    ))
