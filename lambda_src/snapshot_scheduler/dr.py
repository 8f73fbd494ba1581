"""Decide, purely, what a run does about disaster-recovery copies: the DR tag, copies due per target, the
in-flight budget, retention of the copies, and which source snapshots must stay while they are copied.

Input is the source region's clusters and snapshots, the run's own plan, and one sweep of each destination
region; output is a DrPlan. No boto3, no clock: the service acts on it after the cluster's own snapshots.
Every safety rule of the source side holds for copies: only copies carrying our DR marker and every proof
of ownership take part, never a held or non-available copy is deleted, the newest copy is always kept,
copies of clusters that left DR, and every copy in a retired target's region (no new copy goes there), are
pruned by the DR policy recorded on their newest copy, never below one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from snapshot_scheduler import tags
from snapshot_scheduler.model import AVAILABLE, Cluster, Quota, Reason, Snapshot
from snapshot_scheduler.naming import copy_id, parse_snapshot_arn
from snapshot_scheduler.planning import NEVER, ClusterPlan, Kept, RunPlan, retain_after_grace
from snapshot_scheduler.policy import Policy, PolicyError, check_name, is_off, parse_policy, parse_schedule
from snapshot_scheduler.policy_change import DEFAULT_GRACE, Pending, Record
from snapshot_scheduler.schedule import current_slot

COPYING = "copying"
FAILED = "failed"
COPY_LIMIT = 5  # cluster snapshot copies in progress per destination region per account (RDS, not adjustable)
DEFAULT_DR_EVERY = "1d"  # cross-region copies are full copies, billed in full
TARGET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*\Z")  # a DR target's name in drTargets and in to=
COPY_IN_PROGRESS = "copy in progress"
COPY_STARTS = "copy starts this run"
SHARE_HOURS = (1, 720)  # how long an account target keeps a snapshot shared: at least an hour, at most 30 days
DEFAULT_SHARE_HOURS = 72

_MAX_TAG_VALUE = 256


class DrPolicyError(PolicyError):
    """A DR tag (or named DR policy) that cannot be used: DR only; the cluster's own snapshots go on."""


@dataclass(frozen=True)
class DrTarget:
    """Where copies go: a region of this account and, for encrypted snapshots, a KMS key of that region
    (alias or ARN). Or another account (a vault, in `region`): snapshots are shared with it for `share_for`
    and the vault copies them itself, under its own key. A retired target gets no new copies (or shares); a
    retired region is still swept and its copies pruned by the DR policy recorded on them, never below one."""

    name: str
    region: str
    kms_key: str | None = None
    retired: bool = False
    account: str | None = None
    share_for: timedelta = timedelta(hours=DEFAULT_SHARE_HOURS)

    @property
    def shares(self) -> bool:
        """An account target: shared with, never copied to."""
        return self.account is not None

    def spec(self) -> dict[str, str | bool | int]:
        """The target as drTargets writes it (what parse_dr_targets reads back), without defaults."""
        spec: dict[str, str | bool | int] = {"region": self.region}
        if self.kms_key:
            spec["kmsKey"] = self.kms_key
        if self.account is not None:
            spec["account"] = self.account
            spec["shareHours"] = int(self.share_for.total_seconds() // 3600)
        if self.retired:
            spec["retired"] = True
        return spec


def region_targets(targets: Mapping[str, DrTarget]) -> dict[str, DrTarget]:
    """The targets this deployment copies to (one per region of this account)."""
    return {name: target for name, target in targets.items() if not target.shares}


# Always fullmatch: `$` also matches before a final newline, so "us-west-2\n" would pass a `match`.
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
ACCOUNT = re.compile(r"[0-9]{12}")
KMS_KEY = re.compile(
    r"alias/[A-Za-z0-9/_-]+|(mrk-)?[0-9a-f-]{32,36}|arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):[0-9]{12}:(key|alias)/.+"
)
# The keys of a target in drTargets and the JSON type of each value.
TARGET_FIELDS: Mapping[str, type] = {"region": str, "kmsKey": str, "retired": bool, "account": str, "shareHours": int}
_EXAMPLE = '{"region": "us-west-2", "kmsKey": "alias/...", "retired": false}'


def parse_dr_targets(loaded: object) -> dict[str, DrTarget]:
    """drTargets as JSON loads it: {"dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
    "vault": {"account": "222222222222", "region": "eu-central-1", "shareHours": 72}}. Raises ValueError naming
    the target, the value and what is allowed."""
    if not isinstance(loaded, dict):
        raise ValueError(f"expected an object of target name to {_EXAMPLE}")
    targets: dict[str, DrTarget] = {}
    for name, spec in loaded.items():
        if not isinstance(name, str) or not _is_target_name(name):
            raise ValueError(f"target name {name!r}: allowed a letter, then letters, digits, _ . - (at most 64)")
        if name.lower() in {known.lower() for known in targets}:
            raise ValueError(f"target names differ only in case: {name!r}")
        target = _parse_target(name, spec)
        for other in targets.values():
            if target.shares and other.account == target.account:
                raise ValueError(
                    f"targets {other.name!r} and {name!r} both name account {target.account}: one target per "
                    "account (each unshares what it shared)"
                )
            if not target.shares and not other.shares and other.region == target.region:
                raise ValueError(
                    f"targets {other.name!r} and {name!r} both name region {target.region}: one target per region"
                )
        targets[name] = target
    return targets


def _parse_target(name: str, spec: object) -> DrTarget:
    if not isinstance(spec, dict):
        raise ValueError(f"target {name!r}: expected {_EXAMPLE}")
    unknown = sorted(set(spec) - set(TARGET_FIELDS))
    if unknown:
        raise ValueError(f"target {name!r}: unknown key {unknown[0]!r}; allowed: {', '.join(TARGET_FIELDS)}")
    for field_name, kind in TARGET_FIELDS.items():
        value = spec.get(field_name)
        if field_name in spec and type(value) is not kind:  # exactly: a bool is no str, and "false" no bool
            allowed = {bool: "true or false", int: "a whole number"}.get(kind, "text")
            raise ValueError(f"target {name!r}: {field_name} {value!r} is not {allowed}")
    region: str = spec.get("region", "")
    key: str | None = spec.get("kmsKey")
    account: str | None = spec.get("account")
    retired = bool(spec.get("retired", False))
    if not REGION.fullmatch(region):
        raise ValueError(f"target {name!r}: region {region!r} is not a region name such as us-west-2")
    if account is None:
        if "shareHours" in spec:
            raise ValueError(f"target {name!r}: shareHours is for a target that names an account (a vault)")
        return DrTarget(name, region, _checked_key(name, region, key), retired=retired)
    if not ACCOUNT.fullmatch(account):
        raise ValueError(f"target {name!r}: account {account!r} is not an AWS account id (12 digits)")
    if key is not None:
        raise ValueError(
            f"target {name!r}: kmsKey is not used for a target that names an account: snapshots are shared "
            "with it and the vault copies them under its own key (the source key's policy must let the vault "
            "account use it)"
        )
    hours: int = spec.get("shareHours", DEFAULT_SHARE_HOURS)
    low, high = SHARE_HOURS
    if not low <= hours <= high:
        raise ValueError(
            f"target {name!r}: shareHours {hours!r} is not a whole number of hours from {low} to {high} "
            "(how long a snapshot stays shared with the account)"
        )
    return DrTarget(name, region, account=account, share_for=timedelta(hours=hours), retired=retired)


def _checked_key(name: str, region: str, key: str | None) -> str | None:
    if key is not None:
        match = KMS_KEY.fullmatch(key)
        if match is None or (match.group("region") or region) != region:
            raise ValueError(
                f"target {name!r}: kmsKey {key!r} is not a KMS key of {region}; allowed: alias/name, a key id, "
                f"or a key or alias ARN in {region}"
            )
    return key


@dataclass(frozen=True)
class DrPolicy:
    targets: tuple[str, ...]
    policy: Policy  # the DR slots (every, at, on, tz) and the retention of the copies
    name: str | None = None

    def spec(self) -> str:
        """The canonical text, recorded on every copy so orphaned copies can be pruned by it later."""
        return f"to={'+'.join(self.targets)} {self.policy.spec()}"

    def describe(self) -> str:
        return f"copies to {', '.join(self.targets)}: {self.policy.describe()}"


def _dr_retention(text: str) -> Policy:
    return parse_dr_policy(text).policy


# Copies record their DR policy: a change of its keep- words waits the policy-change grace as a change of the
# policy tag does (policy_change); `to=` is not retention, so naming another target is no change.
DR_RECORD = Record(tags.DR_POLICY, _dr_retention)


def parse_dr_policy(
    text: str,
    named: Mapping[str, str] | None = None,
    *,
    at: str = "03:00",
    tz: str = "UTC",
    accounts: frozenset[str] = frozenset(),
) -> DrPolicy:
    """A DR tag value: `to=target+target` and the policy grammar's words (every= defaults to 1d), or the
    name of a DR policy in `named` whose text is such words. `accounts`: the names (lower case) of the
    targets that are accounts: a tag naming only those has no keep- words (the vault keeps by its own)."""
    value = text.strip()
    name = None
    if selects_named(value):
        name, value = value, _named_text(value, named or {})
    try:
        policy = _parse_dr_words(value, at=at, tz=tz, accounts=accounts)
    except DrPolicyError as error:
        if name is None:
            raise
        raise DrPolicyError(f"DR policy {name!r} ({value!r}) is invalid: {error}") from error
    return replace(policy, name=name)


def selects_named(text: str) -> bool:
    """A DR tag value that is one word without `=`: the name of a DR policy (drPolicies)."""
    value = text.strip()
    return bool(value) and "=" not in value and " " not in value


def _named_text(name: str, named: Mapping[str, str]) -> str:
    """The text of the DR policy `name` selects, whatever its case (drPolicies, as namedPolicies)."""
    same = sorted(key for key in named if key.lower() == name.lower())
    if len(same) > 1:
        raise DrPolicyError(
            f"DR policy name {name!r} is ambiguous: the deployment's DR policies {' and '.join(map(repr, same))} "
            "differ only in letter case; rename one of them"
        )
    if not same:
        known = ", ".join(sorted(named)) or "none configured (drPolicies is empty)"
        raise DrPolicyError(f"unknown DR policy name {name!r}; known names: {known}; or write to=... words")
    return named[same[0]].strip()


def check_dr_policy_name(name: str) -> None:
    """A DR policy's name must be a word a DR tag can select (the rule of policy names: one word, no `=`)."""
    try:
        check_name(name)
    except PolicyError as error:
        raise DrPolicyError(f"DR {error}") from error


def check_targets(policy: DrPolicy, targets: Mapping[str, DrTarget]) -> None:
    """Every target `to=` names is one of drTargets (whatever its case; a retired one too: the run reports it)."""
    known = {name.lower() for name in targets}
    unknown = [name for name in policy.targets if name.lower() not in known]
    if unknown:
        configured = ", ".join(sorted(targets)) or "none (drTargets is empty)"
        raise DrPolicyError(f"target {unknown[0]!r} is not configured; configured targets: {configured}")


def share_only_names(targets: Mapping[str, DrTarget]) -> frozenset[str]:
    """The names (lower case) of the targets that are accounts, as parse_dr_policy takes them."""
    return frozenset(name.lower() for name, target in targets.items() if target.shares)


def _parse_dr_words(text: str, *, at: str, tz: str, accounts: frozenset[str]) -> DrPolicy:
    words = text.split()
    to = [word for word in words if word.partition("=")[0].lower() == "to"]
    rest = [word for word in words if word.partition("=")[0].lower() != "to"]
    if not to:
        raise DrPolicyError(f"DR policy {text!r} names no target: add to=<target> (several: to=dr-west+dr-eu)")
    if len(to) > 1:
        raise DrPolicyError(f"'to' is given twice ({' and '.join(to)}); name every target in one to=a+b")
    targets = tuple(to[0].partition("=")[2].split("+"))
    bad = [target for target in targets if not _is_target_name(target)]
    if bad or not targets:
        raise DrPolicyError(
            f"{to[0]!r} does not name targets; allowed: target names from the deployment's drTargets, "
            "joined by + (to=dr-west+dr-eu)"
        )
    if len({target.lower() for target in targets}) != len(targets):
        raise DrPolicyError(f"{to[0]!r} names a target twice")
    shares_only = {target.lower() for target in targets} <= accounts
    keeps = any(word.lower().startswith("keep-") for word in rest)
    if shares_only and keeps:
        raise DrPolicyError(
            f"DR policy {text!r} names only targets that are accounts ({', '.join(targets)}): they keep copies by "
            "their own policy, so a keep- word here would keep nothing; remove it (every= says what is shared)"
        )
    if not keeps and not shares_only:
        raise DrPolicyError(
            f"DR policy {text!r} keeps nothing: add at least one keep- word such as keep-daily=7 "
            "(copies are pruned by it; without one no copy could ever be deleted)"
        )
    loose = [word for word in rest if "=" not in word]
    if loose:
        raise DrPolicyError(f"{loose[0]!r} is not a key=value word; a DR tag is to=... and key=value words")
    if not any(word.lower().startswith("every=") for word in rest):
        rest.append(f"every={DEFAULT_DR_EVERY}")
    try:
        policy = (parse_schedule if shares_only else parse_policy)(" ".join(rest), at=at, tz=tz)
    except PolicyError as error:
        raise DrPolicyError(str(error)) from error
    dr = DrPolicy(targets=targets, policy=policy)
    if len(dr.spec()) > _MAX_TAG_VALUE:
        raise DrPolicyError(
            f"DR policy spelled out is {len(dr.spec())} characters; a tag value holds at most {_MAX_TAG_VALUE}"
        )
    return dr


def _is_target_name(name: str) -> bool:
    return bool(TARGET_NAME.match(name)) and len(name) <= 64


@dataclass(frozen=True)
class DrContext:
    """What the deployment says about DR: the tag, the targets, the region copies come from."""

    tag_key: str
    deployment: str
    source_region: str
    targets: Mapping[str, DrTarget]
    named: Mapping[str, str] = field(default_factory=dict)
    default_at: str = "03:00"
    default_tz: str = "UTC"
    copy_limit: int = COPY_LIMIT
    stuck_after: timedelta = timedelta(hours=24)
    change_grace: timedelta = DEFAULT_GRACE  # deletions a change of DR policy caused wait this long

    def parse(self, text: str) -> DrPolicy:
        """A DR tag value (or a DR policy's name) whose targets are all configured."""
        accounts = share_only_names(self.targets)
        policy = parse_dr_policy(text, self.named, at=self.default_at, tz=self.default_tz, accounts=accounts)
        check_targets(policy, self.targets)
        return policy

    @property
    def regions(self) -> list[str]:
        """The regions copies go to (account targets are shared with, never copied to)."""
        return sorted({target.region for target in self.targets.values() if not target.shares})

    def chosen(self, policy: DrPolicy) -> list[DrTarget]:
        """The configured targets a DR policy names (checked: each is configured)."""
        return [self.targets[_folded(self.targets, name)] for name in policy.targets]


@dataclass(frozen=True)
class CopyJob:
    """A copy to start in `target.region` from `source` (a snapshot of ours in the source region)."""

    cluster_id: str
    target: DrTarget
    identifier: str
    source: Snapshot
    slot: datetime
    kms_key: str | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class TargetPlan:
    """One cluster's copies in one target. `policy` is None for a cluster that left DR (orphaned copies,
    pruned by the recorded policy) when that is unreadable; `cluster` is None for such orphans."""

    cluster_id: str
    region: str
    target: DrTarget | None
    policy: DrPolicy | None
    cluster: Cluster | None = None
    kept: tuple[Kept, ...] = ()
    delete: tuple[Snapshot, ...] = ()
    failed: tuple[Snapshot, ...] = ()  # copies that ended `failed`: deleted (they are ours) and reported
    pending: tuple[Pending, ...] = ()  # deletions a change of DR policy caused, waiting for the grace (also kept)
    stuck: tuple[Snapshot, ...] = ()  # still copying after stuck_after: reported, never cancelled
    in_flight: tuple[Snapshot, ...] = ()
    slot: datetime | None = None
    copy: CopyJob | None = None
    skip: tuple[Reason, str] | None = None
    defer: tuple[Reason, str] | None = None
    fail: tuple[str, str] | None = None
    waiting: str | None = None  # why nothing is copied although the slot has no copy yet (not an error)
    newest_available: datetime | None = None  # the slot of the newest available copy

    @property
    def overdue(self) -> timedelta:
        if self.slot is None:
            return timedelta(0)
        return self.slot - self.newest_available if self.newest_available else timedelta.max

    @property
    def starts(self) -> bool:
        return self.copy is not None and not (self.skip or self.defer or self.fail)


@dataclass(frozen=True)
class DrError:
    cluster_id: str
    message: str


@dataclass(frozen=True)
class DrPlan:
    targets: tuple[TargetPlan, ...] = ()
    errors: tuple[DrError, ...] = ()
    protected: Mapping[str, str] = field(default_factory=dict)  # source snapshot id -> why it is kept
    unreadable: Mapping[str, str] = field(default_factory=dict)  # region -> why its sweep failed
    quotas: Mapping[str, Quota | None] = field(default_factory=dict)  # region -> its manual snapshot quota

    def copies(self, region: str | None = None) -> list[TargetPlan]:
        """Copies to start (in one region), most overdue first."""
        starting = [p for p in self.targets if p.starts and (region is None or p.region == region)]
        return sorted(starting, key=lambda p: (p.overdue, p.cluster_id), reverse=True)

    @property
    def managed(self) -> list[TargetPlan]:
        return [p for p in self.targets if p.cluster is not None and p.policy is not None]


def is_our_copy(context: DrContext, copy: Snapshot) -> bool:
    """Every proof must agree: a manual snapshot copied from another (SourceDBClusterSnapshotArn), our DR
    marker and source region, and its identifier the copy identifier of the cluster and slot it records,
    that cluster being the one RDS says it is a snapshot of."""
    recorded = copy.tags.get(tags.CLUSTER, "")
    slot = copy.slot
    if copy.snapshot_type != "manual" or ":" in copy.id or not copy.source_arn or slot is None or not recorded:
        return False
    if copy.tags.get(tags.DR_MARKER) != context.deployment:
        return False
    if copy.tags.get(tags.DR_SOURCE_REGION) != context.source_region or recorded != copy.cluster_id:
        return False
    try:
        return copy.id == copy_id(recorded, slot, context.source_region)
    except ValueError:
        return False


def plan_dr(
    context: DrContext,
    clusters: Sequence[Cluster],
    run: RunPlan,
    snapshots: Iterable[Snapshot],
    destinations: Mapping[str, Sequence[Snapshot]],
    *,
    at: datetime,
    now: datetime | None = None,
    quotas: Mapping[str, Quota | None] | None = None,
) -> DrPlan:
    """Plan the copies of a run scheduled for `at`. `snapshots`: the source region's manual sweep;
    `destinations`: region -> that region's manual sweep (every configured target's region)."""
    now = now or at
    own = {p.cluster_id: p.policy for p in run.clusters if p.cluster is not None}
    sources: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in snapshots:
        if snapshot.managed_by(context.deployment) and snapshot.status == AVAILABLE and not snapshot.source_arn:
            sources[snapshot.cluster_id].append(snapshot)
    copies: dict[tuple[str, str], list[Snapshot]] = defaultdict(list)
    for region, sweep in destinations.items():
        for copy in sweep:
            if is_our_copy(context, copy):
                copies[(region, copy.cluster_id)].append(copy)
    plans: list[TargetPlan] = []
    errors: list[DrError] = []
    frozen: set[str] = set()  # clusters whose DR tag is unusable: none of their copies is deleted
    retiring: dict[tuple[str, str], DrTarget] = {}  # (region, cluster) -> a retired target its DR tag names
    by_id = {region: {s.id: s for s in sweep} for region, sweep in destinations.items()}
    for cluster in sorted(clusters, key=lambda c: c.id):
        text = cluster.tags.get(context.tag_key)
        if is_off(text):
            continue
        try:
            policy = _checked(context, text or "", own.get(cluster.id), cluster.id in own)
        except DrPolicyError as error:
            errors.append(DrError(cluster.id, f"DR tag {context.tag_key}={text!r}: {error}"))
            frozen.add(cluster.id)
            continue
        for target in context.chosen(policy):
            if target.shares:  # shared with, never copied to (sharing.py)
                continue
            if target.retired:  # no new copy; its copies there are pruned with the orphans below
                retiring[(target.region, cluster.id)] = target
                continue
            mine = copies.pop((target.region, cluster.id), [])
            dest = by_id.get(target.region, {})
            plans.append(_plan_target(context, cluster, policy, target, mine, sources[cluster.id], dest, at, now))
    retired = {t.region: t for t in context.targets.values() if t.retired and not t.shares}
    for (region, cluster_id), orphaned in sorted(copies.items()):
        if cluster_id in frozen:
            kept = tuple(Kept(s, ("DR tag is invalid",)) for s in orphaned)
            plans.append(TargetPlan(cluster_id, region, retired.get(region), None, kept=kept))
        else:
            plans.append(
                _plan_orphans(context, cluster_id, region, orphaned, at=at, now=now, retired=retired.get(region))
            )
    plans = _named_retired(plans, retiring)
    plans = _budget(context, plans, destinations, quotas or {})
    return DrPlan(tuple(plans), tuple(errors), _protected(context, plans, destinations), quotas=dict(quotas or {}))


def usable_policy(context: DrContext, cluster: Cluster, own: Mapping[str, Policy | None]) -> DrPolicy | None:
    """The cluster's DR policy when its DR tag is set and usable (plan_dr reports the errors); else None.
    `own`: the cluster's own policy by cluster id, for the clusters the run manages."""
    text = cluster.tags.get(context.tag_key)
    if is_off(text):
        return None
    try:
        return _checked(context, text or "", own.get(cluster.id), cluster.id in own)
    except DrPolicyError:
        return None


def _folded(targets: Mapping[str, DrTarget], name: str) -> str:
    return next(key for key in targets if key.lower() == name.lower())


def _checked(context: DrContext, text: str, own: Policy | None, managed: bool) -> DrPolicy:
    policy = context.parse(text)
    if own is None:
        state = "invalid" if managed else "missing or off"
        raise DrPolicyError(f"the cluster's own policy tag is {state}: copies are made of its own snapshots")
    if policy.policy.every.interval < own.every.interval:
        raise DrPolicyError(
            f"every={policy.policy.every.text} is shorter than the cluster's own every={own.every.text}: "
            "there is no snapshot to copy more often than the cluster's own are taken"
        )
    return policy


def _plan_target(  # noqa: PLR0917 - one call site
    context: DrContext,
    cluster: Cluster,
    policy: DrPolicy,
    target: DrTarget,
    copies: list[Snapshot],
    sources: list[Snapshot],
    dest: Mapping[str, Snapshot],
    at: datetime,
    now: datetime,
) -> TargetPlan:
    base = _retained(context, cluster.id, target.region, target, policy, copies, at=at, now=now)
    slot = current_slot(policy.policy, at)
    base = replace(base, cluster=cluster, slot=slot)
    identifier = copy_id(cluster.id, slot, context.source_region)
    existing = dest.get(identifier)
    if existing is not None:
        if not is_our_copy(context, existing):
            owner = existing.tags.get(tags.DR_MARKER, "none")
            return replace(
                base,
                fail=(
                    "IdentifierTaken",
                    f"snapshot {existing.id} in {target.region} (DR marker {owner!r}) holds this DR slot's copy "
                    "identifier and is not a copy of ours",
                ),
            )
        return base  # this slot is copied or being copied (a failed copy is deleted now, the next run retries)
    if current_slot(policy.policy, now) > slot:
        return replace(base, skip=(Reason.STALE_EVENT, "the DR slot has passed; older slots are never back-filled"))
    in_slot = [s for s in sources if s.time is not None and slot <= s.time <= at]
    if not in_slot:
        return replace(
            base, waiting=f"no available snapshot of this cluster taken since the DR slot {slot.isoformat()}"
        )
    source = max(in_slot, key=lambda s: (s.time or NEVER, s.created or NEVER))
    if source.encrypted and not target.kms_key:
        return replace(
            base,
            skip=(
                Reason.KMS,
                f"snapshot {source.id} is encrypted and target {target.name} (region {target.region}) has no "
                "kmsKey: an encrypted copy to another region needs a key of that region",
            ),
        )
    job = CopyJob(
        cluster_id=cluster.id,
        target=target,
        identifier=identifier,
        source=source,
        slot=slot,
        kms_key=target.kms_key if source.encrypted else None,
        tags=copy_tags(context, cluster_id=cluster.id, target=target, policy=policy, slot=slot, source=source),
    )
    return replace(base, copy=job)


def copy_tags(
    context: DrContext, *, cluster_id: str, target: DrTarget, policy: DrPolicy, slot: datetime, source: Snapshot
) -> dict[str, str]:
    """Set explicitly on the copy (never CopyTags, which would carry snapshot-hold and everything else)."""
    return {
        tags.DR_MARKER: context.deployment,
        tags.DR_POLICY: policy.spec(),
        tags.DR_TARGET: target.name,
        tags.DR_SOURCE: source.arn,
        tags.DR_SOURCE_REGION: context.source_region,
        tags.CLUSTER: cluster_id,
        tags.SLOT: slot.isoformat(),
    }


def _retained(  # noqa: PLR0917
    context: DrContext,
    cluster_id: str,
    region: str,
    target: DrTarget | None,
    policy: DrPolicy,
    copies: list[Snapshot],
    *,
    at: datetime,
    now: datetime,
) -> TargetPlan:
    """Retention of one cluster's copies in one region, what a change of DR policy caused waiting for the
    grace; failed copies are deleted, stuck ones reported."""
    failed = tuple(c for c in copies if c.status == FAILED)
    live = [c for c in copies if c.status != FAILED]
    kept, delete, pending = retain_after_grace(policy.policy, live, at, context.change_grace, DR_RECORD)
    in_flight = tuple(c for c in live if c.status == COPYING)
    stuck = tuple(c for c in in_flight if c.created is not None and now - c.created > context.stuck_after)
    newest = max((c.time for c in live if c.status == AVAILABLE and c.time is not None), default=None)
    return TargetPlan(
        cluster_id,
        region,
        target,
        policy,
        kept=kept,
        delete=delete + failed,
        failed=failed,
        pending=pending,
        stuck=stuck,
        in_flight=in_flight,
        newest_available=newest,
    )


def _plan_orphans(
    context: DrContext,
    cluster_id: str,
    region: str,
    copies: list[Snapshot],
    *,
    at: datetime,
    now: datetime,
    retired: DrTarget | None = None,
) -> TargetPlan:
    """Copies of a cluster that left DR (deleted, untagged, target dropped from to=) or in a `retired`
    target's region: pruned by the DR policy recorded on the newest, never below one (and, when that policy
    is itself a recent change, after the grace, as any change of DR policy)."""
    newest = max(copies, key=lambda s: s.time or NEVER)
    recorded = newest.tags.get(tags.DR_POLICY, "")
    try:
        policy = parse_dr_policy(recorded)
    except PolicyError as error:
        reason = f"the DR policy recorded on copy {newest.id}, {recorded!r}, is unreadable ({error})"
        kept = tuple(Kept(s, ("recorded DR policy unreadable",)) for s in copies)
        return TargetPlan(cluster_id, region, retired, None, kept=kept, skip=(Reason.POLICY_ERROR, reason))
    return _retained(context, cluster_id, region, retired, policy, copies, at=at, now=now)


def _named_retired(plans: list[TargetPlan], retiring: Mapping[tuple[str, str], DrTarget]) -> list[TargetPlan]:
    """A DR tag that still names a retired target: reported skipped on the plan of its copies there (made
    above, by their recorded policy), or on a plan of its own when it has none."""

    def skipped(plan: TargetPlan, target: DrTarget) -> TargetPlan:
        reason = (
            f"target {target.name} (region {target.region}) is retired: no copy is started there, and the copies "
            "there are pruned by the DR policy recorded on the newest, never below one; remove "
            f"{target.name} from the cluster's to= (or un-retire the target)"
        )
        return replace(plan, target=target, skip=plan.skip or (Reason.TARGET_RETIRED, reason))

    left = dict(retiring)
    named = [skipped(p, left.pop((p.region, p.cluster_id))) if (p.region, p.cluster_id) in left else p for p in plans]
    return named + [skipped(TargetPlan(c, r, t, None), t) for (r, c), t in sorted(left.items())]


def _budget(
    context: DrContext,
    plans: list[TargetPlan],
    destinations: Mapping[str, Sequence[Snapshot]],
    quotas: Mapping[str, Quota | None],
) -> list[TargetPlan]:
    """Per destination region: the copies that fit its room start, most overdue first; the rest are deferred."""
    deferred: dict[int, tuple[Reason, str]] = {}
    for region in {p.region for p in plans if p.starts}:
        freed = sum(1 for p in plans if p.region == region for s in p.delete if s.status in (AVAILABLE, FAILED))
        room = CopyRoom.of(region, destinations.get(region, ()), context.copy_limit, quotas.get(region), freed)
        starting = sorted(
            (i for i, p in enumerate(plans) if p.starts and p.region == region),
            key=lambda i: (plans[i].overdue, plans[i].cluster_id),
            reverse=True,
        )
        for rank, index in enumerate(starting):
            deferral = room.deferral(rank)
            if deferral is not None:
                deferred[index] = deferral
    return [replace(p, defer=deferred[i]) if i in deferred else p for i, p in enumerate(plans)]


@dataclass(frozen=True)
class CopyRoom:
    """How many copies may start in one destination region this run: at most (the limit - copies in progress
    there, anyone's), and within the quota's room (after this run's deletions there) when the quota is known.
    Shared by DR copies and the vault's copies."""

    region: str
    in_flight: int
    limit: int
    quota_room: int | None

    @classmethod
    def of(cls, region: str, sweep: Iterable[Snapshot], limit: int, quota: Quota | None, freed: int) -> CopyRoom:
        in_flight = sum(1 for s in sweep if s.status == COPYING)
        quota_room = None if quota is None else max(0, quota.max - quota.used + freed)
        return cls(region, in_flight, min(limit, COPY_LIMIT), quota_room)

    def deferral(self, rank: int) -> tuple[Reason, str] | None:
        """Why the copy ranked `rank` (0: the most overdue) waits for a later run; None when it starts."""
        room = max(0, self.limit - self.in_flight)
        if self.quota_room is not None and rank >= self.quota_room and self.quota_room < room:
            return Reason.QUOTA, f"the manual snapshot quota of {self.region} is full ({self.quota_room} free)"
        if rank >= room:
            return (
                Reason.COPY_LIMIT,
                f"{self.in_flight} copies are in progress to {self.region} and at most {self.limit} may be at once; "
                "the next run starts it",
            )
        return None


def _protected(
    context: DrContext, plans: Sequence[TargetPlan], destinations: Mapping[str, Sequence[Snapshot]]
) -> dict[str, str]:
    """Source snapshots the cluster's own retention must keep: those a copy is copying from (ours or anyone's:
    RDS may fail the copy if its source goes), and those a copy starts from in this run."""
    protected: dict[str, str] = {}
    for sweep in destinations.values():
        for copy in sweep:
            if copy.status == COPYING:
                source = parse_snapshot_arn(copy.source_arn or copy.tags.get(tags.DR_SOURCE, ""))
                if source is not None and source.region == context.source_region:
                    protected[source.name] = COPY_IN_PROGRESS
    for plan in plans:
        if plan.starts and plan.copy is not None:
            protected.setdefault(plan.copy.source.id, COPY_STARTS)
    return protected


def blind_plan(
    context: DrContext, run: RunPlan, unreadable: Mapping[str, str], quotas: Mapping[str, Quota | None] | None = None
) -> DrPlan:
    """A DR region could not be read: no copy is started or deleted anywhere this run, and no snapshot of a
    DR-tagged cluster is deleted (a copy of it may be copying there), nor one shared with an account."""
    reason = "a DR region could not be read; a copy of it may be in progress"
    shared = [tags.shared_key(t.name) for t in context.targets.values() if t.shares]
    protected = {
        s.id: reason
        for plan in run.clusters
        for s in plan.delete
        if (plan.cluster is not None and not is_off(plan.cluster.tags.get(context.tag_key)))
        or any(key in s.tags for key in shared)
    }
    return DrPlan(protected=protected, unreadable=dict(unreadable), quotas=dict(quotas or {}))


def keep_sources(run: RunPlan, protected: Mapping[str, str]) -> RunPlan:
    """The run's own plan with every protected source snapshot moved from delete to kept."""
    if not protected:
        return run

    def guarded(plan: ClusterPlan) -> ClusterPlan:
        held = [s for s in plan.delete if s.id in protected]
        if not held:
            return plan
        kept = plan.kept + tuple(Kept(s, (protected[s.id],)) for s in held)
        return replace(plan, kept=kept, delete=tuple(s for s in plan.delete if s.id not in protected))

    return replace(run, clusters=tuple(guarded(p) for p in run.clusters))


def copy_age(plan: TargetPlan, at: datetime) -> timedelta | None:
    """Age of the newest available copy (by its slot); None while there is none."""
    return None if plan.newest_available is None else max(at - plan.newest_available, timedelta(0))
