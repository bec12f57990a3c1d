"""``/v1/tags`` (a user's tags), ``PUT /v1/{kind}/{id}/tags`` (the tags on one row) and
``/v1/projects`` (ordered galleries of images and videos, with their items).

A user's tags are theirs; admins see every user's. Only a row's owner (or an admin)
tags it. A project is seen by its owner and, once published, by everyone; another
user's private project is 403 (the house rule, as for models). Only the owner (or an
admin) changes a project or its items, and places only images and videos they own.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import Field

from catalog import schemas as s
from catalog.errors import NotFound
from catalog.port import AsyncCatalogPort, AsyncRepoPort, apply_update
from catalog.schemas.common import TagName
from catalog.schemas.library import ProjectSpec
from serve_apps.auth import Principal, check_owner, check_readable, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging

tags = APIRouter(prefix="/v1/tags", tags=["tags"])
tagging = APIRouter(prefix="/v1", tags=["tags"])
projects = APIRouter(prefix="/v1/projects", tags=["projects"])
#: What :func:`serve_apps.gateway.app.create_app` mounts: the three routers.
router = APIRouter()

#: Most tags one request may put on a row (ours: keeps one write small; the catalog has
#: no limit).
MAX_TAGS_PER_ROW = 100


#: The path's ``{kind}``: :class:`catalog.schemas.RowKind` by route name (``images``,
#: ``source-images``, ...), an enum of its own so the OpenAPI document lists route names.
TagKind = enum.StrEnum(  # type: ignore[misc]  # members made from RowKind
    "TagKind", {kind.route.replace("-", "_"): kind.route for kind in s.RowKind})
TagKind.__doc__ = "The rows that take tags, by their route names."


class TagBody(s.Schema):
    """A new tag of the caller's (:class:`catalog.schemas.TagCreate` without ``user_id``)."""

    name: str = TagName


class TagNames(s.Schema):
    """The complete set of tags on one row (names; missing tags are created)."""

    tags: list[str] = Field(max_length=MAX_TAGS_PER_ROW,
                            description="Tag names; an empty list takes every tag off.")


#: ProjectCreate's ``slug`` field (pattern, lengths, description), reused as is.
_SLUG: Any = s.ProjectCreate.model_fields["slug"]


class ProjectBody(ProjectSpec):
    """A new project (:class:`catalog.schemas.ProjectCreate` without ``user_id``)."""

    slug: str | None = _SLUG


def tagged_repo(cat: AsyncCatalogPort, kind: s.RowKind) -> AsyncRepoPort[Any]:
    """The catalog repository of the rows of ``kind``."""
    repos: dict[s.RowKind, AsyncRepoPort[Any]] = {
        s.RowKind.image: cat.images, s.RowKind.video: cat.videos,
        s.RowKind.source_image: cat.source_images, s.RowKind.prompt_helper: cat.prompt_helpers,
        s.RowKind.theme_helper: cat.theme_helpers,
    }
    return repos[kind]


async def owned_row(repo: AsyncRepoPort[Any], caller: Principal, row_id: str) -> Any:
    """A live row of ``repo`` the caller owns (or any, for an admin).

    Raises:
        NotFound: no such row, or it was deleted (404).
        PermissionDenied: another user's row (403).
    """
    row = await repo.get(row_id)
    if getattr(row, "deleted_at", None) is not None:
        raise NotFound(f"{row_id!r} was deleted", field="id")
    check_owner(caller, row.user_id)
    return row


async def visible_project(cat: AsyncCatalogPort, caller: Principal, ref: str) -> s.Project:
    """A project the caller may read, by id or slug. Raises NotFound, PermissionDenied."""
    project = await cat.find_project(ref)
    check_readable(caller, project.user_id, project.is_published)
    return project


async def owned_project(cat: AsyncCatalogPort, caller: Principal, ref: str) -> s.Project:
    """A project the caller may change, by id or slug. Raises NotFound, PermissionDenied."""
    project = await cat.find_project(ref)
    check_owner(caller, project.user_id)
    return project


# ----------------------------------------------------------------- tags


@tags.get("", response_model=s.Page[s.Tag])
async def list_tags(caller: Caller, cat: Cat, paging: Paging, name: str | None = None) -> Any:
    """The caller's tags newest first (admins: everyone's); ``name`` matches exactly."""
    return await cat.tags.list(page_size=paging.page_size, cursor=paging.cursor, name=name,
                               user_id=owner_filter(caller))


@tags.post("", status_code=201, response_model=s.Tag)
async def create_tag(body: TagBody, caller: Caller, cat: Cat) -> s.Tag:
    """Create one of the caller's tags; a name they already have is 409."""
    return await cat.tags.create(s.TagCreate(name=body.name, user_id=caller.user_id))


@tags.delete("/{tag_id}", status_code=204)
async def delete_tag(tag_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete one of the caller's tags; it comes off every row it was on."""
    tag = await cat.tags.get(tag_id)
    check_owner(caller, tag.user_id)
    await cat.tags.delete(tag.id)
    return Response(status_code=204)


@tagging.put("/{kind}/{row_id}/tags", response_model=TagNames)
async def set_row_tags(
    kind: Annotated[TagKind, Path(description="The kind of row tagged.")], row_id: str,
    body: TagNames, caller: Caller, cat: Cat,
) -> TagNames:
    """Make ``tags`` exactly the tags on one of the caller's rows (tags of theirs that do
    not exist yet are created); returns the names, sorted. Another user's row is 403; a
    name breaking the tag rule is 422 naming ``tags``."""
    target = s.RowKind.parse(kind)
    row = await owned_row(tagged_repo(cat, target), caller, row_id)
    names = await cat.set_tags(target, row.id, body.tags, caller.user_id)
    return TagNames(tags=names)


# ----------------------------------------------------------------- projects


@projects.post("", status_code=201, response_model=s.Project)
async def create_project(body: ProjectBody, caller: Caller, cat: Cat) -> s.Project:
    """Create one of the caller's projects; without ``slug`` the name's slug is used
    (made unique). A given slug already taken is 409."""
    return await cat.create_project(
        s.ProjectCreate.model_validate({**body.model_dump(), "user_id": caller.user_id}))


@projects.get("", response_model=s.Page[s.Project])
async def list_projects(
    caller: Caller, cat: Cat, paging: Paging,
    featured: bool | None = None, published: bool | None = None,
) -> Any:
    """Projects newest first: the caller's and the published ones (admins: all)."""
    return await cat.projects.list(
        page_size=paging.page_size, cursor=paging.cursor, is_featured=featured,
        is_published=published, visible_to=owner_filter(caller),
    )


@projects.get("/{project}", response_model=s.Project)
async def get_project(project: str, caller: Caller, cat: Cat) -> s.Project:
    """A project by id or slug; another user's unpublished one is 403."""
    return await visible_project(cat, caller, project)


@projects.patch("/{project}", response_model=s.Project)
async def update_project(project: str, body: s.ProjectUpdate, caller: Caller,
                         cat: Cat) -> s.Project:
    """Change the fields given (null: unchanged); owner or admin."""
    return await apply_update(cat.projects, await owned_project(cat, caller, project), body)


@projects.delete("/{project}", status_code=204)
async def delete_project(project: str, caller: Caller, cat: Cat) -> Response:
    """Delete a project and its items (the images and videos stay); owner or admin."""
    row = await owned_project(cat, caller, project)
    await cat.projects.delete(row.id)
    return Response(status_code=204)


@projects.post("/{project}/items", status_code=201, response_model=s.ProjectItem)
async def add_project_item(project: str, body: s.ProjectItemCreate, caller: Caller,
                           cat: Cat) -> s.ProjectItem:
    """Place one of the caller's images or videos in their project at ``position``
    (default: last). An unknown or deleted image or video is 404, another user's 403,
    one already in the project 409."""
    row = await owned_project(cat, caller, project)
    if body.image_id is not None:
        await owned_row(cat.images, caller, body.image_id)
    if body.video_id is not None:
        await owned_row(cat.videos, caller, body.video_id)
    return await cat.add_project_item(row.id, body)


@projects.get("/{project}/items", response_model=list[s.ProjectItem])
async def list_project_items(project: str, caller: Caller, cat: Cat) -> list[s.ProjectItem]:
    """A project's items in order (position, then when added); deleted images and
    videos are left out."""
    row = await visible_project(cat, caller, project)
    return await cat.list_project_items(row.id)


@projects.delete("/{project}/items/{item_id}", status_code=204)
async def remove_project_item(project: str, item_id: str, caller: Caller,
                              cat: Cat) -> Response:
    """Take one item out of a project (the image or video stays); owner or admin."""
    row = await owned_project(cat, caller, project)
    item = await cat.project_items.get(item_id)
    if item.project_id != row.id:
        raise NotFound(f"project {project!r} has no item {item_id!r}", field="item_id")
    await cat.project_items.delete(item.id)
    return Response(status_code=204)


router.include_router(tags)
router.include_router(tagging)
router.include_router(projects)
