"""Which model a batch line runs on: the base model, or one of its LoRA adapters.

A line's ``model`` is resolved as the online endpoint resolves it (the same forms as
``serve_apps/llm/models.py``, whose module this package may not import): the base
model's name, id or ``name:version``; ``<base>:<adapter>`` with the adapter's id, name or
``name:version``; or the adapter's id, name or ``name:version`` alone. A batch runs on
one base model (one Ray Data LLM processor with LoRA enabled), the base of its lines'
models; a line naming another base or an unknown model is an error line (404).
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog import schemas as s
from catalog import storage
from catalog.errors import NotFound
from catalog.port import CatalogPort


@dataclass(frozen=True)
class Target:
    """What a line runs on: the base model and, for an adapter line, the adapter."""

    base: s.Model
    adapter: s.Model | None = None

    @property
    def served_name(self) -> str:
        """The ``model`` of the response body: ``base`` or ``base:adapter:version``, as
        the online endpoint names it."""
        if self.adapter is None:
            return self.base.name
        return f"{self.base.name}:{self.adapter.name}:{self.adapter.version}"


class UnknownModel(LookupError):
    """A ``model`` that names nothing this batch can run (OpenAI: model_not_found)."""


def find_base(cat: CatalogPort, ref: str) -> s.Model:
    """The base model a line's ``model`` runs on (its own base for an adapter).

    Raises:
        UnknownModel: nothing in the catalog matches.
    """
    for candidate in (ref, ref.split(":", 1)[0]):
        try:
            model = cat.find_model(candidate)
        except NotFound:
            continue
        if model.kind == s.ModelKind.base:
            return model
        if model.base_model_id:
            return cat.models.get(model.base_model_id)
    raise UnknownModel(f"The model `{ref}` does not exist.")


def resolve(cat: CatalogPort, base: s.Model, ref: str | None) -> Target:
    """The :class:`Target` of ``ref`` (a line's ``model``; None means the base).

    Raises:
        UnknownModel: nothing matches, or the match is neither ``base`` nor one of its
            adapters.
    """
    if not ref or ref in (base.name, base.id, f"{base.name}:{base.version}"):
        return Target(base)
    adapter_ref = ref
    for prefix in (base.name, base.id):
        if ref.startswith(prefix + ":") and not ref[len(prefix) + 1:].isdigit():
            adapter_ref = ref[len(prefix) + 1:]
            break
    try:
        model = cat.find_model(adapter_ref)
    except NotFound:
        raise UnknownModel(f"The model `{ref}` does not exist.") from None
    if model.id == base.id:
        return Target(base)
    if model.kind != s.ModelKind.adapter or model.base_model_id != base.id:
        raise UnknownModel(f"The model `{ref}` is not served by this batch: it runs "
                           f"`{base.name}` and its LoRA adapters.")
    return Target(base, model)


def local_path(model: s.Model) -> str:
    """A local folder with the model's files: its own path when local, else a copy in this
    node's cache (:func:`catalog.storage.local_copy`). Raises FileNotFoundError."""
    return str(storage.local_copy(model.path))
