"""Quota planning: how many manual snapshots the policies need at steady state. Pure: no I/O, no clock.

A policy's demand is the most snapshots of one cluster that exist at once once history is long enough:
the most retention keeps, plus the slot's new snapshot, made before the next run prunes. Retention keeps
the newest snapshots back to a span (`keep-last`, `keep-within`, and counters whose buckets are no longer
than `every=`), plus, per coarser counter (daily, weekly, monthly, yearly), the last snapshot of each of
its previous buckets. Those picks coincide where a finer counter's span already covers a coarser bucket's
end (a month's last snapshot is also its last day's): the overlap that every phase of the calendar must
have is subtracted, the rest is not, so the figure is never below what the policy keeps (it is exact for
the presets and for policies whose counters do not cover each other's buckets).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from snapshot_scheduler import tags
from snapshot_scheduler.model import Snapshot
from snapshot_scheduler.planning import ClusterPlan
from snapshot_scheduler.policy import ALL, Duration, Policy

# Bucket lengths in wall-clock hours: the longest and the shortest bucket of each kind.
_LONGEST = {"hourly": 1, "daily": 24, "weekly": 7 * 24, "monthly": 31 * 24, "yearly": 366 * 24}
_SHORTEST = {"hourly": 1, "daily": 24, "weekly": 7 * 24, "monthly": 28 * 24, "yearly": 365 * 24}
_KINDS = tuple(_LONGEST)  # finest first
# Each bucket boundary of a kind is also one of these finer kinds (a month begins on a day, at an hour).
_NESTED_IN = {
    "hourly": (),
    "daily": ("hourly",),
    "weekly": ("hourly", "daily"),
    "monthly": ("hourly", "daily"),
    "yearly": ("hourly", "daily", "monthly"),
}
_MONTHS_PER_YEAR = 12

# The Service Quotas code of the manual DB cluster snapshot quota (RDS's DescribeAccountAttributes calls it
# ManualClusterSnapshots).
QUOTA_CODE = "L-9B510759"


def steady_state_demand(policy: Policy) -> int | None:
    """The most manual snapshots of one cluster this policy has at once at steady state, or None when it
    keeps some without end (a count of `all`)."""
    retention = policy.retention
    interval = policy.every.value  # hours between slots
    counts = {kind: getattr(retention, kind) for kind in _KINDS}
    if retention.last == ALL or ALL in counts.values():
        return None
    # The newest snapshots kept one after another: the most, and the fewest any phase guarantees.
    span_most = span_least = max(1, retention.last or 0)
    if retention.within is not None:
        span_most = max(span_most, math.ceil(_longest_hours(retention.within) / interval))
        span_least = max(span_least, math.ceil(_shortest_hours(retention.within) / interval))
    picks: dict[str, int] = {}  # per coarser kind: the most buckets whose last snapshot it keeps
    guaranteed: dict[str, int] = {}  # per coarser kind: the buckets it always keeps (a count does)
    for kind in _KINDS:
        count = counts[kind]
        within: Duration | None = getattr(retention, f"within_{kind}")
        if _LONGEST[kind] <= interval:  # one slot per bucket at most: these keep the newest slots
            span_most = max(span_most, count or 0, _slots_within(within, interval, longest=True))
            span_least = max(span_least, count or 0, _slots_within(within, interval, longest=False))
            continue
        most = max(count or 0, 1 + _longest_hours(within) // _SHORTEST[kind] if within else 0)
        if most:
            picks[kind] = most
            guaranteed[kind] = count or 1
    kept = span_most
    for kind, most in picks.items():
        covered = (span_least - 1) // _slots_per_bucket(kind, interval)
        for finer in _NESTED_IN[kind]:
            if finer in guaranteed:
                covered = max(covered, (guaranteed[finer] - 1) // _buckets_per_bucket(finer, kind))
        kept += max(0, most - 1 - covered)  # its current bucket's pick is the newest snapshot, kept already
    return kept + 1  # the next slot's snapshot exists before the run after it prunes


def _slots_within(within: Duration | None, interval: int, *, longest: bool) -> int:
    if within is None:
        return 0
    hours = _longest_hours(within) if longest else _shortest_hours(within)
    return math.ceil(hours / interval)


def _longest_hours(duration: Duration) -> int:
    return _hours(duration, _LONGEST)


def _shortest_hours(duration: Duration) -> int:
    return _hours(duration, _SHORTEST)


def _hours(duration: Duration, lengths: dict[str, int]) -> int:
    years, months = duration.years * lengths["yearly"], duration.months * lengths["monthly"]
    return years + months + duration.days * 24 + duration.hours


def _slots_per_bucket(kind: str, interval: int) -> int:
    return math.ceil(_LONGEST[kind] / interval)


def _buckets_per_bucket(finer: str, coarser: str) -> int:
    if (finer, coarser) == ("monthly", "yearly"):
        return _MONTHS_PER_YEAR
    return math.ceil(_LONGEST[coarser] / _SHORTEST[finer])


# ---------------------------------------------------------------------------------------------------------
# The fleet


@dataclass(frozen=True)
class ClusterDemand:
    """One cluster's share: what its policy needs (None: without end), plus what it holds beyond it."""

    cluster_id: str
    policy: int | None
    held: int
    note: str | None = None  # why the figure is what it is, when it is not the policy's

    @property
    def total(self) -> int | None:
        return None if self.policy is None else self.policy + self.held


@dataclass(frozen=True)
class FleetDemand:
    clusters: tuple[ClusterDemand, ...]
    not_ours: int  # manual snapshots without this deployment's marker: other tools', people's

    @property
    def bounded(self) -> int:
        """The manual snapshots the fleet needs at steady state, leaving out clusters that keep without end."""
        return sum(c.total for c in self.clusters if c.total is not None) + self.not_ours

    @property
    def total(self) -> int | None:
        """The manual snapshots the fleet needs at steady state; None when some cluster keeps without end."""
        return None if self.unbounded else self.bounded

    @property
    def unbounded(self) -> list[ClusterDemand]:
        return [c for c in self.clusters if c.total is None]


def cluster_demand(plan: ClusterPlan) -> ClusterDemand:
    """A managed cluster needs its policy's demand plus its held snapshots (retention never counts those);
    without a usable policy (an invalid tag, an orphan) it keeps at most what it has."""
    snapshots = [k.snapshot for k in plan.kept]
    if plan.cluster is None:
        return ClusterDemand(plan.cluster_id, len(snapshots), 0, "cluster gone or untagged: its snapshots only shrink")
    if plan.policy is None:
        return ClusterDemand(plan.cluster_id, len(snapshots), 0, "invalid policy tag: every snapshot is kept")
    if plan.cluster.inherited_hold is not None and tags.held(plan.cluster.tags):
        note = f"every snapshot inherits the cluster's {plan.cluster.inherited_hold} tag and is never pruned"
        return ClusterDemand(plan.cluster_id, None, 0, note)
    held = sum(1 for s in snapshots if s.held)
    return ClusterDemand(plan.cluster_id, steady_state_demand(plan.policy), held)


def fleet_demand(plans: Iterable[ClusterPlan], snapshots: Iterable[Snapshot], deployment: str) -> FleetDemand:
    """Every cluster's share, and the manual snapshots that are not ours (AWS Backup's, whose identifiers
    hold a colon, do not count against the quota)."""
    shares = tuple(cluster_demand(p) for p in plans)
    not_ours = sum(
        1 for s in snapshots if s.snapshot_type == "manual" and ":" not in s.id and not s.managed_by(deployment)
    )
    return FleetDemand(shares, not_ours)


def quota_summary(demand: FleetDemand, quota_max: int | None) -> str:
    """One sentence: what the fleet needs against the quota, with where the figure comes from."""
    quota = "the quota is unknown" if quota_max is None else f"the quota is {quota_max}"
    held = sum(c.held for c in demand.clusters)
    parts = [f"{held} held", f"{demand.not_ours} not ours"]
    need = f"{demand.bounded} manual snapshots at steady state ({', '.join(parts)} included)"
    if demand.unbounded:
        endless = ", ".join(c.cluster_id for c in demand.unbounded)
        need = f"at least {need}, and {endless} keep snapshots without end, so any quota fills up"
    return f"your policies need {need}; {quota} (Service Quotas {QUOTA_CODE})"
