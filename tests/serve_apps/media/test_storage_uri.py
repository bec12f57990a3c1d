"""Media outputs under the shared storage root (issue 12): ``GARDEN_STORAGE_URI`` naming
an S3 bucket (a real S3 API, moto_server) puts every output there, read back through
:mod:`catalog.storage`; unset, outputs stay in ``$GARDEN_HOME/media`` as before."""

from __future__ import annotations

import io
import os
from pathlib import Path

import boto3
import pytest
from PIL import Image

from catalog import storage
from catalog.port import AsyncLocalCatalog
from serve_apps.media.config import MediaConfig
from serve_apps.media.providers.base import Output
from serve_apps.media.schemas import ImageGenerationRequest, UpscaleRequest
from serve_apps.media.service import MediaService
from serve_apps.media.storage import OutputStore
from tests.serve_apps.media.conftest import ALICE, make_config
from tests.serve_apps.media.fakes.common import png_bytes

#: The async tests share the session loop, as the ``fakes`` and service fixtures do.
session_loop = pytest.mark.asyncio(loop_scope="session")


def _image(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buf, format=fmt)
    return buf.getvalue()


def _s3_object(bucket: str, key: str) -> bytes:
    """The object's bytes read with boto3 (independent of catalog.storage/pyarrow)."""
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                          region_name=os.environ["AWS_REGION"])
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def local_home(tmp_path, monkeypatch) -> Path:
    """GARDEN_HOME at a temporary folder, GARDEN_STORAGE_URI unset."""
    monkeypatch.delenv(storage.STORAGE_URI_ENV, raising=False)
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def s3_root(s3_bucket, local_home, monkeypatch) -> str:
    """GARDEN_STORAGE_URI pointing at a fresh bucket's ``garden`` prefix (GARDEN_HOME
    at a temporary folder)."""
    monkeypatch.setenv(storage.STORAGE_URI_ENV, f"s3://{s3_bucket}/garden/")
    return f"s3://{s3_bucket}/garden"


@session_loop
async def test_output_store_writes_to_s3_bucket(s3_root, s3_bucket, local_home):
    png, jpeg = _image("PNG"), _image("JPEG", (20, 10))
    store = OutputStore()
    try:
        assert store.root == f"{s3_root}/media"
        files = await store.save("pred-1", [Output(data=png, mime_type="image/png"),
                                            Output(),  # neither bytes nor URL: skipped
                                            Output(data=jpeg)])
    finally:
        await store.aclose()
    first, second = files
    assert first.path == f"s3://{s3_bucket}/garden/media/pred-1/0.png"
    assert second.path == f"s3://{s3_bucket}/garden/media/pred-1/2.jpeg"
    assert (first.mime_type, first.width, first.height, first.size_bytes) == (
        "image/png", 40, 30, len(png))
    assert (second.mime_type, second.width, second.height) == ("image/jpeg", 20, 10)
    assert storage.read_bytes(first.path) == png
    assert storage.read_bytes(second.path) == jpeg
    assert _s3_object(s3_bucket, "garden/media/pred-1/0.png") == png
    # nothing landed on the local disk under GARDEN_HOME
    assert not (local_home / "media").exists()


@session_loop
async def test_output_store_same_prediction_twice_overwrites_same_object(s3_root, s3_bucket):
    """Webhook and poller finishing one prediction write the same, deterministic key."""
    store = OutputStore(f"{s3_root}/elsewhere")
    try:
        [a] = await store.save("pred-2", [Output(data=_image("PNG"))])
        [b] = await store.save("pred-2", [Output(data=_image("PNG"))])
    finally:
        await store.aclose()
    assert a.path == b.path == f"s3://{s3_bucket}/garden/elsewhere/pred-2/0.png"
    assert storage.read_bytes(a.path) == _image("PNG")


@session_loop
async def test_output_store_local_default_and_explicit_root(local_home, tmp_path):
    png = _image("PNG")
    store = OutputStore()
    try:
        assert store.root == str(local_home / "media")
        [f] = await store.save("pred-3", [Output(data=png)])
    finally:
        await store.aclose()
    assert f.path == str(local_home / "media" / "pred-3" / "0.png")
    assert Path(f.path).read_bytes() == png
    assert storage.read_bytes(f.path) == png
    assert [p.name for p in (local_home / "media" / "pred-3").iterdir()] == ["0.png"]

    explicit = OutputStore(tmp_path / "mine")  # a pathlib.Path still works
    try:
        [g] = await explicit.save("pred-3", [Output(data=png)])
    finally:
        await explicit.aclose()
    assert g.path == str(tmp_path / "mine" / "pred-3" / "0.png")
    assert Path(g.path).read_bytes() == png


def test_config_media_dir_location(local_home, tmp_path, s3_bucket, monkeypatch):
    config = MediaConfig(providers={})
    assert config.media_dir is None
    assert config.resolved_media_dir() == str(local_home / "media")
    assert (local_home / "media").is_dir()

    explicit = MediaConfig(providers={}, media_dir=tmp_path / "out")
    assert explicit.media_dir == str(tmp_path / "out")
    assert explicit.resolved_media_dir() == str(tmp_path / "out")
    assert (tmp_path / "out").is_dir()

    uri = f"s3://{s3_bucket}/custom"
    assert MediaConfig(providers={}, media_dir=uri).resolved_media_dir() == uri
    monkeypatch.setenv(storage.STORAGE_URI_ENV, f"s3://{s3_bucket}/root")
    assert config.resolved_media_dir() == f"s3://{s3_bucket}/root/media"
    assert MediaConfig.model_validate_json(explicit.model_dump_json()) == explicit


@session_loop
async def test_service_stores_and_edits_through_s3(s3_root, s3_bucket, fakes, media_store):
    """Generate with the stability fake into the bucket, then upscale: the source image
    is read back from S3, and the edit's output lands there too."""
    svc = MediaService(make_config(fakes, None), AsyncLocalCatalog(media_store))
    try:
        base = await svc.generate_image(ImageGenerationRequest(
            prompt="a red fox", provider="stability", aspect_ratio="3:2"), ALICE)
        [f] = base.image.files
        prefix = f"s3://{s3_bucket}/garden/media/{base.prediction.id}/"
        assert f.path == prefix + "0.png"
        assert storage.read_bytes(f.path) == png_bytes(96, 64)
        assert media_store.images.get(base.image.id).files[0].path == f.path

        fast = await svc.upscale_image(base.image.id, UpscaleRequest(mode="fast"), ALICE)
        assert fast.prediction.status == "succeeded"
        [up] = fast.edit.files
        assert up.path == f"s3://{s3_bucket}/garden/media/{fast.prediction.id}/0.png"
        # the fake upscales what it receives 4x: it got the 96x64 image read from S3
        assert (up.width, up.height) == (384, 256)
        assert storage.read_bytes(up.path) == png_bytes(384, 256)
        assert _s3_object(s3_bucket, up.path.removeprefix(f"s3://{s3_bucket}/")) == \
            png_bytes(384, 256)
    finally:
        await svc.close()
