"""``client.prompt_helpers`` and ``client.theme_helpers``: prompt styles and themes.

A prompt helper (a style) is a named, versioned text added to prompts (see
:mod:`serve_apps.media.styles` for the placements); a theme is a text plus an ordered
list of recommended styles. Both have immutable versions (a new version becomes the
current one), can be forked, favorited and tagged (``client.tags.set``), and are listed
with the caller's own rows plus the public and built-in ones.

Routes (issue 15 contract): ``/v1/prompt-helpers`` and ``/v1/theme-helpers``, each with
``/{id}``, ``/{id}/versions``, ``/{id}/versions/{n}``, ``/{id}/fork``, ``/{id}/favorite``.
Every method raises the :mod:`garden.errors` subclass of the server's answer:
NotFoundError (404: no such row, or not visible to the caller), PermissionDeniedError
(403: not the owner; built-ins are changed by admins only), ConflictError (409: the name
is taken by another of the owner's rows), ValidationFailedError (422, ``error.field``
names the field).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from catalog import schemas as s
from garden.client.base import Namespace

if TYPE_CHECKING:
    from garden.client import Client

H = TypeVar("H", bound=BaseModel)  # the helper row: PromptHelper or ThemeHelper
V = TypeVar("V", bound=BaseModel)  # its version row


def _body(**fields: Any) -> dict[str, Any]:
    """The JSON body: fields left as None are not sent (the server keeps or defaults them)."""
    return {k: v for k, v in fields.items() if v is not None}


class _Helpers(Namespace, Generic[H, V]):
    """What styles and themes share: list, get, update, delete, versions, fork, favorite."""

    def __init__(self, client: Client, path: str, model: type[H], version_model: type[V]):
        super().__init__(client)
        self._path = path
        self._model = model
        self._version_model = version_model

    def _one(self, method: str, path: str, **kwargs: Any) -> H:
        return self._model.model_validate(self._client.request(method, path, **kwargs).json())

    def list(
        self, *, category: str | None = None, tag: str | None = None,
        builtin: bool | None = None, favorite: bool | None = None, name: str | None = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> s.Page[H]:
        """GET ``{path}``: one page of the caller's rows plus the public and built-in ones.

        Args:
            category: only this category (e.g. ``photography``).
            tag: only rows carrying this tag name.
            builtin: True only built-ins, False only user-made ones.
            favorite: True only the caller's favorites.
            name: only the rows with exactly this name (several users may use one
                name).
        """
        return self._page(self._model, self._path, {
            "category": category, "tag": tag, "builtin": builtin, "favorite": favorite,
            "name": name, "page_size": page_size, "cursor": cursor})

    def get(self, helper_id: str) -> H:
        """GET ``{path}/{id}``. Raises NotFoundError."""
        return self._one("GET", f"{self._path}/{helper_id}")

    def update(
        self, helper_id: str, *, name: str | None = None, description: str | None = None,
        category: str | None = None, is_public: bool | None = None,
    ) -> H:
        """PATCH ``{path}/{id}``: change the fields given (None: unchanged); the text is
        changed by :meth:`add_version`. Raises NotFoundError, PermissionDeniedError,
        ConflictError (name taken)."""
        return self._one("PATCH", f"{self._path}/{helper_id}", json=_body(
            name=name, description=description, category=category, is_public=is_public))

    def delete(self, helper_id: str) -> None:
        """DELETE ``{path}/{id}`` (owner; built-ins: admins). Raises NotFoundError,
        PermissionDeniedError."""
        self._client.request("DELETE", f"{self._path}/{helper_id}")

    def versions(self, helper_id: str) -> builtins.list[V]:
        """GET ``{path}/{id}/versions``: every version, oldest first. Raises NotFoundError."""
        data = self._client.request("GET", f"{self._path}/{helper_id}/versions").json()
        return [self._version_model.model_validate(row) for row in data]

    def version(self, helper_id: str, version: int) -> V:
        """GET ``{path}/{id}/versions/{n}``: version ``n`` (from 1). Raises NotFoundError."""
        return self._version_model.model_validate(self._client.request(
            "GET", f"{self._path}/{helper_id}/versions/{version}").json())

    def fork(self, helper_id: str, name: str) -> H:
        """POST ``{path}/{id}/fork``: a copy owned by the caller, named ``name``, whose
        version 1 is the source's current version (``forked_from_id`` links it). Raises
        NotFoundError, ConflictError (name taken)."""
        return self._one("POST", f"{self._path}/{helper_id}/fork", json={"name": name})

    def favorite(self, helper_id: str, on: bool = True) -> None:
        """PUT (``on``) or DELETE (not ``on``) ``{path}/{id}/favorite``: mark or unmark it
        as one of the caller's favorites (idempotent). Raises NotFoundError."""
        self._client.request("PUT" if on else "DELETE", f"{self._path}/{helper_id}/favorite")


class PromptHelpers(_Helpers[s.PromptHelper, s.PromptHelperVersion]):
    """Prompt helpers (styles): ``/v1/prompt-helpers``."""

    def __init__(self, client: Client):
        super().__init__(client, "/v1/prompt-helpers", s.PromptHelper, s.PromptHelperVersion)

    def create(
        self, name: str, text: str, *, description: str | None = None,
        category: str | None = None, is_public: bool | None = None,
        negative_text: str | None = None,
        placement: s.PromptPlacement | str | None = None,
        placements: Mapping[str, s.PromptPlacement | str] | None = None,
        style_presets: Mapping[str, str] | None = None, notes: str | None = None,
    ) -> s.PromptHelper:
        """POST /v1/prompt-helpers (201): a style whose version 1 is ``text``.

        Args:
            text: the text added to prompts (``{prompt}`` marks the user's prompt for the
                ``replace`` placement).
            negative_text: added to the negative prompt.
            placement: ``append`` (default), ``prefix`` or ``replace``.
            placements: a placement per prompt type (``image``, ``video``) overriding
                ``placement``.
            style_presets: a provider's own preset per provider, e.g.
                ``{"stability": "cinematic"}``.

        Raises ConflictError (name taken), ValidationFailedError.
        """
        return self._one("POST", self._path, json=_body(
            name=name, text=text, description=description, category=category,
            is_public=is_public, negative_text=negative_text,
            placement=None if placement is None else str(placement),
            placements=None if placements is None else {k: str(v) for k, v in
                                                        placements.items()},
            style_presets=None if style_presets is None else dict(style_presets),
            notes=notes))

    def add_version(
        self, helper_id: str, text: str, *, negative_text: str | None = None,
        placement: s.PromptPlacement | str | None = None,
        placements: Mapping[str, s.PromptPlacement | str] | None = None,
        style_presets: Mapping[str, str] | None = None, notes: str | None = None,
    ) -> s.PromptHelperVersion:
        """POST /v1/prompt-helpers/{id}/versions (201): a new version, which becomes the
        current one (fields as in :meth:`create`). Raises NotFoundError,
        PermissionDeniedError, ValidationFailedError."""
        return s.PromptHelperVersion.model_validate(self._client.request(
            "POST", f"{self._path}/{helper_id}/versions", json=_body(
                text=text, negative_text=negative_text,
                placement=None if placement is None else str(placement),
                placements=None if placements is None else {k: str(v) for k, v in
                                                            placements.items()},
                style_presets=None if style_presets is None else dict(style_presets),
                notes=notes)).json())


class ThemeHelpers(_Helpers[s.ThemeHelper, s.ThemeHelperVersion]):
    """Themes: ``/v1/theme-helpers``."""

    def __init__(self, client: Client):
        super().__init__(client, "/v1/theme-helpers", s.ThemeHelper, s.ThemeHelperVersion)

    def create(
        self, name: str, *, text: str | None = None, negative_text: str | None = None,
        prompt_helper_ids: Sequence[str] | None = None, description: str | None = None,
        category: str | None = None, is_public: bool | None = None,
        is_featured: bool | None = None, is_active: bool | None = None,
        notes: str | None = None,
    ) -> s.ThemeHelper:
        """POST /v1/theme-helpers (201): a theme whose version 1 holds ``text``,
        ``negative_text`` and ``prompt_helper_ids`` (recommended styles, in order).
        Raises ConflictError (name taken), NotFoundError (a style id unknown),
        ValidationFailedError."""
        return self._one("POST", self._path, json=_body(
            name=name, text=text, negative_text=negative_text,
            prompt_helper_ids=None if prompt_helper_ids is None else list(prompt_helper_ids),
            description=description, category=category, is_public=is_public,
            is_featured=is_featured, is_active=is_active, notes=notes))

    def update(
        self, helper_id: str, *, name: str | None = None, description: str | None = None,
        category: str | None = None, is_public: bool | None = None,
        is_featured: bool | None = None, is_active: bool | None = None,
    ) -> s.ThemeHelper:
        """PATCH /v1/theme-helpers/{id}: change the fields given (None: unchanged); the
        text and styles are changed by :meth:`add_version`. ``is_active`` False hides the
        theme from users without deleting it. Raises NotFoundError,
        PermissionDeniedError, ConflictError (name taken)."""
        return self._one("PATCH", f"{self._path}/{helper_id}", json=_body(
            name=name, description=description, category=category, is_public=is_public,
            is_featured=is_featured, is_active=is_active))

    def add_version(
        self, theme_id: str, *, text: str | None = None, negative_text: str | None = None,
        prompt_helper_ids: Sequence[str] | None = None, notes: str | None = None,
    ) -> s.ThemeHelperVersion:
        """POST /v1/theme-helpers/{id}/versions (201): a new version, which becomes the
        current one. Raises NotFoundError, PermissionDeniedError, ValidationFailedError."""
        return s.ThemeHelperVersion.model_validate(self._client.request(
            "POST", f"{self._path}/{theme_id}/versions", json=_body(
                text=text, negative_text=negative_text,
                prompt_helper_ids=None if prompt_helper_ids is None
                else list(prompt_helper_ids), notes=notes)).json())
