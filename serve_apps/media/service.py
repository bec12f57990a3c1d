"""The media service: choose a provider, submit with retries and fallbacks, keep the
catalog rows following the provider (polling and webhooks), copy outputs, serve the
library and purge what retention removes.

Every request becomes one Prediction row per provider attempt, written *before* the
provider is called, so a provider that is down never loses the request: the failed
attempt keeps the request's input and the provider's error, and the next attempt's
``input.previous_prediction_id`` points back to it. The Image, ImageEdit or Video row
links the attempt that was accepted (or the last failed one).

:class:`MediaService` is the Serve deployment itself (:mod:`serve_apps.media.builder`
applies ``serve.deployment`` and the routes call its methods through a handle) and a
plain class that tests and benchmarks drive directly. It composes one mixin per job, as
Ray Serve LLM's ``LLMServer`` does: :mod:`~serve_apps.media.gallery` (the library),
:mod:`~serve_apps.media.dispatch` (to providers), :mod:`~serve_apps.media.predictions`
(tracking, under dispatch) and :mod:`~serve_apps.media.retention`; their shared state is
:class:`~serve_apps.media.state.MediaState`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from catalog.port import AsyncCatalogPort
from catalog.usage_buffer import UsageBuffer
from serve_apps.media.config import MediaConfig
from serve_apps.media.dispatch import DispatchMixin
from serve_apps.media.gallery import GalleryMixin
from serve_apps.media.providers import Provider, build_providers
from serve_apps.media.retention import RetentionMixin
from serve_apps.media.retry import Cooldown
from serve_apps.media.storage import OutputStore


class MediaService(GalleryMixin, DispatchMixin, RetentionMixin):
    """Routes media requests to providers and keeps the catalog in step.

    Args:
        config: settings (providers, policy, retries, cooldown, polling); None reads
            :meth:`MediaConfig.from_env` (a Serve replica's environment).
        catalog: the catalog port; None is the cluster's catalog actor.
        providers: adapters by name (default: :func:`build_providers`).
        resume: start tracking every unfinished prediction again, as a task on the
            running event loop (a Serve replica constructs its deployment inside its
            loop); the builder sets it, so a restarted replica loses no prediction.
    """

    def __init__(self, config: MediaConfig | None = None,
                 catalog: AsyncCatalogPort | None = None,
                 providers: dict[str, Provider] | None = None, *, resume: bool = False):
        if catalog is None:
            from catalog.actor import AsyncCatalog

            catalog = AsyncCatalog()
        config = config or MediaConfig.from_env()
        self.config = config
        self.cat = catalog
        #: usage records wait here until the catalog acknowledges them; it runs on the
        #: replica's event loop (started here when built inside one, else by the first
        #: record)
        self.usage = UsageBuffer(catalog)
        with contextlib.suppress(RuntimeError):  # no running loop
            self.usage.start()
        self.providers = providers if providers is not None else build_providers(config)
        self.cooldown = Cooldown(config.cooldown)
        self.outputs = OutputStore(config.resolved_media_dir(),
                                   timeout_s=config.request_timeout_s,
                                   limit=config.max_concurrent_downloads,
                                   retry=config.retry)
        self._tracking: dict[str, asyncio.Task] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._prefetch: dict[str, asyncio.Task] = {}
        self._secrets = [p.token.get_secret_value() for p in config.providers.values()
                         if p.token] + [p.webhook_secret.get_secret_value()
                                        for p in config.providers.values() if p.webhook_secret]
        self._resumed: asyncio.Task[int] | None = None
        self._purging: asyncio.Task[None] | None = None
        if resume:
            loop = asyncio.get_running_loop()
            self._resumed = loop.create_task(self.resume())
            self._purging = loop.create_task(self._purge_periodically())

    def health(self) -> dict[str, Any]:
        """Configured providers, cooldowns and tracked jobs (no secrets)."""
        return {
            "providers": {n: {"configured": p.configured,
                              "cooldown_s": self.cooldown.remaining_s(n)}
                          for n, p in self.providers.items()},
            "tracking": len(self._tracking),
        }

    async def close(self) -> None:
        """Stop the tracking, prefetch and purge tasks, flush usage, close the clients."""
        tasks = list(self._tracking.values()) + list(self._prefetch.values())
        if self._purging is not None:
            tasks.append(self._purging)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.usage.close()
        await self.outputs.aclose()
        for provider in self.providers.values():
            await provider.aclose()
