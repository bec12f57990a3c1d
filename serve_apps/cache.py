"""What the request path keeps of the catalog: API keys and model lookups, cached per
process with a time to live, and served stale while the catalog is unreachable.

A request must not wait on the catalog actor: one actor call per request caps the whole
cluster's request rate (about 180 calls/s measured on PostgreSQL, issue 13), and while
the actor restarts every call stalls. :class:`RefreshingCache` answers from memory while
an entry is younger than ``ttl_s``; an older entry is fetched again (one fetch per key
at a time), and if that fetch fails because the catalog is down or slow, the old value is
served for up to ``max_stale_s`` more. What the TTL means for each cached thing is stated
where it is used (:mod:`serve_apps.auth`, :mod:`serve_apps.llm.models`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from ray.exceptions import ActorUnavailableError, RayActorError

from catalog.errors import Unavailable

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Seconds a cached API key or model lookup is trusted (``GARDEN_CACHE_TTL_S``, default
#: 5): a revoked key is refused, and a deleted adapter stops resolving, within this time.
CACHE_TTL_S = float(os.environ.get("GARDEN_CACHE_TTL_S", "5"))

#: Errors that mean "the catalog cannot answer now" (the actor restarting, a call timing
#: out, the database down): a stale entry is served instead of failing the request.
CATALOG_DOWN: tuple[type[BaseException], ...] = (
    ActorUnavailableError, RayActorError, TimeoutError, Unavailable)


class RefreshingCache(Generic[K, V]):
    """An async, bounded, per-process cache with a TTL and stale-if-error.

    Args:
        ttl_s: seconds an entry is served without asking the loader again.
        refresh_timeout_s: longest a request waits for a refresh of an expired entry
            before the stale value is served (the refresh goes on in the background).
        max_stale_s: how long past its TTL an entry may still be served while the
            loader keeps failing with :data:`CATALOG_DOWN`; older entries raise.
        max_entries: entries kept; the least recently used go first.

    Exceptions other than :data:`CATALOG_DOWN` (a ``NotFound``, say) propagate and are
    not cached, so a thing created a moment ago is found on its first request.
    """

    def __init__(self, ttl_s: float = CACHE_TTL_S, *, refresh_timeout_s: float = 2.0,
                 max_stale_s: float = 600.0, max_entries: int = 10_000):
        self.ttl_s = ttl_s
        self.refresh_timeout_s = refresh_timeout_s
        self.max_stale_s = max_stale_s
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of ``key``: cached while fresh, else ``await load()``.

        Raises:
            whatever ``load`` raises, except :data:`CATALOG_DOWN` errors (and a refresh
            slower than ``refresh_timeout_s``) while a stale value younger than
            ``ttl_s + max_stale_s`` exists: that value is returned instead.
        """
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            self._entries.move_to_end(key)
            return hit[1]
        future = self._loading.get(key)
        if future is None:
            future = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = future
            future.add_done_callback(lambda f: self._done(key, f))
        if hit is None:
            return await asyncio.shield(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.refresh_timeout_s)
        except CATALOG_DOWN as exc:  # holds TimeoutError (asyncio.wait_for raises it)
            if time.monotonic() - hit[0] > self.ttl_s + self.max_stale_s:
                raise
            log.warning("catalog unavailable (%s): serving a cached entry %.0f s old",
                        type(exc).__name__, time.monotonic() - hit[0])
            return hit[1]

    def _done(self, key: K, future: asyncio.Future[V]) -> None:
        self._loading.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved: a refresh nobody waited for logs nothing

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value
