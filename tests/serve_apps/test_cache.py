"""RefreshingCache: fresh hits, refresh after the TTL, stale values while the catalog is
down, misses that always ask."""

from __future__ import annotations

import asyncio

import pytest

from catalog.errors import NotFound, Unavailable
from serve_apps.cache import RefreshingCache


class Loader:
    """Counts calls; answers ``value`` or raises ``error``."""

    def __init__(self, value="v1"):
        self.value = value
        self.error: BaseException | None = None
        self.calls = 0
        self.delay_s = 0.0

    async def __call__(self):
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


async def test_fresh_entries_are_served_without_asking():
    cache, load = RefreshingCache(ttl_s=60), Loader()
    assert [await cache.get("k", load) for _ in range(5)] == ["v1"] * 5
    assert load.calls == 1


async def test_an_expired_entry_is_fetched_again():
    cache, load = RefreshingCache(ttl_s=0.05), Loader()
    await cache.get("k", load)
    load.value = "v2"
    await asyncio.sleep(0.08)
    assert await cache.get("k", load) == "v2"
    assert load.calls == 2


async def test_stale_value_while_the_catalog_is_down_then_the_error_once_too_old():
    cache, load = RefreshingCache(ttl_s=0.05, max_stale_s=0.3), Loader()
    await cache.get("k", load)
    load.error = Unavailable("catalog restarting")
    await asyncio.sleep(0.08)
    assert await cache.get("k", load) == "v1"
    await asyncio.sleep(0.35)
    with pytest.raises(Unavailable):
        await cache.get("k", load)


async def test_a_slow_refresh_serves_the_stale_value_and_lands_later():
    cache, load = RefreshingCache(ttl_s=0.05, refresh_timeout_s=0.05), Loader()
    await cache.get("k", load)
    load.value, load.delay_s = "v2", 0.2
    await asyncio.sleep(0.08)
    assert await cache.get("k", load) == "v1"
    await asyncio.sleep(0.25)
    assert await cache.get("k", load) == "v2"


async def test_misses_are_not_cached_and_concurrent_misses_share_one_fetch():
    cache, load = RefreshingCache(ttl_s=60), Loader()
    load.error = NotFound("no such model")
    for _ in range(2):
        with pytest.raises(NotFound):
            await cache.get("k", load)
    assert load.calls == 2
    load.error, load.delay_s = None, 0.05
    assert await asyncio.gather(*(cache.get("j", load) for _ in range(10))) == ["v1"] * 10
    assert load.calls == 3


async def test_the_least_recently_used_entry_goes_first():
    cache = RefreshingCache(ttl_s=60, max_entries=2)
    for key in ("a", "b", "c"):
        await cache.get(key, Loader(key))
    assert len(cache) == 2
    load = Loader("a2")
    assert await cache.get("a", load) == "a2" and load.calls == 1
