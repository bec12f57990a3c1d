"""``/v1/models``: list with filters, get, a model's lineage, import a base model, merge
an adapter into its base, publish, delete.

Visibility: a user sees their own models and every published one (imported base
models are published, so anyone may fine-tune them); an admin sees all. Only the
owner or an admin changes a model.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from catalog import schemas as s
from catalog.errors import InvalidArgument, NotFound, PermissionDenied
from catalog.port import AsyncCatalogPort
from catalog.schemas.common import NAME_LENGTH
from serve_apps.auth import Principal, check_owner, check_readable, owner_filter, require_admin
from serve_apps.gateway.deps import Caller, Cat, Paging, Worker

router = APIRouter(prefix="/v1/models", tags=["models"])

T = TypeVar("T")

#: Most adapters (of a base model) and merged models a lineage lists.
LINEAGE_LIST_LIMIT = 50


class ModelImport(BaseModel):
    """Import a base model from a path on the cluster (a ``.gguf`` file or a Hugging Face
    folder); no path imports the bundled SmolLM2-135M-Instruct."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, description="Path of a .gguf file or a model folder.")
    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH)


class ModelMerge(BaseModel):
    """Merge a LoRA adapter into its base model's weights; the result is a new base model."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH,
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


@router.get("/{model_id}/lineage", response_model=s.ModelLineage)
async def model_lineage(model_id: str, caller: Caller, cat: Cat) -> s.ModelLineage:
    """A model (by id, name or ``name:version``) with its lineage, its serving totals and
    the same as a graph: dataset -> training job -> model -> requests served.

    Included: the base model, the adapter it was merged from (``merged_from_id``), the
    training dataset (``dataset_id``, else the job's), the job's evaluation dataset, the
    training job (``training_job_id``), for a base model its adapters (newest 50), the
    models merged from it (newest 50). Training metrics and carbon are the model's and
    the job's own fields.

    Visibility: the model itself as ``GET /v1/models/{model_id}`` (403 when the caller
    may not read it, 404 when unknown). A related row is included only when the caller
    may read it: models their own, published or any for an admin; datasets and jobs
    their own or any for an admin. Otherwise, and when it has been deleted, the field is
    null (or the row left out of its list) and it has no node.

    Serving totals sum the usage records: for an adapter those whose adapter is its id
    (``group_by="adapter"``); for a base model those whose ``model`` is its name
    (``group_by="model"``), which counts the traffic of its adapters too and of every
    version of that name. The model's owner and admins get every caller's requests
    (``scope="all"``), anyone else only their own (``scope="caller"``); zeros when none.

    Graph: ``nodes`` holds each included row once (datasets, the job, models) and the
    serving node ``requests:<model id>``; ``edges`` go the way data flows: dataset
    ``trained on`` the job (the model itself when no job is shown), eval dataset
    ``evaluated on`` the job, job ``produced`` the model, base ``base of`` the model (and
    each listed adapter of a base model), merged_from ``merged into`` the model, the
    model ``merged into`` each merged model, the model ``served`` the requests node.
    """
    model = await visible_model(cat, caller, model_id)
    base = await _readable_model(cat, caller, model.base_model_id)
    merged_from = await _readable_model(cat, caller, model.merged_from_id)
    job = None
    if model.training_job_id:
        job = await _readable(caller, cat.training_jobs.get(model.training_job_id))
    dataset_id = model.dataset_id or (job.dataset_id if job else None)
    dataset = await _readable(caller, cat.datasets.get(dataset_id)) if dataset_id else None
    eval_dataset = None
    if job is not None and job.eval_dataset_id:
        eval_dataset = await _readable(caller, cat.datasets.get(job.eval_dataset_id))
    adapters = (await _readable_models(cat, caller, base_model_id=model.id,
                                       kind=s.ModelKind.adapter)
                if model.kind == s.ModelKind.base else [])
    merged = await _readable_models(cat, caller, merged_from_id=model.id)
    serving = await _serving_totals(cat, caller, model)
    lineage = s.ModelLineage(
        model=model, base_model=base, merged_from=merged_from, dataset=dataset,
        eval_dataset=eval_dataset, training_job=job, adapters=adapters, merged=merged,
        serving=serving, nodes=[], edges=[])
    lineage.nodes, lineage.edges = lineage_graph(lineage)
    return lineage


def _may_read(caller: Principal, owner_id: str | None, public: bool = False) -> bool:
    """Whether :func:`check_readable` lets ``caller`` read a row of ``owner_id``."""
    try:
        check_readable(caller, owner_id, public)
    except PermissionDenied:
        return False
    return True


async def _readable(caller: Principal, row: Awaitable[T]) -> T | None:
    """The row (a dataset or training job, read by its owner or an admin), or None when
    the caller may not read it or it is gone (NotFound)."""
    try:
        found = await row
    except NotFound:
        return None
    return found if _may_read(caller, getattr(found, "user_id", None)) else None


async def _readable_model(cat: AsyncCatalogPort, caller: Principal,
                          model_id: str | None) -> s.Model | None:
    """Model ``model_id`` when the caller may read it (own, published, admin); None when
    not, when it is gone, or for no id."""
    if not model_id:
        return None
    try:
        model = await cat.models.get(model_id)
    except NotFound:
        return None
    return model if _may_read(caller, model.user_id, model.published) else None


async def _readable_models(cat: AsyncCatalogPort, caller: Principal,
                           **filters: Any) -> list[s.Model]:
    """The newest :data:`LINEAGE_LIST_LIMIT` models matching ``filters`` that the caller
    may read: all rows for an admin, else their own and the published ones."""
    page = await cat.models.list(page_size=LINEAGE_LIST_LIMIT,
                                 visible_to=owner_filter(caller), **filters)
    return list(page.items)


async def _serving_totals(cat: AsyncCatalogPort, caller: Principal,
                          model: s.Model) -> s.ServingTotals:
    """The usage of ``model`` (see :func:`model_lineage`): every caller's for its owner
    and admins, the caller's own otherwise."""
    everyone = _may_read(caller, model.user_id)  # its owner or an admin
    if model.kind == s.ModelKind.adapter:
        summary = await cat.usage_summary(
            "adapter", user_id=None if everyone else caller.user_id)
        key = model.id
    else:
        summary = await cat.usage_summary(
            "model", user_id=None if everyone else caller.user_id)
        key = model.name
    row = next((r for r in summary.rows if r.key == key), None)
    scope = "all" if everyone else "caller"
    if row is None:
        return s.ServingTotals(requests=0, prompt_tokens=0, completion_tokens=0, cost_usd=0.0,
                               energy_kwh=0.0, emissions_kg=0.0, scope=scope)
    return s.ServingTotals(
        requests=row.requests, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, cost_usd=row.cost_usd or 0.0,
        energy_kwh=row.energy_kwh, emissions_kg=row.emissions_kg, scope=scope)


def lineage_graph(
    lineage: s.ModelLineage,
) -> tuple[list[s.LineageNode], list[s.LineageEdge]]:
    """The nodes and edges of ``lineage``'s rows (its ``nodes``/``edges`` are ignored):
    each row once, each edge once, in the direction data flows (see
    :func:`model_lineage`); every edge's ends are nodes."""
    nodes: dict[str, s.LineageNode] = {}
    edges: dict[tuple[str, str, str], s.LineageEdge] = {}

    def model_node(m: s.Model) -> str:
        nodes.setdefault(m.id, s.LineageNode(
            id=m.id, kind="model", label=f"{m.name} v{m.version} ({m.kind})"))
        return m.id

    def edge(source: str, target: str, label: str) -> None:
        edges.setdefault((source, target, label),
                         s.LineageEdge(source=source, target=target, label=label))

    model = model_node(lineage.model)
    job = lineage.training_job
    if job is not None:
        nodes.setdefault(job.id, s.LineageNode(
            id=job.id, kind="training_job", label=f"{job.name} ({job.status})"))
        edge(job.id, model, "produced")
    for data, label in ((lineage.dataset, "trained on"), (lineage.eval_dataset, "evaluated on")):
        if data is None:
            continue
        nodes.setdefault(data.id, s.LineageNode(
            id=data.id, kind="dataset", label=f"{data.name} v{data.version} "
                                              f"({data.num_rows} rows)"))
        edge(data.id, job.id if job is not None else model, label)
    if lineage.base_model is not None:
        edge(model_node(lineage.base_model), model, "base of")
    if lineage.merged_from is not None:
        edge(model_node(lineage.merged_from), model, "merged into")
    for adapter in lineage.adapters:
        edge(model, model_node(adapter), "base of")
    for merged in lineage.merged:
        edge(model, model_node(merged), "merged into")
    served = lineage.serving
    requests = f"requests:{lineage.model.id}"
    nodes[requests] = s.LineageNode(
        id=requests, kind="requests",
        label=f"{served.requests} requests, "
              f"{served.prompt_tokens + served.completion_tokens} tokens")
    edge(model, requests, "served")
    return list(nodes.values()), list(edges.values())


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
