"""Prompt styles: exact outputs of each placement, themes, and styles applied by the
service from the catalog's helper versions (pinned, current, forked)."""

from __future__ import annotations

import pytest

from catalog import schemas as s
from serve_apps.media.schemas import ImageGenerationRequest
from serve_apps.media.styles import StyledPrompt, apply_style, apply_styles
from tests.serve_apps.media.conftest import ALICE


def _version(text: str, placement: str, version: int = 1) -> s.PromptHelperVersion:
    return s.PromptHelperVersion(id=f"phv_{version}", helper_id="ph_1", version=version,
                                 text=text, placement=placement, created_at="2026-01-01T00:00:00")


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
        name="watercolor", text="watercolor", placement="append"))
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

    fork = media_store.fork_prompt_helper(helper.id, name="ink-2")
    theme = media_store.theme_helpers.create(s.ThemeHelperCreate(
        name="moody", prompt_helper_ids=[fork.id]))
    themed = await service.generate_image(ImageGenerationRequest(
        prompt="a harbour", provider="stability", theme_helper_id=theme.id,
        prompt_helper_id=helper.id, prompt_helper_version=1), ALICE)
    assert themed.image.styled_prompt == "ink sketch of, a harbour, watercolor"
    assert themed.image.applied_style == "ink sketch of | watercolor"
    sent = [job.get("prompt") for job in fakes.stability.state.jobs.values()]
    assert "ink sketch of, a harbour, watercolor" in sent
