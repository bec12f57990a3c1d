"""Shared storage by URI against a real S3 API (moto_server on loopback) and local paths."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from catalog import storage


@pytest.fixture
def root(request, tmp_path, monkeypatch):
    """The storage root, once a local folder and once an S3 bucket prefix."""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        uri = f"s3://{bucket}/garden"
    else:
        uri = str(tmp_path / "store")
    monkeypatch.setenv("GARDEN_STORAGE_URI", uri)
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path / "home"))
    return uri


BOTH = pytest.mark.parametrize("root", ["local", "s3"], indirect=True)


@BOTH
def test_a_folder_put_copied_and_read_back_keeps_every_file(root, tmp_path):
    src = tmp_path / "adapter"
    (src / "sub").mkdir(parents=True)
    (src / "adapter_config.json").write_text('{"r": 8}')
    (src / "sub" / "weights.bin").write_bytes(b"\x00" * 1000)
    (src / "optimizer.pt").write_bytes(b"state")

    dest = storage.location("models", "a-v1")
    assert dest.startswith(root)
    storage.put(src, dest, ignore=["optimizer.pt"])
    assert storage.exists(dest)
    assert storage.size_bytes(dest) == len('{"r": 8}') + 1000
    assert not storage.exists(storage.join(dest, "optimizer.pt"))

    copied = storage.copy(dest, storage.location("models", "a-v2"))
    assert storage.read_bytes(storage.join(copied, "sub", "weights.bin")) == b"\x00" * 1000

    local = storage.local_copy(copied)
    assert (local / "adapter_config.json").read_text() == '{"r": 8}'
    if storage.is_remote(root):
        assert local.is_relative_to(storage.cache_root())
    else:
        assert str(local) == copied

    storage.delete(copied)
    assert not storage.exists(copied)
    assert storage.size_bytes(copied) == 0


@BOTH
def test_single_files_round_trip_and_missing_ones_raise(root):
    uri = storage.location("media", "p1", "0.png")
    storage.write_bytes(uri, b"png bytes")
    assert storage.read_bytes(uri) == b"png bytes"
    assert storage.name_of(uri) == "0.png"
    assert storage.local_copy(uri).read_bytes() == b"png bytes"
    missing = storage.location("media", "p1", "9.png")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError):
        storage.local_copy(missing)
    with pytest.raises(FileNotFoundError):
        storage.copy(missing, storage.location("x"))


def test_a_remote_object_is_copied_once_per_node_even_when_asked_concurrently(s3_bucket,
                                                                              tmp_path):
    uri = f"s3://{s3_bucket}/data/train.jsonl"
    storage.write_bytes(uri, b'{"a": 1}\n')
    cache = tmp_path / "cache"
    results, errors = [], []

    def fetch():
        try:
            results.append(storage.local_copy(uri, cache=cache))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and results[0].read_bytes() == b'{"a": 1}\n'
    assert [p.name for p in cache.iterdir()] == [results[0].parent.name]  # no partial left
    # the copy is reused without asking the store: deleting the object changes nothing
    storage.delete(uri)
    assert storage.local_copy(uri, cache=cache).read_bytes() == b'{"a": 1}\n'


def test_ray_storage_and_uri_of_round_trip(s3_bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("GARDEN_STORAGE_URI", f"s3://{s3_bucket}/prefix/")
    path, fs = storage.ray_storage()
    assert path == f"{s3_bucket}/prefix/runs" and fs is not None and fs.type_name == "s3"
    assert storage.uri_of(fs, path + "/job-1") == f"s3://{s3_bucket}/prefix/runs/job-1"

    monkeypatch.setenv("GARDEN_STORAGE_URI", str(tmp_path / "local"))
    path, fs = storage.ray_storage()
    assert path == str(tmp_path / "local" / "runs") and fs is None
    local_fs, local_path = storage.filesystem(path)
    assert storage.uri_of(local_fs, local_path) == path


def test_the_default_root_is_garden_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GARDEN_STORAGE_URI", raising=False)
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path))
    assert storage.storage_uri() == str(tmp_path)
    assert storage.location("datasets") == str(tmp_path / "datasets")
    assert not storage.is_remote(storage.location("datasets"))
    assert storage.is_remote("gs://bucket/x") and storage.is_remote("s3://b")


def test_a_users_name_stays_one_path_component(tmp_path, monkeypatch):
    monkeypatch.setenv("GARDEN_STORAGE_URI", str(tmp_path / "store"))
    name = storage.fresh("../../etc/my model-v1")
    assert name.startswith(".._.._etc_my_model-v1-") and "/" not in name
    dest = storage.location("models", name)
    assert Path(dest).parent == tmp_path / "store" / "models"
