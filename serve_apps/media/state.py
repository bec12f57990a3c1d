"""What every part of the media service shares: the replica's state (settings, catalog,
providers, cooldowns, output store, usage buffer, the tasks it runs) as
:class:`MediaState`, the base of the mixins that :class:`serve_apps.media.service.
MediaService` composes, with the two helpers more than one mixin uses: reading a live
row the caller may see, and taking secrets out of provider messages."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from catalog import schemas as s
from catalog.errors import NotFound
from catalog.port import AsyncCatalogPort, AsyncRepoPort
from catalog.usage_buffer import UsageBuffer
from serve_apps.auth import Principal, check_readable
from serve_apps.media.config import MediaConfig
from serve_apps.media.providers import Provider
from serve_apps.media.retry import Cooldown
from serve_apps.media.storage import OutputStore

P = s.PredictionStatus
#: The statuses of a prediction the provider is still working on.
ACTIVE = (P.starting, P.processing)

M = TypeVar("M", s.Image, s.ImageEdit, s.Video, s.SourceImage)


class MediaState:
    """The attributes :class:`~serve_apps.media.service.MediaService` sets up; the mixins
    read them."""

    config: MediaConfig
    cat: AsyncCatalogPort
    #: usage records wait here until the catalog acknowledges them
    usage: UsageBuffer
    #: adapters by provider name
    providers: dict[str, Provider]
    cooldown: Cooldown
    outputs: OutputStore
    #: polling task by prediction id
    _tracking: dict[str, asyncio.Task]
    #: one lock per prediction being finished (webhook and poller race)
    _locks: dict[str, asyncio.Lock]
    #: output copies started on submission, by prediction id
    _prefetch: dict[str, asyncio.Task]
    #: provider tokens and webhook secrets, never to appear in an error message
    _secrets: list[str]

    async def _live(self, repo: AsyncRepoPort[M], row_id: str, who: Principal, *,
                    public_ok: bool = False) -> M:
        """A row that is not deleted and that ``who`` owns (or, with ``public_ok``, that
        is public). Raises NotFound (unknown or deleted), PermissionDenied."""
        row = await repo.get(row_id)
        if row.deleted_at is not None:
            raise NotFound(f"{repo.read.__name__.lower()} {row_id!r} not found", field="id")
        check_readable(who, row.user_id, public_ok and getattr(row, "is_public", False))
        return row

    def _redact(self, text: str) -> str:
        """``text`` with every provider token and webhook secret replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

