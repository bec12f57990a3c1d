"""The media studio's outputs and inputs: ``garden uploads add | list | show | delete``,
``garden images generate | list | show | update | delete | upscale | edit``, ``garden
videos create | list | show | delete`` and ``garden providers``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from garden.cli.options import DescriptionOpt, PublicOpt
from garden.cli.output import api, console, media_errors, print_fields, print_table, short, when

uploads_app = typer.Typer(help="Uploaded source images (references, training images, "
                          "inputs of edits).", no_args_is_help=True)
images_app = typer.Typer(help="Generate, list, edit and upscale images through the media "
                         "providers.", no_args_is_help=True)
videos_app = typer.Typer(help="Generate and list videos.", no_args_is_help=True)
providers_app = typer.Typer(help="The media providers: configured, healthy, their models.")


def _style_ref(value: str | None) -> tuple[str | None, int | None]:
    """``ID`` or ``ID:VERSION`` of ``--style``; raises typer.BadParameter."""
    if value is None:
        return None, None
    helper_id, sep, version = value.partition(":")
    if not helper_id or (sep and not (version.isdigit() and int(version) >= 1)):
        raise typer.BadParameter(f"{value!r}: expected ID or ID:VERSION (VERSION from 1)",
                                 param_hint="--style")
    return helper_id, int(version) if sep else None


# --------------------------------------------------------------------------- uploads

PurposeOpt = Annotated[str | None, typer.Option(help="training, reference or inspiration.")]


@uploads_app.command("add")
def uploads_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="PNG, JPEG, WebP or GIF file.")],
    title: Annotated[str | None, typer.Option(help="A short title.")] = None,
    description: DescriptionOpt = None, purpose: PurposeOpt = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every user.")] = False,
) -> None:
    """Upload an image (a reference, a training image or the input of an edit)."""
    with media_errors():
        u = api(ctx).source_images.upload(file, title=title, description=description,
                                          purpose=purpose, is_public=public or None)
    console.print(f"uploaded {u.id}: {u.format} {u.width}x{u.height}, {u.size_bytes} bytes"
                  f" ({u.purpose})")


@uploads_app.command("list")
def uploads_list(
    ctx: typer.Context, purpose: PurposeOpt = None,
    tag: Annotated[str | None, typer.Option(help="Only those with this tag.")] = None,
    page_size: int = 50, cursor: str | None = None,
) -> None:
    """Your uploads, newest first."""
    with media_errors():
        page = api(ctx).source_images.list(purpose=purpose, tag=tag, page_size=page_size,
                                           cursor=cursor)
    print_table("uploads", ["id", "title", "purpose", "format", "size", "bytes", "tags", "created"],
                [[u.id, u.title, u.purpose, u.format, f"{u.width}x{u.height}", u.size_bytes,
                  ", ".join(u.tags), when(u.created_at)] for u in page.items],
                page.total, page.next_cursor)


@uploads_app.command("show")
def uploads_show(
    ctx: typer.Context, source_image_id: str,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also save the image's bytes here.")] = None,
    thumbnail: Annotated[bool, typer.Option("--thumbnail",
                                            help="With -o: save the thumbnail.")] = False,
) -> None:
    """An upload's fields (and, with -o, its bytes saved to a file)."""
    client = api(ctx)
    with media_errors():
        u = client.source_images.get(source_image_id)
        data = client.source_images.content(u.id, thumbnail=thumbnail) if output else None
    print_fields(f"upload {u.id}", [
        ("title", u.title), ("description", u.description), ("purpose", u.purpose),
        ("format", u.format), ("mime type", u.mime_type), ("size", f"{u.width}x{u.height}"),
        ("bytes", u.size_bytes), ("public", u.is_public), ("tags", u.tags),
        ("path", u.path), ("thumbnail", u.thumbnail_path), ("owner", u.user_id),
        ("created", when(u.created_at))])
    if output is not None and data is not None:
        output.write_bytes(data)
        console.print(f"saved {output} ({len(data)} bytes)")


@uploads_app.command("delete")
def uploads_delete(ctx: typer.Context, source_image_id: str) -> None:
    """Delete an upload (its file is purged after the retention period)."""
    with media_errors():
        api(ctx).source_images.delete(source_image_id)
    console.print(f"deleted {source_image_id}")


# --------------------------------------------------------------------------- images

ProviderOpt = Annotated[str | None, typer.Option(
    help="replicate, stability, openai or runway (default: the server's order).")]
ModelOpt = Annotated[str | None, typer.Option(help="The provider's model name.")]
SeedOpt = Annotated[int | None, typer.Option(min=0, help="Random seed.")]
FormatOpt = Annotated[str | None, typer.Option(help="png, jpeg or webp.")]
TimeoutOpt = Annotated[float, typer.Option(help="Longest wait for the provider, seconds.")]


def _print_files(files: list[Any]) -> None:
    for f in files:
        console.print(f"  {f.path} {f.mime_type} {f.width}x{f.height}", markup=False,
                      highlight=False)


@images_app.command("generate")
def images_generate(
    ctx: typer.Context, prompt: str = typer.Argument(...),
    provider: ProviderOpt = None, model: ModelOpt = None,
    size: str | None = typer.Option(None, help="WIDTHxHEIGHT"),
    aspect_ratio: Annotated[str | None, typer.Option(help="e.g. 16:9.")] = None,
    negative_prompt: Annotated[str | None, typer.Option(
        help="What the image should not show.")] = None,
    num_outputs: Annotated[int | None, typer.Option(min=1, help="Images, 1..4.")] = None,
    guidance_scale: Annotated[float | None, typer.Option(
        min=0, help="Prompt adherence, 0..30.")] = None,
    style_preset: Annotated[str | None, typer.Option(
        help="The provider's own preset, e.g. cinematic.")] = None,
    style: Annotated[str | None, typer.Option(
        "--style", help="A style: ID or ID:VERSION (default: its current version).")] = None,
    theme: Annotated[str | None, typer.Option("--theme", help="A theme's id.")] = None,
    output_format: FormatOpt = None, seed: SeedOpt = None, timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Generate an image; prints the stored files."""
    helper_id, helper_version = _style_ref(style)
    params = {k: v for k, v in (("aspect_ratio", aspect_ratio), ("output_format", output_format),
                                ("seed", seed)) if v is not None}
    with media_errors(), console.status("generating..."):
        result = api(ctx).images.generate(
            prompt, provider=provider, model=model, size=size,
            negative_prompt=negative_prompt, num_outputs=num_outputs,
            guidance_scale=guidance_scale, style_preset=style_preset,
            prompt_helper_id=helper_id, prompt_helper_version=helper_version,
            theme_helper_id=theme, timeout_s=timeout_s, **params)
    console.print(f"image {result.image.id} ({result.prediction.status}, "
                  f"{result.prediction.provider}/{result.prediction.model})")
    if result.image.styled_prompt and result.image.styled_prompt != prompt:
        console.print(f"  prompt sent: {result.image.styled_prompt}", markup=False,
                      highlight=False)
    _print_files(result.image.files)


@images_app.command("list")
def images_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        help="Prediction status: starting, processing, succeeded, failed, canceled.")
                      ] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only those with this tag.")] = None,
    project: Annotated[str | None, typer.Option(help="Only those in this project.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601).")] = None,
    favorite: Annotated[bool, typer.Option("--favorite", help="Only favorites.")] = False,
    page_size: int = 50, cursor: str | None = None,
) -> None:
    """Your images, newest first."""
    with media_errors():
        page = api(ctx).images.list(
            status=status, provider=provider, tag=tag, project=project, created_after=since,
            created_before=until, favorite=favorite or None, page_size=page_size,
            cursor=cursor)
    print_table("images", ["id", "title / prompt", "provider", "model", "size", "files", "fav",
                           "tags", "created"],
                [[i.id, short(i.title or i.prompt, 50), i.provider, i.model,
                  f"{i.width}x{i.height}" if i.width else None, len(i.files),
                  "★" if i.is_favorite else "", ", ".join(i.tags), when(i.created_at)]
                 for i in page.items], page.total, page.next_cursor)


@images_app.command("show")
def images_show(ctx: typer.Context, image_id: str) -> None:
    """An image, its prediction and its files."""
    with media_errors():
        result = api(ctx).images.get(image_id)
    i, p = result.image, result.prediction
    print_fields(f"image {i.id}", [
        ("title", i.title), ("caption", i.caption), ("alt text", i.alt_text),
        ("prompt", i.prompt), ("negative prompt", i.negative_prompt),
        ("prompt sent", i.styled_prompt if i.styled_prompt != i.prompt else None),
        ("style added", i.applied_style), ("style version", i.prompt_helper_version_id),
        ("provider", f"{i.provider}/{i.model}"),
        ("size", f"{i.width}x{i.height}" if i.width else None),
        ("aspect ratio", i.aspect_ratio), ("outputs", i.num_outputs),
        ("guidance scale", i.guidance_scale), ("style preset", i.style_preset),
        ("format", i.output_format), ("public", i.is_public), ("favorite", i.is_favorite),
        ("tags", i.tags), ("prediction", f"{p.id} {p.status}"),
        ("error", p.error_message), ("duration", f"{p.duration_s:.1f} s"
                                     if p.duration_s is not None else None),
        ("cost", f"{p.cost_usd:.4f} USD" if p.cost_usd is not None else None),
        ("created", when(i.created_at))])
    _print_files(i.files)


@images_app.command("update")
def images_update(
    ctx: typer.Context, image_id: str,
    title: Annotated[str | None, typer.Option(help="A short title.")] = None,
    caption: Annotated[str | None, typer.Option(help="A caption.")] = None,
    alt_text: Annotated[str | None, typer.Option(help="Text for screen readers.")] = None,
    public: PublicOpt = None,
    favorite: Annotated[bool | None, typer.Option("--favorite/--unfavorite")] = None,
) -> None:
    """Change an image's title, caption, alt text, visibility or favorite mark."""
    with media_errors():
        i = api(ctx).images.update(image_id, title=title, caption=caption,
                                   alt_text=alt_text, is_public=public,
                                   is_favorite=favorite)
    console.print(f"image {i.id} updated")


@images_app.command("delete")
def images_delete(ctx: typer.Context, image_id: str) -> None:
    """Delete an image (its files are purged after the retention period)."""
    with media_errors():
        api(ctx).images.delete(image_id)
    console.print(f"deleted {image_id}")


def _print_edit(result: Any) -> None:
    e, p = result.edit, result.prediction
    console.print(f"{e.kind} {e.id} ({e.operation}, {p.status}, {p.provider}/{p.model})")
    _print_files(e.files)


@images_app.command("upscale")
def images_upscale(
    ctx: typer.Context,
    image_id: Annotated[str, typer.Argument(help="An image (img_...) or upload (src_...).")],
    mode: Annotated[str, typer.Option(help="fast, conservative or creative.")] = "fast",
    prompt: Annotated[str | None, typer.Option(
        help="Required by conservative and creative.")] = None,
    provider: ProviderOpt = None, model: ModelOpt = None, output_format: FormatOpt = None,
    seed: SeedOpt = None, timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Upscale an image or an upload; prints the stored files."""
    with media_errors(), console.status(f"upscaling ({mode})..."):
        result = api(ctx).images.upscale(
            image_id, mode=mode, prompt=prompt, provider=provider,  # type: ignore[arg-type]
            model=model, output_format=output_format, seed=seed, timeout_s=timeout_s)
    _print_edit(result)


@images_app.command("edit")
def images_edit(
    ctx: typer.Context,
    image_id: Annotated[str, typer.Argument(help="An image (img_...) or upload (src_...).")],
    mode: Annotated[str, typer.Option(
        help="inpaint, search_and_replace or variation.")] = "inpaint",
    prompt: Annotated[str | None, typer.Option(help="What to paint.")] = None,
    search_prompt: Annotated[str | None, typer.Option(
        help="What to replace (search_and_replace).")] = None,
    mask: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="PNG mask; white pixels are repainted.")] = None,
    provider: ProviderOpt = None, model: ModelOpt = None, output_format: FormatOpt = None,
    seed: SeedOpt = None, timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Edit an image or an upload (inpaint, search and replace, variation)."""
    with media_errors(), console.status(f"editing ({mode})..."):
        result = api(ctx).images.edit(
            image_id, mode=mode, prompt=prompt, search_prompt=search_prompt,  # type: ignore[arg-type]
            mask=mask.read_bytes() if mask else None, provider=provider, model=model,
            output_format=output_format, seed=seed, timeout_s=timeout_s)
    _print_edit(result)


# --------------------------------------------------------------------------- videos


def _video_line(result: Any) -> str:
    v, p = result.video, result.prediction
    reason = f": {p.error_message}" if p.error_message else ""
    return f"video {v.id} {p.status} ({p.provider}/{p.model}){reason}"


@videos_app.command("create")
def videos_create(
    ctx: typer.Context, prompt: str = typer.Argument(...),
    image: Annotated[str | None, typer.Option(
        help="First frame: an image (img_...) or upload (src_...).")] = None,
    provider: ProviderOpt = None, model: ModelOpt = None,
    duration_s: Annotated[float | None, typer.Option("--duration",
                                                     help="Clip length, seconds.")] = None,
    ratio: Annotated[str | None, typer.Option(help="Frame ratio, e.g. 16:9 or 1280:720.")
                     ] = None,
    seed: SeedOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is done.")] = False,
    timeout_s: Annotated[float, typer.Option(help="Longest wait with --wait, seconds.")
                         ] = 900.0,
) -> None:
    """Start a video (text-to-video, or image-to-video with --image); --wait follows it."""
    client = api(ctx)
    with media_errors():
        result = client.videos.create(prompt, image, provider=provider, model=model,
                                      duration_s=duration_s, ratio=ratio, seed=seed)
        console.print(_video_line(result), markup=False, highlight=False)
        if not wait or result.done:
            if result.done:
                _print_files(result.video.files)
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task(f"video {result.video.id} {result.prediction.status}")

            def show(r: Any) -> None:
                progress.update(task, description=f"video {r.video.id} {r.prediction.status}")

            result = client.videos.wait(result.video.id, timeout_s, on_poll=show)
    console.print(_video_line(result), markup=False, highlight=False)
    _print_files(result.video.files)


@videos_app.command("list")
def videos_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Prediction status.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only those with this tag.")] = None,
    project: Annotated[str | None, typer.Option(help="Only those in this project.")] = None,
    favorite: Annotated[bool, typer.Option("--favorite", help="Only favorites.")] = False,
    page_size: int = 50, cursor: str | None = None,
) -> None:
    """Your videos, newest first."""
    with media_errors():
        page = api(ctx).videos.list(status=status, provider=provider, tag=tag,
                                    project=project, favorite=favorite or None,
                                    page_size=page_size, cursor=cursor)
    print_table("videos", ["id", "title / prompt", "provider", "model", "seconds", "ratio",
                           "from", "files", "created"],
                [[v.id, short(v.title or v.prompt, 50), v.provider, v.model, v.duration_s,
                  v.ratio, v.image_id or v.source_image_id, len(v.files), when(v.created_at)]
                 for v in page.items], page.total, page.next_cursor)


@videos_app.command("show")
def videos_show(ctx: typer.Context, video_id: str) -> None:
    """A video, its prediction and its files."""
    with media_errors():
        result = api(ctx).videos.get(video_id)
    v, p = result.video, result.prediction
    print_fields(f"video {v.id}", [
        ("title", v.title), ("caption", v.caption), ("prompt", v.prompt),
        ("provider", f"{v.provider}/{v.model}"), ("duration", f"{v.duration_s} s"),
        ("ratio", v.ratio), ("from image", v.image_id), ("from upload", v.source_image_id),
        ("public", v.is_public), ("favorite", v.is_favorite), ("tags", v.tags),
        ("prediction", f"{p.id} {p.status}"), ("error", p.error_message),
        ("retries", p.retry_count or None),
        ("cost", f"{p.cost_usd:.4f} USD" if p.cost_usd is not None else None),
        ("thumbnail", v.thumbnail.path if v.thumbnail else None),
        ("created", when(v.created_at))])
    _print_files(v.files)


@videos_app.command("delete")
def videos_delete(ctx: typer.Context, video_id: str) -> None:
    """Delete a video (its files are purged after the retention period)."""
    with media_errors():
        api(ctx).videos.delete(video_id)
    console.print(f"deleted {video_id}")


# --------------------------------------------------------------------------- providers


@providers_app.callback(invoke_without_command=True)
def providers(ctx: typer.Context) -> None:
    """The media providers: configured, healthy, cooldown and models."""
    with media_errors():
        rows = api(ctx).providers.list()
    print_table("providers", ["provider", "configured", "healthy", "cooldown s", "models"],
                [[p.name, "yes" if p.configured else "no", "yes" if p.healthy else "no",
                  p.cooldown_s or None,
                  "; ".join(f"{m.name}{':' + m.version if m.version else ''}"
                       f" [{', '.join(m.capabilities)}]{'' if m.active else ' (inactive)'}"
                            for m in p.models)] for p in rows])
