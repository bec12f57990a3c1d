"""``garden styles create | list | show | update | version | versions | fork | favorite |
unfavorite | delete`` and ``garden themes`` (the same): the media studio's prompt styles
and themes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from garden.cli.options import DescriptionOpt, PublicOpt
from garden.cli.output import api, console, media_errors, print_fields, print_table, short, when
from garden.client import Client

styles_app = typer.Typer(help="Prompt styles (prompt helpers): versioned texts added to "
                         "prompts.", no_args_is_help=True)
themes_app = typer.Typer(help="Themes: a text plus an ordered list of recommended styles.",
                         no_args_is_help=True)


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


NameOpt = Annotated[str | None, typer.Option(help="New name.")]
CategoryOpt = Annotated[str | None, typer.Option(help="Category, e.g. photography.")]
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


def _print_helper(noun: str, h: Any) -> None:
    """What creating or updating a style or theme prints: ``<noun> <id>: <name> v<version>``."""
    console.print(f"{noun} {h.id}: {h.name} v{h.current_version}")


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
        with media_errors():
            page = namespace(api(ctx)).list(
                category=category, tag=tag, builtin=builtin, favorite=favorite or None,
                name=name, page_size=page_size, cursor=cursor)
        print_table(f"{noun}s", ["id", "name", "category", "version", "public", "owner", "tags"],
                    [_helper_row(h) for h in page.items], page.total, page.next_cursor)

    list_.__doc__ = f"List {noun}s: yours, the public and the built-in ones."

    @app.command("versions")
    def versions(ctx: typer.Context, helper_id: str) -> None:
        with media_errors():
            rows = namespace(api(ctx)).versions(helper_id)
        print_table(f"versions of {helper_id}", version_columns, [version_row(v) for v in rows])

    versions.__doc__ = f"Every version of a {noun}, oldest first."

    @app.command("fork")
    def fork(ctx: typer.Context, helper_id: str,
             name: Annotated[str, typer.Argument(help="The copy's name.")]) -> None:
        with media_errors():
            h = namespace(api(ctx)).fork(helper_id, name)
        console.print(f"forked {helper_id} into {h.id}: {h.name} v{h.current_version}")

    fork.__doc__ = f"Copy a {noun} (its current version) as one of yours."

    def by_id(name: str, doc: str, act: Callable[[Any, str], Any], done: str) -> None:
        """Register ``<name> HELPER_ID``: ``act(namespace, helper_id)``, then print
        ``done`` with the id in place of ``{}``."""

        def command(ctx: typer.Context, helper_id: str) -> None:
            with media_errors():
                act(namespace(api(ctx)), helper_id)
            console.print(done.format(helper_id))

        command.__doc__ = doc
        app.command(name)(command)

    by_id("favorite", f"Mark a {noun} as one of your favorites.",
          lambda helpers, i: helpers.favorite(i, on=True), "{} is a favorite")
    by_id("unfavorite", f"Remove a {noun} from your favorites.",
          lambda helpers, i: helpers.favorite(i, on=False), "{} is no longer a favorite")
    by_id("delete", f"Delete one of your {noun}s (built-ins: admins only).",
          lambda helpers, i: helpers.delete(i), "deleted {}")


def _style_version_row(v: Any) -> list[Any]:
    placements = ", ".join(f"{k}={p}" for k, p in v.placements.items())
    presets = ", ".join(f"{k}={p}" for k, p in v.style_presets.items())
    return [v.version, v.placement, placements or None, short(v.text), short(v.negative_text),
            presets or None, short(v.notes, 40), when(v.created_at)]


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
    with media_errors():
        h = api(ctx).prompt_helpers.create(
            name, text, description=description, category=category, is_public=public,
            negative_text=negative, placement=placement, placements=placements,
            style_presets=presets, notes=notes)
    _print_helper("style", h)


@styles_app.command("show")
def styles_show(
    ctx: typer.Context, helper_id: str,
    version: Annotated[int | None, typer.Option(min=1, help="This version instead of the "
                                                "current one.")] = None,
) -> None:
    """A style and the text of its current version (or --version)."""
    client = api(ctx)
    with media_errors():
        h = client.prompt_helpers.get(helper_id)
        v = client.prompt_helpers.version(helper_id, version or h.current_version)
    print_fields(f"style {h.id}", [
        ("name", h.name), ("description", h.description), ("category", h.category),
        ("owner", "built-in" if h.is_builtin else h.user_id), ("public", h.is_public),
        ("current version", h.current_version), ("forked from", h.forked_from_id),
        ("tags", h.tags), ("created", when(h.created_at))])
    print_fields(f"version {v.version}", [
        ("text", v.text), ("negative", v.negative_text), ("placement", v.placement),
        ("per prompt type", dict(v.placements)), ("presets", dict(v.style_presets)),
        ("notes", v.notes), ("created", when(v.created_at))])


@styles_app.command("update")
def styles_update(
    ctx: typer.Context, helper_id: str, name: NameOpt = None,
    description: DescriptionOpt = None, category: CategoryOpt = None,
    public: PublicOpt = None,
) -> None:
    """Change a style's name, description, category or visibility (the text: `version`)."""
    with media_errors():
        h = api(ctx).prompt_helpers.update(helper_id, name=name, description=description,
                                           category=category, is_public=public)
    _print_helper("style", h)


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
    with media_errors():
        v = api(ctx).prompt_helpers.add_version(
            helper_id, text, negative_text=negative, placement=placement,
            placements=placements, style_presets=presets, notes=notes)
    console.print(f"style {helper_id} v{v.version}")


_add_helper_commands(styles_app, "style", lambda c: c.prompt_helpers, _style_version_row,
                     ["version", "placement", "per type", "text", "negative", "presets",
                      "notes", "created"])


def _theme_version_row(v: Any) -> list[Any]:
    return [v.version, short(v.text), short(v.negative_text), ", ".join(v.prompt_helper_ids),
            short(v.notes, 40), when(v.created_at)]


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
    with media_errors():
        t = api(ctx).theme_helpers.create(
            name, text=text, negative_text=negative, prompt_helper_ids=style,
            description=description, category=category, is_public=public,
            is_featured=featured, notes=notes)
    _print_helper("theme", t)


@themes_app.command("show")
def themes_show(ctx: typer.Context, theme_id: str) -> None:
    """A theme: its current text and recommended styles."""
    with media_errors():
        t = api(ctx).theme_helpers.get(theme_id)
    print_fields(f"theme {t.id}", [
        ("name", t.name), ("description", t.description), ("category", t.category),
        ("owner", "built-in" if t.is_builtin else t.user_id), ("public", t.is_public),
        ("featured", t.is_featured), ("active", t.is_active),
        ("current version", t.current_version), ("text", t.text),
        ("negative", t.negative_text), ("styles", t.prompt_helper_ids),
        ("forked from", t.forked_from_id), ("tags", t.tags), ("created", when(t.created_at))])


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
    with media_errors():
        t = api(ctx).theme_helpers.update(
            theme_id, name=name, description=description, category=category,
            is_public=public, is_featured=featured, is_active=active)
    _print_helper("theme", t)


@themes_app.command("version")
def themes_version(
    ctx: typer.Context, theme_id: str,
    text: Annotated[str | None, typer.Option(help="The new version's text.")] = None,
    negative: NegativeOpt = None, style: ThemeStylesOpt = None, notes: NotesOpt = None,
) -> None:
    """Add a version to a theme; it becomes the current one."""
    with media_errors():
        v = api(ctx).theme_helpers.add_version(
            theme_id, text=text, negative_text=negative, prompt_helper_ids=style, notes=notes)
    console.print(f"theme {theme_id} v{v.version}")


_add_helper_commands(themes_app, "theme", lambda c: c.theme_helpers, _theme_version_row,
                     ["version", "text", "negative", "styles", "notes", "created"])
