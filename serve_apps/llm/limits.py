"""Per-key limits of the OpenAI routes: requests per minute, tokens per minute, a token budget.

What LiteLLM's virtual keys give (``rpm_limit``, ``tpm_limit``, ``max_budget``), counted
with tokens instead of dollars. The limits are fields of the catalog's API key
(:class:`catalog.schemas.ApiKey`) and reach the replica with the cached key
(:mod:`serve_apps.auth`), so checking them never calls the catalog.

Counting:
    * ``rpm_limit``: requests admitted in the last 60 s (a sliding window of admission
      times). A request refused with 429 is not admitted and not counted.
    * ``tpm_limit``: prompt + completion tokens of the requests that finished in the last
      60 s. A request is admitted while the window holds fewer tokens than the limit, so
      the request that crosses it finishes; the next one waits.
    * ``token_budget``: the key's lifetime tokens. The catalog's total for the key
      (``ApiKey.tokens_used``, from the usage rollups when the key was last fetched) plus
      the tokens this process has counted that the catalog's total did not yet hold
      (a refreshed total takes back what it grew by).

Where the counts live: in one shared counter for the whole cluster, the named actor
:class:`SharedLimits` (``garden_key_limits``), which every replica of every LLM app
calls for a key that has limits (a key without any never leaves the replica), so a key
gets its limits however many replicas there are and however they change (autoscaling,
an upgrade's surge). While that actor cannot answer (restarting, unreachable for
:data:`SHARED_TIMEOUT_S`), a replica counts in its own :class:`KeyLimiter` instead:
per replica, as generous as n times the limits with n replicas, never refusing what
the shared count would admit for lack of an answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from catalog import schemas as s
from catalog.actor import NAMESPACE as CATALOG_NAMESPACE

log = logging.getLogger(__name__)

WINDOW_S = 60.0


class LimitExceeded(Exception):
    """A key is over one of its limits: answer 429 with ``Retry-After``.

    Args:
        message: the OpenAI error message.
        retry_after_s: whole seconds until a retry can succeed (the ``Retry-After`` value).
        limit: ``rpm_limit``, ``tpm_limit`` or ``token_budget``.
    """

    def __init__(self, message: str, retry_after_s: int, limit: str):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.limit = limit


@dataclass
class _KeyWindow:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_in_window: int = 0
    #: tokens counted here since the key record (and its ``tokens_used``) was fetched
    since_fetch: int = 0
    fetched: s.ApiKey | None = None


class KeyLimiter:
    """Sliding-window request and token counts per API key, in one process.

    Args:
        clock: seconds, monotonic (``time.monotonic``).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._keys: dict[str, _KeyWindow] = {}

    def _window(self, key: s.ApiKey, now: float) -> _KeyWindow:
        w = self._keys.setdefault(key.id, _KeyWindow())
        if w.fetched is None:
            w.fetched = key
        elif w.fetched is not key and key.tokens_used > w.fetched.tokens_used:
            # a fresher catalog total includes (some of) what was counted here; an older
            # one (another replica's cache, in the shared counter) changes nothing
            grown = key.tokens_used - w.fetched.tokens_used
            w.since_fetch = max(w.since_fetch - grown, 0)
            w.fetched = key
        while w.requests and w.requests[0] <= now - WINDOW_S:
            w.requests.popleft()
        while w.tokens and w.tokens[0][0] <= now - WINDOW_S:
            w.tokens_in_window -= w.tokens.popleft()[1]
        return w

    def admit(self, key: s.ApiKey | None) -> None:
        """Admit one request of ``key`` or raise; keys without limits pass at once.

        Raises:
            LimitExceeded: the key is over its token budget, tokens per minute or
                requests per minute.
        """
        if not has_limits(key):
            return
        now = self._clock()
        w = self._window(key, now)
        used = max(key.tokens_used, w.fetched.tokens_used if w.fetched else 0)
        if key.token_budget is not None and used + w.since_fetch >= key.token_budget:
            raise LimitExceeded(
                f"API key {key.id} has used its token budget of {key.token_budget} tokens",
                retry_after_s=60, limit="token_budget")
        if key.tpm_limit is not None and w.tokens_in_window >= key.tpm_limit:
            wait = self._wait_tokens(w, key.tpm_limit, now)
            raise LimitExceeded(
                f"API key {key.id} is over its limit of {key.tpm_limit} tokens per minute",
                retry_after_s=wait, limit="tpm_limit")
        if key.rpm_limit is not None and len(w.requests) >= key.rpm_limit:
            wait = math.ceil(w.requests[len(w.requests) - key.rpm_limit] + WINDOW_S - now)
            raise LimitExceeded(
                f"API key {key.id} is over its limit of {key.rpm_limit} requests per minute",
                retry_after_s=max(wait, 1), limit="rpm_limit")
        w.requests.append(now)

    def _wait_tokens(self, w: _KeyWindow, limit: int, now: float) -> int:
        """Seconds until enough token events leave the window to go under ``limit``."""
        left = w.tokens_in_window
        for at, n in w.tokens:
            left -= n
            if left < limit:
                return max(math.ceil(at + WINDOW_S - now), 1)
        return 1

    def count_tokens(self, key: s.ApiKey | None, tokens: int) -> None:
        """Add a finished request's prompt + completion tokens to ``key``'s counts."""
        if key is None or tokens <= 0 or (key.tpm_limit is None and key.token_budget is None):
            return
        now = self._clock()
        w = self._window(key, now)
        w.tokens.append((now, tokens))
        w.tokens_in_window += tokens
        w.since_fetch += tokens


def has_limits(key: s.ApiKey | None) -> TypeGuard[s.ApiKey]:
    """Whether ``key`` has any limit to count (None: no key, nothing to count)."""
    return key is not None and (key.rpm_limit is not None or key.tpm_limit is not None
                                or key.token_budget is not None)


#: The shared counter's actor name (namespace :data:`LIMITS_NAMESPACE`).
LIMITS_ACTOR = "garden_key_limits"
LIMITS_NAMESPACE = CATALOG_NAMESPACE  # beside the catalog actor
#: Longest a request waits for the shared counter before its replica counts alone.
SHARED_TIMEOUT_S = 5.0
#: Longest a starting replica waits for the shared counter to exist and answer. Its
#: first start is a new worker process, seconds on a loaded host: created by the first
#: limited request instead, under load on 2 cores, it made 3 requests wait out 2 s and
#: count alone, and 6 were admitted at rpm 5 (tests/serve_apps/llm/test_operations.py).
START_TIMEOUT_S = 60.0
#: What a call to the shared counter raises when it cannot answer (dead, restarting,
#: too slow): the caller then counts alone.
UNANSWERED = (ActorUnavailableError, RayActorError, GetTimeoutError, TimeoutError)


@ray.remote(num_cpus=0, max_restarts=-1)
class SharedLimits:
    """One :class:`KeyLimiter` for the cluster: the per-minute windows and the local part
    of the token budget of every key with limits, whichever replica admits it. Its
    state is in memory: a restarted actor starts with empty windows (a minute's counts
    forgotten, the catalog's budget totals kept)."""

    def __init__(self) -> None:
        self.limiter = KeyLimiter()

    def admit(self, key: s.ApiKey) -> tuple[str, int, str] | None:
        """None when admitted; else the refusal ``(message, retry_after_s, limit)``."""
        try:
            self.limiter.admit(key)
        except LimitExceeded as exc:
            return exc.message, exc.retry_after_s, exc.limit
        return None

    def count_tokens(self, key: s.ApiKey, tokens: int) -> None:
        """Add a finished request's tokens to ``key``'s counts."""
        self.limiter.count_tokens(key, tokens)


def shared_limits() -> Any:
    """The cluster's :class:`SharedLimits` actor handle, created on first use (race-safe;
    detached, restarted when it dies; needs a connected Ray)."""
    return SharedLimits.options(  # type: ignore[attr-defined]
        name=LIMITS_ACTOR, namespace=LIMITS_NAMESPACE, lifetime="detached",
        get_if_exists=True).remote()


class ClusterLimiter:
    """What an LLM replica asks about limits: the shared counter (:class:`SharedLimits`)
    for keys with limits, its own :class:`KeyLimiter` while that cannot answer.

    Args:
        actor: a :class:`SharedLimits` handle (default: :func:`shared_limits`, looked up
            on first use); None with ``local_only`` keeps every count in this process.
        local_only: count in this process only (no Ray needed: unit tests, benchmarks).
    """

    def __init__(self, actor: Any = None, *, local_only: bool = False):
        self._actor = actor
        self.local = KeyLimiter()
        self._local_only = local_only

    def _shared(self) -> Any:
        if self._actor is None:
            self._actor = shared_limits()
        return self._actor

    async def start(self) -> None:
        """Create (or find) the shared counter and wait until it answers, so that a
        replica's first limited requests do not wait on the actor's start and fall back
        to counting alone. Logs a warning, and counts alone for now, after
        :data:`START_TIMEOUT_S`."""
        if self._local_only:
            return
        try:
            await asyncio.wait_for(self._shared().__ray_ready__.remote(), START_TIMEOUT_S)
        except UNANSWERED as exc:
            log.warning("shared limits not ready (%s): counting in this replica until "
                        "they answer", exc)

    async def admit(self, key: s.ApiKey | None) -> None:
        """Admit one request of ``key`` or raise; keys without limits pass at once.

        Raises:
            LimitExceeded: the key is over its token budget, tokens per minute or
                requests per minute (counted for the whole cluster).
        """
        if not has_limits(key):
            return
        if self._local_only:
            self.local.admit(key)
            return
        try:
            refused = await asyncio.wait_for(
                self._shared().admit.remote(key), SHARED_TIMEOUT_S)
        except UNANSWERED as exc:
            log.warning("shared limits unavailable (%s): counting in this replica", exc)
            self.local.admit(key)
            return
        if refused is not None:
            message, retry_after_s, limit = refused
            raise LimitExceeded(message, retry_after_s, limit)

    def count_tokens(self, key: s.ApiKey | None, tokens: int) -> None:
        """Add a finished request's tokens to ``key``'s counts (sent, not awaited)."""
        if not has_limits(key) or tokens <= 0:
            return
        if self._local_only:
            self.local.count_tokens(key, tokens)
            return
        try:
            self._shared().count_tokens.remote(key, tokens)
        except (ActorUnavailableError, RayActorError) as exc:
            log.warning("shared limits unavailable (%s): counting in this replica", exc)
            self.local.count_tokens(key, tokens)
