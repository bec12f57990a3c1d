"""The media studio's ``garden`` commands (typer sub-apps registered by :mod:`garden.cli`).

``garden styles create | list | show | update | version | versions | fork | favorite |
unfavorite | delete``, ``garden themes`` (the same), ``garden tags list | set``,
``garden projects create | list | show | add | remove | delete``, ``garden uploads add |
list | show | delete``, ``garden images generate | list | show | update | delete |
upscale | edit``, ``garden videos create | list | show | delete`` and ``garden
providers``.

The client, the error printing (one line naming the field, exit status 1) and the tables
are :mod:`garden.cli`'s, imported when a command runs: ``garden.cli`` imports this module
to register the sub-apps, so a module-level import back would be circular.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from garden.client import Client

styles_app = typer.Typer(help="Prompt styles (prompt helpers): versioned texts added to "
                         "prompts.", no_args_is_help=True)
themes_app = typer.Typer(help="Themes: a text plus an ordered list of recommended styles.",
                         no_args_is_help=True)
tags_app = typer.Typer(help="Tags on images, videos, uploads, styles and themes.",
                       no_args_is_help=True)
projects_app = typer.Typer(help="Project galleries of images and videos.",
                           no_args_is_help=True)
uploads_app = typer.Typer(help="Uploaded source images (references, training images, "
                          "inputs of edits).", no_args_is_help=True)
images_app = typer.Typer(help="Generate, list, edit and upscale images through the media "
                         "providers.", no_args_is_help=True)
videos_app = typer.Typer(help="Generate and list videos.", no_args_is_help=True)
providers_app = typer.Typer(help="The media providers: configured, healthy, their models.")

console = Console(soft_wrap=True)  # never break URLs or ids across lines


def _client(ctx: typer.Context) -> Client:
    from garden import cli

    return cli._client(ctx)


@contextmanager
def _errors() -> Iterator[None]:
    """:func:`garden.cli._errors` (API errors in one line, exit 1), plus the client's own
    checks made before a request (ValueError)."""
    from garden import cli

    try:
        with cli._errors():
            yield
    except ValueError as exc:  # outside: cli._errors takes typer.Exit for a RuntimeError
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from exc


def _table(title: str, columns: list[str], rows: list[list[Any]], total: int | None = None,
           next_cursor: str | None = None) -> None:
    from garden import cli

    cli._table(title, columns, rows, total, next_cursor)


def _fields(title: str, pairs: list[tuple[str, Any]]) -> None:
    """Print ``(name, value)`` pairs as a two-column table; None values are left out."""
    table = Table(title=title, box=box.SIMPLE, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in pairs:
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)


def _when(value: Any) -> str | None:
    return None if value is None else f"{value:%Y-%m-%d %H:%M}"


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """``["key=value", ...]`` as a dict; raises typer.BadParameter naming ``option``."""
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"{item!r}: expected key=value", param_hint=option)
        out[key.strip()] = value.strip()
    return out


def _style_ref(value: str | None) -> tuple[str | None, int | None]:
    """``ID`` or ``ID:VERSION`` of ``--style``; raises typer.BadParameter."""
    if value is None:
        return None, None
    helper_id, sep, version = value.partition(":")
    if not helper_id or (sep and not (version.isdigit() and int(version) >= 1)):
        raise typer.BadParameter(f"{value!r}: expected ID or ID:VERSION (VERSION from 1)",
                                 param_hint="--style")
    return helper_id, int(version) if sep else None


# --------------------------------------------------------------------------- styles, themes

NameOpt = Annotated[str | None, typer.Option(help="New name.")]
DescriptionOpt = Annotated[str | None, typer.Option(help="Free text.")]
CategoryOpt = Annotated[str | None, typer.Option(help="Category, e.g. photography.")]
PublicOpt = Annotated[bool | None, typer.Option("--public/--private",
                                                help="Visible to every user or not.")]
NegativeOpt = Annotated[str | None, typer.Option("--negative",
                                                 help="Text added to the negative prompt.")]
PlacementOpt = Annotated[str | None, typer.Option(help="append (default), prefix or replace.")]
PlacementForOpt = Annotated[list[str] | None, typer.Option(
    "--placement-for", help="PROMPT_TYPE=PLACEMENT (image, video), repeatable.")]
PresetOpt = Annotated[list[str] | None, typer.Option(
    "--preset", help="PROVIDER=PRESET, e.g. stability=cinematic; repeatable.")]
NotesOpt = Annotated[str | None, typer.Option(help="What this version changes.")]
ThemeStylesOpt = Annotated[list[str] | None, typer.Option(
    "--style", help="A recommended style's id, repeatable, in order.")]


def _helper_row(h: Any) -> list[Any]:
    owner = "built-in" if h.is_builtin else h.user_id
    return [h.id, h.name, h.category, h.current_version, "yes" if h.is_public else "",
            owner, ", ".join(h.tags)]


def _add_helper_commands(app: typer.Typer, noun: str,
                         namespace: Callable[[Client], Any],
                         version_row: Callable[[Any], list[Any]],
                         version_columns: list[str]) -> None:
    """Register the commands styles and themes share: list, versions, fork, favorite,
    unfavorite and delete."""

    @app.command("list")
    def list_(
        ctx: typer.Context, category: CategoryOpt = None,
        tag: Annotated[str | None, typer.Option(help="Only those with this tag.")] = None,
        builtin: Annotated[bool | None, typer.Option(
            "--builtin/--custom", help="Only built-ins, or only user-made ones.")] = None,
        favorite: Annotated[bool, typer.Option("--favorite",
                                               help="Only your favorites.")] = False,
        name: Annotated[str | None, typer.Option(help="Only this exact name.")] = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> None:
        """Yours, the public and the built-in ones."""
        with _errors():
            page = namespace(_client(ctx)).list(
                category=category, tag=tag, builtin=builtin, favorite=favorite or None,
                name=name, page_size=page_size, cursor=cursor)
        _table(f"{noun}s", ["id", "name", "category", "version", "public", "owner", "tags"],
               [_helper_row(h) for h in page.items], page.total, page.next_cursor)

    list_.__doc__ = f"List {noun}s: yours, the public and the built-in ones."

    @app.command("versions")
    def versions(ctx: typer.Context, helper_id: str) -> None:
        with _errors():
            rows = namespace(_client(ctx)).versions(helper_id)
        _table(f"versions of {helper_id}", version_columns, [version_row(v) for v in rows])

    versions.__doc__ = f"Every version of a {noun}, oldest first."

    @app.command("fork")
    def fork(ctx: typer.Context, helper_id: str,
             name: Annotated[str, typer.Argument(help="The copy's name.")]) -> None:
        with _errors():
            h = namespace(_client(ctx)).fork(helper_id, name)
        console.print(f"forked {helper_id} into {h.id}: {h.name} v{h.current_version}")

    fork.__doc__ = f"Copy a {noun} (its current version) as one of yours."

    @app.command("favorite")
    def favorite_(ctx: typer.Context, helper_id: str) -> None:
        with _errors():
            namespace(_client(ctx)).favorite(helper_id, on=True)
        console.print(f"{helper_id} is a favorite")

    favorite_.__doc__ = f"Mark a {noun} as one of your favorites."

    @app.command("unfavorite")
    def unfavorite(ctx: typer.Context, helper_id: str) -> None:
        with _errors():
            namespace(_client(ctx)).favorite(helper_id, on=False)
        console.print(f"{helper_id} is no longer a favorite")

    unfavorite.__doc__ = f"Remove a {noun} from your favorites."

    @app.command("delete")
    def delete(ctx: typer.Context, helper_id: str) -> None:
        with _errors():
            namespace(_client(ctx)).delete(helper_id)
        console.print(f"deleted {helper_id}")

    delete.__doc__ = f"Delete one of your {noun}s (built-ins: admins only)."


def _style_version_row(v: Any) -> list[Any]:
    placements = ", ".join(f"{k}={p}" for k, p in v.placements.items())
    presets = ", ".join(f"{k}={p}" for k, p in v.style_presets.items())
    return [v.version, v.placement, placements or None, _short(v.text), _short(v.negative_text),
            presets or None, _short(v.notes, 40), _when(v.created_at)]


@styles_app.command("create")
def styles_create(
    ctx: typer.Context, name: str,
    text: Annotated[str, typer.Option(help="Text added to prompts ({prompt} marks the "
                                      "prompt for --placement replace).")],
    negative: NegativeOpt = None, placement: PlacementOpt = None,
    placement_for: PlacementForOpt = None, preset: PresetOpt = None,
    description: DescriptionOpt = None, category: CategoryOpt = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every user.")] = False,
    notes: NotesOpt = None,
) -> None:
    """Create a style; TEXT becomes its version 1."""
    placements = _pairs(placement_for, "--placement-for")
    presets = _pairs(preset, "--preset")
    with _errors():
        h = _client(ctx).prompt_helpers.create(
            name, text, description=description, category=category, is_public=public,
            negative_text=negative, placement=placement, placements=placements,
            style_presets=presets, notes=notes)
    console.print(f"style {h.id}: {h.name} v{h.current_version}")


@styles_app.command("show")
def styles_show(
    ctx: typer.Context, helper_id: str,
    version: Annotated[int | None, typer.Option(min=1, help="This version instead of the "
                                                "current one.")] = None,
) -> None:
    """A style and the text of its current version (or --version)."""
    client = _client(ctx)
    with _errors():
        h = client.prompt_helpers.get(helper_id)
        v = client.prompt_helpers.version(helper_id, version or h.current_version)
    _fields(f"style {h.id}", [
        ("name", h.name), ("description", h.description), ("category", h.category),
        ("owner", "built-in" if h.is_builtin else h.user_id), ("public", h.is_public),
        ("current version", h.current_version), ("forked from", h.forked_from_id),
        ("tags", h.tags), ("created", _when(h.created_at))])
    _fields(f"version {v.version}", [
        ("text", v.text), ("negative", v.negative_text), ("placement", v.placement),
        ("per prompt type", dict(v.placements)), ("presets", dict(v.style_presets)),
        ("notes", v.notes), ("created", _when(v.created_at))])


@styles_app.command("update")
def styles_update(
    ctx: typer.Context, helper_id: str, name: NameOpt = None,
    description: DescriptionOpt = None, category: CategoryOpt = None,
    public: PublicOpt = None,
) -> None:
    """Change a style's name, description, category or visibility (the text: `version`)."""
    with _errors():
        h = _client(ctx).prompt_helpers.update(helper_id, name=name, description=description,
                                               category=category, is_public=public)
    console.print(f"style {h.id}: {h.name} v{h.current_version}")


@styles_app.command("version")
def styles_version(
    ctx: typer.Context, helper_id: str,
    text: Annotated[str, typer.Argument(help="The new version's text.")],
    negative: NegativeOpt = None, placement: PlacementOpt = None,
    placement_for: PlacementForOpt = None, preset: PresetOpt = None, notes: NotesOpt = None,
) -> None:
    """Add a version to a style; it becomes the current one."""
    placements = _pairs(placement_for, "--placement-for")
    presets = _pairs(preset, "--preset")
    with _errors():
        v = _client(ctx).prompt_helpers.add_version(
            helper_id, text, negative_text=negative, placement=placement,
            placements=placements, style_presets=presets, notes=notes)
    console.print(f"style {helper_id} v{v.version}")


_add_helper_commands(styles_app, "style", lambda c: c.prompt_helpers, _style_version_row,
                     ["version", "placement", "per type", "text", "negative", "presets",
                      "notes", "created"])


def _theme_version_row(v: Any) -> list[Any]:
    return [v.version, _short(v.text), _short(v.negative_text), ", ".join(v.prompt_helper_ids),
            _short(v.notes, 40), _when(v.created_at)]


@themes_app.command("create")
def themes_create(
    ctx: typer.Context, name: str,
    text: Annotated[str | None, typer.Option(help="The theme's own text.")] = None,
    negative: NegativeOpt = None, style: ThemeStylesOpt = None,
    description: DescriptionOpt = None, category: CategoryOpt = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every user.")] = False,
    featured: Annotated[bool, typer.Option("--featured", help="Shown first.")] = False,
    notes: NotesOpt = None,
) -> None:
    """Create a theme; its text and styles become version 1."""
    with _errors():
        t = _client(ctx).theme_helpers.create(
            name, text=text, negative_text=negative, prompt_helper_ids=style,
            description=description, category=category, is_public=public,
            is_featured=featured, notes=notes)
    console.print(f"theme {t.id}: {t.name} v{t.current_version}")


@themes_app.command("show")
def themes_show(ctx: typer.Context, theme_id: str) -> None:
    """A theme: its current text and recommended styles."""
    with _errors():
        t = _client(ctx).theme_helpers.get(theme_id)
    _fields(f"theme {t.id}", [
        ("name", t.name), ("description", t.description), ("category", t.category),
        ("owner", "built-in" if t.is_builtin else t.user_id), ("public", t.is_public),
        ("featured", t.is_featured), ("active", t.is_active),
        ("current version", t.current_version), ("text", t.text),
        ("negative", t.negative_text), ("styles", t.prompt_helper_ids),
        ("forked from", t.forked_from_id), ("tags", t.tags), ("created", _when(t.created_at))])


@themes_app.command("update")
def themes_update(
    ctx: typer.Context, theme_id: str, name: NameOpt = None,
    description: DescriptionOpt = None, category: CategoryOpt = None,
    public: PublicOpt = None,
    featured: Annotated[bool | None, typer.Option("--featured/--not-featured")] = None,
    active: Annotated[bool | None, typer.Option(
        "--active/--inactive", help="Inactive themes are kept but not offered.")] = None,
) -> None:
    """Change a theme's fields (the text and styles: `version`)."""
    with _errors():
        t = _client(ctx).theme_helpers.update(
            theme_id, name=name, description=description, category=category,
            is_public=public, is_featured=featured, is_active=active)
    console.print(f"theme {t.id}: {t.name} v{t.current_version}")


@themes_app.command("version")
def themes_version(
    ctx: typer.Context, theme_id: str,
    text: Annotated[str | None, typer.Option(help="The new version's text.")] = None,
    negative: NegativeOpt = None, style: ThemeStylesOpt = None, notes: NotesOpt = None,
) -> None:
    """Add a version to a theme; it becomes the current one."""
    with _errors():
        v = _client(ctx).theme_helpers.add_version(
            theme_id, text=text, negative_text=negative, prompt_helper_ids=style, notes=notes)
    console.print(f"theme {theme_id} v{v.version}")


_add_helper_commands(themes_app, "theme", lambda c: c.theme_helpers, _theme_version_row,
                     ["version", "text", "negative", "styles", "notes", "created"])


# --------------------------------------------------------------------------- tags, projects


@tags_app.command("list")
def tags_list(ctx: typer.Context, page_size: int = 200, cursor: str | None = None) -> None:
    """Your tags."""
    with _errors():
        page = _client(ctx).tags.list(page_size=page_size, cursor=cursor)
    _table("tags", ["id", "name", "created"],
           [[t.id, t.name, _when(t.created_at)] for t in page.items], page.total,
           page.next_cursor)


@tags_app.command("set")
def tags_set(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="images, videos, source-images (uploads), "
                                        "prompt-helpers (styles) or theme-helpers "
                                        "(themes).")],
    row_id: Annotated[str, typer.Argument(help="The row's id.")],
    names: Annotated[list[str] | None, typer.Argument(
        help="Its tags from now on (none: clear them).")] = None,
) -> None:
    """Replace a row's tags (tags you lack are created)."""
    with _errors():
        now = _client(ctx).tags.set(kind, row_id, names or [])
    console.print(f"tags of {row_id}: {', '.join(now) or '(none)'}")


@projects_app.command("create")
def projects_create(
    ctx: typer.Context, name: str,
    slug: Annotated[str | None, typer.Option(help="URL name (default: from NAME).")] = None,
    description: DescriptionOpt = None,
    published: Annotated[bool, typer.Option("--published",
                                            help="Visible to every user.")] = False,
    featured: Annotated[bool, typer.Option("--featured", help="Shown first.")] = False,
) -> None:
    """Create a project gallery."""
    with _errors():
        p = _client(ctx).projects.create(name, slug=slug, description=description,
                                         is_published=published, is_featured=featured)
    console.print(f"project {p.id}: {p.name} ({p.slug})")


@projects_app.command("list")
def projects_list(ctx: typer.Context, page_size: int = 50, cursor: str | None = None) -> None:
    """Your projects."""
    with _errors():
        page = _client(ctx).projects.list(page_size=page_size, cursor=cursor)
    _table("projects", ["id", "slug", "name", "published", "featured", "created"],
           [[p.id, p.slug, p.name, "yes" if p.is_published else "",
             "yes" if p.is_featured else "", _when(p.created_at)] for p in page.items],
           page.total, page.next_cursor)


@projects_app.command("show")
def projects_show(ctx: typer.Context,
                  project: Annotated[str, typer.Argument(help="Id or slug.")]) -> None:
    """A project and its items, in order."""
    client = _client(ctx)
    with _errors():
        p = client.projects.get(project)
        items = client.projects.items(p.id)
    _fields(f"project {p.id}", [
        ("name", p.name), ("slug", p.slug), ("description", p.description),
        ("published", p.is_published), ("featured", p.is_featured), ("owner", p.user_id),
        ("created", _when(p.created_at))])
    _table("items", ["position", "item id", "image", "video"],
           [[i.position, i.id, i.image_id, i.video_id] for i in items])


@projects_app.command("add")
def projects_add(
    ctx: typer.Context, project: Annotated[str, typer.Argument(help="Id or slug.")],
    image: Annotated[str | None, typer.Option(help="An image id.")] = None,
    video: Annotated[str | None, typer.Option(help="A video id.")] = None,
    position: Annotated[int | None, typer.Option(min=0, help="From 0 (default: last).")
                        ] = None,
) -> None:
    """Place an image (--image) or a video (--video) in a project."""
    if (image is None) == (video is None):
        raise typer.BadParameter("give exactly one of --image or --video",
                                 param_hint="--image/--video")
    with _errors():
        item = _client(ctx).projects.add_item(project, image_id=image, video_id=video,
                                              position=position)
    console.print(f"item {item.id}: {item.image_id or item.video_id} at {item.position}")


@projects_app.command("remove")
def projects_remove(ctx: typer.Context,
                    project: Annotated[str, typer.Argument(help="Id or slug.")],
                    item_id: Annotated[str, typer.Argument(help="The item's id (see show).")]
                    ) -> None:
    """Take an item out of a project (the image or video stays)."""
    with _errors():
        _client(ctx).projects.remove_item(project, item_id)
    console.print(f"removed {item_id}")


@projects_app.command("delete")
def projects_delete(ctx: typer.Context,
                    project: Annotated[str, typer.Argument(help="Id or slug.")]) -> None:
    """Delete a project (its images and videos stay)."""
    with _errors():
        _client(ctx).projects.delete(project)
    console.print(f"deleted {project}")


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
    with _errors():
        u = _client(ctx).source_images.upload(file, title=title, description=description,
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
    with _errors():
        page = _client(ctx).source_images.list(purpose=purpose, tag=tag, page_size=page_size,
                                               cursor=cursor)
    _table("uploads", ["id", "title", "purpose", "format", "size", "bytes", "tags", "created"],
           [[u.id, u.title, u.purpose, u.format, f"{u.width}x{u.height}", u.size_bytes,
             ", ".join(u.tags), _when(u.created_at)] for u in page.items],
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
    client = _client(ctx)
    with _errors():
        u = client.source_images.get(source_image_id)
        data = client.source_images.content(u.id, thumbnail=thumbnail) if output else None
    _fields(f"upload {u.id}", [
        ("title", u.title), ("description", u.description), ("purpose", u.purpose),
        ("format", u.format), ("mime type", u.mime_type), ("size", f"{u.width}x{u.height}"),
        ("bytes", u.size_bytes), ("public", u.is_public), ("tags", u.tags),
        ("path", u.path), ("thumbnail", u.thumbnail_path), ("owner", u.user_id),
        ("created", _when(u.created_at))])
    if output is not None and data is not None:
        output.write_bytes(data)
        console.print(f"saved {output} ({len(data)} bytes)")


@uploads_app.command("delete")
def uploads_delete(ctx: typer.Context, source_image_id: str) -> None:
    """Delete an upload (its file is purged after the retention period)."""
    with _errors():
        _client(ctx).source_images.delete(source_image_id)
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
    with _errors(), console.status("generating..."):
        result = _client(ctx).images.generate(
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
    with _errors():
        page = _client(ctx).images.list(
            status=status, provider=provider, tag=tag, project=project, created_after=since,
            created_before=until, favorite=favorite or None, page_size=page_size,
            cursor=cursor)
    _table("images", ["id", "title / prompt", "provider", "model", "size", "files", "fav",
                      "tags", "created"],
           [[i.id, _short(i.title or i.prompt, 50), i.provider, i.model,
             f"{i.width}x{i.height}" if i.width else None, len(i.files),
             "★" if i.is_favorite else "", ", ".join(i.tags), _when(i.created_at)]
            for i in page.items], page.total, page.next_cursor)


@images_app.command("show")
def images_show(ctx: typer.Context, image_id: str) -> None:
    """An image, its prediction and its files."""
    with _errors():
        result = _client(ctx).images.get(image_id)
    i, p = result.image, result.prediction
    _fields(f"image {i.id}", [
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
        ("created", _when(i.created_at))])
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
    with _errors():
        i = _client(ctx).images.update(image_id, title=title, caption=caption,
                                       alt_text=alt_text, is_public=public,
                                       is_favorite=favorite)
    console.print(f"image {i.id} updated")


@images_app.command("delete")
def images_delete(ctx: typer.Context, image_id: str) -> None:
    """Delete an image (its files are purged after the retention period)."""
    with _errors():
        _client(ctx).images.delete(image_id)
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
    with _errors(), console.status(f"upscaling ({mode})..."):
        result = _client(ctx).images.upscale(
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
    with _errors(), console.status(f"editing ({mode})..."):
        result = _client(ctx).images.edit(
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
    client = _client(ctx)
    with _errors():
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
    with _errors():
        page = _client(ctx).videos.list(status=status, provider=provider, tag=tag,
                                        project=project, favorite=favorite or None,
                                        page_size=page_size, cursor=cursor)
    _table("videos", ["id", "title / prompt", "provider", "model", "seconds", "ratio",
                      "from", "files", "created"],
           [[v.id, _short(v.title or v.prompt, 50), v.provider, v.model, v.duration_s,
             v.ratio, v.image_id or v.source_image_id, len(v.files), _when(v.created_at)]
            for v in page.items], page.total, page.next_cursor)


@videos_app.command("show")
def videos_show(ctx: typer.Context, video_id: str) -> None:
    """A video, its prediction and its files."""
    with _errors():
        result = _client(ctx).videos.get(video_id)
    v, p = result.video, result.prediction
    _fields(f"video {v.id}", [
        ("title", v.title), ("caption", v.caption), ("prompt", v.prompt),
        ("provider", f"{v.provider}/{v.model}"), ("duration", f"{v.duration_s} s"),
        ("ratio", v.ratio), ("from image", v.image_id), ("from upload", v.source_image_id),
        ("public", v.is_public), ("favorite", v.is_favorite), ("tags", v.tags),
        ("prediction", f"{p.id} {p.status}"), ("error", p.error_message),
        ("retries", p.retry_count or None),
        ("cost", f"{p.cost_usd:.4f} USD" if p.cost_usd is not None else None),
        ("thumbnail", v.thumbnail.path if v.thumbnail else None),
        ("created", _when(v.created_at))])
    _print_files(v.files)


@videos_app.command("delete")
def videos_delete(ctx: typer.Context, video_id: str) -> None:
    """Delete a video (its files are purged after the retention period)."""
    with _errors():
        _client(ctx).videos.delete(video_id)
    console.print(f"deleted {video_id}")


# --------------------------------------------------------------------------- providers


@providers_app.callback(invoke_without_command=True)
def providers(ctx: typer.Context) -> None:
    """The media providers: configured, healthy, cooldown and models."""
    with _errors():
        rows = _client(ctx).providers.list()
    _table("providers", ["provider", "configured", "healthy", "cooldown s", "models"],
           [[p.name, "yes" if p.configured else "no", "yes" if p.healthy else "no",
             p.cooldown_s or None,
             "; ".join(f"{m.name}{':' + m.version if m.version else ''}"
                       f" [{', '.join(m.capabilities)}]{'' if m.active else ' (inactive)'}"
                       for m in p.models)] for p in rows])
