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
    by_id,
)
from snapshot_scheduler.naming import snapshot_id
from snapshot_scheduler.policy import Policy, PolicyError, is_off, parse_policy
from snapshot_scheduler.policy_change import DEFAULT_GRACE, OWN, Pending, Record, hold_back
from snapshot_scheduler.retention import plan_retention
from snapshot_scheduler.schedule import current_slot, next_slot

NEVER = datetime.min.replace(tzinfo=UTC)
PLANNING_ERROR = "PlanningError"  # a cluster whose planning raised: all its snapshots kept, reported failed


@dataclass(frozen=True)
class PolicyContext:
    """What the deployment says about policies: the tag to read and the defaults a tag leaves unsaid."""

    tag_key: str
    deployment: str
    named: Mapping[str, str]
    default_at: str
    default_tz: str
    engines: frozenset[str] | None = None  # None: every engine is managed
    change_grace: timedelta = DEFAULT_GRACE  # how long deletions caused by a change of policy wait

    def parse(self, text: str) -> Policy:
        return parse_policy(text, self.named, at=self.default_at, tz=self.default_tz)


@dataclass(frozen=True)
class Kept:
    snapshot: Snapshot
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ForeignMarked:
    """A snapshot that carries this deployment's marker but is not ours (`reason`: the proof that fails).
    Never deleted, never an orphan: reported, so someone can look."""

    snapshot: Snapshot
    reason: str


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
    # The policy recorded on its newest snapshot of ours, for a cluster that exists but whose backups stopped
    # for a reason other than a deliberate `off`: its recovery point is still judged by it.
    recorded: Policy | None = None
    snapshots: tuple[Snapshot, ...] = ()  # its snapshots of ours, for freshness

    @property
    def watched_policy(self) -> Policy | None:
        """The policy its recovery point is judged by: the current one, else the one its snapshots record."""
        return self.policy if self.policy is not None else self.recorded

    pending: tuple[Pending, ...] = ()  # deletions a change of policy caused, waiting for the grace (also in kept)

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
    foreign_marked: tuple[ForeignMarked, ...] = ()
    unlisted: tuple[str, ...] = ()  # clusters the listing missed that a direct lookup found

    @property
    def managed(self) -> list[ClusterPlan]:
        """Clusters that carry a usable policy (they are the ones with a recovery point to keep)."""
        return [p for p in self.clusters if p.cluster is not None and p.policy is not None]

    @property
    def kept_ids(self) -> frozenset[str]:
        """Every snapshot some rule of this plan keeps: none of them may be deleted on its behalf."""
        return frozenset(k.snapshot.id for plan in self.clusters for k in plan.kept)

    @property
    def watched(self) -> list[ClusterPlan]:
        """Existing clusters whose recovery point must stay fresh: the managed ones, and those we were backing
        up that stopped for any reason but a deliberate `off` (a broken tag, the tag key spelled in another
        case, the tag removed, an engine no longer managed, a planning error)."""
        return [p for p in self.clusters if p.cluster is not None and p.watched_policy is not None]

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
    lookups: Mapping[str, Cluster | None] | None = None,
) -> RunPlan:
    """Plan a run scheduled for `at`. `now`, when known, is the wall clock: an event delivered after its
    slot has passed must not fill that old slot with newer data.

    A cluster missing from the listing is not gone until a direct lookup says so: `lookups` holds the
    answers for `orphan_candidates` (the cluster, or None when there is none). A cluster found there is
    planned as if listed, and reported; the snapshots of one not looked up are all kept.

    Each sweep is read as a set keyed by identifier (`by_id`): a snapshot counted twice would fill two
    retention places, one of them kept by no rule."""
    taken = by_id(snapshots)
    ours: dict[str, list[Snapshot]] = defaultdict(list)
    foreign = []
    for snapshot in taken.values():
        if not snapshot.marked_by(context.deployment):
            continue
        doubt = snapshot.doubt()
        if doubt is None:
            ours[snapshot.cluster_id].append(snapshot)
        else:
            foreign.append(ForeignMarked(snapshot, doubt))
    listed = by_id(clusters)
    lookups = lookups or {}
    unlisted = {cid: cluster for cid, cluster in lookups.items() if cluster is not None and cid not in listed}
    plans = []
    for cluster in sorted((listed | unlisted).values(), key=lambda c: c.id):
        mine = ours.pop(cluster.id, [])
        stopped = _stopped(context, cluster)
        if stopped is not None:
            if mine:  # we were backing it up and no longer are: say so every run
                plans.append(
                    _guarded(
                        cluster.id,
                        cluster,
                        mine,
                        partial(_plan_stopped, cluster, mine, *stopped, context=context, at=at),
                    )
                )
            continue
        text = cluster.tags.get(context.tag_key)
        if text is None:  # only the key spelled in another case: a policy error, as a bad value is
            plan = partial(_unreadable, cluster, mine, _misspelt_key(context.tag_key, cluster.tags))
        else:
            plan = partial(_plan_cluster, context, cluster, text, mine, taken, at, now or at)
        plans.append(_guarded(cluster.id, cluster, mine, plan))
    for cluster_id, orphaned in sorted(ours.items()):
        if cluster_id in lookups:
            plan = partial(_plan_orphan, context, cluster_id, orphaned, at)
        else:
            plan = partial(_unconfirmed, cluster_id, orphaned)
        plans.append(_guarded(cluster_id, None, orphaned, plan))
    foreign.sort(key=lambda f: f.snapshot.id)
    return RunPlan(
        scheduled_time=at, clusters=tuple(plans), foreign_marked=tuple(foreign), unlisted=tuple(sorted(unlisted))
    )


def orphan_candidates(context: PolicyContext, clusters: Iterable[Cluster], snapshots: Iterable[Snapshot]) -> list[str]:
    """Clusters that snapshots of ours name but the listing did not show: each needs a direct lookup before
    its snapshots are handled as orphans (a listing can miss a record, as it can repeat one)."""
    listed = {cluster.id for cluster in clusters}
    named = {snapshot.cluster_id for snapshot in snapshots if snapshot.managed_by(context.deployment)}
    return sorted(named - listed)


def _guarded(
    cluster_id: str, cluster: Cluster | None, snapshots: list[Snapshot], plan: Callable[[], ClusterPlan]
) -> ClusterPlan:
    """One cluster's unexpected error fails that cluster (keeping all its snapshots), never the run."""
    try:
        return plan()
    except Exception as error:  # a bug or an input no rule foresaw: contain it to this cluster
        reason = "planning failed; nothing is deleted"
        kept = tuple(Kept(s, (reason,)) for s in snapshots)
        return ClusterPlan(
            cluster_id,
            cluster,
            None,
            kept=kept,
            fail=(PLANNING_ERROR, f"{reason}: {error!r}"),
            recorded=_recorded_policy(snapshots),
            snapshots=tuple(snapshots),
            newest_available=_newest_available_time(snapshots),
        )


def _stopped(context: PolicyContext, cluster: Cluster) -> tuple[Reason, str, bool] | None:
    """Why an existing cluster is not managed: (code, reason, whether its recovery point is still watched),
    or None when it is managed. Only a deliberate `off` goes unwatched; a removed tag may be an accident (a
    tool that rewrites tags, a cluster re-created from code), and the fix for the alarm is one word: off."""
    if context.engines is not None and cluster.engine not in context.engines:
        return Reason.ENGINE_NOT_MANAGED, f"its engine {cluster.engine!r} is not in the deployment's engines", True
    text = cluster.tags.get(context.tag_key)
    if text is None:
        if _misspelt_key(context.tag_key, cluster.tags) is not None:
            return None  # managed, and reported as a policy error
        return Reason.UNTAGGED, f"its policy tag {context.tag_key} was removed (set it to off to stop on purpose)", True
    if is_off(text):
        return Reason.OFF, f"its policy tag {context.tag_key} is off", False
    return None


def _misspelt_key(tag_key: str, cluster_tags: Mapping[str, str]) -> str | None:
    """The policy error for a cluster tagged with the policy key spelled in another case (RDS tag keys, and
    IAM's condition on ours, are case-sensitive: the tag is never read as a policy); None when it is not."""
    spellings = sorted(key for key in cluster_tags if key.lower() == tag_key.lower() and key != tag_key)
    if not spellings:
        return None
    return (
        f"policy tag key {spellings[0]!r} differs from {tag_key!r} in letter case only; tag keys are "
        f"case-sensitive: tag the cluster {tag_key}={cluster_tags[spellings[0]]} instead"
    )


def _unreadable(cluster: Cluster, snapshots: list[Snapshot], message: str | None) -> ClusterPlan:
    """A cluster whose policy tag cannot be read: nothing of it is deleted, and its recovery point is still
    watched, by the policy its snapshots record."""
    return ClusterPlan(
        cluster.id,
        cluster,
        None,
        kept=tuple(Kept(s, ("policy tag is invalid",)) for s in snapshots),
        skip=(Reason.POLICY_ERROR, message or "policy tag is invalid"),
        recorded=_recorded_policy(snapshots),
        snapshots=tuple(snapshots),
        newest_available=_newest_available_time(snapshots),
    )


def _plan_stopped(
    cluster: Cluster,
    snapshots: list[Snapshot],
    code: Reason,
    reason: str,
    watched: bool,
    *,
    context: PolicyContext,
    at: datetime,
) -> ClusterPlan:
    """A cluster we were backing up that is no longer managed: its snapshots are pruned by their recorded
    policy as an orphan's are, it is reported, and unless stopped on purpose its recovery point stays watched."""
    orphan = _plan_orphan(context, cluster.id, snapshots, at)
    message = f"backups stopped: {reason}; its {len(snapshots)} snapshots are pruned by their recorded policy"
    return replace(
        orphan,
        cluster=cluster,
        policy=None,
        recorded=orphan.policy if watched else None,
        skip=orphan.skip or (code, message),
        snapshots=tuple(snapshots),
        newest_available=_newest_available_time(snapshots),
    )


def _recorded_policy(snapshots: Sequence[Snapshot]) -> Policy | None:
    """The policy recorded on the newest of `snapshots`; None when there are none or it does not parse."""
    newest = max(snapshots, key=lambda s: s.time or NEVER, default=None)
    try:
        return None if newest is None else parse_policy(newest.tags.get(tags.POLICY, ""))
    except PolicyError:
        return None


def _newest_available_time(snapshots: Iterable[Snapshot]) -> datetime | None:
    return max((s.created for s in snapshots if s.status == AVAILABLE and s.created is not None), default=None)


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
        return _unreadable(cluster, snapshots, f"policy tag {context.tag_key}={text!r}: {error}")
    kept, delete, pending = retain_after_grace(policy, snapshots, at, context.change_grace)
    slot = current_slot(policy, at)
    identifier = snapshot_id(cluster.id, slot)
    base = ClusterPlan(
        cluster.id,
        cluster,
        policy,
        kept=kept,
        delete=delete,
        pending=pending,
        slot=slot,
        newest_available=_newest_available_time(snapshots),
        next_slot=next_slot(policy, at),
        creating=any(s.status == CREATING for s in snapshots),
        snapshots=tuple(snapshots),
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


def fresh_slots(
    context: PolicyContext, clusters: Iterable[Cluster], at: datetime, now: datetime, run_interval: timedelta
) -> list[ClusterPlan]:
    """The clusters whose current slot began after the previous run (`at` - `run_interval`): this run is the
    slot's first, so its snapshot can only exist if this event came twice. Read from the cluster listing
    alone, as `plan_run` would plan them but for what the snapshot listing adds (the slot's snapshot, one
    still creating): managed, available, a policy that parses, the event not stale. Any doubt leaves a
    cluster out (to the plan)."""
    fresh = []
    for cluster in by_id(clusters).values():
        try:
            plan = _fresh_slot(context, cluster, at, now, run_interval)
        except Exception:
            plan = None
        if plan is not None:
            fresh.append(plan)
    return sorted(fresh, key=lambda p: p.cluster_id)


def _fresh_slot(
    context: PolicyContext, cluster: Cluster, at: datetime, now: datetime, run_interval: timedelta
) -> ClusterPlan | None:
    """The plan's own rule (`_plan_cluster`) with no snapshot listed; only an `available` cluster (a busy one
    is left to the plan's retries)."""
    text = cluster.tags.get(context.tag_key)
    if text is None or cluster.status != AVAILABLE or _stopped(context, cluster) is not None:
        return None
    plan = _plan_cluster(context, cluster, text, [], {}, at, now)
    if plan.create is None or plan.skip or plan.defer or plan.fail or plan.slot is None:
        return None
    return plan if plan.slot > at - run_interval else None


def slot_snapshot_is_ours(context: PolicyContext, cluster_id: str, existing: Snapshot) -> bool:
    return existing.managed_by(context.deployment) and existing.cluster_id == cluster_id


def identifier_taken(existing: Snapshot) -> tuple[str, str]:
    """The failure to report when someone else's snapshot holds a slot's identifier."""
    owner = existing.tags.get(tags.MARKER, "none")
    doubt = existing.doubt()
    return (
        "IdentifierTaken",
        f"snapshot {existing.id} of cluster {existing.cluster_id} (deployment marker {owner!r}"
        f"{'; ' + doubt if doubt else ''}) holds this slot's identifier; is another deployment managing this "
        "cluster, or was the snapshot copied or made here by hand?",
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


def _unconfirmed(cluster_id: str, snapshots: list[Snapshot]) -> ClusterPlan:
    """Snapshots of a cluster the listing missed and no lookup confirmed gone: all kept, reported failed."""
    reason = "missing from the cluster listing and not confirmed gone by a direct lookup"
    return ClusterPlan(
        cluster_id,
        None,
        None,
        kept=tuple(Kept(s, (reason,)) for s in snapshots),
        fail=("ClusterUnconfirmed", f"{reason}; its {len(snapshots)} snapshots are kept, the next run looks again"),
    )


def _plan_orphan(context: PolicyContext, cluster_id: str, snapshots: list[Snapshot], at: datetime) -> ClusterPlan:
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
    kept, delete, pending = retain_after_grace(policy, snapshots, at, context.change_grace)
    return ClusterPlan(cluster_id, None, policy, kept=kept, delete=delete, pending=pending)


def retain_after_grace(
    policy: Policy, snapshots: Sequence[Snapshot], at: datetime, change_grace: timedelta, record: Record = OWN
) -> tuple[tuple[Kept, ...], tuple[Snapshot, ...], tuple[Pending, ...]]:
    """Retention, then the deletions a change of policy caused held back for the grace (policy_change);
    `record` says where the snapshots record their policy (a DR copy: its DR policy)."""
    kept, delete = retain(policy, snapshots)

    def deletes_under(recorded: Policy) -> set[str]:
        return {s.id for s in retain(recorded, snapshots)[1]}

    grace = hold_back(policy, snapshots, delete, at=at, grace=change_grace, deletes_under=deletes_under, record=record)
    waiting = [Kept(p.snapshot, (p.reason,)) for p in grace.pending]
    if grace.anchor is not None:
        waiting.append(
            Kept(grace.anchor, ("first snapshot under this policy: the policy-change grace counts from it",))
        )
    return kept + tuple(waiting), grace.delete, grace.pending


def retain(policy: Policy, snapshots: Sequence[Snapshot]) -> tuple[tuple[Kept, ...], tuple[Snapshot, ...]]:
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
    """The recovery point is older than the interval of the policy it is judged by, plus the grace.

    Stopped clusters don't change, so their last snapshot still stands for them. A cluster with no
    snapshot yet is out of policy once it is older than the interval plus the grace, unless its first
    snapshot is under way: `started` this run, or still creating since less than the interval plus the
    grace (one stuck in `creating` must not hide it for ever).
    """
    policy = plan.watched_policy
    if policy is None or (plan.skip is not None and plan.skip[0] is Reason.STOPPED):
        return False
    allowed = policy.every.interval + grace
    age = recovery_point_age(plan, at)
    if age is not None:
        return age > allowed
    if started or any(s.status == CREATING and at - (s.time or NEVER) <= allowed for s in plan.snapshots):
        return False
    born = plan.cluster.created if plan.cluster is not None else None
    return born is None or at - born > allowed
