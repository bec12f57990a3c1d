"""``client.usage``: who used what. Requests, tokens, cost, energy (kWh) and emissions
(kg CO2eq) grouped by user, API key, model, adapter, day or month; the usage records; and
a CSV export. A user sees their own usage; an admin everyone's (or one user's)."""

from __future__ import annotations

import codecs
import io
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, cast

from catalog.schemas import Page, UsageGroupBy, UsageRecord, UsageSummary
from garden.client.base import Namespace


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


class Usage(Namespace):
    def summary(
        self, group_by: UsageGroupBy = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
        api_key_id: str | None = None,
    ) -> UsageSummary:
        """Totals per ``group_by`` group over ``[since, until)`` (naive times are UTC),
        with ``total`` over all groups.

        ``user_id``: admins only (a user may name only themselves; another user is
        :class:`~garden.errors.PermissionDeniedError`). ``api_key_id``: one key's usage.
        An unknown ``group_by`` or ``since`` not before ``until`` is
        :class:`~garden.errors.ValidationFailedError`.
        """
        params = {"group_by": group_by, "since": _iso(since), "until": _iso(until),
                  "user_id": user_id, "api_key_id": api_key_id}
        data = self._client.request("GET", "/v1/usage", params={
            k: v for k, v in params.items() if v is not None}).json()
        return UsageSummary.model_validate(data)

    def records(
        self, *, model: str | None = None, model_id: str | None = None,
        api_key_id: str | None = None, kind: Literal["llm", "media"] | None = None,
        since: datetime | None = None, until: datetime | None = None,
        user_id: str | None = None, page_size: int = 50, cursor: str | None = None,
    ) -> Page[UsageRecord]:
        """One page of usage records, newest first, filtered by equality (``model``: the
        base or provider model's name; ``model_id``: the catalog model, an adapter's id
        for adapter requests) and by time."""
        return self._page(UsageRecord, "/v1/usage/records", {
            "model": model, "model_id": model_id, "api_key_id": api_key_id, "kind": kind,
            "since": _iso(since), "until": _iso(until), "user_id": user_id,
            "page_size": page_size, "cursor": cursor})

    def iterate(self, **filters: Any) -> Iterator[UsageRecord]:
        """Every usage record matching :meth:`records`' filters, over all pages."""
        params = {k: _iso(v) if isinstance(v, datetime) else v for k, v in filters.items()}
        return self._iterate(UsageRecord, "/v1/usage/records", {"page_size": 500, **params})

    def export_csv(
        self, dest: str | os.PathLike[str] | IO[str] | IO[bytes], *,
        since: datetime | None = None, until: datetime | None = None,
        model: str | None = None, kind: Literal["llm", "media"] | None = None,
        user_id: str | None = None, api_key_id: str | None = None,
    ) -> int:
        """Stream every matching usage record as CSV (header row first; columns
        ``serve_apps.gateway.routes.usage.CSV_COLUMNS``) into ``dest``: a path (the file
        is written; a failed download leaves none behind) or an open file, text or binary.
        Returns the bytes received.
        """
        params = {"since": _iso(since), "until": _iso(until), "model": model, "kind": kind,
                  "user_id": user_id, "api_key_id": api_key_id}
        params = {k: v for k, v in params.items() if v is not None}
        if isinstance(dest, str | os.PathLike):
            path = Path(dest)
            partial = path.with_name(path.name + ".part")
            try:
                with partial.open("wb") as fh:
                    written = self._download(params, fh)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            return written
        return self._download(params, dest)

    def _download(self, params: dict[str, Any], fh: IO[str] | IO[bytes]) -> int:
        # a text file gets str, decoded incrementally: a chunk may end mid-character
        text = cast(IO[str], fh) if isinstance(fh, io.TextIOBase) else None
        decoder = codecs.getincrementaldecoder("utf-8")()
        received = 0
        with self._client.stream("GET", "/v1/usage/export.csv", params=params) as response:
            for chunk in response.iter_bytes():
                received += len(chunk)
                if text is not None:
                    text.write(decoder.decode(chunk))
                else:
                    cast(IO[bytes], fh).write(chunk)
        if text is not None:
            text.write(decoder.decode(b"", final=True))
        return received
