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
    Counts are per replica of the LLM app (one by default,
    ``LLMAppConfig.deployment.num_replicas``); with n replicas a key may get up to n times
    its per-minute limits. The budget is shared through the catalog, up to the cache TTL.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from catalog import schemas as s

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
        if w.fetched is not key:
            if w.fetched is not None:
                # a fresher catalog total includes (some of) what was counted here
                grown = key.tokens_used - w.fetched.tokens_used
                w.since_fetch = max(w.since_fetch - max(grown, 0), 0)
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
        if key is None or (key.rpm_limit is None and key.tpm_limit is None
                           and key.token_budget is None):
            return
        now = self._clock()
        w = self._window(key, now)
        if key.token_budget is not None and key.tokens_used + w.since_fetch >= key.token_budget:
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
