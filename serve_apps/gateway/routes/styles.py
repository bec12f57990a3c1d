"""``/v1/prompt-helpers`` (styles) and ``/v1/theme-helpers`` (themes): create, list with
filters, get, update, delete, versions, fork, favourite.

Visibility: a user sees their own rows and every public one (built-ins are public);
an admin sees all. Another user's private row is 403, like a private model
(:func:`serve_apps.auth.check_readable`). Only the owner or an admin
changes a row or adds a version; built-ins (no owner) only an admin. Anyone who can
see a row may fork it (the fork is theirs, private) and mark it as a favourite.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import Field

from catalog import schemas as s
from catalog.errors import InvalidArgument, NotFound
from catalog.port import AsyncCatalogPort, apply_update
from catalog.schemas.common import NAME_LENGTH
from catalog.schemas.styles import ThemeHelperSpec
from serve_apps.auth import Principal, check_owner, check_readable, owner_filter, require_admin
from serve_apps.gateway.deps import Caller, Cat, Paging

helpers = APIRouter(prefix="/v1/prompt-helpers", tags=["styles"])
themes = APIRouter(prefix="/v1/theme-helpers", tags=["themes"])
#: What :func:`serve_apps.gateway.app.create_app` mounts: both routers.
router = APIRouter()

#: Largest version number a path may name: the catalog's ``version`` columns are 32-bit
#: integers (``sqlalchemy.Integer``), so a larger number names no version.
MAX_VERSION = 2**31 - 1
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version, from 1.")]


class PromptHelperBody(s.PromptHelperSpec, s.HelperText):
    """A new prompt helper (:class:`catalog.schemas.PromptHelperCreate` without
    ``user_id``: the caller owns it); its text becomes version 1."""


class ThemeHelperBody(ThemeHelperSpec, s.ThemeText):
    """A new theme (:class:`catalog.schemas.ThemeHelperCreate` without ``user_id``); its
    text and ordered styles become version 1."""


class ForkRequest(s.Schema):
    """The name of a fork (unique among the caller's rows)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="Name of the copy.")


# ----------------------------------------------------------------- shared checks


def check_editable(caller: Principal, owner_id: str | None) -> None:
    """Raise PermissionDenied (403) unless ``caller`` may change a row of ``owner_id``:
    the owner or an admin; a built-in (no owner) only an admin."""
    if owner_id is None:
        require_admin(caller)
    else:
        check_owner(caller, owner_id)


async def visible_helper(cat: AsyncCatalogPort, caller: Principal, helper_id: str
                         ) -> s.PromptHelper:
    """A prompt helper the caller may read. Raises NotFound (404), PermissionDenied (403)."""
    helper = await cat.prompt_helpers.get(helper_id)
    check_readable(caller, helper.user_id, helper.is_public)
    return helper


async def visible_theme(cat: AsyncCatalogPort, caller: Principal, theme_id: str
                        ) -> s.ThemeHelper:
    """A theme the caller may read. Raises NotFound (404), PermissionDenied (403)."""
    theme = await cat.theme_helpers.get(theme_id)
    check_readable(caller, theme.user_id, theme.is_public)
    return theme


async def check_styles(cat: AsyncCatalogPort, caller: Principal, helper_ids: list[str]) -> None:
    """Every id names a prompt helper the caller may read.

    Raises:
        InvalidArgument: one does not (422, field ``prompt_helper_ids``; an unknown id
            and another user's private one read the same).
    """
    for helper_id in dict.fromkeys(helper_ids):
        try:
            helper = await cat.prompt_helpers.get(helper_id)
        except NotFound:
            helper = None
        if helper is None or not (helper.is_public or caller.is_admin
                                  or helper.user_id == caller.user_id):
            raise InvalidArgument(f"no prompt helper {helper_id!r} that you can use",
                                  field="prompt_helper_ids")


# ----------------------------------------------------------------- prompt helpers


@helpers.post("", status_code=201, response_model=s.PromptHelper)
async def create_helper(body: PromptHelperBody, caller: Caller, cat: Cat) -> s.PromptHelper:
    """Create one of the caller's prompt helpers; its text is version 1. A name the
    caller already uses is 409."""
    request = s.PromptHelperCreate.model_validate({**body.model_dump(), "user_id": caller.user_id})
    return await cat.create_prompt_helper(request)


@helpers.get("", response_model=s.Page[s.PromptHelper])
async def list_helpers(
    caller: Caller, cat: Cat, paging: Paging,
    category: str | None = None, tag: str | None = None, builtin: bool | None = None,
    favorite: bool | None = None, name: str | None = None,
) -> Any:
    """Prompt helpers newest first: the caller's and the public ones (admins: all).
    ``builtin`` true keeps built-ins only, false user-made ones; ``favorite=true`` keeps
    the caller's favourites (false: no filter); ``tag`` and ``name`` match exactly."""
    return await cat.prompt_helpers.list(
        page_size=paging.page_size, cursor=paging.cursor, category=category, tag=tag,
        is_builtin=builtin, name=name, visible_to=owner_filter(caller),
        favorite_of=caller.user_id if favorite else None,
    )


@helpers.get("/{helper_id}", response_model=s.PromptHelper)
async def get_helper(helper_id: str, caller: Caller, cat: Cat) -> s.PromptHelper:
    """A prompt helper; another user's private one is 403."""
    return await visible_helper(cat, caller, helper_id)


@helpers.patch("/{helper_id}", response_model=s.PromptHelper)
async def update_helper(helper_id: str, body: s.PromptHelperUpdate, caller: Caller,
                        cat: Cat) -> s.PromptHelper:
    """Change the unversioned fields given (name, description, category, is_public); the
    text changes by a new version. Owner or admin (built-ins: admin); a taken name is 409."""
    helper = await cat.prompt_helpers.get(helper_id)
    check_editable(caller, helper.user_id)
    return await apply_update(cat.prompt_helpers, helper, body)


@helpers.delete("/{helper_id}", status_code=204)
async def delete_helper(helper_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete a prompt helper with its versions, tags and favourites (owner or admin;
    built-ins: admin). 409 while images name one of its versions."""
    helper = await cat.prompt_helpers.get(helper_id)
    check_editable(caller, helper.user_id)
    await cat.prompt_helpers.delete(helper.id)
    return Response(status_code=204)


@helpers.post("/{helper_id}/versions", status_code=201, response_model=s.PromptHelperVersion)
async def add_helper_version(helper_id: str, body: s.HelperText, caller: Caller,
                             cat: Cat) -> s.PromptHelperVersion:
    """Add the next version of a prompt helper; it becomes current. Without
    ``placement`` the current version's is kept. Owner or admin (built-ins: admin)."""
    helper = await cat.prompt_helpers.get(helper_id)
    check_editable(caller, helper.user_id)
    return await cat.add_prompt_helper_version(
        helper.id, body.text, body.placement if "placement" in body.model_fields_set else None,
        negative_text=body.negative_text,
        placements={kind: str(place) for kind, place in body.placements.items()},
        style_presets=body.style_presets, notes=body.notes,
    )


@helpers.get("/{helper_id}/versions", response_model=list[s.PromptHelperVersion])
async def list_helper_versions(helper_id: str, caller: Caller, cat: Cat
                               ) -> list[s.PromptHelperVersion]:
    """Every version of a prompt helper, oldest first."""
    helper = await visible_helper(cat, caller, helper_id)
    return await cat.list_prompt_helper_versions(helper.id)


@helpers.get("/{helper_id}/versions/{version}", response_model=s.PromptHelperVersion)
async def get_helper_version(helper_id: str, version: VersionNumber, caller: Caller,
                             cat: Cat) -> s.PromptHelperVersion:
    """Version ``version`` of a prompt helper (404 when it has none)."""
    helper = await visible_helper(cat, caller, helper_id)
    return await cat.get_prompt_helper_version(helper.id, version)


@helpers.post("/{helper_id}/fork", status_code=201, response_model=s.PromptHelper)
async def fork_helper(helper_id: str, body: ForkRequest, caller: Caller,
                      cat: Cat) -> s.PromptHelper:
    """Copy a prompt helper the caller can see into a private one of theirs, whose
    version 1 is the source's current version (``forked_from_id`` links it; later
    versions of either leave the other alone). A name the caller uses is 409."""
    helper = await visible_helper(cat, caller, helper_id)
    return await cat.fork_prompt_helper(helper.id, name=body.name, user_id=caller.user_id)


@helpers.put("/{helper_id}/favorite", status_code=204)
async def favorite_helper(helper_id: str, caller: Caller, cat: Cat) -> Response:
    """Mark a prompt helper the caller can see as their favourite (idempotent)."""
    helper = await visible_helper(cat, caller, helper_id)
    await cat.set_favorite(caller.user_id, s.RowKind.prompt_helper, helper.id, True)
    return Response(status_code=204)


@helpers.delete("/{helper_id}/favorite", status_code=204)
async def unfavorite_helper(helper_id: str, caller: Caller, cat: Cat) -> Response:
    """Unmark a prompt helper as the caller's favourite (idempotent; allowed after it
    stopped being visible to them)."""
    await cat.set_favorite(caller.user_id, s.RowKind.prompt_helper, helper_id, False)
    return Response(status_code=204)


# ----------------------------------------------------------------- themes


@themes.post("", status_code=201, response_model=s.ThemeHelper)
async def create_theme(body: ThemeHelperBody, caller: Caller, cat: Cat) -> s.ThemeHelper:
    """Create one of the caller's themes; its text and ordered styles are version 1.
    Every style must be one the caller can see (422 naming ``prompt_helper_ids``); a
    name the caller already uses is 409."""
    await check_styles(cat, caller, body.prompt_helper_ids)
    request = s.ThemeHelperCreate.model_validate({**body.model_dump(), "user_id": caller.user_id})
    return await cat.create_theme_helper(request)


@themes.get("", response_model=s.Page[s.ThemeHelper])
async def list_themes(
    caller: Caller, cat: Cat, paging: Paging,
    category: str | None = None, tag: str | None = None, builtin: bool | None = None,
    favorite: bool | None = None, name: str | None = None,
    featured: bool | None = None, active: bool | None = None,
) -> Any:
    """Themes newest first: the caller's and the public ones (admins: all). Filters as
    for prompt helpers, plus ``featured`` and ``active``."""
    return await cat.theme_helpers.list(
        page_size=paging.page_size, cursor=paging.cursor, category=category, tag=tag,
        is_builtin=builtin, name=name, is_featured=featured, is_active=active,
        visible_to=owner_filter(caller), favorite_of=caller.user_id if favorite else None,
    )


@themes.get("/{theme_id}", response_model=s.ThemeHelper)
async def get_theme(theme_id: str, caller: Caller, cat: Cat) -> s.ThemeHelper:
    """A theme with its current text and styles; another user's private one is 403."""
    return await visible_theme(cat, caller, theme_id)


@themes.patch("/{theme_id}", response_model=s.ThemeHelper)
async def update_theme(theme_id: str, body: s.ThemeHelperUpdate, caller: Caller,
                       cat: Cat) -> s.ThemeHelper:
    """Change the unversioned fields given; the text and styles change by a new
    version. Owner or admin (built-ins: admin); a taken name is 409."""
    theme = await cat.theme_helpers.get(theme_id)
    check_editable(caller, theme.user_id)
    return await apply_update(cat.theme_helpers, theme, body)


@themes.delete("/{theme_id}", status_code=204)
async def delete_theme(theme_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete a theme with its versions, tags and favourites (owner or admin; built-ins:
    admin)."""
    theme = await cat.theme_helpers.get(theme_id)
    check_editable(caller, theme.user_id)
    await cat.theme_helpers.delete(theme.id)
    return Response(status_code=204)


@themes.post("/{theme_id}/versions", status_code=201, response_model=s.ThemeHelperVersion)
async def add_theme_version(theme_id: str, body: s.ThemeText, caller: Caller,
                            cat: Cat) -> s.ThemeHelperVersion:
    """Add the next version of a theme (its whole content: text, negative text, ordered
    styles); it becomes current. Owner or admin; styles as for creation (422)."""
    theme = await cat.theme_helpers.get(theme_id)
    check_editable(caller, theme.user_id)
    await check_styles(cat, caller, body.prompt_helper_ids)
    return await cat.add_theme_helper_version(
        theme.id, text=body.text, negative_text=body.negative_text,
        prompt_helper_ids=body.prompt_helper_ids, notes=body.notes,
    )


@themes.get("/{theme_id}/versions", response_model=list[s.ThemeHelperVersion])
async def list_theme_versions(theme_id: str, caller: Caller, cat: Cat
                              ) -> list[s.ThemeHelperVersion]:
    """Every version of a theme, oldest first."""
    theme = await visible_theme(cat, caller, theme_id)
    return await cat.list_theme_helper_versions(theme.id)


@themes.get("/{theme_id}/versions/{version}", response_model=s.ThemeHelperVersion)
async def get_theme_version(theme_id: str, version: VersionNumber, caller: Caller,
                            cat: Cat) -> s.ThemeHelperVersion:
    """Version ``version`` of a theme (404 when it has none)."""
    theme = await visible_theme(cat, caller, theme_id)
    return await cat.get_theme_helper_version(theme.id, version)


@themes.post("/{theme_id}/fork", status_code=201, response_model=s.ThemeHelper)
async def fork_theme(theme_id: str, body: ForkRequest, caller: Caller,
                     cat: Cat) -> s.ThemeHelper:
    """Copy a theme the caller can see into a private one of theirs (version 1 is the
    source's current content; ``forked_from_id`` links it). A name in use is 409."""
    theme = await visible_theme(cat, caller, theme_id)
    return await cat.fork_theme_helper(theme.id, name=body.name, user_id=caller.user_id)


@themes.put("/{theme_id}/favorite", status_code=204)
async def favorite_theme(theme_id: str, caller: Caller, cat: Cat) -> Response:
    """Mark a theme the caller can see as their favourite (idempotent)."""
    theme = await visible_theme(cat, caller, theme_id)
    await cat.set_favorite(caller.user_id, s.RowKind.theme_helper, theme.id, True)
    return Response(status_code=204)


@themes.delete("/{theme_id}/favorite", status_code=204)
async def unfavorite_theme(theme_id: str, caller: Caller, cat: Cat) -> Response:
    """Unmark a theme as the caller's favourite (idempotent)."""
    await cat.set_favorite(caller.user_id, s.RowKind.theme_helper, theme_id, False)
    return Response(status_code=204)


router.include_router(helpers)
router.include_router(themes)
