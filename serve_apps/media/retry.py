"""Provider retries on the server's one policy (:mod:`catalog.retry`), and per-provider
cooldown.

Backoff is :class:`catalog.retry.Backoff` (full jitter, raised to the provider's
Retry-After; a Retry-After above ``max_retry_after_s`` gives up so the router falls back).
A create is retried only when it certainly did not run: HTTP 429 (rejected before any
work) or a connection that never opened; a 5xx or timeout on a create may have started a
job, so the router falls back to the next provider instead (unless the provider
de-duplicates creates).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from catalog.retry import Backoff, async_retrying
from serve_apps.media.config import CooldownPolicy, RetryPolicy
from serve_apps.media.providers.base import ProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_of(policy: RetryPolicy, *, give_up_above_retry_after: bool = True) -> Backoff:
    """The :class:`catalog.retry.Backoff` of a media :class:`RetryPolicy`; without
    ``give_up_above_retry_after`` any Retry-After is waited out."""
    return Backoff(
        initial_s=policy.base_delay_s, max_delay_s=policy.max_delay_s,
        max_attempts=policy.max_attempts,
        max_retry_after_s=policy.max_retry_after_s if give_up_above_retry_after else None,
    )


def backoff_delay(attempt: int, policy: RetryPolicy, retry_after_s: float | None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): :meth:`Backoff.delay`."""
    return backoff_of(policy).delay(attempt, retry_after_s, rng)


def may_retry(error: ProviderError, *, create: bool, idempotent_create: bool) -> bool:
    """Whether ``error`` allows sending the same request again (module docstring)."""
    if not error.retryable:
        return False
    if not create or idempotent_create:
        return True
    return error.status == 429 or not error.sent


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, ProviderError):
        log.info("%s failed (%s); retry %d in %.2fs", exc.provider, exc.status,
                 state.attempt_number, state.upcoming_sleep)


async def with_retries(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, *, create: bool,
    idempotent_create: bool = False, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run ``call`` until it succeeds or may not be retried; returns ``(result, attempts)``.

    Raises the last :class:`ProviderError` when attempts run out, when the error is not
    retryable (:func:`may_retry`), or when Retry-After exceeds ``policy.max_retry_after_s``;
    any other exception at once.
    """
    retryer = async_retrying(
        backoff_of(policy), sleep=sleep, before_sleep=_log_retry,
        retry_if=lambda e: isinstance(e, ProviderError) and may_retry(
            e, create=create, idempotent_create=idempotent_create),
    )
    async for attempt in retryer:
        with attempt:
            return await call(), attempt.retry_state.attempt_number
    raise AssertionError("unreachable")  # tenacity re-raises the last error when it stops


@dataclass
class Cooldown:
    """Consecutive failures per provider; ``policy.failures`` in a row cool it down for
    ``policy.seconds``. Success resets. ``clock`` is injectable for tests."""

    policy: CooldownPolicy
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _until: dict[str, float] = field(default_factory=dict)

    def cooling(self, provider: str) -> bool:
        """True while ``provider`` is cooled down."""
        return self._until.get(provider, 0.0) > self.clock()

    def remaining_s(self, provider: str) -> float:
        return max(0.0, self._until.get(provider, 0.0) - self.clock())

    def success(self, provider: str) -> None:
        self._failures[provider] = 0
        self._until.pop(provider, None)

    def failure(self, provider: str) -> bool:
        """Count one failure; returns True when it starts a cooldown."""
        count = self._failures.get(provider, 0) + 1
        self._failures[provider] = count
        if count >= self.policy.failures:
            self._failures[provider] = 0
            self._until[provider] = self.clock() + self.policy.seconds
            log.warning("provider %s cooled down for %.0fs after %d failures", provider,
                        self.policy.seconds, count)
            return True
        return False

    def snapshot(self) -> dict[str, float]:
        """Provider -> seconds of cooldown left (only those cooling)."""
        return {p: self.remaining_s(p) for p in self._until if self.cooling(p)}
