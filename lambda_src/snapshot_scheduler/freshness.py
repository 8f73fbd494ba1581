"""Slots that ended without a snapshot, and policies the deployment's schedule cannot keep. Pure.

The function keeps no database, so a missed slot is counted by the one run that first knows it is missed,
from the listing and the deployment's schedule (runs `run_interval` apart):

- a slot no run fell in (the schedule runs less often than the policy asks): by the first run after it,
  as the slots that began after the previous run and ended by this one, with no snapshot of ours;
- a slot whose runs could not take it (busy, quota, in progress, a stale event, a failure): by its last run,
  the one after which the next run falls in the next slot, with that run's reason.

A run that never happened (an outage, a failed invocation) counts nothing: HeartbeatMissing, FunctionErrors
and the dead-letter alarms catch that, and ClustersOutOfPolicy once the recovery point is too old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from snapshot_scheduler.model import Reason
from snapshot_scheduler.planning import ClusterPlan
from snapshot_scheduler.policy import Policy
from snapshot_scheduler.schedule import next_slot

SCHEDULE_TOO_SPARSE = "schedule-too-sparse"


@dataclass(frozen=True)
class MissedSlot:
    cluster_id: str
    slot: datetime
    reason: str  # a Reason value, a failure's error code, or SCHEDULE_TOO_SPARSE


def schedule_warning(policy: Policy, run_interval: timedelta | None) -> str | None:
    """Why `policy` cannot be kept by runs `run_interval` apart; None when it can (or the schedule is unknown)."""
    if run_interval is None or policy.every.interval >= run_interval:
        return None
    return (
        f"the policy asks for a snapshot every {_duration(policy.every.interval)}, but the deployment runs "
        f"only every {_duration(run_interval)}: slots no run falls in are never taken (counted in SlotsMissed); "
        "lengthen the policy's every= to at least that, or run the deployment more often"
    )


def slots_no_run_took(plan: ClusterPlan, at: datetime, run_interval: timedelta) -> list[MissedSlot]:
    """The slots that began after the previous run (`at` - `run_interval`) and ended by `at`, untaken."""
    if plan.policy is None or plan.slot is None or not _expected(plan):
        return []
    taken = {snapshot.slot for snapshot in plan.snapshots}
    born = plan.cluster.created if plan.cluster is not None else None
    missed = []
    slot = next_slot(plan.policy, at - run_interval)
    while slot < plan.slot:
        if slot not in taken and (born is None or born <= slot):
            missed.append(MissedSlot(plan.cluster_id, slot, SCHEDULE_TOO_SPARSE))
        slot = next_slot(plan.policy, slot)
    return missed


def slot_left_untaken(
    plan: ClusterPlan, at: datetime, run_interval: timedelta, reason: str | None
) -> MissedSlot | None:
    """The current slot, when this run could not take it (`reason`) and no later run falls in it."""
    if reason is None or plan.slot is None or plan.next_slot is None or not _expected(plan):
        return None
    if at + run_interval < plan.next_slot:
        return None  # a later run of the same slot may still take it
    return MissedSlot(plan.cluster_id, plan.slot, reason)


def _expected(plan: ClusterPlan) -> bool:
    """A snapshot is expected of it: a managed cluster that is neither stopped nor gone."""
    skipped = plan.skip[0] if plan.skip is not None else None
    return plan.cluster is not None and skipped not in (Reason.STOPPED, Reason.NOT_FOUND)


def _duration(interval: timedelta) -> str:
    minutes = int(interval.total_seconds() // 60)
    for unit, size in (("day", 24 * 60), ("hour", 60)):
        if minutes % size == 0:
            return f"{minutes // size} {unit}{'s' * (minutes != size)}"
    return f"{minutes} minutes"
