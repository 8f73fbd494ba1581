"""Decide, purely, what a vault run does: which shared snapshots count, the copies to start, the retention of
the vault's copies, failed and stuck copies, and each source's recovery point and silence.

A vault is a deployment in another account (SNAPSHOT_VAULT) that copies what its sources share with it into
its own account and keeps the copies by its own policy, never the source's. Input: the listing of snapshots
shared with it, one sweep of its own manual snapshots, its quota and the run's time; output: a VaultPlan.
No boto3, no clock. The source's tags are unreadable across accounts: cluster and slot come from the
deterministic identifiers, and anything that does not match them is ignored (and counted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from snapshot_scheduler import tags
from snapshot_scheduler.dr import ACCOUNT, COPY_LIMIT, COPYING, FAILED, KMS_KEY, REGION, CopyRoom
from snapshot_scheduler.model import AVAILABLE, Quota, Reason, Snapshot
from snapshot_scheduler.naming import parse_slot_suffix, parse_snapshot_arn, snapshot_id, vault_copy_id
from snapshot_scheduler.planning import NEVER, Kept, retain, retain_after_grace
from snapshot_scheduler.policy import Policy, PolicyError, parse_policy
from snapshot_scheduler.policy_change import DEFAULT_GRACE, Pending, Record
from snapshot_scheduler.schedule import current_slot

MIN_RETENTION_DAYS = (0, 3650)
SHARES_EXPECTED_HOURS = (1, 24 * 365)
_SHAPE = (
    '{"sources": [{"account": "111111111111", "regions": ["eu-west-1"], "deployment": "SnapshotScheduler"}], '
    '"policy": "every=1d keep-daily=14", "kmsKey": "alias/snapshot-vault", "minRetentionDays": 7, '
    '"sharesExpectedHours": 36}'
)

# Copies record the vault's policy: an edit that keeps fewer waits the policy-change grace, as on the source.
VAULT_RECORD = Record(tags.VAULT_POLICY, parse_policy)


@dataclass(frozen=True)
class VaultSource:
    """An account whose snapshots, shared from the listed regions, the vault copies."""

    account: str
    regions: tuple[str, ...]
    deployment: str | None = None  # the source's deployment name (for people and doctor; not a proof)


@dataclass(frozen=True)
class Vault:
    """SNAPSHOT_VAULT (the stack's `vault` context key)."""

    sources: tuple[VaultSource, ...]
    policy: Policy  # the vault's slots and the retention of its copies
    kms_key: str | None
    min_retention: timedelta
    shares_expected: timedelta  # a source that shared nothing for longer is silent

    def configured(self, account: str, region: str) -> bool:
        return any(s.account == account and region in s.regions for s in self.sources)

    @property
    def source_keys(self) -> list[tuple[str, str]]:
        return [(s.account, region) for s in self.sources for region in s.regions]


def parse_vault(loaded: object, *, at: str = "03:00", tz: str = "UTC") -> Vault:
    """SNAPSHOT_VAULT as JSON loads it; `at` and `tz` are the deployment's defaults for the policy. Raises
    ValueError naming the key, the value and what is allowed."""
    if not isinstance(loaded, dict):
        raise ValueError(f"expected an object such as {_SHAPE}")
    unknown = sorted(set(loaded) - {"sources", "policy", "kmsKey", "minRetentionDays", "sharesExpectedHours"})
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r}; allowed: sources, policy, kmsKey, minRetentionDays, sharesExpectedHours"
        )
    sources = _parse_sources(loaded.get("sources"))
    text = loaded.get("policy")
    if not isinstance(text, str):
        raise ValueError(f"policy {text!r}: expected the policy tag's words, such as every=1d keep-daily=14")
    try:
        policy = parse_policy(text, at=at, tz=tz)
    except PolicyError as error:
        raise ValueError(f"policy {text!r}: {error}") from error
    key = loaded.get("kmsKey")
    if key is not None and (not isinstance(key, str) or not KMS_KEY.fullmatch(key)):
        raise ValueError(f"kmsKey {key!r} is not a KMS key; allowed: alias/name, a key id, or a key or alias ARN")
    days = _whole(loaded, "minRetentionDays", 0, MIN_RETENTION_DAYS)
    hours = _whole(loaded, "sharesExpectedHours", 2 * policy.every.value + 12, SHARES_EXPECTED_HOURS)
    return Vault(sources, policy, key, timedelta(days=days), timedelta(hours=hours))


def _parse_sources(value: object) -> tuple[VaultSource, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError('sources: expected a non-empty list of {"account": "111111111111", "regions": ["eu-west-1"]}')
    sources: list[VaultSource] = []
    for index, spec in enumerate(value):
        where = f"sources[{index}]"
        if not isinstance(spec, dict):
            raise ValueError(f'{where}: expected {{"account": "111111111111", "regions": ["eu-west-1"]}}')
        unknown = sorted(set(spec) - {"account", "regions", "deployment"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: account, regions, deployment")
        account, regions, deployment = spec.get("account"), spec.get("regions"), spec.get("deployment")
        if not isinstance(account, str) or not ACCOUNT.fullmatch(account):
            raise ValueError(f"{where}: account {account!r} is not a 12-digit AWS account id (a JSON string)")
        if account in {s.account for s in sources}:
            raise ValueError(f"{where}: account {account} is listed twice; list all its regions in one entry")
        if (
            not isinstance(regions, list)
            or not regions
            or not all(isinstance(r, str) and REGION.fullmatch(r) for r in regions)
            or len(set(regions)) != len(regions)
        ):
            raise ValueError(
                f"{where}: regions {regions!r}: expected a non-empty list of region names such as eu-west-1"
            )
        if deployment is not None and (
            not isinstance(deployment, str) or not deployment or len(deployment) > 256 or not tags.is_text(deployment)
        ):
            raise ValueError(f"{where}: deployment {deployment!r}: expected 1-256 {tags.TEXT_RULE}")
        sources.append(VaultSource(account, tuple(regions), deployment))
    return tuple(sources)


def _whole(loaded: Mapping[str, object], key: str, default: int, bounds: tuple[int, int]) -> int:
    value = loaded.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{key} {value!r}: expected a whole number from {bounds[0]} to {bounds[1]}")
    return value


@dataclass(frozen=True)
class VaultContext:
    deployment: str  # the vault marker's value
    region: str  # the vault's own region: every copy lands here
    vault: Vault
    copy_limit: int = COPY_LIMIT
    stuck_after: timedelta = timedelta(hours=24)
    change_grace: timedelta = DEFAULT_GRACE  # deletions an edit of the vault's policy caused wait this long


@dataclass(frozen=True)
class Share:
    """A shared snapshot that counts: from a configured source, named as the source names its slot snapshots."""

    account: str
    region: str
    cluster_id: str
    slot: datetime  # the source's slot, from the identifier
    snapshot: Snapshot

    @property
    def key(self) -> tuple[str, str, str]:
        return self.account, self.region, self.cluster_id


@dataclass(frozen=True)
class Ignored:
    arn: str
    reason: str


def read_share(context: VaultContext, snapshot: Snapshot, now: datetime) -> Share | Ignored:
    """Whether a shared snapshot counts. Its ARN's account and region must be a configured source, and its
    name the one the source gives its cluster's slot (naming.snapshot_id): the slot comes from the name, and
    a slot after the snapshot's creation or after now is a name no run of the source gives."""
    arn = parse_snapshot_arn(snapshot.arn)
    if arn is None:
        return Ignored(snapshot.arn or snapshot.id, "not a cluster snapshot ARN")
    if not context.vault.configured(arn.account, arn.region):
        return Ignored(snapshot.arn, f"account {arn.account} in {arn.region} is not a configured source")
    slot = parse_slot_suffix(arn.name)
    if slot is None:
        return Ignored(snapshot.arn, f"{arn.name} does not end in a slot -YYYYMMDD-HHMM")
    try:
        expected = snapshot_id(snapshot.cluster_id, slot)
    except ValueError as error:
        return Ignored(snapshot.arn, f"its cluster {snapshot.cluster_id!r} is no cluster id ({error})")
    if arn.name != expected:
        return Ignored(snapshot.arn, f"{arn.name} is not {expected}, the name of cluster {snapshot.cluster_id}'s slot")
    if slot > now or (snapshot.created is not None and slot > snapshot.created):
        return Ignored(snapshot.arn, f"its slot {slot.isoformat()} is later than its creation or this run")
    if snapshot.status != AVAILABLE:
        return Ignored(snapshot.arn, f"its status is {snapshot.status}")
    return Share(arn.account, arn.region, snapshot.cluster_id, slot, snapshot)


def is_vault_copy(deployment: str, copy: Snapshot) -> bool:
    """Every proof must agree: a manual snapshot copied from another, our vault marker, its identifier the
    vault copy identifier of the cluster, slot, source account and region it records, that cluster the one
    RDS says it is a snapshot of, and RDS's source ARN of that account and region."""
    account = copy.tags.get(tags.VAULT_SOURCE_ACCOUNT, "")
    region = copy.tags.get(tags.VAULT_SOURCE_REGION, "")
    recorded, slot = copy.tags.get(tags.CLUSTER, ""), copy.slot
    if copy.snapshot_type != "manual" or ":" in copy.id or slot is None or not recorded:
        return False
    if copy.tags.get(tags.VAULT_MARKER) != deployment or recorded != copy.cluster_id:
        return False
    source = parse_snapshot_arn(copy.source_arn)
    if source is None or (source.account, source.region) != (account, region):
        return False
    try:
        return copy.id == vault_copy_id(recorded, slot, account, region)
    except ValueError:
        return False


def _copy_key(copy: Snapshot) -> tuple[str, str, str]:
    return copy.tags[tags.VAULT_SOURCE_ACCOUNT], copy.tags[tags.VAULT_SOURCE_REGION], copy.cluster_id


@dataclass(frozen=True)
class CopyGroup:
    """The vault's copies of one cluster of one source (account, region): kept and deleted by the vault's
    policy, whether or not the source still shares anything."""

    account: str
    region: str
    cluster_id: str
    kept: tuple[Kept, ...] = ()
    delete: tuple[Snapshot, ...] = ()
    failed: tuple[Snapshot, ...] = ()  # ended `failed`: deleted (ours, holding no data) and reported
    pending: tuple[Pending, ...] = ()  # deletions an edit of the vault's policy caused, waiting (also kept)
    stuck: tuple[Snapshot, ...] = ()  # still copying after stuck_after: reported, never cancelled
    in_flight: tuple[Snapshot, ...] = ()
    newest_available: datetime | None = None  # the slot of the newest available copy

    @property
    def source(self) -> str:
        return f"{self.account}/{self.region}"


@dataclass(frozen=True)
class VaultCopy:
    """A copy the vault wants: the newest share of one of the vault policy's slots that has no copy yet."""

    account: str
    region: str
    cluster_id: str
    identifier: str
    share: Snapshot
    slot: datetime  # the vault policy's slot
    kms_key: str | None
    tags: Mapping[str, str]
    overdue: timedelta
    skip: tuple[Reason, str] | None = None
    defer: tuple[Reason, str] | None = None
    fail: tuple[str, str] | None = None

    @property
    def source(self) -> str:
        return f"{self.account}/{self.region}"

    @property
    def starts(self) -> bool:
        return not (self.skip or self.defer or self.fail)


@dataclass(frozen=True)
class SourceView:
    """What the vault knows of one configured source: its newest share seen now and its newest copy."""

    account: str
    region: str
    newest_share: datetime | None
    newest_copy: datetime | None

    @property
    def name(self) -> str:
        return f"{self.account}/{self.region}"

    def recovery_point_age(self, now: datetime) -> timedelta | None:
        return None if self.newest_copy is None else max(now - self.newest_copy, timedelta(0))

    def silence(self, now: datetime) -> timedelta | None:
        """Since the newest share seen (a copy of ours proves a share of its slot): None when never seen."""
        seen = max((t for t in (self.newest_share, self.newest_copy) if t is not None), default=None)
        return None if seen is None else max(now - seen, timedelta(0))


@dataclass(frozen=True)
class VaultPlan:
    groups: tuple[CopyGroup, ...] = ()
    copies: tuple[VaultCopy, ...] = ()  # most overdue first
    ignored: tuple[Ignored, ...] = ()
    sources: tuple[SourceView, ...] = ()
    counted: int = 0  # shares that count

    @property
    def starting(self) -> list[VaultCopy]:
        return [c for c in self.copies if c.starts]


def plan_vault(
    context: VaultContext,
    shared: Iterable[Snapshot],
    own: Sequence[Snapshot],
    *,
    now: datetime,
    quota: Quota | None = None,
) -> VaultPlan:
    """Plan a vault run at `now`. `shared`: the listing of snapshots shared with the vault; `own`: one sweep
    of the vault's manual snapshots (its copies among them)."""
    shares: list[Share] = []
    ignored: list[Ignored] = []
    for snapshot in {s.arn or s.id: s for s in shared}.values():  # by ARN: two sources may share one name
        read = read_share(context, snapshot, now)
        if isinstance(read, Share):
            shares.append(read)
        else:
            ignored.append(read)
    copies: dict[tuple[str, str, str], list[Snapshot]] = defaultdict(list)
    for snapshot in own:
        if is_vault_copy(context.deployment, snapshot):
            copies[_copy_key(snapshot)].append(snapshot)
    wanted: dict[tuple[str, str, str], list[Share]] = defaultdict(list)
    for share in shares:
        wanted[share.key].append(share)
    by_identifier = {s.id: s for s in own}
    groups, jobs = [], []
    for key in sorted(set(copies) | set(wanted)):
        group = _retained(context, key, copies.get(key, []), now)
        groups.append(group)
        jobs.extend(_wanted(context, group, copies.get(key, []), wanted.get(key, []), by_identifier))
    jobs = _budget(context, jobs, groups, own, quota)
    ignored.sort(key=lambda i: i.arn)
    return VaultPlan(tuple(groups), tuple(jobs), tuple(ignored), _sources(context, shares, groups), len(shares))


def _retained(context: VaultContext, key: tuple[str, str, str], copies: list[Snapshot], now: datetime) -> CopyGroup:
    """The vault's policy over one cluster's copies (planning.retain: only available, un-held copies take
    part, the newest is always kept; what an edit of the policy would delete waits the grace), then
    minRetentionDays by RDS's creation time. Failed copies go."""
    failed = tuple(c for c in copies if c.status == FAILED)
    live = [c for c in copies if c.status != FAILED]
    kept, delete, pending = retain_after_grace(context.vault.policy, live, now, context.change_grace, VAULT_RECORD)
    minimum = context.vault.min_retention
    young = {s.id for s in delete if s.created is None or now - s.created < minimum}
    kept += tuple(Kept(s, (f"younger than minRetentionDays={minimum.days}",)) for s in delete if s.id in young)
    in_flight = tuple(c for c in live if c.status == COPYING)
    return CopyGroup(
        *key,
        kept=kept,
        delete=tuple(s for s in delete if s.id not in young) + failed,
        failed=failed,
        pending=pending,
        stuck=tuple(c for c in in_flight if c.created is not None and now - c.created > context.stuck_after),
        in_flight=in_flight,
        newest_available=max((c.time for c in live if c.status == AVAILABLE and c.time), default=None),
    )


def _wanted(
    context: VaultContext,
    group: CopyGroup,
    copies: list[Snapshot],
    shares: list[Share],
    by_identifier: Mapping[str, Snapshot],
) -> list[VaultCopy]:
    """The newest share in each vault slot without a copy, when the vault's policy would keep that copy
    beside the copies it has (no copy that the same run's retention would delete)."""
    policy = context.vault.policy
    newest: dict[datetime, Share] = {}
    for share in shares:
        slot = current_slot(policy, share.slot)
        best = newest.get(slot)
        if best is None or (share.slot, share.snapshot.created or NEVER) > (best.slot, best.snapshot.created or NEVER):
            newest[slot] = share
    jobs = []
    for slot, share in sorted(newest.items()):
        identifier = vault_copy_id(share.cluster_id, slot, share.account, share.region)
        existing = by_identifier.get(identifier)
        if existing is not None and is_vault_copy(context.deployment, existing):
            continue  # copied, copying, or failed (deleted now: the next run copies it again while still shared)
        jobs.append(_job(context, group, share, slot=slot, identifier=identifier, existing=existing))
    if not jobs:
        return []
    live = [replace(c, status=AVAILABLE) if c.status == COPYING else c for c in copies if c.status != FAILED]
    planned = [_planned(job) for job in jobs]
    keeps = {k.snapshot.id for k in retain(policy, live + planned)[0]}
    return [job for job in jobs if job.identifier in keeps]


def _job(
    context: VaultContext,
    group: CopyGroup,
    share: Share,
    *,
    slot: datetime,
    identifier: str,
    existing: Snapshot | None,
) -> VaultCopy:
    encrypted = share.snapshot.encrypted
    job = VaultCopy(
        account=share.account,
        region=share.region,
        cluster_id=share.cluster_id,
        identifier=identifier,
        share=share.snapshot,
        slot=slot,
        kms_key=context.vault.kms_key if encrypted else None,
        tags=copy_tags(context, share, slot),
        overdue=slot - group.newest_available if group.newest_available else timedelta.max,
    )
    if existing is not None:
        owner = existing.tags.get(tags.VAULT_MARKER, "none")
        message = (
            f"snapshot {identifier} (vault marker {owner!r}) holds this copy's identifier and is not a copy of ours"
        )
        return replace(job, fail=("IdentifierTaken", message))
    if encrypted and not context.vault.kms_key:
        reason = (
            f"snapshot {share.snapshot.arn} is encrypted and the vault has no kmsKey: a copy of an encrypted "
            "snapshot shared from another account needs a key of the vault's region"
        )
        return replace(job, skip=(Reason.KMS, reason))
    return job


def _planned(job: VaultCopy) -> Snapshot:
    """The copy as retention will see it: available, at its vault slot (created then, so that the newest
    slot is also the newest by creation, as retention's guard reads it)."""
    slot = {tags.SLOT: job.slot.isoformat()}
    return Snapshot(job.identifier, job.cluster_id, "", AVAILABLE, "manual", job.slot, slot)


def copy_tags(context: VaultContext, share: Share, slot: datetime) -> dict[str, str]:
    """Set explicitly on the copy (never CopyTags: the source's tags are not the vault's to carry)."""
    return {
        tags.VAULT_MARKER: context.deployment,
        tags.VAULT_SOURCE_ACCOUNT: share.account,
        tags.VAULT_SOURCE_REGION: share.region,
        tags.CLUSTER: share.cluster_id,
        tags.SLOT: slot.isoformat(),
        tags.VAULT_POLICY: context.vault.policy.spec(),
    }


def _budget(
    context: VaultContext,
    jobs: list[VaultCopy],
    groups: list[CopyGroup],
    own: Sequence[Snapshot],
    quota: Quota | None,
) -> list[VaultCopy]:
    """Most overdue first (the newest slot of the cluster longest without a copy); what does not fit the
    vault region's room (dr.CopyRoom: the copies in flight, the quota) is deferred."""
    freed = sum(1 for g in groups for s in g.delete if s.status in (AVAILABLE, FAILED))
    room = CopyRoom.of(context.region, own, context.copy_limit, quota, freed)
    ranked = sorted(jobs, key=lambda j: (j.starts, j.overdue, j.slot, j.identifier), reverse=True)
    starting = [job for job in ranked if job.starts]
    deferrals = {job.identifier: room.deferral(rank) for rank, job in enumerate(starting)}
    return [replace(job, defer=deferrals[job.identifier]) if deferrals.get(job.identifier) else job for job in ranked]


def _sources(context: VaultContext, shares: list[Share], groups: list[CopyGroup]) -> tuple[SourceView, ...]:
    views = []
    for account, region in context.vault.source_keys:
        share_times = [s.slot for s in shares if (s.account, s.region) == (account, region)]
        copy_times = [
            g.newest_available for g in groups if (g.account, g.region) == (account, region) and g.newest_available
        ]
        views.append(SourceView(account, region, max(share_times, default=None), max(copy_times, default=None)))
    return tuple(views)
