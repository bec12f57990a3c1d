"""The media library over the fake providers, a real SQLite catalog and real files:
uploads as sources, soft delete and the retention purge, ownership, list filters, cost
and retry bookkeeping, and the provider listing."""

from __future__ import annotations

import base64
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from catalog import schemas as s
from catalog.errors import InvalidArgument, NotFound, PermissionDenied
from catalog.port import AsyncLocalCatalog
from catalog.tables import utcnow
from serve_apps.media.pricing import PER_OUTPUT_USD
from serve_apps.media.schemas import ImageGenerationRequest, UpscaleRequest, VideoRequest
from serve_apps.media.service import MediaService
from tests.serve_apps.media.conftest import ALICE, BOB, make_config

pytestmark = pytest.mark.asyncio(loop_scope="session")


def png(width: int, height: int) -> bytes:
    """A real PNG made by Pillow."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 90)).save(out, format="PNG")
    return out.getvalue()


async def generate(service: MediaService, prompt: str = "a fox", who=ALICE) -> s.Image:
    """One synchronous Stability image, already succeeded with its file stored."""
    result = await service.generate_image(ImageGenerationRequest(
        prompt=prompt, provider="stability"), who)
    assert result.prediction.status == "succeeded" and result.image.files
    return result.image


# --------------------------------------------------------------------------- uploads


async def test_upload_is_inspected_thumbnailed_upscaled_and_animated(service, fakes,
                                                                     media_store):
    data = png(320, 200)
    src = await service.upload_source_image(data, s.SourceImageMeta(title="meadow"), ALICE)
    assert src.id.startswith("src_")
    assert (src.format, src.mime_type, src.size_bytes) == ("png", "image/png", len(data))
    assert (src.width, src.height, src.title, src.user_id) == (320, 200, "meadow", "alice")
    assert Path(src.path).read_bytes() == data
    original, mime = await service.content("source_images", src.id, ALICE)
    assert (original, mime) == (data, "image/png")
    thumb, mime = await service.content("source_images", src.id, ALICE, thumbnail=True)
    assert mime == "image/webp"
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.format == "WEBP" and img.size == (256, 160)  # longer side 256

    with pytest.raises(InvalidArgument) as err:
        await service.upload_source_image(b"just some notes\n", s.SourceImageMeta(), ALICE)
    assert err.value.field == "file"
    assert [r.id for r in media_store.source_images.list().items] == [src.id]

    up = await service.upscale_image(src.id, UpscaleRequest(mode="fast",
                                                            provider="stability"), ALICE)
    assert up.prediction.status == "succeeded"
    assert (up.edit.source_image_id, up.edit.image_id) == (src.id, None)
    assert (up.edit.files[0].width, up.edit.files[0].height) == (1280, 800)  # fake: x4
    assert all(Path(f.path).is_file() for f in up.edit.files)
    mine = await service.list_edits(ALICE, image_id=src.id)
    assert [e.id for e in mine.items] == [up.edit.id]

    clip = await service.create_video(VideoRequest(
        prompt="wind in the grass", provider="runway", image_id=src.id), ALICE)
    assert (clip.video.source_image_id, clip.video.image_id) == (src.id, None)
    kind, body = fakes.runway.state.sent[-1]
    assert kind == "image_to_video"
    assert base64.b64decode(body["promptImage"].split(",", 1)[1]) == data
    pred = await service.wait(clip.prediction.id, timeout_s=10)
    assert pred.status == "succeeded"
    video = (await service.get_video(clip.video.id, ALICE)).video
    [f] = video.files
    assert f.mime_type == "video/mp4" and Path(f.path).stat().st_size == f.size_bytes > 0


# --------------------------------------------------------------------------- retention


async def test_soft_delete_then_purge_after_retention(service):
    gone, kept = await generate(service, "gone"), await generate(service, "kept")
    await service.delete_media("images", gone.id, ALICE)
    with pytest.raises(NotFound):
        await service.get_image(gone.id, ALICE)
    assert [i.id for i in (await service.list_images(ALICE)).items] == [kept.id]
    gone_paths = [f.path for f in gone.files]
    assert gone_paths and kept.files  # each generation stored its image
    assert all(os.path.exists(p) for p in gone_paths)  # kept until the purge

    now = utcnow()
    assert await service.purge(now) == 0  # deleted just now: within 30 days
    assert all(os.path.exists(p) for p in gone_paths)
    assert await service.purge(now + timedelta(days=31)) == 1
    assert not any(os.path.exists(p) for p in gone_paths)
    row = await service.cat.images.get(gone.id)
    assert row.purged_at is not None and row.files == []
    assert all(os.path.exists(f.path) for f in kept.files)
    assert (await service.cat.images.get(kept.id)).purged_at is None
    assert await service.purge(now + timedelta(days=31)) == 0


async def test_output_ttl_purges_live_outputs(fakes, media_store, tmp_path):
    svc = MediaService(make_config(fakes, tmp_path / "media", output_ttl_days=1),
                       AsyncLocalCatalog(media_store))
    try:
        image = await generate(svc, "short-lived")
        now = utcnow()
        assert await svc.purge(now) == 0
        assert await svc.purge(now + timedelta(days=2)) == 1
        assert not any(os.path.exists(f.path) for f in image.files)
        [row] = (await svc.list_images(ALICE)).items
        assert row.id == image.id and row.files == [] and row.purged_at is not None
        with pytest.raises(NotFound):
            await svc.content("images", image.id, ALICE)
    finally:
        await svc.close()


# --------------------------------------------------------------------------- ownership


async def test_other_users_media_is_refused(service):
    image = await generate(service)
    video = await service.create_video(VideoRequest(prompt="waves", provider="runway"), ALICE)
    src = await service.upload_source_image(png(96, 64), s.SourceImageMeta(), ALICE)
    edit = await service.upscale_image(image.id, UpscaleRequest(mode="fast"), ALICE)
    change = s.MediaUpdate(title="mine now")

    for call in (service.get_image(image.id, BOB), service.get_video(video.video.id, BOB),
                 service.get_source_image(src.id, BOB), service.get_edit(edit.edit.id, BOB),
                 service.update_image(image.id, change, BOB),
                 service.update_video(video.video.id, change, BOB),
                 service.update_source_image(src.id, s.SourceImageUpdate(title="x"), BOB),
                 service.content("source_images", src.id, BOB),
                 service.upscale_image(src.id, UpscaleRequest(mode="fast"), BOB),
                 service.create_video(VideoRequest(prompt="x", image_id=src.id), BOB)):
        with pytest.raises(PermissionDenied):
            await call
    for kind, row_id in (("images", image.id), ("videos", video.video.id),
                         ("source_images", src.id), ("image_edits", edit.edit.id)):
        with pytest.raises(PermissionDenied):
            await service.delete_media(kind, row_id, BOB)

    await service.update_image(image.id, s.MediaUpdate(is_public=True), ALICE)
    assert (await service.get_image(image.id, BOB)).image.id == image.id
    with pytest.raises(PermissionDenied):  # public is readable, not writable
        await service.update_image(image.id, change, BOB)
    assert (await service.list_images(BOB)).total == 0  # lists stay per owner

    for call in (service.get_image("img_unknown", ALICE),
                 service.get_video("vid_unknown", ALICE),
                 service.get_source_image("src_unknown", ALICE),
                 service.get_edit("edt_unknown", ALICE),
                 service.delete_media("images", "img_unknown", ALICE)):
        with pytest.raises(NotFound):
            await call
    await service.wait(video.prediction.id, timeout_s=10)


# --------------------------------------------------------------------------- filters


async def test_list_filters_return_exactly_the_matching_rows(service, media_store):
    first, second, third = [await generate(service, p) for p in ("one", "two", "three")]
    for image in (first, second):
        media_store.set_tags("image", image.id, ["night"], "alice")
    project = media_store.create_project(s.ProjectCreate(name="Night walk", user_id="alice"))
    media_store.add_project_item(project.id, s.ProjectItemCreate(image_id=third.id))
    await service.update_image(second.id, s.MediaUpdate(is_favorite=True), ALICE)

    async def ids(who=ALICE, **filters) -> set[str]:
        return {i.id for i in (await service.list_images(who, **filters)).items}

    assert await ids(tag="night") == {first.id, second.id}
    assert await ids(project=project.slug) == {third.id}
    assert await ids(project=project.id) == {third.id}
    assert await ids(favorite=True) == {second.id}
    assert await ids(status="succeeded") == {first.id, second.id, third.id}
    assert await ids(status="failed") == set()
    assert await ids(provider="stability", tag="night", favorite=True) == {second.id}
    assert await ids(BOB) == set()
    assert await ids(BOB, tag="night") == set()

    hidden = media_store.create_project(s.ProjectCreate(name="Bob draft", user_id="bob"))
    with pytest.raises(PermissionDenied):
        await service.list_images(ALICE, project=hidden.slug)
    shown = media_store.create_project(s.ProjectCreate(
        name="Bob show", user_id="bob", is_published=True))
    assert await ids(project=shown.slug) == set()  # visible project, none of hers in it
    with pytest.raises(NotFound):
        await service.list_images(ALICE, project="no-such-project")


# --------------------------------------------------------------------------- cost, retries


async def test_cost_and_retry_count_are_recorded(service, fakes):
    plain = await service.generate_image(ImageGenerationRequest(
        prompt="a lamp", provider="stability"), ALICE)
    assert plain.prediction.model == "core"
    assert plain.prediction.cost_usd == PER_OUTPUT_USD["stability/core"] == 0.03
    assert plain.prediction.retry_count == 0

    # 429: refused before any work, so the create is sent again on the same provider
    fakes.stability.state.faults.add("create", 429)
    retried = await service.generate_image(ImageGenerationRequest(
        prompt="a lamp", provider="stability"), ALICE)
    assert retried.prediction.provider == "stability"
    assert retried.prediction.status == "succeeded"
    assert retried.prediction.retry_count == 1 and fakes.stability.state.calls["create"] == 3

    # 503: the create may have run, so it is not re-sent; the next provider takes it
    fakes.stability.state.faults.add("create", 503)
    moved = await service.generate_image(ImageGenerationRequest(
        prompt="a lamp", provider="stability"), ALICE)
    assert fakes.stability.state.calls["create"] == 4
    assert moved.prediction.provider != "stability" and moved.prediction.retry_count == 0


@pytest.mark.parametrize("model", ["dall-e-2", "gpt-image-1"])
async def test_num_outputs_gives_that_many_files_and_cost(service, model):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="two cats", provider="openai", model=model, size="1024x1024", num_outputs=2),
        ALICE)
    assert result.prediction.status == "succeeded"
    assert len(result.image.files) == 2 and result.image.num_outputs == 2
    assert all(Path(f.path).is_file() for f in result.image.files)
    assert result.prediction.cost_usd == pytest.approx(2 * PER_OUTPUT_USD[f"openai/{model}"])


async def test_an_output_smaller_than_64_px_still_succeeds(service):
    """The row holds the stored file's real size; 64..4096 bounds only the request (a
    32x32 answer to 512x512 once failed the request with 422 'width' and left the
    prediction 'starting')."""
    result = await service.generate_image(ImageGenerationRequest(
        prompt="a stamp", provider="openai", model="dall-e-2", size="512x512"), ALICE)
    assert result.prediction.status == "succeeded"
    assert (result.image.width, result.image.height) == (32, 32)


# --------------------------------------------------------------------------- providers


async def test_list_providers_follows_the_config(fakes, media_store, tmp_path):
    svc = MediaService(make_config(fakes, tmp_path / "media", missing=("runway",)),
                       AsyncLocalCatalog(media_store))
    try:
        providers = {p.name: p for p in svc.list_providers()}
    finally:
        await svc.close()
    assert set(providers) == {"replicate", "stability", "openai", "runway"}
    for name, p in providers.items():
        configured = name != "runway"
        assert (p.configured, p.healthy, p.cooldown_s) == (configured, configured, 0)
        assert p.models and all(m.active is configured for m in p.models)
    assert providers["runway"].token_env == "RUNWAYML_API_SECRET"
    assert any("image.generate" in m.capabilities for m in providers["stability"].models)
    assert any("video.generate" in m.capabilities for m in providers["runway"].models)
    assert all("video.generate" not in m.capabilities for m in providers["openai"].models)
