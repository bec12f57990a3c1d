"""``/v1/keys``: API keys. Admins create keys for any user and set their limits; anyone
lists and deletes their own. The secret is returned once, at creation; the catalog keeps
only its hash.

A key's limits (requests per minute, tokens per minute, a lifetime token budget) are
enforced by the OpenAI routes (answering 429 with ``Retry-After``); a changed limit
takes effect within the ingress's key cache TTL (:data:`serve_apps.cache.CACHE_TTL_S`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from catalog import schemas as s
from catalog.schemas.common import ID_LENGTH, NAME_LENGTH
from serve_apps.auth import check_owner, owner_filter, require_admin
from serve_apps.gateway.deps import Caller, Cat, Paging

router = APIRouter(prefix="/v1/keys", tags=["keys"])


#: Largest values the catalog's columns hold (32-bit per-minute limits, 64-bit budget).
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1

RpmLimit = Annotated[int | None, Field(
    ge=1, le=INT32_MAX, description="Most requests per minute; null: no limit.")]
TpmLimit = Annotated[int | None, Field(
    ge=1, le=INT32_MAX,
    description="Most tokens (prompt + completion) per minute; null: no limit.")]
TokenBudget = Annotated[int | None, Field(
    ge=1, le=INT64_MAX,
    description="Most tokens (prompt + completion) in the key's lifetime; null: no limit.")]


class KeyCreate(BaseModel):
    """A new key for ``user_id``, with optional limits."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=ID_LENGTH, description="Owner of the key.")
    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="What the key is for.")
    role: s.Role = s.Role.user
    rpm_limit: RpmLimit = None
    tpm_limit: TpmLimit = None
    token_budget: TokenBudget = None


class KeyLimits(BaseModel):
    """New limits of a key: a field given sets that limit (null clears it); a field left
    out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    rpm_limit: RpmLimit = None
    tpm_limit: TpmLimit = None
    token_budget: TokenBudget = None


class CreatedKey(BaseModel):
    key: s.ApiKey
    secret: str = Field(description="The key itself: shown once, store it now.")


@router.post("", status_code=201, response_model=CreatedKey)
async def create_key(body: KeyCreate, caller: Caller, cat: Cat) -> CreatedKey:
    """Admin only: a new key for ``user_id``, with the limits given."""
    require_admin(caller)
    record, secret = await cat.create_api_key(
        body.user_id, body.name, body.role, rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit, token_budget=body.token_budget)
    return CreatedKey(key=record, secret=secret)


@router.get("", response_model=s.Page[s.ApiKey])
async def list_keys(caller: Caller, cat: Cat, paging: Paging) -> Any:
    return await cat.api_keys.list(page_size=paging.page_size, cursor=paging.cursor,
                                       user_id=owner_filter(caller))


@router.get("/{key_id}", response_model=s.ApiKey)
async def get_key(key_id: str, caller: Caller, cat: Cat) -> Any:
    """A key (the caller's own, or any as an admin), with its limits and tokens used."""
    key = await cat.api_keys.get(key_id)
    check_owner(caller, key.user_id)
    return key


@router.patch("/{key_id}", response_model=s.ApiKey)
async def set_key_limits(key_id: str, body: KeyLimits, caller: Caller, cat: Cat) -> Any:
    """Admin only: set or clear (null) the key's limits; fields left out keep their value."""
    require_admin(caller)
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        return await cat.api_keys.get(key_id)
    return await cat.api_keys.update(key_id, **changes)


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete (revoke) a key: the caller's own, or any as an admin."""
    key = await cat.api_keys.get(key_id)
    check_owner(caller, key.user_id)
    await cat.api_keys.delete(key_id)
    return Response(status_code=204)
