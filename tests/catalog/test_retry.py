"""The one Retry-After parser and the server's retry policy (catalog/retry.py)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from catalog.retry import Backoff, async_retrying, parse_retry_after, retrying

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)


class Busy(Exception):
    """A failure carrying the server's Retry-After, like ProviderError."""

    def __init__(self, retry_after_s: float | None = None):
        super().__init__("busy")
        self.retry_after_s = retry_after_s


def test_parse_retry_after_seconds_fractions_and_negatives():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("  7 ") == 7.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(".25") == 0.25
    assert parse_retry_after("-3") == 0.0


def test_parse_retry_after_http_dates_against_an_injected_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 30.0
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now=NOW) == 30.0  # RFC 850
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", now=NOW) == 30.0  # asctime
    assert parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now=NOW) == 0.0  # past
    naive_now = NOW.replace(tzinfo=None)  # taken as UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now=naive_now) == 120.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "1e3", "nan", "inf", "12 34",
                                   "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_parse_retry_after_rejects_garbage(value):
    assert parse_retry_after(value) is None


def test_backoff_full_jitter_caps_and_retry_after():
    policy = Backoff(initial_s=1.0, max_delay_s=4.0)
    rng = random.Random(7)
    for retry, ceiling in enumerate([1.0, 2.0, 4.0, 4.0, 4.0]):
        waits = [policy.delay(retry, rng=rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range (full jitter)
    fixed = Backoff(initial_s=1.0, max_delay_s=4.0, jitter=False)
    assert [fixed.delay(n) for n in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert fixed.delay(10_000) == 4.0  # no overflow
    assert policy.delay(0, 9.0) == 9.0  # raised to Retry-After, never capped by it
    assert fixed.delay(2, 0.5) == 4.0  # a shorter Retry-After does not shorten the wait


@pytest.mark.parametrize("kwargs", [
    {"initial_s": -1}, {"max_attempts": 0}, {"deadline_s": -1.0},
    {"max_attempts": None, "deadline_s": None}, {"max_retry_after_s": -1},
])
def test_backoff_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_retrying_waits_at_least_retry_after_and_reraises_the_last_error():
    slept: list[float] = []
    calls = 0

    def busy():
        nonlocal calls
        calls += 1
        raise Busy(1.5)

    retryer = retrying(Backoff(initial_s=0.01, max_attempts=3), sleep=slept.append,
                       retry_if=lambda e: isinstance(e, Busy))
    with pytest.raises(Busy):
        retryer(busy)
    assert calls == 3 and slept == [1.5, 1.5]


def test_retrying_returns_the_first_success_and_skips_unlisted_errors():
    slept: list[float] = []
    results = iter([Busy(), Busy(), "done"])

    def flaky():
        item = next(results)
        if isinstance(item, Exception):
            raise item
        return item

    policy = Backoff(initial_s=0.5, max_delay_s=8.0, max_attempts=5, jitter=False)
    assert retrying(policy, sleep=slept.append, retry_if=lambda e: isinstance(e, Busy))(
        flaky) == "done"
    assert slept == [0.5, 1.0]

    calls = 0

    def broken():
        nonlocal calls
        calls += 1
        raise KeyError("not retryable")

    with pytest.raises(KeyError):
        retrying(policy, sleep=slept.append, retry_if=lambda e: isinstance(e, Busy))(broken)
    assert calls == 1 and slept == [0.5, 1.0]


def test_retrying_gives_up_when_retry_after_exceeds_the_limit():
    slept: list[float] = []
    calls = 0

    def busy():
        nonlocal calls
        calls += 1
        raise Busy(600.0)

    policy = Backoff(max_attempts=5, max_retry_after_s=30.0)
    with pytest.raises(Busy):
        retrying(policy, sleep=slept.append, retry_if=lambda e: True)(busy)
    assert calls == 1 and slept == []


def test_retry_after_of_reads_the_wait_from_any_exception():
    slept: list[float] = []
    outcomes = iter([RuntimeError("wait 4"), "ok"])

    def flaky():
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    retryer = retrying(Backoff(initial_s=0.01), sleep=slept.append, retry_if=lambda e: True,
                       retry_after_of=lambda e: float(str(e).split()[-1]))
    assert retryer(flaky) == "ok" and slept == [4.0]


def test_deadline_stops_before_a_wait_would_cross_it(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    calls = 0

    def down():
        nonlocal calls
        calls += 1
        raise ConnectionError("actor restarting")

    # The catalog facade's policy: 0.1 s doubling to a 2 s cap, for 60 s at most.
    policy = Backoff(initial_s=0.1, max_delay_s=2.0, max_attempts=None, deadline_s=60.0,
                     jitter=False)
    with pytest.raises(ConnectionError):
        retrying(policy, sleep=sleep, retry_if=lambda e: True)(down)
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1 s, then 2 s waits while they end before 60 s.
    assert slept[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert set(slept[5:]) == {2.0}
    assert sum(slept) == pytest.approx(59.1)
    assert calls == len(slept) + 1 == 34

    slept.clear()
    with pytest.raises(ConnectionError):  # deadline 0: one call, no wait
        retrying(Backoff(max_attempts=None, deadline_s=0.0), sleep=sleep,
                 retry_if=lambda e: True)(down)
    assert slept == []


@pytest.mark.asyncio(loop_scope="session")
async def test_async_retrying_awaits_its_sleep_and_reraises():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    outcomes = iter([Busy(2.5), Busy(None), "ok"])

    async def flaky():
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    policy = Backoff(initial_s=0.25, max_delay_s=8.0, max_attempts=3, jitter=False)
    retryer = async_retrying(policy, sleep=sleep, retry_if=lambda e: isinstance(e, Busy))
    assert await retryer(flaky) == "ok"
    assert slept == [2.5, 0.5]

    async def always_busy():
        raise Busy(0.0)

    slept.clear()
    with pytest.raises(Busy):
        await async_retrying(policy, sleep=sleep, retry_if=lambda e: True)(always_busy)
    assert slept == [0.25, 0.5]
