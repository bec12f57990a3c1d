"""Media: generate an image with a style, browse the gallery, edit and upscale the
selected image, start a video from it (``/v1/images``, ``/v1/videos``, ``/v1/providers``,
``/v1/prompt-helpers``). Without the media app on the cluster the tab says so."""

from __future__ import annotations

import io
from typing import Any

import gradio as gr
from PIL import Image as PILImage

from garden.console.common import ConsoleConfig, api, shows_errors
from garden.errors import NotFoundError

NOT_DEPLOYED = ("The media studio is not deployed on this cluster "
                "(`garden up` deploys it; `cluster.deploy.deploy_apps(media=True)`).")


def providers_text(providers: list[Any]) -> str:
    """One line per provider: configured or the variable that would configure it,
    health, and its models."""
    lines = []
    for p in providers:
        state = ("ready" if p.healthy else f"cooling down {p.cooldown_s:.0f} s") \
            if p.configured else f"not configured (set {p.token_env})"
        lines.append(f"- **{p.name}**: {state} · {', '.join(m.name for m in p.models)}")
    return "\n".join(lines)


def prediction_text(what: str, row_id: str, prediction: Any) -> str:
    err = f" · {prediction.error_message}" if prediction.error_message else ""
    return f"{what} `{row_id}`: prediction `{prediction.id}` **{prediction.status}**{err}"


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    providers = gr.Markdown(elem_id="media-providers")
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="media-prompt")
            style = gr.Dropdown(label="Style", choices=[], elem_id="media-style")
            provider = gr.Dropdown(label="Provider (empty: the routing policy picks)",
                                   choices=[], elem_id="media-provider")
            generate = gr.Button("Generate image", variant="primary",
                                 elem_id="media-generate")
            status = gr.Markdown(elem_id="media-status")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Gallery", columns=4, height=360,
                                 elem_id="media-gallery")
            with gr.Row():
                upscale = gr.Button("Upscale selected", size="sm")
                edit_prompt = gr.Textbox(label="Edit: replace with", scale=2)
                search = gr.Textbox(label="Edit: search for", scale=2)
                edit = gr.Button("Edit selected", size="sm")
            with gr.Row():
                video_prompt = gr.Textbox(label="Video prompt", scale=3)
                video = gr.Button("Start video from selected", size="sm")
    image_ids = gr.State([])
    selected = gr.State(None)

    @shows_errors
    def load(key_value: str | None) -> tuple[Any, ...]:
        with api(config, key_value) as client:
            try:
                found = client.providers.list()
            except NotFoundError:
                return NOT_DEPLOYED, gr.update(), gr.update(), [], []
            styles = client.prompt_helpers.list(page_size=100).items
            images = client.images.list(status="succeeded",
                                        page_size=config.gallery_size).items
            pictures, ids = [], []
            for img in images:
                if img.files:
                    data = client.images.content(img.id)
                    pictures.append((PILImage.open(io.BytesIO(data)), img.prompt[:60]))
                    ids.append(img.id)
        return (providers_text(found),
                gr.update(choices=[("(none)", "")] + [(s.name, s.id) for s in styles]),
                gr.update(choices=[("(policy)", "")] + [(p.name, p.name) for p in found]),
                pictures, ids)

    @shows_errors
    def make(key_value: str | None, text: str, style_id: str, provider_name: str) -> str:
        if not text.strip():
            raise gr.Error("Write a prompt.")
        with api(config, key_value) as client:
            made = client.images.generate(text, provider=provider_name or None,
                                          prompt_helper_id=style_id or None)
        return prediction_text("image", made.image.id, made.prediction)

    def pick(ids: list[str], evt: gr.SelectData) -> str | None:
        return ids[evt.index] if evt.index is not None and evt.index < len(ids) else None

    def needs(image_id: str | None) -> str:
        if not image_id:
            raise gr.Error("Select an image in the gallery first.")
        return image_id

    @shows_errors
    def do_upscale(key_value: str | None, image_id: str | None) -> str:
        with api(config, key_value) as client:
            done = client.images.upscale(needs(image_id))
        return prediction_text("upscale", done.edit.id, done.prediction)

    @shows_errors
    def do_edit(key_value: str | None, image_id: str | None, text: str, find: str) -> str:
        with api(config, key_value) as client:
            done = client.images.edit(needs(image_id), mode="search_and_replace",
                                      prompt=text or None, search_prompt=find or None)
        return prediction_text("edit", done.edit.id, done.prediction)

    @shows_errors
    def do_video(key_value: str | None, image_id: str | None, text: str) -> str:
        if not text.strip():
            raise gr.Error("Write a video prompt.")
        with api(config, key_value) as client:
            made = client.videos.create(text, image_id=image_id or None)
        return prediction_text("video", made.video.id, made.prediction)

    outputs = [providers, style, provider, gallery, image_ids]
    signed_in.then(load, key, outputs)
    tab.select(load, key, outputs)
    generate.click(make, [key, prompt, style, provider], status).success(load, key, outputs)
    gallery.select(pick, image_ids, selected)
    upscale.click(do_upscale, [key, selected], status)
    edit.click(do_edit, [key, selected, edit_prompt, search], status)
    video.click(do_video, [key, selected, video_prompt], status)
