"""``/v1/datasets``: upload dataset files (JSONL, JSON, CSV, Parquet; multipart or raw
body), list, get (with schema and statistics), preview, delete."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from catalog import schemas as s
from catalog import storage
from catalog.config import garden_home
from catalog.errors import InvalidArgument, NotFound, PayloadTooLarge
from catalog.port import AsyncCatalogPort
from catalog.schemas.common import NAME_LENGTH
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging, Settings, Worker
from serve_apps.gateway.routes.models import visible_model

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

#: Raw-body content types accepted, with the file extension each implies when the upload
#: has no file name ("": the content decides, see ``corpora.files``).
RAW_TYPES = {
    "application/jsonl": ".jsonl", "application/x-ndjson": ".jsonl",
    "application/json": ".json", "text/csv": ".csv", "application/csv": ".csv",
    "text/tab-separated-values": ".tsv", "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet", "text/plain": "", "application/octet-stream": "",
}
#: Bytes copied per step from a request body or a spooled multipart file to the upload file.
COPY_CHUNK_BYTES = 1 << 20

_FIELDS = {
    "name": {"type": "string", "maxLength": NAME_LENGTH},
    "description": {"type": "string"},
    "column_mapping": {"type": "string", "description": "JSON object {file column: row "
                       "field}, e.g. {\"question\": \"instruction\", \"answer\": \"output\"}"},
    "base_model_id": {"type": "string", "description": "Model whose tokenizer counts the "
                      "statistics' lengths (characters when absent)."},
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **_FIELDS},
            }},
            **{ctype: {"schema": {"type": "string", "format": "binary"}}
               for ctype in ("application/jsonl", "application/json", "text/csv",
                             "application/vnd.apache.parquet", "application/octet-stream")},
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


def upload_path(filename: str | None) -> Path:
    """A new file under :func:`uploads_root` for an upload named ``filename``, with its
    extension when that is a plain one (a dot, then 1 to 16 letters or digits: ``.csv``);
    any other (too long for a file name, a NUL byte) is left out: the user's file name
    travels on beside the file, and decides its format, not this path."""
    suffix = Path(filename or "").suffix
    return uploads_root() / (uuid.uuid4().hex + (
        suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) else ""))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"upload larger than {limit} bytes", field="file")


def _copy_spooled(source: IO[bytes], dest: Path, limit: int) -> int:
    """Copy ``source`` to ``dest`` in chunks; return the bytes copied. Raises PayloadTooLarge
    past ``limit`` bytes."""
    source.seek(0)
    size = 0
    with dest.open("wb") as out:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            out.write(chunk)
    return size


async def _receive_upload(request: Request, limit: int, name: str | None,
                          ) -> tuple[Path, int, dict[str, str]]:
    """Write the uploaded file to a new file under :func:`uploads_root`, streaming (multipart
    field ``file``, which starlette spools to disk, or the raw body); return the file, its
    size and the fields: the form's (multipart) or the query's (raw body), with
    ``filename``, the user's file name (a raw body's: the query's ``filename``, else the
    dataset ``name`` with the extension of its content type; absent without either).

    Raises:
        PayloadTooLarge: more than ``limit`` bytes (declared or received).
        InvalidArgument: no ``file`` field, or a content type that is not a dataset file.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidArgument("multipart upload needs a file field named 'file'",
                                  field="file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        fields["filename"] = Path(upload.filename or "dataset").name
        path = upload_path(fields["filename"])
        try:
            size = await run_in_threadpool(_copy_spooled, upload.file, path, limit)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            await form.close()
        return path, size, fields
    if ctype and ctype not in RAW_TYPES:
        raise InvalidArgument(
            f"unsupported content type {ctype!r}: send multipart/form-data or one of "
            f"{sorted(RAW_TYPES)}", field="content-type")
    fields = dict(request.query_params)
    if fields.get("filename"):
        fields["filename"] = Path(fields["filename"]).name
    elif name:
        fields["filename"] = f"{name}{RAW_TYPES.get(ctype, '')}"
    path = upload_path(fields.get("filename"))
    size = 0
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                if chunk:
                    await run_in_threadpool(out.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size, fields


def parse_column_mapping(text: str | None) -> dict[str, str] | None:
    """The ``column_mapping`` field: a JSON object of strings, ``{file column: row field}``.

    Raises:
        InvalidArgument: (``field="column_mapping"``) not such an object.
    """
    if not text:
        return None
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"column_mapping is not JSON: {exc.msg}",
                              field="column_mapping") from exc
    if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()):
        raise InvalidArgument('column_mapping must be a JSON object of column names, e.g. '
                              '{"question": "instruction", "answer": "output"}',
                              field="column_mapping")
    return mapping


@router.post("", status_code=201, response_model=s.Dataset, openapi_extra=_UPLOAD_BODY)
async def upload_dataset(
    request: Request, caller: Caller, config: Settings, work: Worker, cat: Cat,
    name: Annotated[str | None, Query(max_length=NAME_LENGTH)] = None,
    description: Annotated[str | None, Query()] = None,
) -> s.Dataset:
    """Store an uploaded dataset file and register it: JSONL, a JSON array of rows, CSV or
    Parquet (recognised by content and file name), rows in any row format; CSV and Parquet
    columns map by name. Every row is checked, and schema and statistics computed, outside
    the gateway by :meth:`serve_apps.gateway.work.Work.register_dataset`; bad rows are 422
    with their line (Parquet: row) numbers and columns.

    The name comes from the form field ``name``, the query parameter ``name``, or the
    uploaded file's name, in that order; raw bodies need the query parameter (and may name
    the file with ``filename``). ``column_mapping`` (JSON object) and ``base_model_id``
    (a model id or name whose tokenizer counts lengths) are form fields or query
    parameters. A name longer than the catalog holds (:data:`NAME_LENGTH` characters) is
    422 naming ``name``, before the registration runs.
    """
    path, size, fields = await _receive_upload(request, config.max_upload_bytes, name)
    try:
        if size == 0:
            raise InvalidArgument("the uploaded file is empty", field="file")
        filename = fields.get("filename")
        given = fields.get("name") or name
        name = given or (Path(filename).stem if filename else None)
        if not name or not filename:
            raise InvalidArgument("a dataset name is required", field="name")
        if len(name) > NAME_LENGTH:
            origin = "" if given else " (the file's name: send a shorter name)"
            raise InvalidArgument(f"name: at most {NAME_LENGTH} characters, got "
                                  f"{len(name)}{origin}", field="name")
        query = request.query_params
        mapping = parse_column_mapping(fields.get("column_mapping") or query.get("column_mapping"))
        base_model_id = fields.get("base_model_id") or query.get("base_model_id")
        if base_model_id:
            try:
                base_model_id = (await visible_model(cat, caller, base_model_id)).id
            except NotFound as exc:
                raise InvalidArgument(f"model {base_model_id!r} not found",
                                      field="base_model_id") from exc
        return await work.register_dataset(
            str(path), name, user_id=caller.user_id,
            description=fields.get("description") or description, source="upload",
            filename=filename, column_mapping=mapping, base_model_id=base_model_id,
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
