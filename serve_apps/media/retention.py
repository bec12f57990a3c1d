"""The retention of stored media files: purge the files of media deleted more than
``retention_days`` ago and of outputs older than ``output_ttl_days``, once or every
``purge_interval_s``. :class:`RetentionMixin` of
:class:`serve_apps.media.service.MediaService`."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from catalog.tables import utcnow
from serve_apps.media.state import MediaState
from serve_apps.media.storage import delete_files

log = logging.getLogger(__name__)


class RetentionMixin(MediaState):
    """The retention purge (:meth:`purge`) and its periodic run."""

    async def purge(self, now: datetime | None = None) -> int:
        """Remove from storage the files of media deleted more than
        ``retention_days`` ago and of outputs older than ``output_ttl_days`` (either
        None: that rule is off), then mark their rows purged. Returns how many rows
        were purged. A file already gone counts as removed, so a purge interrupted
        half-way is finished by the next."""
        now = now or utcnow()
        days = self.config.retention_days, self.config.output_ttl_days
        deleted_before, created_before = (
            None if d is None else now - timedelta(days=d) for d in days)
        count = 0
        while True:
            items = await self.cat.media_to_purge(
                deleted_before=deleted_before, created_before=created_before, limit=200)
            if not items:
                return count
            for item in items:
                await delete_files(item.paths)
                await self.cat.mark_purged(item.kind, item.id)
                count += 1

    async def _purge_periodically(self) -> None:
        """Run :meth:`purge` every ``purge_interval_s`` (the first after one interval);
        a failed run is logged and retried at the next."""
        while True:
            await asyncio.sleep(self.config.purge_interval_s)
            try:
                purged = await self.purge()
            except Exception:  # keep the loop alive; logged
                log.exception("media retention purge failed")
                continue
            if purged:
                log.info("media retention purge removed the files of %d rows", purged)
