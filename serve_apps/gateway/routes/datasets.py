"""``/v1/datasets``: upload JSONL (multipart or raw body), list, get, preview, delete."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from catalog import schemas as s
from catalog import storage
from catalog.config import garden_home
from catalog.errors import InvalidArgument, NotFound, PayloadTooLarge
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging, Settings, Worker

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/json",
                "text/plain", "application/octet-stream")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "name": {"type": "string"}, "description": {"type": "string"},
                },
            }},
            "application/jsonl": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def uploads_root() -> Path:
    """``$GARDEN_HOME/datasets/uploads``: where uploaded files land before registration
    (a local folder of the gateway's node, whatever the storage root; the registered
    copy is stored under the storage root by ``register_dataset``)."""
    root = garden_home() / "datasets" / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    return root


async def _read_upload(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The uploaded bytes and form fields, from multipart (field ``file``) or the raw body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload larger than {limit} bytes", field="file")
    if ctype == "multipart/form-data":
        form = await request.form(max_part_size=limit)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidArgument("multipart upload needs a file field named 'file'",
                                  field="file")
        data = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        fields["filename"] = Path(upload.filename or "dataset").stem
        return data, fields
    if ctype and ctype not in _JSONL_TYPES:
        raise InvalidArgument(f"unsupported content type {ctype!r}: send JSONL or multipart",
                              field="content-type")
    data = await request.body()
    return data, dict(request.query_params)


@router.post("", status_code=201, response_model=s.Dataset, openapi_extra=_UPLOAD_BODY)
async def upload_dataset(
    request: Request, caller: Caller, config: Settings, work: Worker,
    name: Annotated[str | None, Query(max_length=200)] = None,
    description: Annotated[str | None, Query()] = None,
) -> s.Dataset:
    """Store an uploaded JSONL file and register it (format detected and every row checked
    outside the gateway by :meth:`serve_apps.gateway.work.Work.register_dataset`; bad rows
    are 422 with their line numbers).

    The name comes from the form field ``name``, the query parameter ``name``, or the
    uploaded file's name, in that order; raw bodies need the query parameter.
    """
    data, fields = await _read_upload(request, config.max_upload_bytes)
    if len(data) > config.max_upload_bytes:
        raise PayloadTooLarge(f"upload larger than {config.max_upload_bytes} bytes",
                              field="file")
    if not data.strip():
        raise InvalidArgument("the uploaded file is empty", field="file")
    name = fields.get("name") or name or fields.get("filename")
    if not name:
        raise InvalidArgument("a dataset name is required", field="name")
    path = uploads_root() / f"{uuid.uuid4().hex}.jsonl"
    await run_in_threadpool(path.write_bytes, data)
    try:
        return await work.register_dataset(
            str(path), name, user_id=caller.user_id,
            description=fields.get("description") or description, source="upload",
        )
    finally:
        # register_dataset keeps its own copy in storage (or failed): the upload is spent.
        path.unlink(missing_ok=True)


@router.get("", response_model=s.Page[s.Dataset])
async def list_datasets(
    caller: Caller, cat: Cat, paging: Paging,
    name: str | None = None, format: s.DatasetFormat | None = None,
) -> Any:
    """The caller's datasets (an admin's: everyone's), newest first."""
    return await cat.datasets.list(
        page_size=paging.page_size, cursor=paging.cursor, name=name, format=format,
        user_id=owner_filter(caller),
    )


async def owned_dataset(cat: AsyncCatalogPort, caller: Principal, dataset_id: str) -> s.Dataset:
    """The dataset, if the caller may see it. Raises NotFound (404), PermissionDenied (403)."""
    dataset = await cat.datasets.get(dataset_id)
    check_owner(caller, dataset.user_id)
    return dataset


@router.get("/{dataset_id}", response_model=s.Dataset)
async def get_dataset(dataset_id: str, caller: Caller, cat: Cat) -> s.Dataset:
    return await owned_dataset(cat, caller, dataset_id)


def read_rows(location: str | Path, offset: int, limit: int) -> list[Any]:
    """Rows ``offset .. offset+limit`` of a stored JSONL file, parsed.

    ``location`` is a dataset row's ``path``: a local path or an object store URI (read
    through :func:`catalog.storage.local_copy`, copied once into this node's cache).

    Raises:
        NotFound: no file at ``location``.
        OSError: the store refused the read.
    """
    try:
        path = storage.local_copy(str(location))
    except FileNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise NotFound(f"dataset file {storage.name_of(str(location))} is missing from storage",
                       field="path")
    rows: list[Any] = []
    with path.open(encoding="utf-8") as fh:
        index = 0
        for line in fh:
            if not line.strip():
                continue
            if index >= offset:
                rows.append(json.loads(line))
                if len(rows) >= limit:
                    break
            index += 1
    return rows


@router.get("/{dataset_id}/preview")
async def preview_dataset(
    dataset_id: str, caller: Caller, cat: Cat, config: Settings,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> dict[str, Any]:
    """Up to ``limit`` rows (capped by the gateway's ``preview_rows``) from ``offset``:
    ``{"dataset_id", "format", "offset", "total", "rows": [...]}``."""
    dataset = await owned_dataset(cat, caller, dataset_id)
    limit = min(limit, config.preview_rows)
    rows = await asyncio.wait_for(
        run_in_threadpool(read_rows, dataset.path, offset, limit),
        timeout=config.request_timeout_s,
    )
    return {"dataset_id": dataset.id, "format": dataset.format, "offset": offset,
            "total": dataset.num_rows, "rows": rows}


def is_under_storage_root(location: str) -> bool:
    """Whether ``location`` (a path or URI) lies under :func:`catalog.storage.storage_uri`:
    for a URI, it starts with the root URI and ``/``; for a local path, its resolved form
    is inside the resolved root folder."""
    root = storage.storage_uri()
    if storage.is_remote(location) or storage.is_remote(root):
        return storage.is_remote(location) and storage.is_remote(root) \
            and location.startswith(root.rstrip("/") + "/")
    return Path(location).resolve().is_relative_to(Path(root).resolve())


def delete_stored_file(location: str) -> bool:
    """Delete the stored dataset file at ``location`` if it is a file under the storage
    root (:func:`is_under_storage_root`); anything else (a file registered from a path
    the gateway does not own, a folder, nothing) is left alone. Returns whether a file
    was deleted.

    Raises:
        OSError: the store refused the listing or the deletion.
    """
    if not is_under_storage_root(location) or not storage.is_file(location):
        return False
    storage.delete(location)
    return True


@router.delete("/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: str, caller: Caller, cat: Cat) -> Response:
    """Delete the catalog row (409 while a job or model references it), then its file
    when it lives under the storage root (a local path or an object store URI)."""
    dataset = await owned_dataset(cat, caller, dataset_id)
    await cat.datasets.delete(dataset_id)
    await run_in_threadpool(delete_stored_file, dataset.path)
    return Response(status_code=204)
