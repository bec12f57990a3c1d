"""An httpx transport that retries idempotent requests (replicate-python's habit), on
``httpx-retries``.

Only GET, HEAD, OPTIONS, PUT and DELETE are retried, on connection errors and on
429/502/503/504. The wait honours ``Retry-After`` (read by
:func:`catalog.retry.parse_retry_after`: seconds, fractional seconds or an HTTP date) and
otherwise backs off exponentially with full jitter (:class:`catalog.retry.Backoff`,
"Exponential Backoff And Jitter", AWS Architecture Blog, 2015); every wait is capped at
``max_backoff_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
import httpx_retries

from catalog.retry import Backoff, parse_retry_after

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUS = frozenset({429, 502, 503, 504})
#: Errors after which the request certainly or harmlessly (idempotent) goes again.
RETRY_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


class GardenRetry(httpx_retries.Retry):
    """``httpx_retries.Retry`` with our Retry-After parser, our backoff and an injectable
    sleep. ``backoff`` gives the waits (``attempts_made`` 1 waits ``backoff.delay(0)``);
    ``sleep`` (seconds) replaces ``time.sleep`` on the sync path."""

    def __init__(self, *, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any):
        super().__init__(**kwargs)
        self.backoff = backoff or Backoff()
        self.sleep_fn = sleep

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds from a Retry-After value. Raises ValueError when it is unreadable (the
        library then falls back to the backoff)."""
        seconds = parse_retry_after(retry_after)
        if seconds is None:
            raise ValueError(f"invalid Retry-After: {retry_after!r}")
        return seconds

    def backoff_strategy(self) -> float:
        """Full-jitter backoff before retry ``attempts_made`` (1-based), capped."""
        return min(self.backoff.delay(max(0, self.attempts_made - 1)), self.max_backoff_wait)

    def increment(self) -> GardenRetry:
        """The next attempt's Retry: the library builds ``self.__class__`` from its own
        fields (httpx-retries >= 0.4.6); ours are copied here."""
        new = cast(GardenRetry, super().increment())
        new.backoff, new.sleep_fn = self.backoff, self.sleep_fn
        return new

    def _seconds(self, response: httpx.Response | Exception) -> float:
        headers = response.headers if isinstance(response, httpx.Response) else {}
        return self._calculate_sleep(headers)

    def sleep(self, response: httpx.Response | Exception) -> None:
        self.sleep_fn(self._seconds(response))

    async def asleep(self, response: httpx.Response | Exception) -> None:
        await asyncio.sleep(self._seconds(response))


class RetryTransport(httpx_retries.RetryTransport):
    """Wraps ``inner`` (default: httpx's own sync and async transports); retries
    idempotent requests.

    Args:
        max_attempts: tries per request, the first included.
        backoff_s: ceiling of the first backoff in seconds; doubles each retry.
        max_backoff_s: cap of one wait, Retry-After included, in seconds.
        sleep: the sleep function (tests pass a recorder).

    Raises:
        ValueError: ``max_attempts`` below 1.
    """

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, max_attempts: int = 4,
        backoff_s: float = 0.5, max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        retry = GardenRetry(
            backoff=Backoff(initial_s=backoff_s, max_delay_s=max_backoff_s,
                            max_attempts=max_attempts),
            sleep=sleep, total=max_attempts - 1, max_backoff_wait=max_backoff_s,
            allowed_methods=IDEMPOTENT_METHODS, status_forcelist=RETRY_STATUS,
            retry_on_exceptions=RETRY_ERRORS,
        )
        super().__init__(transport=inner, retry=retry)
