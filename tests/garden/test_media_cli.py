"""The client library and the ``garden`` CLI drive the media studio end to end: a second
gateway app that mounts the media routes (``GatewayConfig.media_app``) over a media app
deployed without HTTP, both on the session's Ray Serve and catalog actor, with the four
providers served by the fake provider servers of ``tests/serve_apps/media/fakes``."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from garden import Client
from garden.cli import app
from tests.gateway.fixtures import ADMIN_KEY
from tests.serve_apps.media.conftest import fakes, make_config  # noqa: F401

pytestmark = pytest.mark.ray

MEDIA_APP = "media-e2e"
GATEWAY_APP = "gw-media-e2e"
PREFIX = "/gwm"
#: Terminal width for the CLI's tables, wide enough that rich never folds an id.
COLUMNS = "250"


def png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    """A real RGB PNG of ``size`` (width, height) pixels made by Pillow."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def mask(size: tuple[int, int]) -> bytes:
    """An inpainting mask: black, with a white (repainted) square in the middle."""
    image = Image.new("L", size, 0)
    w, h = size
    image.paste(255, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def media_gateway_url(serve_url, catalog_handle, ray_job_address, keys, fakes,  # noqa: F811
                      tmp_path_factory):
    """Base URL of a gateway that mounts the media routes; the media service (no HTTP of
    its own) runs as its own Serve app, on the shared catalog actor."""
    from ray import serve

    from cluster.work import RayWork
    from serve_apps.gateway import GatewayConfig, build_gateway_app
    from serve_apps.media import build_media_app

    env = {"env_vars": {"GARDEN_ADMIN_KEY": ADMIN_KEY}}
    config = make_config(fakes, tmp_path_factory.mktemp("media-e2e") / "media")
    serve.run(build_media_app(config, http=False, runtime_env=env), name=MEDIA_APP,
              route_prefix=None)
    gateway = GatewayConfig(media_app=MEDIA_APP, dashboard_url=ray_job_address,
                            env_vars={"GARDEN_ADMIN_KEY": ADMIN_KEY})
    serve.run(build_gateway_app(gateway, RayWork(dashboard_url=ray_job_address)),
              name=GATEWAY_APP, route_prefix=PREFIX)
    yield f"{serve_url}{PREFIX}"
    serve.delete(GATEWAY_APP)
    serve.delete(MEDIA_APP)


@pytest.fixture
def garden(media_gateway_url, keys):
    with Client(media_gateway_url, keys.alice) as client:
        yield client


@pytest.fixture
def run(media_gateway_url, keys):
    """``garden --api-url ... --api-key <alice> ARGS``; returns typer's Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--api-url", media_gateway_url, "--api-key", keys.alice,
                                   *args], env={"COLUMNS": COLUMNS})

    return invoke


def first_id(prefix: str, text: str) -> str:
    """The first ``<prefix>_...`` id printed in ``text``."""
    found = re.search(rf"\b{prefix}_[A-Za-z0-9]+", text)
    assert found, text
    return found.group(0)


# ----------------------------------------------------------------- the client library


def test_client_uploads_upscales_and_animates(garden):
    upload = garden.source_images.upload(png((64, 48), (30, 90, 160)), title="sea",
                                         purpose="reference")
    assert (upload.format, upload.width, upload.height) == ("png", 64, 48)
    assert garden.source_images.update(upload.id, title="the sea").title == "the sea"

    upscaled = garden.images.upscale(upload.id, mode="fast", provider="stability")
    assert upscaled.prediction.status == "succeeded"
    assert (upscaled.edit.files[0].width, upscaled.edit.files[0].height) == (256, 192)
    again = garden.edits.get(upscaled.edit.id)
    assert (again.edit.id, again.prediction.id) == (upscaled.edit.id, upscaled.prediction.id)

    started = garden.videos.create("waves rolling in", upload.id, provider="runway")
    assert started.video.source_image_id == upload.id
    done = garden.videos.wait(started.video.id, timeout_s=60, poll_interval_s=0.2)
    assert done.prediction.status == "succeeded" and done.video.files
    assert garden.videos.update(done.video.id, is_favorite=True).is_favorite


def test_client_inpaints_a_generated_image_and_lists_providers(garden):
    made = garden.images.generate("a quiet harbour", provider="stability", aspect_ratio="1:1")
    assert made.prediction.status == "succeeded"
    size = (made.image.width, made.image.height)
    assert garden.images.update(made.image.id, caption="dawn").caption == "dawn"

    edited = garden.images.edit(made.image.id, mode="inpaint", prompt="a red boat",
                                mask=mask(size), provider="stability")
    assert edited.prediction.status == "succeeded"
    assert edited.edit.image_id == made.image.id
    assert (edited.edit.files[0].width, edited.edit.files[0].height) == size
    with Image.open(io.BytesIO(garden.edits.content(edited.edit.id))) as result:
        assert result.size == size
    assert garden.images.content(made.image.id).startswith(b"\x89PNG\r\n\x1a\n")
    assert edited.edit.id in [e.id for e in garden.edits.list(image_id=made.image.id).items]

    providers = garden.providers.list()
    assert sorted(p.name for p in providers) == ["openai", "replicate", "runway", "stability"]
    assert all(p.configured and p.models for p in providers)


# ----------------------------------------------------------------- the CLI


def test_cli_styles_shape_the_prompt(run, garden):
    created = run("styles", "create", "e2e-noir", "--text", "film noir",
                  "--category", "photography")
    assert created.exit_code == 0, created.output
    style_id = first_id("ph", created.output)
    versioned = run("styles", "version", style_id, "high contrast, film noir")
    assert versioned.exit_code == 0 and f"style {style_id} v2" in versioned.output
    assert [v.version for v in garden.prompt_helpers.versions(style_id)] == [1, 2]
    listed = garden.prompt_helpers.list(name="e2e-noir").items
    assert [h.id for h in listed] == [style_id]

    made = run("images", "generate", "a rainy street", "--style", style_id,
               "--provider", "stability")
    assert made.exit_code == 0, made.output
    assert "prompt sent: a rainy street, high contrast, film noir" in made.output


def test_cli_uploads_and_edits_an_image_of_your_own(run, tmp_path):
    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(png((48, 32), (200, 120, 40)))
    added = run("uploads", "add", str(sketch), "--title", "sketch")
    assert added.exit_code == 0, added.output
    upload_id = first_id("src", added.output)
    upscaled = run("images", "upscale", upload_id, "--mode", "fast", "--provider", "stability")
    assert upscaled.exit_code == 0, upscaled.output
    assert re.search(r"upscale edit_\w+ \(fast, succeeded, stability/", upscaled.output), (
        upscaled.output)
    bad = run("images", "upscale", "src_" + "0" * 32, "--provider", "stability")
    assert bad.exit_code == 1 and "not found" in bad.output.lower(), bad.output


def test_cli_video_waits_until_succeeded(run):
    result = run("videos", "create", "waves", "--provider", "runway", "--wait")
    assert result.exit_code == 0, result.output
    assert re.search(r"video vid_\w+ succeeded", result.output), result.output


def test_cli_tags_filter_and_delete_hides(run, garden):
    tagged = garden.images.generate("a lantern at night", provider="stability")
    other = garden.images.generate("a lantern at noon", provider="stability")
    image_id = tagged.image.id
    result = run("tags", "set", "images", image_id, "night")
    assert result.exit_code == 0 and f"tags of {image_id}: night" in result.output

    listed = run("images", "list", "--tag", "night")
    assert listed.exit_code == 0, listed.output
    assert re.findall(r"\bimg_\w+", listed.output) == [image_id]

    assert run("images", "delete", image_id).exit_code == 0
    everything = run("images", "list", "--page-size", "1000")
    assert everything.exit_code == 0
    assert image_id not in everything.output and other.image.id in everything.output


def test_cli_projects(run, garden):
    image_id = garden.images.generate("a zebra", provider="stability").image.id
    created = run("projects", "create", "Zoo")
    assert created.exit_code == 0, created.output
    made = re.search(r"\((zoo[\w-]*)\)", created.output)  # the slug, made unique
    assert made, created.output
    slug = made.group(1)
    added = run("projects", "add", slug, "--image", image_id)
    assert added.exit_code == 0 and "item " in added.output, added.output
    shown = run("projects", "show", slug)
    assert shown.exit_code == 0, shown.output
    assert "Zoo" in shown.output and image_id in shown.output
    assert [i.image_id for i in garden.projects.items(slug)] == [image_id]


def test_cli_bad_value_is_one_line_naming_the_field(run):
    result = run("images", "generate", "x", "--provider", "openai", "--negative-prompt", "y")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "negative_prompt" in lines[0], result.output
