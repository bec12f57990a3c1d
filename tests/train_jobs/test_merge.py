"""Merging a real PEFT LoRA adapter into SmolLM2: a base model with the adapter's lineage
that generates what the adapter on its base generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import schemas as s
from catalog import storage
from catalog.errors import InvalidArgument
from catalog.port import LocalCatalog
from catalog.store import CatalogStore
from tests.serve_apps.llm.conftest import make_peft_adapter
from tests.train_jobs.test_storage_uri import home, s3_root, tiny_model  # noqa: F401
from train_jobs.base_models import import_base_model, is_model_folder, is_stored_model
from train_jobs.merge import merge_adapter

PROMPT = "The three primary colors are"


@pytest.fixture
def catalog(sqlite_url, tmp_path, monkeypatch):
    """A catalog on a fresh SQLite file, storage root ``tmp_path``."""
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path))
    store = CatalogStore.open(sqlite_url)
    yield LocalCatalog(store)
    store.close()


def _greedy(model, tokenizer) -> list[int]:
    inputs = tokenizer(PROMPT, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_merged_model_generates_like_the_adapter_on_its_base(
    catalog, smollm2_folder, tmp_path
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_folder = make_peft_adapter(smollm2_folder, tmp_path / "noisy-lora", seed=7)
    base = catalog.register_model(s.ModelCreate(
        name="smol", kind=s.ModelKind.base, path=str(smollm2_folder),
        config={"model_type": "llama"}, published=True))
    adapter = catalog.register_model(s.ModelCreate(
        name="noisy", kind=s.ModelKind.adapter, path=str(adapter_folder),
        base_model_id=base.id, config={"lora": {"r": 8, "lora_alpha": 16}}, user_id="alice"))

    merged = merge_adapter(catalog, adapter, user_id="alice")

    assert (merged.kind, merged.name, merged.version, merged.user_id) == (
        s.ModelKind.base, "noisy-merged", 1, "alice")
    assert (merged.base_model_id, merged.merged_from_id) == (base.id, adapter.id)
    assert merged.config == {"model_type": "llama", "merged_from": adapter.id,
                             "lora": {"r": 8, "lora_alpha": 16}}
    assert merged.path.startswith(str(tmp_path / "models"))
    assert is_model_folder(Path(merged.path)) and merged.size_bytes > 100_000_000

    tokenizer = AutoTokenizer.from_pretrained(merged.path)
    bare = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32)
    plain = _greedy(bare, tokenizer)
    with_adapter = _greedy(PeftModel.from_pretrained(bare, adapter_folder), tokenizer)
    from_merged = _greedy(AutoModelForCausalLM.from_pretrained(merged.path), tokenizer)
    assert from_merged == with_adapter
    assert from_merged != plain

    # idempotent: the same model, nothing merged again
    assert merge_adapter(catalog, adapter, user_id="alice").id == merged.id
    assert catalog.models.list(merged_from_id=adapter.id).total == 1

    with pytest.raises(InvalidArgument) as err:
        merge_adapter(catalog, base)
    assert err.value.field == "model_id"
    # the store keeps the lineage honest: merged_from_id names an adapter of the base
    with pytest.raises(InvalidArgument) as err:
        catalog.register_model(s.ModelCreate(
            name="fake", kind=s.ModelKind.base, path="/m", base_model_id=base.id,
            merged_from_id=base.id))
    assert err.value.field == "merged_from_id"


def test_merge_reads_and_writes_an_s3_storage_root(request, sqlite_url):
    """Base, adapter and merged model all in the bucket; nothing left in staging."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, home_dir, tiny = (request.getfixturevalue(f) for f in ("s3_root", "home", "tiny_model"))

    store = CatalogStore.open(sqlite_url)
    catalog = LocalCatalog(store)
    base = import_base_model(catalog, tiny, name="tiny")
    adapter_path = storage.put(make_peft_adapter(tiny, home_dir / "tiny-lora", seed=5),
                               f"{root}/models/tiny-lora")
    adapter = catalog.register_model(s.ModelCreate(
        name="tiny-lora", kind=s.ModelKind.adapter, path=adapter_path, base_model_id=base.id))

    merged = merge_adapter(catalog, adapter, name="tiny-merged")

    assert merged.path.startswith(f"{root}/models/tiny-merged-v1-")
    assert is_stored_model(merged.path) and merged.merged_from_id == adapter.id
    assert not any((home_dir / "cache" / "staging").iterdir())
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny), str(home_dir / "tiny-lora"))(ids)
        got = AutoModelForCausalLM.from_pretrained(storage.local_copy(merged.path))(ids)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    store.close()
