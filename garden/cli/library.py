"""``garden tags list | set`` and ``garden projects create | list | show | add | remove |
delete``: how the media studio's rows are tagged and gathered into galleries."""

from __future__ import annotations

from typing import Annotated

import typer

from garden.cli.options import DescriptionOpt
from garden.cli.output import api, console, media_errors, print_fields, print_table, when

tags_app = typer.Typer(help="Tags on images, videos, uploads, styles and themes.",
                       no_args_is_help=True)
projects_app = typer.Typer(help="Project galleries of images and videos.",
                           no_args_is_help=True)


@tags_app.command("list")
def tags_list(ctx: typer.Context, page_size: int = 200, cursor: str | None = None) -> None:
    """Your tags."""
    with media_errors():
        page = api(ctx).tags.list(page_size=page_size, cursor=cursor)
    print_table("tags", ["id", "name", "created"],
                [[t.id, t.name, when(t.created_at)] for t in page.items], page.total,
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
    with media_errors():
        now = api(ctx).tags.set(kind, row_id, names or [])
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
    with media_errors():
        p = api(ctx).projects.create(name, slug=slug, description=description,
                                     is_published=published, is_featured=featured)
    console.print(f"project {p.id}: {p.name} ({p.slug})")


@projects_app.command("list")
def projects_list(ctx: typer.Context, page_size: int = 50, cursor: str | None = None) -> None:
    """Your projects."""
    with media_errors():
        page = api(ctx).projects.list(page_size=page_size, cursor=cursor)
    print_table("projects", ["id", "slug", "name", "published", "featured", "created"],
                [[p.id, p.slug, p.name, "yes" if p.is_published else "",
                  "yes" if p.is_featured else "", when(p.created_at)] for p in page.items],
                page.total, page.next_cursor)


@projects_app.command("show")
def projects_show(ctx: typer.Context,
                  project: Annotated[str, typer.Argument(help="Id or slug.")]) -> None:
    """A project and its items, in order."""
    client = api(ctx)
    with media_errors():
        p = client.projects.get(project)
        items = client.projects.items(p.id)
    print_fields(f"project {p.id}", [
        ("name", p.name), ("slug", p.slug), ("description", p.description),
        ("published", p.is_published), ("featured", p.is_featured), ("owner", p.user_id),
        ("created", when(p.created_at))])
    print_table("items", ["position", "item id", "image", "video"],
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
    with media_errors():
        item = api(ctx).projects.add_item(project, image_id=image, video_id=video,
                                          position=position)
    console.print(f"item {item.id}: {item.image_id or item.video_id} at {item.position}")


@projects_app.command("remove")
def projects_remove(ctx: typer.Context,
                    project: Annotated[str, typer.Argument(help="Id or slug.")],
                    item_id: Annotated[str, typer.Argument(help="The item's id (see show).")]
                    ) -> None:
    """Take an item out of a project (the image or video stays)."""
    with media_errors():
        api(ctx).projects.remove_item(project, item_id)
    console.print(f"removed {item_id}")


@projects_app.command("delete")
def projects_delete(ctx: typer.Context,
                    project: Annotated[str, typer.Argument(help="Id or slug.")]) -> None:
    """Delete a project (its images and videos stay)."""
    with media_errors():
        api(ctx).projects.delete(project)
    console.print(f"deleted {project}")
