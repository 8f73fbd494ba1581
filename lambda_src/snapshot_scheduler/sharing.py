"""Decide, purely, what a run shares with the DR targets that are accounts (vaults), and when it stops.

A cluster whose DR tag names an account target has the newest available snapshot of ours in the current DR
slot shared with that account (the `restore` attribute), once per slot and only while the slot is younger
than the target's shareHours; the share is recorded on the snapshot as the tag `shared-<target>` = the share
time. Once a share is older than shareHours it is taken back and the tag removed. While the tag is there the
snapshot is kept (`shared with vault`): ordinary retention may delete it only after it is unshared. A
snapshot under the account's default key (aws/rds) cannot be shared: skipped, `kms-default-key`.

Only accounts from the configuration are ever shared with, one at a time, never `all`: IAM has no condition
key for the accounts added, so this code (and the adapter's check of every account id) is the guard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from snapshot_scheduler import tags
from snapshot_scheduler.dr import DrContext, DrTarget, usable_policy
from snapshot_scheduler.model import AVAILABLE, Cluster, Reason, Snapshot
from snapshot_scheduler.planning import NEVER, RunPlan
from snapshot_scheduler.policy import Policy
from snapshot_scheduler.schedule import current_slot

SHARED_WITH_VAULT = "shared with vault"  # the keep reason of a snapshot while it is shared
AWS_MANAGED = "AWS"  # KMS KeyManager of an AWS managed key, such as the default aws/rds


@dataclass(frozen=True)
class Share:
    """Share `snapshot` (the newest of the DR slot `slot`) with the target's account, recording it."""

    cluster_id: str
    target: DrTarget
    snapshot: Snapshot
    slot: datetime


@dataclass(frozen=True)
class Unshare:
    """Take back the share of `snapshot` with the target's account (made `since`; None: unreadable)."""

    cluster_id: str
    target: DrTarget
    snapshot: Snapshot
    since: datetime | None


@dataclass(frozen=True)
class ShareSkip:
    cluster_id: str
    target: DrTarget
    code: Reason
    reason: str


@dataclass(frozen=True)
class SharePlan:
    shares: tuple[Share, ...] = ()
    unshares: tuple[Unshare, ...] = ()
    skips: tuple[ShareSkip, ...] = ()
    shared: tuple[str, ...] = ()  # snapshot ids shared now (recorded) with a configured account target

    @property
    def protected(self) -> dict[str, str]:
        """Snapshots the own retention must keep: shared now, or shared in this run."""
        return {snapshot_id: SHARED_WITH_VAULT for snapshot_id in (*self.shared, *(s.snapshot.id for s in self.shares))}

    def keys(self) -> set[str]:
        """The KMS keys of the snapshots to share: whether each is the default key is asked once a run."""
        return {share.snapshot.kms_key_id for share in self.shares if share.snapshot.encrypted}


def plan_sharing(
    context: DrContext,
    clusters: Sequence[Cluster],
    run: RunPlan,
    snapshots: Iterable[Snapshot],
    *,
    at: datetime,
    now: datetime,
) -> SharePlan:
    """Shares and unshares of a run scheduled for `at`. `clusters`: the managed ones; `snapshots`: the manual
    sweep of this region (only ours take part). A DR tag that cannot be used, or a retired target, shares
    nothing new (plan_dr reports the tag); what is shared stays recorded and is unshared on time whatever the
    tag or the target says now."""
    targets = [target for target in context.targets.values() if target.shares]
    if not targets:
        return SharePlan()
    ours = [s for s in snapshots if s.managed_by(context.deployment)]
    sources: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in ours:
        sources[snapshot.cluster_id].append(snapshot)
    own = {plan.cluster_id: plan.policy for plan in run.clusters if plan.cluster is not None}
    shares = []
    for cluster in sorted(clusters, key=lambda c: c.id):
        policy = usable_policy(context, cluster, own)
        if policy is None:
            continue
        for target in (t for t in context.chosen(policy) if t.shares and not t.retired):
            share = plan_share(cluster.id, policy.policy, target, sources[cluster.id], at=at, now=now)
            if share is not None:
                shares.append(share)
    return replace(plan_unshares(targets, ours, now=now), shares=tuple(shares))


def shared_since(snapshot: Snapshot, target: DrTarget) -> datetime | None:
    """When the snapshot was shared with the target (its tag), None if not recorded or unreadable."""
    value = snapshot.tags.get(tags.shared_key(target.name))
    try:
        since = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return since if since.tzinfo is not None else None


def share_time(now: datetime) -> str:
    """The tag value recording a share: ISO 8601 UTC to the second (2026-11-28T10:00:00Z)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_share(
    cluster_id: str, policy: Policy, target: DrTarget, sources: Sequence[Snapshot], *, at: datetime, now: datetime
) -> Share | None:
    """The share a cluster's DR slot wants now, if any. `sources`: the cluster's available snapshots of ours.
    Nothing when the slot has passed (never back-filled), when a snapshot of the slot is already shared
    with the target, or when the slot began more than shareHours ago (its share would already be over: a
    share taken back must not be made again)."""
    slot = current_slot(policy, at)
    if current_slot(policy, now) > slot or now - slot >= target.share_for:
        return None
    in_slot = [s for s in sources if s.status == AVAILABLE and s.time is not None and slot <= s.time <= at]
    if not in_slot or any(tags.shared_key(target.name) in s.tags for s in in_slot):
        return None
    newest = max(in_slot, key=lambda s: (s.time or NEVER, s.created or NEVER))
    return Share(cluster_id, target, newest, slot)


def plan_unshares(targets: Sequence[DrTarget], ours: Iterable[Snapshot], *, now: datetime) -> SharePlan:
    """Every snapshot of ours shared with a configured account target: kept while shared; unshared once the
    share is older than the target's shareHours (at once when its recorded time is unreadable)."""
    unshares: list[Unshare] = []
    shared: list[str] = []
    for snapshot in ours:
        for target in targets:
            if tags.shared_key(target.name) not in snapshot.tags:
                continue
            shared.append(snapshot.id)
            since = shared_since(snapshot, target)
            if since is None or now - since > target.share_for:
                unshares.append(Unshare(snapshot.cluster_id, target, snapshot, since))
    return SharePlan(unshares=tuple(unshares), shared=tuple(dict.fromkeys(shared)))


def without_default_keys(plan: SharePlan, managers: Mapping[str, str | None]) -> SharePlan:
    """The plan with every share of a snapshot under an AWS managed key (the default aws/rds) turned into a
    `kms-default-key` skip: RDS cannot share it, and the vault could not use the key. A key whose manager is
    unknown is tried (RDS then answers)."""
    shares, skips = [], list(plan.skips)
    for share in plan.shares:
        key = share.snapshot.kms_key_id
        if share.snapshot.encrypted and managers.get(key) == AWS_MANAGED:
            skips.append(ShareSkip(share.cluster_id, share.target, Reason.KMS_DEFAULT_KEY, _default_key(share, key)))
        else:
            shares.append(share)
    return replace(plan, shares=tuple(shares), skips=tuple(skips))


def _default_key(share: Share, key: str) -> str:
    return (
        f"snapshot {share.snapshot.id} is encrypted under the account's default key aws/rds ({key}), which RDS "
        f"cannot share with another account: give cluster {share.cluster_id} a customer managed key (restore it "
        "from a snapshot copied under that key, or copy its snapshots under it) and let account "
        f"{share.target.account} use that key in its key policy"
    )
