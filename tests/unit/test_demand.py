"""Steady-state demand: checked against the real retention, run slot after slot as the service runs it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from snapshot_scheduler.demand import steady_state_demand
from snapshot_scheduler.policy import parse_policy
from snapshot_scheduler.retention import plan_retention
from snapshot_scheduler.schedule import next_slot


def simulated_peak(text: str, *, start: datetime, slots: int, tz: str = "UTC") -> int:
    """The most snapshots that exist at once when each run prunes by the policy and then takes its slot."""
    policy = parse_policy(text, tz=tz)
    existing: list[datetime] = []
    peak = 0
    at = start
    for _ in range(slots):
        at = next_slot(policy, at)
        existing = [*plan_retention(policy, existing).keep, at]
        peak = max(peak, len(existing))
    return peak


@pytest.mark.parametrize(
    ("text", "demand"),
    [
        ("daily", 8),  # seven kept, then the next day's before the run after it prunes
        ("hourly", 31),  # 24 hours, and the last of each of 6 earlier days
        ("gfs", 28),
        ("every=4h keep-last=6 keep-daily=14", 20),
        ("every=1d keep-within=7d", 8),
        ("every=1h keep-within=2d keep-daily=10", 57),
        ("every=1w keep-weekly=4 keep-monthly=3", 7),
        ("every=1d keep-daily=40 keep-monthly=12", 51),
    ],
)
def test_demand_is_the_figure_a_person_would_count(text: str, demand: int) -> None:
    assert steady_state_demand(parse_policy(text)) == demand


@pytest.mark.parametrize(
    ("text", "slots", "tz"),
    [
        ("daily", 40, "UTC"),
        ("hourly", 24 * 12, "Europe/Berlin"),
        ("every=4h keep-last=6 keep-daily=14", 6 * 30, "America/New_York"),
        ("every=1d keep-within=7d", 40, "UTC"),
        ("every=1h keep-within=2d keep-daily=10", 24 * 16, "Europe/Berlin"),
        ("every=1h keep-within-daily=3d keep-hourly=5", 24 * 8, "UTC"),
        ("every=1w keep-weekly=4 keep-monthly=3", 60, "UTC"),
        ("every=1d keep-daily=40 keep-monthly=12", 500, "UTC"),
        ("every=1d keep-last=3 keep-weekly=6 keep-within-monthly=3m", 400, "Europe/Berlin"),
        ("gfs", 366 * 9, "UTC"),
    ],
)
def test_no_phase_of_the_calendar_keeps_more_than_the_demand(text: str, slots: int, tz: str) -> None:
    # Given a policy run slot after slot across month, year and daylight-saving boundaries
    peak = simulated_peak(text, start=datetime(2025, 10, 1, tzinfo=UTC), slots=slots, tz=tz)
    # Then the demand is never below what exists at once, and is what the calendar reaches
    assert peak <= steady_state_demand(parse_policy(text, tz=tz))  # type: ignore[operator]
    assert peak == steady_state_demand(parse_policy(text, tz=tz))


@pytest.mark.parametrize("text", ["every=1d keep-monthly=all", "keep-last=all", "every=1h keep-yearly=all"])
def test_a_count_of_all_keeps_without_end(text: str) -> None:
    assert steady_state_demand(parse_policy(text)) is None
