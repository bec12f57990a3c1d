"""The one Retry-After parser and the server side's one retry policy (on ``tenacity``).

Pure: the standard library and ``tenacity`` only, so ``garden.client`` may import it.

- :func:`parse_retry_after` reads a ``Retry-After`` value (RFC 9110 section 10.2.3):
  delay-seconds (fractional accepted) or an HTTP-date.
- :class:`Backoff` is capped exponential backoff with "full jitter" (Marc Brooker,
  "Exponential Backoff And Jitter", AWS Architecture Blog, 2015): before retry ``n``
  (0-based) wait ``uniform(0, min(max_delay_s, initial_s * 2**n))``, raised to the
  server's Retry-After when the error carries one (``retry_after_s``).
- :func:`retrying` / :func:`async_retrying` build ``tenacity.Retrying`` /
  ``tenacity.AsyncRetrying`` from a :class:`Backoff` and a predicate on the exception;
  they re-raise the last exception when they give up.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import tenacity

#: delay-seconds, with an optional fraction and sign (a negative delay means "now").
_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
#: ``2**n`` stops growing past this exponent (the cap is reached long before).
_MAX_EXPONENT = 64


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value; None when absent or unreadable.

    Accepts delay-seconds (``"120"``; fractions such as ``"1.5"`` too) and HTTP-dates
    in the three forms of RFC 9110 section 5.6.7 (IMF-fixdate, RFC 850, asctime).
    A negative delay or a date in the past gives 0.0. ``now`` (default: the current
    time, UTC; a naive value is taken as UTC) is the instant a date is measured from.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        return max(0.0, float(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """A retry policy: capped exponential backoff with full jitter, and when to stop.

    Attributes:
        initial_s: ceiling of the first wait, seconds; the ceiling doubles each retry.
        max_delay_s: cap of the backoff ceiling, seconds (a Retry-After may exceed it).
        max_attempts: calls in all, the first included; None: limited by the deadline.
        deadline_s: give up rather than start a wait that would end this many seconds
            or more after the first call began (0: one call); None: limited by
            ``max_attempts``.
        max_retry_after_s: give up when the server asks to wait longer than this
            (seconds); None: always honour it.
        jitter: full jitter (True) or the ceiling itself (False, a fixed schedule).

    Raises:
        ValueError: a negative delay or deadline, fewer than one attempt, or neither
            ``max_attempts`` nor ``deadline_s`` (a retry without end).
    """

    initial_s: float = 0.5
    max_delay_s: float = 8.0
    max_attempts: int | None = 3
    deadline_s: float | None = None
    max_retry_after_s: float | None = None
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_delay_s < 0:
            raise ValueError("initial_s and max_delay_s must be >= 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.deadline_s is not None and self.deadline_s < 0:
            raise ValueError("deadline_s must be >= 0")
        if self.max_attempts is None and self.deadline_s is None:
            raise ValueError("set max_attempts or deadline_s (or both)")
        if self.max_retry_after_s is not None and self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must be >= 0")

    def delay(self, retry: int, retry_after_s: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry`` (0-based), per the module docstring."""
        ceiling = min(self.max_delay_s, self.initial_s * 2 ** min(retry, _MAX_EXPONENT))
        wait = (rng or random).uniform(0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait


def retry_after_attr(exc: BaseException) -> float | None:
    """The ``retry_after_s`` attribute of an exception (seconds), if it has a number."""
    value = getattr(exc, "retry_after_s", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


#: Reads the wait (seconds) that a failure asks for; None when it asks none.
RetryAfterOf = Callable[[BaseException], float | None]


def _wait(policy: Backoff, retry_after_of: RetryAfterOf) -> Callable[
        [tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_of(exc) if exc is not None else None
        return policy.delay(state.attempt_number - 1, asked)

    return wait


def _stop(policy: Backoff, retry_after_of: RetryAfterOf) -> tenacity.stop.stop_base:
    stops: list[tenacity.stop.stop_base] = []
    if policy.max_attempts is not None:
        stops.append(tenacity.stop_after_attempt(policy.max_attempts))
    if policy.deadline_s is not None:
        # Not stop_after_delay: that one still sleeps past the deadline before giving up.
        stops.append(tenacity.stop_before_delay(policy.deadline_s))
    if policy.max_retry_after_s is not None:
        stops.append(_RetryAfterAbove(policy.max_retry_after_s, retry_after_of))
    return tenacity.stop_any(*stops)


class _RetryAfterAbove(tenacity.stop.stop_base):
    """Stop when the failure asks for a wait longer than ``limit`` seconds."""

    def __init__(self, limit: float, retry_after_of: RetryAfterOf):
        self.limit = limit
        self.retry_after_of = retry_after_of

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        asked = self.retry_after_of(exc) if exc is not None else None
        return asked is not None and asked > self.limit


def retrying(
    policy: Backoff, *, retry_if: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    retry_after_of: RetryAfterOf = retry_after_attr,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` that follows ``policy``.

    Use as ``retrying(...)(fn, *args)`` or ``for attempt in retrying(...): with attempt:``.

    Args:
        policy: waits and limits.
        retry_if: True for an exception worth another call (others propagate at once).
        sleep: the sleep function, seconds (tests pass a recorder).
        retry_after_of: the server's requested wait carried by an exception, seconds
            (default: its ``retry_after_s`` attribute); the wait is never shorter.
        before_sleep: called before each wait (logging).

    The last exception is re-raised when the policy gives up (``reraise=True``).
    """
    return tenacity.Retrying(
        stop=_stop(policy, retry_after_of), wait=_wait(policy, retry_after_of),
        retry=tenacity.retry_if_exception(retry_if), sleep=sleep, reraise=True,
        before_sleep=before_sleep,
    )


def async_retrying(
    policy: Backoff, *, retry_if: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry_after_of: RetryAfterOf = retry_after_attr,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.AsyncRetrying:
    """The ``tenacity.AsyncRetrying`` twin of :func:`retrying` (``sleep`` is awaited).

    Use as ``await async_retrying(...)(coro_fn, *args)`` or
    ``async for attempt in async_retrying(...): with attempt:``.
    """
    return tenacity.AsyncRetrying(
        stop=_stop(policy, retry_after_of), wait=_wait(policy, retry_after_of),
        retry=tenacity.retry_if_exception(retry_if), sleep=sleep, reraise=True,
        before_sleep=before_sleep,
    )


__all__ = ["Backoff", "async_retrying", "parse_retry_after", "retry_after_attr", "retrying"]
