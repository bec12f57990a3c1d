"""An httpx transport that retries idempotent requests (replicate-python's habit).

Only GET, HEAD, OPTIONS, PUT and DELETE are retried, on connection errors and on
429/502/503/504. The wait honours ``Retry-After`` (seconds or an HTTP date) and
otherwise backs off exponentially with full jitter ("Exponential Backoff And
Jitter", AWS Architecture Blog, 2015), capped at ``max_backoff_s``.
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC, datetime

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUS = frozenset({429, 502, 503, 504})


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = email.utils.parsedate_to_datetime(value) if value else None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RetryTransport(httpx.BaseTransport):
    """Wraps ``inner`` (default ``httpx.HTTPTransport()``); retries idempotent requests.

    Args:
        max_attempts: tries per request, the first included.
        backoff_s: first backoff in seconds; doubles each retry.
        max_backoff_s: cap of one wait, Retry-After included, in seconds.
        sleep: the sleep function (tests pass a recorder).
    """

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, max_attempts: int = 4,
        backoff_s: float = 0.5, max_backoff_s: float = 30.0, sleep=time.sleep,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.inner = inner or httpx.HTTPTransport()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = retry_after_s(response) if response is not None else None
        if asked is not None:
            return min(asked, self.max_backoff_s)
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        retryable = request.method in IDEMPOTENT_METHODS
        for attempt in range(self.max_attempts):
            last = attempt == self.max_attempts - 1
            try:
                response = self.inner.handle_request(request)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                if not retryable or last:
                    raise
                self.sleep(self._delay(attempt, None))
                continue
            if not retryable or last or response.status_code not in RETRY_STATUS:
                return response
            response.read()
            response.close()
            self.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")  # the loop returns or raises on its last try

    def close(self) -> None:
        self.inner.close()
