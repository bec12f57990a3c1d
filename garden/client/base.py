"""What every resource namespace shares: the owning client and typed page decoding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from catalog.schemas import Page

if TYPE_CHECKING:
    from garden.client import Client

M = TypeVar("M", bound=BaseModel)


class Namespace:
    """One resource of the API (``client.datasets``, ``client.models``, ...)."""

    def __init__(self, client: Client):
        self._client = client

    def _page(self, model: type[M], path: str, params: dict[str, Any]) -> Page[M]:
        params = {k: v for k, v in params.items() if v is not None}
        data = self._client.request("GET", path, params=params).json()
        # pydantic parametrizes the generic page at run time, by the row model
        return Page[model].model_validate(data)  # type: ignore[valid-type]

    def _iterate(self, model: type[M], path: str, params: dict[str, Any]) -> Iterator[M]:
        """Every row over all pages (follows ``next_cursor``)."""
        cursor = None
        while True:
            page = self._page(model, path, {**params, "cursor": cursor})
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return
