"""Replicate webhook signatures (Replicate's spec), webhooks driving the lifecycle, and
the backoff/retry rules."""

from __future__ import annotations

import json
import random
import time

import pytest

from catalog.errors import NotFound, Unauthenticated, Unavailable
from catalog.port import AsyncLocalCatalog
from serve_apps.media.config import RetryPolicy
from serve_apps.media.providers.base import ProviderError, retry_after_seconds
from serve_apps.media.retry import backoff_delay, may_retry, with_retries
from serve_apps.media.schemas import ImageGenerationRequest
from serve_apps.media.service import MediaService
from tests.serve_apps.media.conftest import ALICE, make_config
from tests.serve_apps.media.fakes.replicate_api import sign


def _signed(secret: str, body: dict, *, age_s: int = 0) -> tuple[dict, bytes]:
    text = json.dumps(body)
    ts = int(time.time()) - age_s
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts),
               "webhook-signature": sign(secret, "msg_1", ts, text)}
    return headers, text.encode()


@pytest.mark.asyncio(loop_scope="session")
async def test_signed_webhook_completes_prediction(fakes, media_store, tmp_path):
    config = make_config(fakes, tmp_path, poll_interval_s=3600)  # only webhooks advance it
    svc = MediaService(config, AsyncLocalCatalog(media_store))
    result = await svc.generate_image(ImageGenerationRequest(
        prompt="a mill", provider="replicate"), ALICE)
    pid = result.prediction.provider_prediction_id
    body = {"id": pid, "status": "succeeded", "model": "x/y", "version": "",
            "output": [f"{fakes.replicate.url}/files/{pid}/0.png"], "error": None}
    fakes.replicate.state.jobs[pid]["_done"] = time.time()  # the file the body names exists
    headers, raw = _signed(fakes.replicate_secret, body)
    pred = await svc.handle_webhook("replicate", headers, raw)
    assert pred.status == "succeeded" and pred.files[0].mime_type == "image/png"
    image = media_store.images.get(result.image.id)
    assert image.files == pred.files and image.width == 96
    # repeated delivery is harmless
    assert (await svc.handle_webhook("replicate", headers, raw)).status == "succeeded"
    await svc.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_stale_or_unsigned_webhooks_are_rejected(fakes, media_store, tmp_path):
    svc = MediaService(make_config(fakes, tmp_path), AsyncLocalCatalog(media_store))
    body = {"id": "abc", "status": "succeeded", "output": []}
    headers, raw = _signed(fakes.replicate_secret, body)
    tampered = raw.replace(b"succeeded", b"failed\x20\x20\x20")
    with pytest.raises(Unauthenticated):
        await svc.handle_webhook("replicate", headers, tampered)
    old_headers, old_raw = _signed(fakes.replicate_secret, body, age_s=3600)
    with pytest.raises(Unauthenticated):
        await svc.handle_webhook("replicate", old_headers, old_raw)
    with pytest.raises(Unauthenticated):
        await svc.handle_webhook("replicate", {}, raw)
    other_secret = "whsec_" + "c2VjcmV0LW90aGVy"
    with pytest.raises(Unauthenticated):
        await svc.handle_webhook("replicate", _signed(other_secret, body)[0], raw)
    with pytest.raises(NotFound):  # valid signature, unknown prediction
        await svc.handle_webhook("replicate", headers, raw)
    with pytest.raises(NotFound):
        await svc.handle_webhook("runway", headers, raw)
    await svc.close()
    unsigned = make_config(fakes, tmp_path)
    unsigned.providers["replicate"].webhook_secret = None
    svc = MediaService(unsigned, AsyncLocalCatalog(media_store))
    with pytest.raises(Unavailable, match="REPLICATE_WEBHOOK_SECRET"):
        await svc.handle_webhook("replicate", headers, raw)
    await svc.close()


def test_backoff_grows_caps_and_honours_retry_after():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0)
    rng = random.Random(7)
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    for attempt, ceiling in enumerate(ceilings):
        for _ in range(50):
            assert 0.0 <= backoff_delay(attempt, policy, None, rng) <= ceiling
    assert backoff_delay(0, policy, 9.0, rng) == 9.0
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


def test_create_is_retried_only_when_it_cannot_have_run():
    e = ProviderError
    assert may_retry(e("p", "x", status=429), create=True, idempotent_create=False)
    assert may_retry(e("p", "x", sent=False), create=True, idempotent_create=False)
    assert not may_retry(e("p", "x", status=500), create=True, idempotent_create=False)
    assert not may_retry(e("p", "x"), create=True, idempotent_create=False)  # timeout
    assert may_retry(e("p", "x", status=500), create=True, idempotent_create=True)
    assert may_retry(e("p", "x", status=503), create=False, idempotent_create=False)
    assert not may_retry(e("p", "x", status=400), create=False, idempotent_create=False)


@pytest.mark.asyncio(loop_scope="session")
async def test_with_retries_sleeps_retry_after_and_stops_at_max_attempts():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        raise ProviderError("p", "busy", status=429, retry_after_s=1.5)

    with pytest.raises(ProviderError):
        await with_retries(flaky, RetryPolicy(max_attempts=3, base_delay_s=0.01), create=True,
                           sleep=sleep)
    assert calls == 3 and slept == [1.5, 1.5]
