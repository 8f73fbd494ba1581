"""Missed slots and schedule warnings, pure: each missed slot is counted by exactly one run of a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler.freshness import schedule_warning, slot_left_untaken, slots_no_run_took
from snapshot_scheduler.model import Cluster
from snapshot_scheduler.planning import ClusterPlan
from snapshot_scheduler.policy import parse_policy
from snapshot_scheduler.schedule import current_slot, next_slot

START = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CLUSTER = Cluster(id="db", arn="", engine="aurora-postgresql", status="available", tags={}, created=START - 9 * HOUR)


def plan_at(spec: str, at: datetime) -> ClusterPlan:
    policy = parse_policy(spec)
    return ClusterPlan("db", CLUSTER, policy, slot=current_slot(policy, at), next_slot=next_slot(policy, at))


@pytest.mark.parametrize(("spec", "every_minutes"), [("hourly", 120), ("every=4h keep-last=3", 300), ("hourly", 90)])
def test_over_a_day_each_slot_no_run_fell_in_is_counted_once(spec: str, every_minutes: int) -> None:
    interval = timedelta(minutes=every_minutes)
    runs = [START + n * interval for n in range(1, int(timedelta(days=1) / interval) + 1)]
    counted = [m.slot for at in runs for m in slots_no_run_took(plan_at(spec, at), at, interval)]
    policy = parse_policy(spec)
    with_a_run = {current_slot(policy, at) for at in [START, *runs]}
    without = {s for s in (current_slot(policy, START + n * HOUR) for n in range(25)) if s not in with_a_run}
    ended = current_slot(policy, runs[-1])  # later slots have not ended by the last run
    assert sorted(counted) == sorted(s for s in without if s < ended)
    assert len(counted) == len(set(counted))


def test_the_current_slot_is_counted_only_by_its_last_run() -> None:
    # hourly runs, a daily slot at 03:00: only the run at 02:00 the next day is the slot's last
    last = [
        at
        for at in (START + 3 * HOUR + n * HOUR for n in range(24))
        if slot_left_untaken(plan_at("daily", at), at, HOUR, "busy")
    ]
    assert last == [START + 26 * HOUR]


def test_the_schedule_warning_names_both_intervals_and_only_when_the_policy_is_shorter() -> None:
    warning = schedule_warning(parse_policy("hourly"), timedelta(hours=2))
    assert warning is not None and "every 1 hour" in warning and "only every 2 hours" in warning
    assert schedule_warning(parse_policy("hourly"), HOUR) is None
    assert schedule_warning(parse_policy("hourly"), None) is None
    assert "every 90 minutes" in (schedule_warning(parse_policy("hourly"), timedelta(minutes=90)) or "")
