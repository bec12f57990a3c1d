"""The retry mark of store operations: :func:`idempotent` marks an operation that is safe
to repeat, and :func:`is_idempotent` reads the mark (the catalog actor's retry policy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def idempotent(fn: F) -> F:
    """Mark a store operation as safe to repeat: it only reads, or its write is keyed by
    the caller's ids (a repeat writes nothing twice).

    :class:`catalog.actor.Catalog` retries such operations while the catalog actor
    restarts (:func:`is_idempotent`); any other write raises, since it may or may not
    have committed.
    """
    fn.__catalog_idempotent__ = True  # type: ignore[attr-defined]
    return fn


def is_idempotent(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` was marked with :func:`idempotent`."""
    return getattr(fn, "__catalog_idempotent__", False)
