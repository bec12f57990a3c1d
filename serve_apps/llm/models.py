"""Resolve an OpenAI ``model`` string to the base model or one of its catalog adapters
(the forms :mod:`catalog.model_names` reads), list a base's adapters and fetch an
adapter's files. The ingress caches what :func:`resolve` answers
(:mod:`serve_apps.llm.ingress`); a miss asks the catalog at once, so an adapter
registered a moment ago by a training job is servable at once.
"""

from __future__ import annotations

from pathlib import Path

from catalog import schemas as s
from catalog import storage
from catalog.errors import NotFound
from catalog.model_names import Target, lookup_ref, missing, target
from catalog.port import AsyncCatalogPort


async def resolve(catalog: AsyncCatalogPort, base: s.Model, ref: str | None) -> Target:
    """The :class:`~catalog.model_names.Target` for ``ref`` (an OpenAI ``model`` value;
    None means the base).

    Raises:
        UnknownModel: nothing matches, or the match is not this base or one of its adapters.
    """
    adapter_ref = lookup_ref(base, ref)
    if ref is None or adapter_ref is None:
        return Target(base)
    try:
        model = await catalog.find_model(adapter_ref)
    except NotFound:
        raise missing(ref) from None
    return target(base, ref, model, "here: this endpoint serves")


async def list_adapters(
    catalog: AsyncCatalogPort, base: s.Model, limit: int = 1000
) -> list[s.Model]:
    """Every adapter of ``base`` in the catalog, newest first (at most ``limit``)."""
    out: list[s.Model] = []
    cursor = None
    while len(out) < limit:
        page = await catalog.models.list(
            kind="adapter", base_model_id=base.id, page_size=100, cursor=cursor
        )
        out.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    return out[:limit]


def local_adapter_path(adapter: s.Model, cache: Path | None = None) -> Path:
    """A local folder holding ``adapter``'s PEFT files.

    A local path is returned as is; a storage URI (``s3://``, ``gs://``, ...) is copied
    once per node into the cache (:func:`catalog.storage.local_copy`), so a replica on
    any node serves an adapter a job on another node trained.

    Raises:
        FileNotFoundError: the folder or URI has no ``adapter_config.json``.
    """
    try:
        path = storage.local_copy(adapter.path, cache=cache)
    except FileNotFoundError:
        raise FileNotFoundError(f"adapter {adapter.id}: nothing at {adapter.path}") from None
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {adapter.id}: no adapter_config.json at {adapter.path}")
    return path
