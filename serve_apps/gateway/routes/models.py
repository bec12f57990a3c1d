"""``/v1/models``: list with filters, get, import a base model, merge an adapter into its
base, publish, delete.

Visibility: a user sees their own models and every published one (imported base
models are published, so anyone may fine-tune them); an admin sees all. Only the
owner or an admin changes a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from catalog import schemas as s
from catalog.errors import InvalidArgument
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, check_owner, check_readable, owner_filter, require_admin
from serve_apps.gateway.deps import Caller, Cat, Paging, Worker

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelImport(BaseModel):
    """Import a base model from a path on the cluster (a ``.gguf`` file or a Hugging Face
    folder); no path imports the bundled SmolLM2-135M-Instruct."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, description="Path of a .gguf file or a model folder.")
    name: str | None = Field(None, min_length=1, max_length=200)


class ModelMerge(BaseModel):
    """Merge a LoRA adapter into its base model's weights; the result is a new base model."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200,
                             description="Name of the merged model; default "
                             "'<adapter name>-merged'.")


def check_visible(caller: Principal, model: s.Model) -> None:
    """Raise PermissionDenied (403) unless ``caller`` may read ``model``."""
    check_readable(caller, model.user_id, model.published)


async def visible_model(cat: AsyncCatalogPort, caller: Principal, model_id: str) -> s.Model:
    """A model the caller may read, by id, name or ``name:version``. Raises NotFound, 403."""
    model = await cat.find_model(model_id)
    check_visible(caller, model)
    return model


@router.get("", response_model=s.Page[s.Model])
async def list_models(
    caller: Caller, cat: Cat, paging: Paging,
    kind: s.ModelKind | None = None, name: str | None = None,
    base_model_id: str | None = None, published: bool | None = None,
) -> Any:
    """Models newest first. Users get their own rows, or with ``published=true`` every
    published model; admins get every row."""
    user_id = None if published else owner_filter(caller)
    return await cat.models.list(
        page_size=paging.page_size, cursor=paging.cursor, kind=kind, name=name,
        base_model_id=base_model_id, published=published, user_id=user_id,
    )


@router.post("/import", status_code=201, response_model=s.Model)
async def import_model(body: ModelImport, caller: Caller, cat: Cat, work: Worker) -> s.Model:
    """Admin only: import (convert or copy) a base model into storage, register it and
    publish it. Idempotent by name. The conversion runs outside the gateway
    (:meth:`serve_apps.gateway.work.Work.import_base_model`); an unusable source is 422
    naming ``source``."""
    require_admin(caller)
    source = body.source or None
    if source is not None and not Path(source).exists():
        raise InvalidArgument(f"{body.source} does not exist on the cluster", field="source")
    model = await work.import_base_model(source, body.name)
    if not model.published:
        model = await cat.models.update(model.id, published=True)
    return model


@router.get("/{model_id}", response_model=s.Model)
async def get_model(model_id: str, caller: Caller, cat: Cat) -> s.Model:
    """A model by id, by name (latest version) or by ``name:version``."""
    return await visible_model(cat, caller, model_id)


@router.post("/{model_id}/merge", status_code=201, response_model=s.Model)
async def merge_model(
    model_id: str, caller: Caller, cat: Cat, work: Worker, body: ModelMerge | None = None,
) -> s.Model:
    """Merge a LoRA adapter the caller may read (by id, name or ``name:version``) into its
    base model's weights (PEFT's ``merge_and_unload``) and register the result as the
    caller's base model, next version of ``name``, with ``base_model_id`` the adapter's
    base and ``merged_from_id`` the adapter: an LLM app can serve it as its own model.
    Idempotent: the caller's model already merged from the adapter (with that ``name``,
    when given) is returned. The merge runs outside the gateway
    (:meth:`serve_apps.gateway.work.Work.merge_adapter`); a base model is 422 naming
    ``model_id``."""
    adapter = await visible_model(cat, caller, model_id)
    if adapter.kind != s.ModelKind.adapter:
        raise InvalidArgument(
            f"{model_id} is a base model, not an adapter: only a LoRA adapter can be merged",
            field="model_id")
    return await work.merge_adapter(adapter.id, body.name if body else None, caller.user_id)


@router.post("/{model_id}/publish", response_model=s.Model)
async def publish_model(model_id: str, caller: Caller, cat: Cat, published: bool = True) -> Any:
    """Publish (or, with ``published=false``, unpublish) the caller's model."""
    model = await cat.find_model(model_id)
    check_owner(caller, model.user_id)
    return await cat.models.update(model.id, published=published)


@router.delete("/{model_id}", status_code=204)
async def delete_model(model_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete the catalog row (409 while adapters or jobs reference it). Weights on disk
    are kept: other registrations may share the folder."""
    model = await cat.find_model(model_id)
    check_owner(caller, model.user_id)
    await cat.models.delete(model.id)
    return Response(status_code=204)
