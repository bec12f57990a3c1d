"""Which model a batch line runs on: the base model, or one of its LoRA adapters.

A line's ``model`` is resolved as the online endpoint resolves it
(:mod:`catalog.model_names`): the base model's name, id or ``name:version``;
``<base>:<adapter>`` with the adapter's id, name or ``name:version``; or the adapter's id,
name or ``name:version`` alone. A batch runs on one base model (one Ray Data LLM processor
with LoRA enabled), the base of its lines' models; a line naming another base or an
unknown model is an error line (404).
"""

from __future__ import annotations

from catalog import schemas as s
from catalog import storage
from catalog.errors import NotFound
from catalog.model_names import Target, lookup_ref, missing, target
from catalog.port import CatalogPort


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
    raise missing(ref)


def resolve(cat: CatalogPort, base: s.Model, ref: str | None) -> Target:
    """The :class:`~catalog.model_names.Target` of ``ref`` (a line's ``model``; None
    means the base).

    Raises:
        UnknownModel: nothing matches, or the match is neither ``base`` nor one of its
            adapters.
    """
    adapter_ref = lookup_ref(base, ref)
    if ref is None or adapter_ref is None:
        return Target(base)
    try:
        model = cat.find_model(adapter_ref)
    except NotFound:
        raise missing(ref) from None
    return target(base, ref, model, "by this batch: it runs")


def local_path(model: s.Model) -> str:
    """A local folder with the model's files: its own path when local, else a copy in this
    node's cache (:func:`catalog.storage.local_copy`). Raises FileNotFoundError."""
    return str(storage.local_copy(model.path))
