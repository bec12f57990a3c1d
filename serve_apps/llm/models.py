"""Resolve an OpenAI ``model`` string to the base model or one of its catalog adapters.

Accepted forms (``base`` is the served base model's name or id):
``base``; ``base:adapter`` where ``adapter`` is an adapter's id, name or name:version;
an adapter's id, name or name:version alone. The adapter must be registered in the
catalog with ``kind="adapter"`` and ``base_model_id`` equal to the served base.
The ingress caches what this resolves (:mod:`serve_apps.llm.ingress`); a miss asks the
catalog at once, so an adapter registered a moment ago by a
training job is servable at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog import schemas as s
from catalog import storage
from catalog.errors import NotFound
from catalog.port import AsyncCatalogPort


class UnknownModel(LookupError):
    """The ``model`` names nothing this app serves (OpenAI: 404 model_not_found)."""


@dataclass(frozen=True)
class Target:
    """What a request runs on: the base model, and the adapter (None for the base)."""

    base: s.Model
    adapter: s.Model | None = None

    @property
    def served_name(self) -> str:
        """The name vLLM knows it by and responses carry: ``base`` or ``base:adapter:version``."""
        if self.adapter is None:
            return self.base.name
        return adapter_served_name(self.base, self.adapter)


def adapter_served_name(base: s.Model, adapter: s.Model) -> str:
    """``<base name>:<adapter name>:<version>``, the adapter's id on /v1/models."""
    return f"{base.name}:{adapter.name}:{adapter.version}"


async def resolve(catalog: AsyncCatalogPort, base: s.Model, ref: str | None) -> Target:
    """The :class:`Target` for ``ref`` (an OpenAI ``model`` value; None means the base).


    Raises:
        UnknownModel: nothing matches, or the match is not this base or one of its adapters.
    """
    if not ref or ref in (base.name, base.id, f"{base.name}:{base.version}"):
        return Target(base)
    adapter_ref = ref
    for prefix in (base.name, base.id):
        if ref.startswith(prefix + ":") and not ref[len(prefix) + 1 :].isdigit():
            adapter_ref = ref[len(prefix) + 1 :]
            break
    try:
        model = await catalog.find_model(adapter_ref)
    except NotFound:
        raise UnknownModel(f"The model `{ref}` does not exist.") from None
    if model.id == base.id:
        return Target(base)
    if model.kind != s.ModelKind.adapter or model.base_model_id != base.id:
        raise UnknownModel(
            f"The model `{ref}` is not served here: this endpoint serves `{base.name}` "
            "and its LoRA adapters."
        )
    return Target(base, model)


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
