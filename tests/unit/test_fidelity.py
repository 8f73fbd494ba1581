"""The fidelity layer's pure parts: the simulated clock and the API token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clock import SimClock
from tests.support.fidelity import TokenBucket

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_sim_clock_moves_only_when_told_and_sleep_is_instant() -> None:
    clock = SimClock(START)

    clock.sleep(1.5)
    clock.advance(timedelta(minutes=1))

    assert clock.now() == START + timedelta(seconds=61.5)
    assert clock.monotonic() == 61.5
    assert clock.slept == 1.5


def test_sim_clock_advance_to_never_goes_back() -> None:
    clock = SimClock(START)

    clock.advance_to(START + timedelta(hours=1))
    clock.advance_to(START)

    assert clock.now() == START + timedelta(hours=1)


def test_sim_clock_refuses_naive_start_and_backward_moves() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="forward"):
        SimClock(START).advance(timedelta(seconds=-1))


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(burst=3, rate=2.0)

    burst = [bucket.take(now=0.0) for _ in range(4)]
    after_half_a_second = [bucket.take(now=0.5), bucket.take(now=0.5)]

    assert burst == [True, True, True, False]
    assert after_half_a_second == [True, False]


def test_token_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(burst=2, rate=10.0)
    bucket.take(now=0.0)

    taken = [bucket.take(now=100.0) for _ in range(3)]

    assert taken == [True, True, False]


def test_unlimited_bucket_never_runs_dry() -> None:
    bucket = TokenBucket.unlimited()

    assert all(bucket.take(now=0.0) for _ in range(10_000))
