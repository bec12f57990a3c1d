"""Optional generation parameters (output count, guidance, style preset, negative prompt)
and model listings, driven through the adapters against the fake provider servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from catalog.errors import InvalidArgument
from catalog.schemas import Modality, PredictionStatus
from serve_apps.media.providers import MediaJob, Provider, ProviderError, build_providers
from serve_apps.media.providers.base import ProviderJob
from tests.serve_apps.media.conftest import make_config

pytestmark = pytest.mark.asyncio(loop_scope="session")

SCHNELL = "black-forest-labs/flux-schnell"


def generate(prompt: str = "a red fox", **fields) -> MediaJob:
    return MediaJob(modality=Modality.image, operation="generate", prompt=prompt, **fields)


@pytest_asyncio.fixture(loop_scope="session")
async def providers(fakes, tmp_path) -> AsyncIterator[dict[str, Provider]]:
    built = build_providers(make_config(fakes, tmp_path / "media"))
    yield built
    for provider in built.values():
        await provider.aclose()


async def finished(provider: Provider, job: ProviderJob, timeout_s: float = 10.0) -> ProviderJob:
    """Poll an asynchronous job until it is terminal (or fail after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        while not job.terminal:
            await asyncio.sleep(0.05)
            assert job.provider_id is not None
            job = await provider.get(job.provider_id)
    return job


async def test_openai_n_gives_that_many_outputs(providers, fakes):
    openai = providers["openai"]
    job = generate(model="dall-e-2", num_outputs=2, width=512, height=512)
    openai.check_params(job)
    result = await openai.submit(job)
    assert result.status == PredictionStatus.succeeded
    assert len(result.outputs) == 2
    assert fakes.openai.state.sent[-1][1]["n"] == 2


async def test_openai_dall_e_3_takes_one_image_and_the_fake_refuses_more(providers):
    openai = providers["openai"]
    job = generate(num_outputs=2)  # default model dall-e-3
    with pytest.raises(InvalidArgument) as err:
        openai.check_params(job)
    assert err.value.field == "num_outputs"
    with pytest.raises(ProviderError) as sent:
        await openai.submit(job)
    assert sent.value.status == 400 and "n=1" in sent.value.message


async def test_replicate_num_outputs_gives_that_many_outputs(providers, fakes):
    fakes.replicate.state.job_s = 0.05
    replicate = providers["replicate"]
    job = generate(num_outputs=3)
    replicate.check_params(job)
    result = await finished(replicate, await replicate.submit(job))
    assert result.status == PredictionStatus.succeeded
    assert len(result.outputs) == 3
    assert len({o.url for o in result.outputs}) == 3
    assert fakes.replicate.state.sent[-1][1]["input"]["num_outputs"] == 3


async def test_replicate_flux_dev_sends_guidance(providers, fakes):
    replicate = providers["replicate"]
    job = generate(model="black-forest-labs/flux-dev", guidance_scale=3.5)
    replicate.check_params(job)
    await replicate.cancel((await replicate.submit(job)).provider_id or "")
    assert fakes.replicate.state.sent[-1][1]["input"]["guidance"] == 3.5


async def test_stability_sends_style_preset_and_cfg_scale(providers, fakes):
    stability = providers["stability"]
    job = generate(model="sd3.5-large", style_preset="cinematic", guidance_scale=7.0,
                   negative_prompt="blur")
    stability.check_params(job)
    result = await stability.submit(job)
    assert result.status == PredictionStatus.succeeded and len(result.outputs) == 1
    assert fakes.stability.state.calls["create"] == 1
    route, fields = fakes.stability.state.sent[-1]
    assert route == "generate/sd3"
    assert fields["style_preset"] == "cinematic"
    assert fields["cfg_scale"] == "7"
    assert fields["negative_prompt"] == "blur"


async def test_stability_fake_answers_400_for_an_unknown_preset(providers):
    stability = providers["stability"]
    job = generate(style_preset="watercolour")
    with pytest.raises(InvalidArgument) as err:
        stability.check_params(job)
    assert err.value.field == "style_preset"
    with pytest.raises(ProviderError) as sent:
        await stability.submit(job)
    assert sent.value.status == 400 and "style_preset" in sent.value.message


@pytest.mark.parametrize(("name", "job", "field"), [
    ("openai", generate(negative_prompt="blur"), "negative_prompt"),
    ("openai", generate(style_preset="anime"), "style_preset"),
    ("openai", generate(guidance_scale=5.0), "guidance_scale"),
    ("stability", generate(num_outputs=2), "num_outputs"),
    ("stability", generate(model="core", guidance_scale=5.0), "guidance_scale"),
    ("stability", generate(model="ultra", style_preset="anime"), "style_preset"),
    ("stability", generate(model="sd3.5-large-turbo", negative_prompt="blur"),
     "negative_prompt"),
    ("stability", generate(model="sd3.5-large", guidance_scale=12.0), "guidance_scale"),
    ("replicate", generate(model=SCHNELL, guidance_scale=3.5), "guidance_scale"),
    ("replicate", generate(model=SCHNELL, negative_prompt="blur"), "negative_prompt"),
    ("replicate", generate(model=SCHNELL, num_outputs=5), "num_outputs"),
    ("runway", MediaJob(modality=Modality.video, operation="generate", prompt="waves",
                        negative_prompt="blur"), "negative_prompt"),
])
async def test_check_params_refuses_unsupported_fields(providers, name, job, field):
    with pytest.raises(InvalidArgument) as err:
        providers[name].check_params(job)
    assert err.value.field == field
    assert err.value.code == "invalid_argument"


async def test_check_params_accepts_documented_fields(providers):
    providers["stability"].check_params(generate(model="core", style_preset="anime",
                                                 negative_prompt="blur"))
    providers["stability"].check_params(generate(model="ultra", negative_prompt="blur"))
    providers["openai"].check_params(generate(model="gpt-image-1", num_outputs=10))
    providers["replicate"].check_params(generate(model=SCHNELL, num_outputs=4))
    # another Replicate model: passed through for its own schema to judge
    providers["replicate"].check_params(generate(
        model="stability-ai/sdxl:7762fd07", negative_prompt="blur", guidance_scale=7.5,
        num_outputs=2, style_preset="anything"))


async def test_models_list_names_capabilities_and_active(fakes, tmp_path):
    config = make_config(fakes, tmp_path / "media", missing=("runway",))
    config.providers["replicate"].models["image.generate"] = "owner/custom:abc123"
    built = build_providers(config)
    replicate = {m["name"]: m for m in built["replicate"].models()}
    assert replicate["owner/custom"] == {"name": "owner/custom", "version": "abc123",
                                         "capabilities": ["image.generate"], "active": True}
    assert SCHNELL not in replicate  # overridden for its only key
    assert replicate["minimax/video-01"]["version"] is None
    assert replicate["minimax/video-01"]["capabilities"] == ["video.generate"]
    openai = {m["name"]: m["capabilities"] for m in built["openai"].models()}
    assert openai == {"dall-e-2": ["image.edit", "image.variation"],
                      "dall-e-3": ["image.generate"]}
    runway = built["runway"].models()
    assert {m["name"] for m in runway} == {"gen4_turbo", "veo3.1"}
    assert all(m["capabilities"] == ["video.generate"] and m["active"] is False
               for m in runway)
