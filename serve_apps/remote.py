"""Awaiting work that runs in another Ray process, with catalog errors kept as they are.

A :class:`catalog.errors.CatalogError` raised in a deployment replica or a Ray task
reaches the caller wrapped in :class:`ray.exceptions.RayTaskError`; routes need the
original, so the gateway answers its HTTP status (404, 409, 422, ...) instead of 500.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from ray.exceptions import RayTaskError

from catalog.errors import CatalogError

T = TypeVar("T")


async def unwrapped(pending: Awaitable[T]) -> T:
    """Await ``pending`` (a DeploymentResponse or an ObjectRef).

    Raises:
        CatalogError: the remote side's catalog error, with its own class.
        RayTaskError: any other remote failure, as Ray raised it.
    """
    try:
        return await pending
    except RayTaskError as exc:
        if isinstance(exc.cause, CatalogError):
            raise exc.cause from None
        raise
