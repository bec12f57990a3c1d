"""Datasets and base models under the shared storage root (``GARDEN_STORAGE_URI``):
stored in a real S3 API (moto_server) when the root is ``s3://``, in the named folder
when it is local; catalog rows keep the full location; the gateway's dataset routes read
and delete the stored file through :mod:`catalog.storage`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from catalog import storage
from catalog.errors import NotFound
from corpora.chatterbot import import_chatterbot
from corpora.registration import DatasetError, register_dataset
from serve_apps.gateway.routes.datasets import delete_stored_file, read_rows
from train_jobs.base_models import import_base_model, is_stored_model

ROWS = [{"instruction": f"Say {i}", "input": "", "output": str(i)} for i in range(5)]
#: the random suffix of a fresh storage location (catalog.storage.fresh)
HEX8 = "[0-9a-f]{8}"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def s3_root(s3_bucket, home, monkeypatch) -> str:
    """``GARDEN_STORAGE_URI=s3://<fresh bucket>/p`` (given with a trailing slash)."""
    monkeypatch.setenv("GARDEN_STORAGE_URI", f"s3://{s3_bucket}/p/")
    return f"s3://{s3_bucket}/p"


def test_registered_dataset_is_stored_in_the_bucket(store, s3_root, home, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [*ROWS, ""])
    ds = register_dataset(store, src, "my numbers", user_id="u1")
    assert re.fullmatch(rf"{re.escape(s3_root)}/datasets/my_numbers/v1-{HEX8}/data\.jsonl",
                        ds.path)
    assert (ds.format, ds.num_rows, ds.size_bytes) == ("alpaca", 5, src.stat().st_size)
    assert storage.read_bytes(ds.path) == src.read_bytes()
    assert store.datasets.get(ds.id).path == ds.path
    assert not (home / "datasets").exists()  # nothing stored on the local disk
    again = register_dataset(store, src, "my numbers")
    assert re.fullmatch(rf"{re.escape(s3_root)}/datasets/my_numbers/v2-{HEX8}/data\.jsonl",
                        again.path)
    assert storage.read_bytes(again.path) == src.read_bytes()


def test_a_version_number_reused_after_a_delete_gets_a_new_location(store, s3_root, tmp_path):
    """A node caches by location: a re-registered v1 must not be served from the old copy."""
    first = register_dataset(store, write_jsonl(tmp_path / "a.jsonl", ROWS[:2]), "reused")
    cached = storage.local_copy(first.path).read_bytes()
    store.datasets.delete(first.id)
    storage.delete(first.path)
    second = register_dataset(store, write_jsonl(tmp_path / "b.jsonl", ROWS[2:]), "reused")
    assert second.version == first.version == 1 and second.path != first.path
    assert storage.local_copy(second.path).read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert storage.local_copy(second.path).read_bytes() != cached


def test_a_bad_dataset_stores_nothing_in_the_bucket(store, s3_root, tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], "{not json"])
    with pytest.raises(DatasetError):
        register_dataset(store, src, "bad")
    assert not storage.exists(f"{s3_root}/datasets")
    assert store.datasets.list().total == 0


def test_chatterbot_import_lands_in_the_bucket_and_reads_back(store, s3_root):
    ds = import_chatterbot(store, categories=["ai"])
    assert ds.path.startswith(f"{s3_root}/datasets/chatterbot-corpus/v1-")
    lines = storage.local_copy(ds.path).read_text().splitlines()
    assert len(lines) == ds.num_rows > 10
    assert import_chatterbot(store, categories=["ai"]).id == ds.id


def test_a_local_storage_root_other_than_home_holds_the_dataset(
        store, home, tmp_path, monkeypatch):
    monkeypatch.setenv("GARDEN_STORAGE_URI", str(tmp_path / "shared"))
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    ds = register_dataset(store, src, "numbers")
    assert Path(ds.path).parent.parent == tmp_path / "shared" / "datasets" / "numbers"
    assert Path(ds.path).read_bytes() == src.read_bytes()


def test_gateway_reads_and_deletes_a_dataset_stored_in_the_bucket(store, s3_root, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    ds = register_dataset(store, src, "preview")
    assert read_rows(ds.path, 1, 2) == ROWS[1:3]
    assert read_rows(ds.path, 4, 10) == ROWS[4:]
    assert delete_stored_file(ds.path) is True
    assert not storage.exists(ds.path)
    with pytest.raises(NotFound, match=r"data\.jsonl is missing from storage"):
        read_rows(f"{s3_root}/datasets/never/v1/data.jsonl", 0, 1)


def test_gateway_leaves_files_outside_the_storage_root_alone(s3_root, tmp_path):
    outside = [s3_root.removesuffix("/p") + "/other/x.jsonl", s3_root + "2/x.jsonl"]
    for location in outside:
        storage.write_bytes(location, b"{}\n")
        assert delete_stored_file(location) is False
        assert storage.exists(location)
    local = write_jsonl(tmp_path / "local.jsonl", ROWS)
    assert delete_stored_file(str(local)) is False and local.is_file()
    assert delete_stored_file(f"{s3_root}/datasets/gone/v1/data.jsonl") is False


def test_gateway_deletes_a_local_stored_file_only_under_the_root(store, home, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    ds = register_dataset(store, src, "local")
    assert read_rows(ds.path, 0, 1) == ROWS[:1]
    assert delete_stored_file(str(home)) is False and home.is_dir()  # the root itself
    assert delete_stored_file(ds.path) is True and not Path(ds.path).exists()
    assert delete_stored_file(str(src)) is False and src.is_file()
    with pytest.raises(NotFound):
        read_rows(ds.path, 0, 1)


@pytest.fixture(scope="module")
def tiny_model(smollm2_folder, tmp_path_factory) -> Path:
    """A real, tiny Llama folder (1 layer, hidden size 16: about 3 MB of safetensors)
    with SmolLM2's tokenizer, for imports that must not move 500 MB."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    config = AutoConfig.from_pretrained(smollm2_folder)
    config.update({"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)
    for item in smollm2_folder.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab",
                                 "merges")):
            shutil.copy(item, folder / item.name)
    return folder


def test_imported_base_model_lands_in_the_bucket(store, s3_root, home, tiny_model):
    model = import_base_model(store, tiny_model, name="tiny")
    assert model.path == f"{s3_root}/models/tiny"
    assert is_stored_model(model.path)
    assert model.size_bytes == storage.size_bytes(str(tiny_model)) == storage.size_bytes(
        model.path)
    assert model.config["model_type"] == "llama" and model.config["hidden_size"] == 16
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        assert storage.read_bytes(f"{model.path}/{name}") == (tiny_model / name).read_bytes()
    assert not (home / "models").exists()
    assert import_base_model(store, tiny_model, name="tiny").id == model.id
    assert store.models.list(kind="base").total == 1

    from transformers import AutoModelForCausalLM

    local = storage.local_copy(model.path)
    loaded = AutoModelForCausalLM.from_pretrained(local)
    assert loaded.config.hidden_size == 16


def test_an_upload_without_config_is_not_a_stored_model(store, s3_root, tiny_model):
    dest = f"{s3_root}/models/half"
    storage.put(tiny_model, dest, ignore=("config.json",))  # an upload cut short
    assert not is_stored_model(dest)
    model = import_base_model(store, tiny_model, name="half")
    assert model.path == dest and is_stored_model(dest)
