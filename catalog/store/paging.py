"""Keyset pagination of the store's lists: the page size bound and the opaque cursor on
``(created_at DESC, id DESC)``."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from catalog.errors import InvalidArgument

MAX_PAGE_SIZE = 1000


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """Opaque cursor for keyset pagination on ``(created_at DESC, id DESC)``."""
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`. Raises InvalidArgument for a malformed cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, row_id = json.loads(raw)
        return datetime.fromisoformat(when), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument("malformed pagination cursor", field="cursor") from exc
