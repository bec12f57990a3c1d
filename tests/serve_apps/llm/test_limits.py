"""KeyLimiter: requests and tokens per minute, and the token budget, on a driven clock; and
the shared counter every LLM replica asks (SharedLimits, on the session's Ray cluster)."""

from __future__ import annotations

import pytest

from catalog import schemas as s
from serve_apps.llm.limits import KeyLimiter, LimitExceeded
from tests.conftest import wait_for


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def key(**fields) -> s.ApiKey:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    limits = {"id": "key_1", "rpm_limit": None, "tpm_limit": None, "token_budget": None,
              "tokens_used": 0, "scope": "full", "job_id": None, "expires_at": None} | fields
    return s.ApiKey(user_id="u", name="k", prefix="gk_", role="user",
                    revoked=False, created_at=now, updated_at=now, **limits)


def test_keys_without_limits_always_pass():
    limiter = KeyLimiter()
    for _ in range(1000):
        limiter.admit(key())
    limiter.admit(None)


def test_rpm_refuses_the_request_over_the_limit_and_names_when_to_retry():
    clock = Clock()
    limiter, k = KeyLimiter(clock), key(rpm_limit=3)
    for _ in range(3):
        limiter.admit(k)
        clock.now += 10
    with pytest.raises(LimitExceeded) as err:
        limiter.admit(k)
    assert err.value.limit == "rpm_limit" and err.value.retry_after_s == 30
    clock.now += 30  # the first request leaves the window
    limiter.admit(k)


def test_tpm_counts_finished_tokens_and_lets_the_crossing_request_finish():
    clock = Clock()
    limiter, k = KeyLimiter(clock), key(tpm_limit=100)
    limiter.admit(k)
    limiter.count_tokens(k, 60)
    limiter.admit(k)  # 60 < 100: admitted
    clock.now += 20
    limiter.count_tokens(k, 60)  # 120 now
    with pytest.raises(LimitExceeded) as err:
        limiter.admit(k)
    assert err.value.limit == "tpm_limit" and err.value.retry_after_s == 40
    clock.now += 40
    limiter.admit(k)


def test_budget_adds_local_tokens_to_the_catalog_total_and_a_refresh_takes_them_back():
    limiter = KeyLimiter(Clock())
    k = key(token_budget=100, tokens_used=50)
    limiter.admit(k)
    limiter.count_tokens(k, 30)
    limiter.admit(k)  # 80
    limiter.count_tokens(k, 30)  # 110
    with pytest.raises(LimitExceeded) as err:
        limiter.admit(k)
    assert err.value.limit == "token_budget"
    # the catalog has since recorded the first request only: 80 used, 30 still local
    fresher = key(token_budget=100, tokens_used=80)
    with pytest.raises(LimitExceeded):
        limiter.admit(fresher)
    raised = key(token_budget=200, tokens_used=80)
    limiter.admit(raised)


def test_an_older_copy_of_the_key_does_not_give_back_counted_tokens():
    """Replicas cache the key at different times: the shared counter sees a fresher
    ``tokens_used`` from one and an older one from another; only a fresher total takes
    back what was counted, once."""
    limiter = KeyLimiter(Clock())
    fresh, stale = key(token_budget=100, tokens_used=60), key(token_budget=100, tokens_used=20)
    limiter.admit(stale)
    limiter.count_tokens(stale, 30)  # 20 + 30
    limiter.admit(fresh)  # the catalog has since counted those 30 (and 10 more): 60
    limiter.count_tokens(fresh, 30)  # 90
    limiter.admit(stale)  # an older copy changes nothing: still 90 < 100
    limiter.count_tokens(stale, 20)  # 110
    with pytest.raises(LimitExceeded):
        limiter.admit(stale)
    with pytest.raises(LimitExceeded):
        limiter.admit(fresh)


@pytest.mark.ray
async def test_replicas_share_one_count_and_count_alone_while_it_is_gone(ray_cluster):
    """Two replicas' limiters on one :class:`SharedLimits` actor: a key of 3 requests a
    minute gets 3 in all, not 3 each; with the actor gone, each replica counts alone
    instead of failing the request."""
    import ray

    from serve_apps.llm.limits import ClusterLimiter, SharedLimits

    actor = SharedLimits.remote()
    first, second = ClusterLimiter(actor), ClusterLimiter(actor)
    k = key(id="key_shared", rpm_limit=3)
    await first.admit(k)
    await second.admit(k)
    await first.admit(k)
    with pytest.raises(LimitExceeded) as err:
        await second.admit(k)
    assert err.value.limit == "rpm_limit" and err.value.retry_after_s >= 1
    await first.admit(key(id="key_free"))  # no limits: never asks the actor

    ray.kill(actor, no_restart=True)

    def dead() -> bool:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return True
        return False

    wait_for(dead, 60, "the shared counter gone", interval_s=0.2)
    for _ in range(3):
        await second.admit(k)  # its own window: 3 more
    with pytest.raises(LimitExceeded):
        await second.admit(k)
