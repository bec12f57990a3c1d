"""Prompt styles: exact outputs of each placement, themes, and styles applied by the
service from the catalog's helper versions (pinned, current, forked)."""

from __future__ import annotations

import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument, PermissionDenied
from serve_apps.media.schemas import ImageGenerationRequest
from serve_apps.media.styles import StyledPrompt, apply_style, apply_styles
from tests.serve_apps.media.conftest import ALICE


def _version(text: str, placement: str, version: int = 1, *, negative: str | None = None,
             placements: dict | None = None, presets: dict | None = None,
             ) -> s.PromptHelperVersion:
    return s.PromptHelperVersion(
        id=f"phv_{version}", helper_id="ph_1", version=version, text=text,
        placement=placement, negative_text=negative, placements=placements or {},
        style_presets=presets or {}, notes=None, created_at="2026-01-01T00:00:00")


@pytest.mark.parametrize(("prompt", "text", "placement", "expected"), [
    ("a cat", "oil painting", "append", StyledPrompt("a cat, oil painting", "oil painting")),
    ("a cat,", " oil painting, ", "append", StyledPrompt("a cat, oil painting", "oil painting")),
    ("a cat", "photo of", "prefix", StyledPrompt("photo of, a cat", "photo of")),
    ("a cat", "{prompt} in the style of Monet", "replace",
     StyledPrompt("a cat in the style of Monet", "{prompt} in the style of Monet")),
    ("a cat", "a dog", "replace", StyledPrompt("a dog", "a dog")),
    ("  a cat ", "   ", "append", StyledPrompt("a cat", None)),
])
def test_apply_style_placements(prompt, text, placement, expected):
    assert apply_style(prompt, text, placement) == expected


def test_theme_applies_helpers_in_order():
    styled = apply_styles("a cat", [_version("photo of", "prefix"),
                                    _version("35mm, grainy", "append", 2)])
    assert styled == StyledPrompt("photo of, a cat, 35mm, grainy", "photo of | 35mm, grainy")
    assert apply_styles("a cat", []) == StyledPrompt("a cat", None)


@pytest.mark.asyncio(loop_scope="session")
async def test_service_applies_versions_themes_and_forks(service, fakes, media_store):
    helper = media_store.create_prompt_helper(s.PromptHelperCreate(
        name="watercolor", text="watercolor", placement="append", user_id="alice"))
    v2 = media_store.add_prompt_helper_version(helper.id, "ink sketch of", "prefix")

    current = await service.generate_image(ImageGenerationRequest(
        prompt="a harbour", provider="stability", prompt_helper_id=helper.id), ALICE)
    assert current.image.prompt == "a harbour"
    assert current.image.styled_prompt == "ink sketch of, a harbour"
    assert current.image.applied_style == "ink sketch of"
    assert current.image.prompt_helper_version_id == v2.id
    assert current.prediction.input["prompt"] == "ink sketch of, a harbour"

    pinned = await service.generate_image(ImageGenerationRequest(
        prompt="a harbour", provider="stability", prompt_helper_id=helper.id,
        prompt_helper_version=1), ALICE)
    assert pinned.image.styled_prompt == "a harbour, watercolor"

    fork = media_store.fork_prompt_helper(helper.id, name="ink-2", user_id="alice")
    theme = media_store.create_theme_helper(s.ThemeHelperCreate(
        name="moody", prompt_helper_ids=[fork.id], user_id="alice"))
    themed = await service.generate_image(ImageGenerationRequest(
        prompt="a harbour", provider="stability", theme_helper_id=theme.id,
        prompt_helper_id=helper.id, prompt_helper_version=1), ALICE)
    assert themed.image.styled_prompt == "ink sketch of, a harbour, watercolor"
    assert themed.image.applied_style == "ink sketch of | watercolor"
    sent = [job.get("prompt") for job in fakes.stability.state.jobs.values()]
    assert "ink sketch of, a harbour, watercolor" in sent


def test_placement_per_prompt_type_negative_text_and_presets():
    versions = [_version("noir", "append", placements={"video": "prefix"}, negative="colour",
                         presets={"stability": "cinematic"}),
                _version("rain", "append", 2, negative="sun", presets={"stability": "anime"})]
    image = apply_styles("a street", versions, "image")
    video = apply_styles("a street", versions, "video")
    assert image.prompt == "a street, noir, rain"
    assert video.prompt == "noir, a street, rain"
    assert image.negative_text == "colour, sun"
    assert image.style_presets == {"stability": "anime"}  # the later style wins


@pytest.mark.asyncio(loop_scope="session")
async def test_style_negative_and_preset_reach_providers_that_take_them(
        service, fakes, media_store):
    helper = media_store.create_prompt_helper(s.PromptHelperCreate(
        name="noir-sent", text="film noir", negative_text="colour",
        style_presets={"stability": "cinematic"}, user_id="alice"))
    styled = await service.generate_image(ImageGenerationRequest(
        prompt="a street", provider="stability", prompt_helper_id=helper.id,
        negative_prompt="people"), ALICE)
    _route, fields = fakes.stability.state.sent[-1]
    assert (fields["prompt"], fields["negative_prompt"], fields["style_preset"]) == (
        "a street, film noir", "people, colour", "cinematic")
    assert (styled.image.negative_prompt, styled.image.style_preset) == (
        "people, colour", "cinematic")
    # OpenAI takes neither: the style still applies, its negative and preset are left out
    plain = await service.generate_image(ImageGenerationRequest(
        prompt="a street", provider="openai", prompt_helper_id=helper.id), ALICE)
    assert plain.prediction.status == "succeeded"
    assert plain.prediction.input["prompt"] == "a street, film noir"
    assert plain.prediction.input["negative_prompt"] is None
    assert plain.image.style_preset is None
    # a parameter the named provider cannot take is a 422 naming it, before any row
    before = (await service.list_predictions(ALICE, page_size=1000)).total
    with pytest.raises(InvalidArgument) as refused:
        await service.generate_image(ImageGenerationRequest(
            prompt="a street", provider="openai", negative_prompt="people"), ALICE)
    assert refused.value.field == "negative_prompt"
    assert (await service.list_predictions(ALICE, page_size=1000)).total == before


@pytest.mark.asyncio(loop_scope="session")
async def test_another_users_private_style_is_refused(service, media_store):
    private = media_store.create_prompt_helper(s.PromptHelperCreate(
        name="bobs", text="secret", user_id="bob"))
    with pytest.raises(PermissionDenied):
        await service.generate_image(ImageGenerationRequest(
            prompt="x", provider="stability", prompt_helper_id=private.id), ALICE)
