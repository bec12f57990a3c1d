"""The media service against the fake providers with the real replicate/openai clients
and a real SQLite catalog: lifecycle, outputs, fallback, retries, cooldown, cancel."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image as PILImage

from catalog.errors import InvalidArgument, InvalidTransition, PermissionDenied, Unavailable
from catalog.port import AsyncLocalCatalog
from serve_apps.media.schemas import (
    EditRequest,
    ImageGenerationRequest,
    UpscaleRequest,
    VideoRequest,
)
from serve_apps.media.service import MediaService
from tests.serve_apps.media.conftest import ALICE, BOB, make_config
from tests.serve_apps.media.fakes.common import png_bytes

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_stability_generate_stores_output_with_metadata(service, fakes, media_store):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="a red fox", provider="stability", aspect_ratio="3:2"), ALICE)
    pred = result.prediction
    assert pred.status == "succeeded" and pred.provider == "stability" and pred.model == "core"
    assert pred.completed_at is not None and pred.duration_s is not None
    [f] = result.image.files
    assert (f.mime_type, f.width, f.height) == ("image/png", 96, 64)
    assert Path(f.path).read_bytes() == png_bytes(96, 64)
    assert f.size_bytes == len(png_bytes(96, 64))
    assert (result.image.width, result.image.height) == (96, 64)
    assert fakes.stability.state.calls["create"] == 1
    await service.usage.flush()
    [usage] = media_store.usage.list(kind="media").items
    assert (usage.provider, usage.model, usage.cost_usd) == ("stability", "core", 0.03)
    assert usage.details["prediction_id"] == pred.id


async def test_replicate_job_polled_to_completion_and_outputs_copied(service, fakes):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="a lighthouse", provider="replicate", size="1024x768", steps=4), ALICE)
    assert result.prediction.status in ("starting", "processing")
    assert result.prediction.provider_prediction_id
    pred = await service.wait(result.prediction.id, timeout_s=10)
    assert pred.status == "succeeded" and pred.duration_s is not None
    [f] = pred.files
    assert (f.mime_type, f.width, f.height) == ("image/png", 96, 64)
    assert f.source_url.startswith(fakes.replicate.url)
    job = fakes.replicate.state.jobs[pred.provider_prediction_id]
    assert job["input"]["num_inference_steps"] == 4
    # the provider's URL expires; our copy stays
    fakes.replicate.state.file_ttl_s = 0
    image = (await service.get_image(result.image.id, ALICE)).image
    assert Path(image.files[0].path).read_bytes() == png_bytes(96, 64)


async def test_failed_replicate_job_records_provider_error(service):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="boom [fail]", provider="replicate"), ALICE)
    pred = await service.wait(result.prediction.id, timeout_s=10)
    assert pred.status == "failed"
    assert pred.error_message == "CUDA out of memory (simulated)"
    assert pred.files == []


async def test_fallback_after_server_errors_never_resends_create(service, fakes, media_store):
    fakes.stability.state.faults.add("create", 500)
    result = await service.generate_image(ImageGenerationRequest(prompt="a boat"), ALICE)
    assert fakes.stability.state.calls["create"] == 1  # a 500 create may have run: no resend
    assert result.prediction.provider == "openai" and result.prediction.status == "succeeded"
    first = media_store.predictions.get(result.prediction.input["previous_prediction_id"])
    assert first.provider == "stability" and first.status == "failed"
    assert "HTTP 500" in first.error_message and "falling back to openai" in first.error_message
    assert first.input["prompt"] == "a boat"  # the request survives the provider's failure


async def test_429_is_retried_honouring_retry_after(service, fakes):
    fakes.openai.state.faults.add("create", 429, retry_after=1)
    result = await service.generate_image(ImageGenerationRequest(
        prompt="a kite", provider="openai", size="1024x1024"), ALICE)
    assert fakes.openai.state.calls["create"] == 2
    assert result.prediction.status == "succeeded" and result.prediction.provider == "openai"
    assert result.prediction.output["revised_prompt"] == ["a kite (revised)"]


async def test_retry_after_longer_than_allowed_falls_back(service, fakes):
    fakes.stability.state.faults.add("create", 429, retry_after=600)
    result = await service.generate_image(ImageGenerationRequest(prompt="a cloud"), ALICE)
    assert fakes.stability.state.calls["create"] == 1
    assert result.prediction.provider == "openai"


async def test_provider_cooled_down_after_repeated_failures(service, fakes):
    fakes.stability.state.faults.add("create", 503, times=2)
    for _ in range(2):
        result = await service.generate_image(ImageGenerationRequest(prompt="x"), ALICE)
        assert result.prediction.provider == "openai"
    assert service.cooldown.cooling("stability")
    result = await service.generate_image(ImageGenerationRequest(
        prompt="y", provider="stability"), ALICE)
    assert result.prediction.provider == "openai"
    assert fakes.stability.state.calls["create"] == 2  # skipped while cooling
    service.cooldown.failure("openai")
    service.cooldown.failure("openai")
    service.cooldown.failure("replicate")
    service.cooldown.failure("replicate")
    with pytest.raises(Unavailable, match="cooling down"):
        await service.generate_image(ImageGenerationRequest(prompt="z"), ALICE)


async def test_all_providers_failing_keeps_every_attempt(service, fakes, media_store):
    fakes.stability.state.faults.add("create", 500)
    fakes.openai.state.faults.add("create", 500)
    fakes.replicate.state.faults.add("create", 502)
    result = await service.generate_image(ImageGenerationRequest(prompt="doomed"), ALICE)
    assert result.prediction.status == "failed" and result.prediction.provider == "replicate"
    assert result.image.prediction_id == result.prediction.id
    rows = media_store.predictions.list(status="failed").items
    assert sorted(r.provider for r in rows) == ["openai", "replicate", "stability"]


async def test_provider_rejection_is_surfaced_without_fallback(service, fakes):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="x", provider="openai", model="dall-e-9"), ALICE)
    # fake accepts any model; a 400 from the provider is the request's fault
    fakes.openai.state.faults.add("create", 400)
    result = await service.generate_image(ImageGenerationRequest(
        prompt="x", provider="openai"), ALICE)
    assert result.prediction.status == "failed"
    assert "HTTP 400" in result.prediction.error_message
    assert "falling back" not in result.prediction.error_message


async def test_content_filtered_result_fails_the_prediction(service):
    result = await service.generate_image(ImageGenerationRequest(
        prompt="[filtered] thing", provider="stability"), ALICE)
    assert result.prediction.status == "failed"
    assert result.prediction.error_message == "stability finish_reason CONTENT_FILTERED"


async def test_missing_token_answers_503_naming_the_variable(fakes, media_store, tmp_path):
    svc = MediaService(make_config(fakes, tmp_path, missing=("replicate", "runway")),
                       AsyncLocalCatalog(media_store))
    with pytest.raises(Unavailable, match="set REPLICATE_API_TOKEN"):
        await svc.generate_image(ImageGenerationRequest(prompt="x", provider="replicate"),
                                 ALICE)
    with pytest.raises(Unavailable, match="set one of REPLICATE_API_TOKEN, RUNWAYML_API_SECRET"):
        await svc.create_video(VideoRequest(prompt="waves"), ALICE)
    await svc.close()


async def test_unsupported_provider_for_operation_is_422(service):
    with pytest.raises(InvalidArgument) as err:
        await service.create_video(VideoRequest(prompt="x", provider="stability"), ALICE)
    assert err.value.field == "provider"


async def test_upscale_fast_and_creative(service, fakes, media_store):
    base = await service.generate_image(ImageGenerationRequest(
        prompt="tiny", provider="stability"), ALICE)
    fast = await service.upscale_image(base.image.id, UpscaleRequest(mode="fast"), ALICE)
    assert fast.prediction.status == "succeeded"
    assert (fast.edit.kind, fast.edit.operation) == ("upscale", "fast")
    assert (fast.edit.files[0].width, fast.edit.files[0].height) == (256, 256)
    creative = await service.upscale_image(base.image.id, UpscaleRequest(
        mode="creative", prompt="crisp"), ALICE)
    assert creative.prediction.status == "processing"  # 202 from /v2beta/results
    pred = await service.wait(creative.prediction.id, timeout_s=10)
    assert pred.status == "succeeded" and pred.files[0].width == 128
    edit = media_store.image_edits.get(creative.edit.id)
    assert edit.files == pred.files
    assert fakes.stability.state.calls["get"] >= 2


async def test_edits_inpaint_search_replace_variation(service, fakes):
    base = await service.generate_image(ImageGenerationRequest(
        prompt="room", provider="stability"), ALICE)
    mask = base64.b64encode(png_bytes(64, 64, (255, 255, 255))).decode()
    inpaint = await service.edit_image(base.image.id, EditRequest(
        mode="inpaint", prompt="a plant", mask=mask), ALICE)
    assert inpaint.prediction.status == "succeeded" and inpaint.edit.kind == "edit"
    assert inpaint.edit.params["has_mask"] is True and "mask" not in inpaint.edit.params
    snr = await service.edit_image(base.image.id, EditRequest(
        mode="search_and_replace", prompt="a dog", search_prompt="cat"), ALICE)
    assert snr.prediction.provider == "stability" and snr.prediction.status == "succeeded"
    var = await service.edit_image(base.image.id, EditRequest(mode="variation"), ALICE)
    assert var.prediction.provider == "openai" and var.prediction.model == "dall-e-2"
    assert var.edit.files[0].mime_type == "image/png"


async def test_runway_text_and_image_to_video(service, fakes):
    text = await service.create_video(VideoRequest(prompt="waves [throttled]", ratio="9:16"),
                                      ALICE)
    assert text.prediction.provider == "runway" and text.prediction.model == "veo3.1"
    base = await service.generate_image(ImageGenerationRequest(
        prompt="still", provider="stability"), ALICE)
    moving = await service.create_video(VideoRequest(
        prompt="make it move", image_id=base.image.id, duration_s=10), ALICE)
    assert moving.prediction.model == "gen4_turbo"
    for result in (text, moving):
        pred = await service.wait(result.prediction.id, timeout_s=10)
        assert pred.status == "succeeded"
        assert pred.files[0].mime_type == "video/mp4"
    tasks = fakes.runway.state.jobs.values()
    assert {t["kind"] for t in tasks} == {"text_to_video", "image_to_video"}
    assert any(t["body"]["ratio"] == "720:1280" for t in tasks)
    video = (await service.get_video(moving.video.id, ALICE)).video
    assert video.files and video.duration_s == 10
    # no provider returns a still: ours is the first frame, as WebP
    assert video.thumbnail is not None and video.thumbnail.mime_type == "image/webp"
    with PILImage.open(video.thumbnail.path) as still:
        assert still.format == "WEBP" and still.size == (64, 48)  # the frame's size
    assert (video.thumbnail.width, video.thumbnail.height) == (64, 48)
    data, mime = await service.content("videos", video.id, ALICE, thumbnail=True)
    assert mime == "image/webp" and data == Path(video.thumbnail.path).read_bytes()


async def test_runway_failure_and_cancel(service, fakes):
    failed = await service.create_video(VideoRequest(prompt="bad [fail]"), ALICE)
    pred = await service.wait(failed.prediction.id, timeout_s=10)
    assert pred.status == "failed"
    assert pred.error_message == "Generation failed (INTERNAL.BAD_OUTPUT)"
    slow = await service.create_video(VideoRequest(prompt="long [slow]"), ALICE)
    with pytest.raises(PermissionDenied):
        await service.cancel_prediction(slow.prediction.id, BOB)
    canceled = await service.cancel_prediction(slow.prediction.id, ALICE)
    assert canceled.status == "canceled" and canceled.completed_at is not None
    assert fakes.runway.state.calls["cancel"] == 1
    with pytest.raises(InvalidTransition):
        await service.cancel_prediction(slow.prediction.id, ALICE)


async def test_replicate_cancel_and_list(service, fakes):
    slow = await service.generate_image(ImageGenerationRequest(
        prompt="[slow] castle", provider="replicate"), ALICE)
    canceled = await service.cancel_prediction(slow.prediction.id, ALICE)
    assert canceled.status == "canceled"
    job = fakes.replicate.state.jobs[slow.prediction.provider_prediction_id]
    assert job["status"] == "canceled"
    mine = await service.list_predictions(ALICE, status="canceled")
    assert [p.id for p in mine.items] == [slow.prediction.id]
    assert (await service.list_predictions(BOB)).total == 0


async def test_poll_errors_are_retried_until_the_job_finishes(service, fakes):
    fakes.runway.state.faults.add("get", 500, times=3)
    result = await service.create_video(VideoRequest(prompt="storm"), ALICE)
    pred = await service.wait(result.prediction.id, timeout_s=10)
    assert pred.status == "succeeded"
    assert fakes.runway.state.calls["get"] >= 4


async def test_no_token_in_errors_or_rows(service, fakes, media_store, caplog):
    fakes.stability.state.faults.add("create", 500)
    fakes.openai.state.faults.add("create", 500)
    await service.generate_image(ImageGenerationRequest(prompt="x"), ALICE)
    text = caplog.text + str([p.model_dump() for p in media_store.predictions.list().items])
    for server in fakes.all():
        assert server.state.token not in text


async def test_replicate_429_retry_after_reaches_the_router(service, fakes):
    fakes.replicate.state.faults.add("create", 429, retry_after=1)
    ok = await service.generate_image(ImageGenerationRequest(
        prompt="a pier", provider="replicate"), ALICE)
    assert ok.prediction.provider == "replicate" and fakes.replicate.state.calls["create"] == 2
    fakes.replicate.state.faults.add("create", 429, retry_after=600)  # > max_retry_after_s
    moved = await service.generate_image(ImageGenerationRequest(
        prompt="a pier", provider="replicate"), ALICE)
    assert fakes.replicate.state.calls["create"] == 3
    assert moved.prediction.provider == "stability"


async def test_restarted_service_resumes_unfinished_jobs(fakes, media_store, tmp_path):
    first = MediaService(make_config(fakes, tmp_path), AsyncLocalCatalog(media_store))
    fakes.replicate.state.job_s = 1.0
    result = await first.generate_image(ImageGenerationRequest(
        prompt="a barn", provider="replicate"), ALICE)
    await first.close()  # the replica goes away mid-job
    second = MediaService(make_config(fakes, tmp_path), AsyncLocalCatalog(media_store))
    assert await second.resume() == 1
    pred = await second.wait(result.prediction.id, timeout_s=10)
    assert pred.status == "succeeded"
    assert media_store.images.get(result.image.id).files == pred.files
    await second.close()


async def test_output_download_is_retried_and_an_expired_url_fails_clearly(service, fakes):
    fakes.openai.state.faults.add("file", 503)
    ok = await service.generate_image(ImageGenerationRequest(
        prompt="a bell", provider="openai"), ALICE)
    assert ok.prediction.status == "succeeded" and fakes.openai.state.calls["file"] == 2
    fakes.openai.state.file_ttl_s = -1  # the URL has expired by the time we fetch it
    gone = await service.generate_image(ImageGenerationRequest(
        prompt="a bell", provider="openai"), ALICE)
    assert gone.prediction.status == "failed"
    assert gone.prediction.error_message.startswith("could not copy outputs")
    assert "403" in gone.prediction.error_message
