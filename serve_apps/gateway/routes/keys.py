"""``/v1/keys``: API keys. Admins create keys for any user; anyone lists and deletes their
own. The secret is returned once, at creation; the catalog keeps only its hash."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from catalog import schemas as s
from serve_apps.auth import check_owner, owner_filter, require_admin
from serve_apps.gateway.deps import Caller, Cat, Paging

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200, description="Owner of the key.")
    name: str = Field(min_length=1, max_length=200, description="What the key is for.")
    role: s.Role = s.Role.user


class CreatedKey(BaseModel):
    key: s.ApiKey
    secret: str = Field(description="The key itself: shown once, store it now.")


@router.post("", status_code=201, response_model=CreatedKey)
async def create_key(body: KeyCreate, caller: Caller, cat: Cat) -> CreatedKey:
    """Admin only: a new key for ``user_id``."""
    require_admin(caller)
    record, secret = await cat.create_api_key(body.user_id, body.name, body.role)
    return CreatedKey(key=record, secret=secret)


@router.get("", response_model=s.Page[s.ApiKey])
async def list_keys(caller: Caller, cat: Cat, paging: Paging) -> Any:
    return await cat.api_keys.list(page_size=paging.page_size, cursor=paging.cursor,
                                       user_id=owner_filter(caller))


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete (revoke) a key: the caller's own, or any as an admin."""
    key = await cat.api_keys.get(key_id)
    check_owner(caller, key.user_id)
    await cat.api_keys.delete(key_id)
    return Response(status_code=204)
