"""Decide, purely, what a run should do: per cluster, its policy, slot, and what retention removes.

Input is what RDS told us and the scheduled time; output is a RunPlan. No boto3, no clock: the service
acts on the plan, and `plan` / `--dry-run` print it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from snapshot_scheduler import tags
from snapshot_scheduler.model import (
    AVAILABLE,
    CREATING,
    TRANSIENT_CLUSTER_STATUSES,
    Cluster,
    Reason,
    Snapshot,
)
from snapshot_scheduler.naming import snapshot_id
from snapshot_scheduler.policy import Policy, PolicyError, is_off, parse_policy
from snapshot_scheduler.retention import plan_retention
from snapshot_scheduler.schedule import current_slot, next_slot

NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PolicyContext:
    """What the deployment says about policies: the tag to read and the defaults a tag leaves unsaid."""

    tag_key: str
    deployment: str
    named: Mapping[str, str]
    default_at: str
    default_tz: str

    def parse(self, text: str) -> Policy:
        return parse_policy(text, self.named, at=self.default_at, tz=self.default_tz)


@dataclass(frozen=True)
class Kept:
    snapshot: Snapshot
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ClusterPlan:
    """One cluster's decisions. `cluster` is None for orphans (cluster gone, untagged or unmanaged)."""

    cluster_id: str
    cluster: Cluster | None
    policy: Policy | None
    kept: tuple[Kept, ...] = ()
    delete: tuple[Snapshot, ...] = ()
    slot: datetime | None = None
    create: str | None = None  # the snapshot identifier to create now, when due
    skip: tuple[Reason, str] | None = None
    defer: tuple[Reason, str] | None = None
    fail: tuple[str, str] | None = None  # (error code, message): reported failed, nothing created
    newest_available: datetime | None = None  # creation time of the newest available snapshot
    creating: bool = False  # one of its snapshots is still being made
    next_slot: datetime | None = None

    @property
    def overdue(self) -> timedelta:
        """How long the slot is past the newest recovery point: who gets scarce quota first."""
        if self.slot is None:
            return timedelta(0)
        return self.slot - self.newest_available if self.newest_available else timedelta.max


@dataclass(frozen=True)
class RunPlan:
    scheduled_time: datetime
    clusters: tuple[ClusterPlan, ...] = field(default=())

    @property
    def managed(self) -> list[ClusterPlan]:
        """Clusters that carry a usable policy (they are the ones with a recovery point to keep)."""
        return [p for p in self.clusters if p.cluster is not None and p.policy is not None]

    @property
    def kept_ids(self) -> frozenset[str]:
        """Every snapshot some rule of this plan keeps: none of them may be deleted on its behalf."""
        return frozenset(k.snapshot.id for plan in self.clusters for k in plan.kept)

    @property
    def due(self) -> list[ClusterPlan]:
        """Clusters to snapshot now, most overdue first."""
        due = [p for p in self.clusters if p.create is not None and not (p.skip or p.defer or p.fail)]
        return sorted(due, key=lambda p: (p.overdue, p.cluster_id), reverse=True)


def plan_run(
    context: PolicyContext,
    clusters: Sequence[Cluster],
    snapshots: Iterable[Snapshot],
    at: datetime,
    *,
    now: datetime | None = None,
) -> RunPlan:
    """Plan a run scheduled for `at`. `now`, when known, is the wall clock: an event delivered after its
    slot has passed must not fill that old slot with newer data.

    Each sweep is read as a set keyed by identifier: a paginated listing may return a record on two pages
    (its Marker is opaque, and others create and delete while we read), and a snapshot counted twice would
    fill two retention places, one of them kept by no rule. Where the two views differ, the later page's
    is the fresher."""
    taken = {snapshot.id: snapshot for snapshot in snapshots}
    ours: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in taken.values():
        if snapshot.managed_by(context.deployment):
            ours[snapshot.cluster_id].append(snapshot)
    plans = []
    for cluster in sorted({cluster.id: cluster for cluster in clusters}.values(), key=lambda c: c.id):
        text = cluster.tags.get(context.tag_key)
        if is_off(text):
            continue  # not managed; its snapshots, if any, are pruned as orphans below
        mine = ours.pop(cluster.id, [])
        plan = partial(_plan_cluster, context, cluster, text or "", mine, taken, at, now or at)
        plans.append(_guarded(cluster.id, cluster, mine, plan))
    for cluster_id, orphaned in sorted(ours.items()):
        plans.append(_guarded(cluster_id, None, orphaned, partial(_plan_orphan, cluster_id, orphaned)))
    return RunPlan(scheduled_time=at, clusters=tuple(plans))


def _guarded(
    cluster_id: str, cluster: Cluster | None, snapshots: list[Snapshot], plan: Callable[[], ClusterPlan]
) -> ClusterPlan:
    """One cluster's unexpected error fails that cluster (keeping all its snapshots), never the run."""
    try:
        return plan()
    except Exception as error:  # a bug or an input no rule foresaw: contain it to this cluster
        reason = "planning failed; nothing is deleted"
        kept = tuple(Kept(s, (reason,)) for s in snapshots)
        return ClusterPlan(cluster_id, cluster, None, kept=kept, fail=("PlanningError", f"{reason}: {error!r}"))


def _plan_cluster(  # noqa: PLR0917 - called from one place, through partial
    context: PolicyContext,
    cluster: Cluster,
    text: str,
    snapshots: list[Snapshot],
    taken: Mapping[str, Snapshot],
    at: datetime,
    now: datetime,
) -> ClusterPlan:
    try:
        policy = context.parse(text)
    except PolicyError as error:
        # Nothing of this cluster is deleted while its tag cannot be read.
        return ClusterPlan(
            cluster.id,
            cluster,
            None,
            kept=tuple(Kept(s, ("policy tag is invalid",)) for s in snapshots),
            skip=(Reason.POLICY_ERROR, f"policy tag {context.tag_key}={text!r}: {error}"),
        )
    kept, delete = _retain(policy, snapshots)
    slot = current_slot(policy, at)
    identifier = snapshot_id(cluster.id, slot)
    base = ClusterPlan(
        cluster.id,
        cluster,
        policy,
        kept=kept,
        delete=delete,
        slot=slot,
        newest_available=max(
            (s.created for s in snapshots if s.status == AVAILABLE and s.created is not None), default=None
        ),
        next_slot=next_slot(policy, at),
        creating=any(s.status == CREATING for s in snapshots),
    )
    existing = taken.get(identifier)
    if existing is not None:
        return _slot_taken(context, base, existing)
    in_flight = [s for s in snapshots if s.status == CREATING]
    skip = _skip_for_status(cluster)
    if skip is not None:
        return replace(base, skip=skip)
    if current_slot(policy, now) > slot:
        reason = (
            f"the event for {at.isoformat()} arrived at {now.isoformat()}, after its slot {slot.isoformat()} "
            "had passed; older slots are never back-filled (the current slot's run takes it)"
        )
        return replace(base, skip=(Reason.STALE_EVENT, reason))
    if in_flight:
        return replace(
            base,
            create=identifier,
            defer=(Reason.IN_PROGRESS, f"snapshot {in_flight[0].id} is still creating"),
        )
    return replace(base, create=identifier)


def slot_snapshot_is_ours(context: PolicyContext, cluster_id: str, existing: Snapshot) -> bool:
    return existing.managed_by(context.deployment) and existing.cluster_id == cluster_id


def identifier_taken(existing: Snapshot) -> tuple[str, str]:
    """The failure to report when someone else's snapshot holds a slot's identifier."""
    owner = existing.tags.get(tags.MARKER, "none")
    return (
        "IdentifierTaken",
        f"snapshot {existing.id} of cluster {existing.cluster_id} (deployment marker {owner!r}) holds "
        "this slot's identifier; is another deployment managing this cluster?",
    )


def _slot_taken(context: PolicyContext, plan: ClusterPlan, existing: Snapshot) -> ClusterPlan:
    """The slot's identifier exists: done if it is ours and alive; otherwise say why, loudly."""
    if not slot_snapshot_is_ours(context, plan.cluster_id, existing):
        return replace(plan, fail=identifier_taken(existing))
    if existing.status in (AVAILABLE, CREATING):
        return plan  # this slot is done (or being done)
    return replace(
        plan,
        fail=(
            "SlotSnapshotFailed",
            f"snapshot {existing.id} for this slot is {existing.status}; delete it to let the next run retry the slot",
        ),
    )


def _plan_orphan(cluster_id: str, snapshots: list[Snapshot]) -> ClusterPlan:
    """Snapshots of a cluster that is gone or no longer tagged: prune by the policy recorded on the newest."""
    newest = max(snapshots, key=lambda s: s.time or NEVER)
    recorded = newest.tags.get(tags.POLICY, "")
    try:
        policy = parse_policy(recorded)
    except PolicyError as error:
        reason = (
            f"the policy recorded on snapshot {newest.id} of this deleted or untagged cluster, {recorded!r}, "
            f"is unreadable ({error}); its {len(snapshots)} snapshots are kept: delete them by hand if unneeded"
        )
        kept = tuple(Kept(s, ("recorded policy unreadable",)) for s in snapshots)
        return ClusterPlan(cluster_id, None, None, kept=kept, skip=(Reason.POLICY_ERROR, reason))
    kept, delete = _retain(policy, snapshots)
    return ClusterPlan(cluster_id, None, policy, kept=kept, delete=delete)


def _retain(policy: Policy, snapshots: Sequence[Snapshot]) -> tuple[tuple[Kept, ...], tuple[Snapshot, ...]]:
    """Retention with the safety rules around it: only available, un-held snapshots take part, and the
    newest available snapshot is never deleted (restic keeps it anyway; this is the guard)."""
    kept: list[Kept] = []
    candidates = []
    for snapshot in snapshots:
        if snapshot.status != AVAILABLE:
            kept.append(Kept(snapshot, (f"status {snapshot.status}",)))
        elif snapshot.held:
            kept.append(Kept(snapshot, (f"held ({tags.HOLD})",)))
        elif snapshot.time is None:
            kept.append(Kept(snapshot, ("no creation time",)))
        else:
            candidates.append(snapshot)
    plan = plan_retention(policy, candidates, key=_time)
    newest = _newest_available(snapshots)
    delete = []
    for decision in plan.decisions:
        if decision.kept:
            kept.append(Kept(decision.item, decision.reasons))
        elif decision.item.id in newest:
            kept.append(Kept(decision.item, ("newest available snapshot",)))
        else:
            delete.append(decision.item)
    return tuple(kept), tuple(delete)


def _skip_for_status(cluster: Cluster) -> tuple[Reason, str] | None:
    status = cluster.status
    if status == AVAILABLE or status in TRANSIENT_CLUSTER_STATUSES:
        return None  # a transient status is tried, and retried while the run has time
    if status in ("stopped", "stopping"):
        return Reason.STOPPED, f"cluster is {status}; it is snapshotted again once it runs"
    return Reason.UNAVAILABLE, f"cluster status is {status}; no snapshot can be taken"


def _time(snapshot: Snapshot) -> datetime:
    assert snapshot.time is not None
    return snapshot.time


def _newest_available(snapshots: Iterable[Snapshot]) -> set[str]:
    """The newest available snapshot by the time retention orders by, and by creation time: whichever way
    "newest" is read, it is never deleted."""
    available = [s for s in snapshots if s.status == AVAILABLE]
    by_time = max(available, key=lambda s: s.time or NEVER, default=None)
    by_creation = max(available, key=lambda s: s.created or NEVER, default=None)
    return {s.id for s in (by_time, by_creation) if s is not None}


def snapshot_tags(context: PolicyContext, plan: ClusterPlan) -> dict[str, str]:
    """Ours first (marker, policy in force, slot, source cluster), then the cluster's own user tags."""
    assert plan.cluster is not None and plan.policy is not None and plan.slot is not None
    ours = {
        tags.MARKER: context.deployment,
        tags.POLICY: plan.policy.spec(),
        tags.SLOT: plan.slot.isoformat(),
        tags.CLUSTER: plan.cluster.id,
    }
    user = sorted(
        (key, value)
        for key, value in plan.cluster.tags.items()
        # A hold on the cluster must not make every snapshot of it unprunable.
        if not key.lower().startswith(("aws:", "rds:")) and key not in ours and not tags.is_hold(key)
    )
    return ours | dict(user[: tags.MAX_TAGS - len(ours)])


def recovery_point_age(plan: ClusterPlan, at: datetime) -> timedelta | None:
    """Age of the newest available snapshot; None while the cluster has none."""
    if plan.newest_available is None:
        return None
    return max(at - plan.newest_available, timedelta(0))


def out_of_policy(plan: ClusterPlan, at: datetime, grace: timedelta, *, started: bool = False) -> bool:
    """The recovery point is older than the policy's interval plus the grace.

    Stopped clusters don't change, so their last snapshot still stands for them. A cluster with no
    snapshot yet is out of policy once it is older than the interval plus the grace, unless its first
    snapshot is under way (`started` this run, or still creating).
    """
    if plan.policy is None or (plan.skip is not None and plan.skip[0] is Reason.STOPPED):
        return False
    allowed = plan.policy.every.interval + grace
    age = recovery_point_age(plan, at)
    if age is not None:
        return age > allowed
    if started or plan.creating:
        return False
    born = plan.cluster.created if plan.cluster is not None else None
    return born is None or at - born > allowed
