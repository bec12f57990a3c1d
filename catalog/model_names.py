"""Which model an OpenAI ``model`` string names, given the base model that serves it: the
base itself, or one of its LoRA adapters registered in the catalog. One reading for the
online endpoint (``serve_apps.llm.models``, over the async port) and for batch lines
(``batch_jobs.models``, over the sync one); each asks the catalog itself.

Accepted forms (``base`` is the served base model's name or id): ``base`` or
``<base name>:<version>``; ``base:adapter`` where ``adapter`` is an adapter's id, name or
``name:version``; an adapter's id, name or ``name:version`` alone. The adapter must be
registered with ``kind="adapter"`` and ``base_model_id`` equal to the served base.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog import schemas as s


class UnknownModel(LookupError):
    """A ``model`` that names nothing served here (OpenAI: 404 model_not_found)."""


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


def lookup_ref(base: s.Model, ref: str | None) -> str | None:
    """What to look up in the catalog (``find_model``) for ``ref``: the adapter part of
    ``base:adapter``, else ``ref`` itself; None when ``ref`` is empty or names ``base``."""
    if not ref or ref in (base.name, base.id, f"{base.name}:{base.version}"):
        return None
    for prefix in (base.name, base.id):
        if ref.startswith(prefix + ":") and not ref[len(prefix) + 1 :].isdigit():
            return ref[len(prefix) + 1 :]
    return ref


def missing(ref: str) -> UnknownModel:
    """The error for a ``ref`` the catalog does not know."""
    return UnknownModel(f"The model `{ref}` does not exist.")


def target(base: s.Model, ref: str, found: s.Model, served: str) -> Target:
    """The :class:`Target` of ``ref``, whose :func:`lookup_ref` the catalog found as
    ``found``.

    Args:
        served: how the refusal says what is served, before the base's name
            (``"here: this endpoint serves"``).

    Raises:
        UnknownModel: ``found`` is neither ``base`` nor one of its adapters.
    """
    if found.id == base.id:
        return Target(base)
    if found.kind != s.ModelKind.adapter or found.base_model_id != base.id:
        raise UnknownModel(f"The model `{ref}` is not served {served} `{base.name}` "
                           "and its LoRA adapters.")
    return Target(base, found)
