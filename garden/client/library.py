"""``client.tags`` and ``client.projects``: organising media.

Tags are names per owner; :meth:`Tags.set` replaces the tags of one image, video, source
image, prompt helper or theme (missing tags are created). Projects are galleries: an
ordered list of items, each an image or a video, addressed by id or by slug.

Routes (issue 15 contract): ``/v1/tags``, ``/v1/{kind}/{id}/tags``, ``/v1/projects``,
``/v1/projects/{id_or_slug}``, ``/v1/projects/{id}/items``. Every method raises the
:mod:`garden.errors` subclass of the server's answer: NotFoundError (404),
PermissionDeniedError (403: not the owner), ConflictError (409: a name or slug taken),
ValidationFailedError (422, ``error.field`` names the field).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from catalog import schemas as s
from garden.client.base import Namespace


def _body(**fields: Any) -> dict[str, Any]:
    """The JSON body: fields left as None are not sent."""
    return {k: v for k, v in fields.items() if v is not None}


class Tags(Namespace):
    """The caller's tags."""

    def list(self, *, name: str | None = None, page_size: int = 200,
             cursor: str | None = None) -> s.Page[s.Tag]:
        """GET /v1/tags: one page of the caller's tags (admins: everyone's), newest first;
        ``name`` keeps the tag with exactly that name."""
        return self._page(s.Tag, "/v1/tags",
                          {"name": name, "page_size": page_size, "cursor": cursor})

    def create(self, name: str) -> s.Tag:
        """POST /v1/tags (201). Raises ConflictError (the caller has it already),
        ValidationFailedError (letters, digits, '_', '-' and spaces, 1..100)."""
        return s.Tag.model_validate(
            self._client.request("POST", "/v1/tags", json={"name": name}).json())

    def delete(self, tag_id: str) -> None:
        """DELETE /v1/tags/{id}: the tag and its taggings. Raises NotFoundError."""
        self._client.request("DELETE", f"/v1/tags/{tag_id}")

    def set(self, kind: s.RowKind | str, row_id: str, names: Sequence[str]) -> builtins.list[str]:
        """PUT /v1/{kind}/{id}/tags: the row's tags become exactly ``names`` (an empty list
        clears them; tags the caller lacks are created). Returns the row's tag names as
        the server answers them (``{"tags": [...]}``), sorted.

        Args:
            kind: ``images``, ``videos``, ``source-images``, ``prompt-helpers`` or
                ``theme-helpers`` (singular and ``_`` spellings, ``upload``, ``style``
                and ``theme`` accepted, see :meth:`catalog.schemas.RowKind.parse`).

        Raises ValueError (unknown kind, before any request), NotFoundError (also: a
        deleted row), PermissionDeniedError, ValidationFailedError (a bad name, field
        ``tags``).
        """
        data = self._client.request("PUT", f"/v1/{s.RowKind.parse(kind).route}/{row_id}/tags",
                                    json={"tags": list(names)}).json()
        return TypeAdapter(builtins.list[str]).validate_python(data["tags"])


class Projects(Namespace):
    """Project galleries; ``project`` arguments take an id or a slug."""

    def create(
        self, name: str, *, slug: str | None = None, description: str | None = None,
        is_published: bool | None = None, is_featured: bool | None = None,
    ) -> s.Project:
        """POST /v1/projects (201). ``slug`` (``^[a-z0-9]+(-[a-z0-9]+)*$``, unique)
        defaults to one made from the name. Raises ConflictError (slug taken),
        ValidationFailedError."""
        return s.Project.model_validate(self._client.request("POST", "/v1/projects", json=_body(
            name=name, slug=slug, description=description, is_published=is_published,
            is_featured=is_featured)).json())

    def list(self, *, page_size: int = 50, cursor: str | None = None) -> s.Page[s.Project]:
        """GET /v1/projects: one page of the caller's projects."""
        return self._page(s.Project, "/v1/projects",
                          {"page_size": page_size, "cursor": cursor})

    def get(self, project: str) -> s.Project:
        """GET /v1/projects/{id_or_slug}. Raises NotFoundError."""
        return s.Project.model_validate(
            self._client.request("GET", f"/v1/projects/{project}").json())

    def update(
        self, project: str, *, name: str | None = None, description: str | None = None,
        is_published: bool | None = None, is_featured: bool | None = None,
    ) -> s.Project:
        """PATCH /v1/projects/{id_or_slug}: change the fields given (None: unchanged; the
        slug stays). Raises NotFoundError, PermissionDeniedError."""
        return s.Project.model_validate(self._client.request(
            "PATCH", f"/v1/projects/{project}", json=_body(
                name=name, description=description, is_published=is_published,
                is_featured=is_featured)).json())

    def delete(self, project: str) -> None:
        """DELETE /v1/projects/{id_or_slug} (its items go; the images and videos stay).
        Raises NotFoundError, PermissionDeniedError."""
        self._client.request("DELETE", f"/v1/projects/{project}")

    def add_item(
        self, project: str, *, image_id: str | None = None, video_id: str | None = None,
        position: int | None = None,
    ) -> s.ProjectItem:
        """POST /v1/projects/{id}/items (201): place one image or one video at
        ``position`` (from 0; default: last). Raises ValueError (not exactly one of
        ``image_id``, ``video_id``; before any request), NotFoundError, ConflictError
        (already in the project)."""
        if (image_id is None) == (video_id is None):
            raise ValueError("give exactly one of image_id or video_id")
        return s.ProjectItem.model_validate(self._client.request(
            "POST", f"/v1/projects/{project}/items",
            json=_body(image_id=image_id, video_id=video_id, position=position)).json())

    def items(self, project: str) -> builtins.list[s.ProjectItem]:
        """GET /v1/projects/{id_or_slug}/items: every item (one list, not paged) by
        position, then when added; deleted images and videos are left out. Raises
        NotFoundError, PermissionDeniedError (another user's unpublished project)."""
        data = self._client.request("GET", f"/v1/projects/{project}/items").json()
        return TypeAdapter(builtins.list[s.ProjectItem]).validate_python(data)

    def remove_item(self, project: str, item_id: str) -> None:
        """DELETE /v1/projects/{id}/items/{item_id}. Raises NotFoundError,
        PermissionDeniedError."""
        self._client.request("DELETE", f"/v1/projects/{project}/items/{item_id}")
