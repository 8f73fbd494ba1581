"""Domain records: what RDS told us (Cluster, Snapshot) and what a run did (RunReport). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol, TypeVar

from snapshot_scheduler import naming, tags

AVAILABLE = "available"
CREATING = "creating"

# A run that deletes at least this many of one cluster's snapshots (or of its copies in one place), and at
# least a third of them, is a mass deletion: reported and alarmed (MassDeletions), whatever the cause.
# Ordinary rolling retention deletes one or two.
MASS_DELETION_MIN = 3


def is_mass_deletion(deleted: int, total: int) -> bool:
    return deleted >= MASS_DELETION_MIN and 3 * deleted >= total


# Statuses worth retrying within a run; every other non-available status is skipped.
TRANSIENT_CLUSTER_STATUSES = frozenset(
    {
        "backing-up",
        "modifying",
        "maintenance",
        "upgrading",
        "failing-over",
        "starting",
        "renaming",
        "resetting-master-credentials",
        "backtracking",
        "update-iam-db-auth",
        "promoting",
        "migrating",
        "creating",
        "configuring-iam-database-auth",
        "storage-optimization",
    }
)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Record = TypeVar("Record", bound=_Identified)


def by_id(records: Iterable[Record]) -> dict[str, Record]:
    """A sweep as a set keyed by identifier: a paginated listing may return a record on two pages (its
    Marker is opaque, and others create and delete while we read). The later page's view is the fresher."""
    return {record.id: record for record in records}


@dataclass(frozen=True)
class Cluster:
    id: str
    arn: str
    engine: str
    status: str
    tags: Mapping[str, str]
    created: datetime | None = None
    copy_tags_to_snapshot: bool = False

    @property
    def inherited_hold(self) -> str | None:
        """The hold tag key a snapshot of this cluster inherits (CopyTagsToSnapshot), if any. RDS may
        authorise inherited tags as AddTagsToResource, which the stack denies for a hold key: every create
        then fails with access denied; where it does not, every snapshot is held and never pruned."""
        if not self.copy_tags_to_snapshot:
            return None
        return next((key for key in self.tags if tags.is_hold(key)), None)


@dataclass(frozen=True)
class Snapshot:
    id: str
    cluster_id: str
    arn: str
    status: str
    snapshot_type: str
    created: datetime | None
    tags: Mapping[str, str]
    source_arn: str = ""  # SourceDBClusterSnapshotArn: set on copies only
    encrypted: bool = False
    progress: int | None = None  # PercentProgress: how far a `creating` or `copying` snapshot has come
    kms_key_id: str = ""  # the key an encrypted snapshot is under (KmsKeyId, an ARN)

    def managed_by(self, deployment: str) -> bool:
        """Ours to prune: it carries this deployment's marker and every other proof agrees (`doubt`)."""
        return self.marked_by(deployment) and self.doubt() is None

    def marked_by(self, deployment: str) -> bool:
        return self.tags.get(tags.MARKER) == deployment

    def doubt(self) -> str | None:
        """Why this cannot be a snapshot this tool made, whatever its marker says; None when every proof
        agrees: manual, not a copy, recorded (tag) cluster equal to the cluster it is of, and the identifier
        the naming function gives that cluster's recorded slot. Tags travel (copies with copied tags, a
        restored cluster's copy-tags-to-snapshot, AWS Backup); the identifier and the source do not."""
        return self._doubt

    @cached_property  # asked of every marked snapshot by planning, quota planning and the last gate
    def _doubt(self) -> str | None:
        if self.snapshot_type != "manual":
            return f"it is a {self.snapshot_type} snapshot, not a manual one"
        if self.source_arn:
            return f"it is a copy of {self.source_arn}"
        recorded = self.tags.get(tags.CLUSTER, "")
        if recorded.lower() != self.cluster_id:
            return f"its {tags.CLUSTER} tag {recorded!r} is not its cluster {self.cluster_id!r}"
        slot = self.slot
        if slot is None:
            return f"its {tags.SLOT} tag {self.tags.get(tags.SLOT)!r} is not a time with a zone"
        try:
            expected = naming.snapshot_id(recorded, slot)
        except ValueError as error:
            return f"no identifier of ours fits its recorded cluster and slot: {error}"
        if self.id != expected:
            return f"its identifier is not {expected!r}, the one made for cluster {recorded!r} at {slot.isoformat()}"
        return None

    # Cached: retention asks each of these many times per snapshot (sorting, buckets, the newest), and a
    # snapshot's tags do not change once read.
    @cached_property
    def held(self) -> bool:
        return tags.held(self.tags)

    @cached_property
    def slot(self) -> datetime | None:
        try:
            slot = datetime.fromisoformat(self.tags.get(tags.SLOT, ""))
        except ValueError:
            return None
        return slot if slot.tzinfo is not None else None

    @cached_property
    def time(self) -> datetime | None:
        """When the snapshot stands for (for retention buckets): its slot, else its creation time. Never
        later than its creation: a slot tag set in the future must not make a snapshot the newest."""
        times = [t for t in (self.slot, self.created) if t is not None]
        return min(times, default=None)


@dataclass(frozen=True)
class Quota:
    used: int
    max: int

    @property
    def utilization(self) -> float:
        return 100.0 * self.used / self.max if self.max else 100.0


class Reason(StrEnum):
    """Why a cluster was deferred or skipped: stable codes for metrics, tests and tooling."""

    BUSY = "busy"
    QUOTA = "quota"
    IN_PROGRESS = "in-progress"
    TIME = "time"
    POLICY_ERROR = "policy-error"
    STOPPED = "stopped"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not-found"
    STALE_EVENT = "stale-event"
    # Backups of a cluster we were backing up stopped: reported every run while it has snapshots of ours.
    UNTAGGED = "untagged"
    ENGINE_NOT_MANAGED = "engine-not-managed"
    OFF = "off"
    COPY_LIMIT = "copy-limit"  # at most 5 copies in progress per destination region
    KMS = "kms"  # an encrypted snapshot and a DR target without a usable key
    TARGET_RETIRED = "target-retired"  # a DR tag names a target drTargets marks retired: no new copy there
    KMS_DEFAULT_KEY = "kms-default-key"  # under the default aws/rds key: cannot be shared with an account


@dataclass
class CopyReport:
    """What one run did about copies, DR or vault: the entries both report."""

    started: list[dict[str, str]] = field(default_factory=list)
    deleted: list[dict[str, str]] = field(default_factory=list)
    deferred: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    stuck: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {kind: getattr(self, kind) for kind in ("started", "deleted", "deferred", "skipped", "failed", "stuck")}


@dataclass
class DrReport(CopyReport):
    """What one run did about disaster-recovery copies: `dr` in the run report. Every entry names the
    cluster and the destination region (and the target, when it is still configured)."""

    shared: list[dict[str, str]] = field(default_factory=list)  # snapshots shared with an account target
    unshared: list[dict[str, str]] = field(default_factory=list)  # shares taken back after shareHours
    errors: list[dict[str, str]] = field(default_factory=list)  # DR tags that cannot be used
    # Deletions a change of DR policy caused, waiting for the grace: as RunReport.pending, with region and target.
    pending: list[dict[str, str | None]] = field(default_factory=list)
    mass_deletions: list[str] = field(default_factory=list)  # "cluster/region": most of its copies there deleted
    targets_managed: int = 0
    out_of_policy: list[str] = field(default_factory=list)  # "cluster/region"
    oldest_copy_age: float | None = None
    quotas: dict[str, Quota | None] = field(default_factory=dict)  # region -> its manual snapshot quota (None: unread)

    @property
    def worst_quota_utilization(self) -> float | None:
        """The fullest DR region's quota utilisation (percent), of the regions whose quota was read."""
        return max((q.utilization for q in self.quotas.values() if q is not None), default=None)

    def add(self, kind: str, cluster: str, region: str, target: str | None, **fields: str) -> None:
        named = {"target": target} if target is not None else {}
        getattr(self, kind).append({"cluster": cluster, "region": region, **named, **fields})

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "shared": self.shared,
            "unshared": self.unshared,
            "errors": self.errors,
            "pending": self.pending,
            "mass_deletions": self.mass_deletions,
            "targets_managed": self.targets_managed,
            "out_of_policy": self.out_of_policy,
            "oldest_copy_age_seconds": self.oldest_copy_age,
            "quotas": {
                region: None if quota is None else {"used": quota.used, "max": quota.max}
                for region, quota in sorted(self.quotas.items())
            },
        }


@dataclass
class VaultReport(CopyReport):
    """What one vault run did: `vault` in the run report. Copy entries name the cluster and its source
    ("<account>/<region>"); `sources` has each configured source's recovery point and silence."""

    ignored: list[dict[str, str]] = field(default_factory=list)  # shares that do not count: arn, reason
    sources: list[dict[str, Any]] = field(default_factory=list)
    shares_counted: int = 0
    mass_deletions: list[str] = field(default_factory=list)  # "<account>/<region>/<cluster>": most copies deleted

    def add(self, kind: str, cluster: str, source: str, **fields: str) -> None:
        getattr(self, kind).append({"cluster": cluster, "source": source, **fields})

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "ignored": self.ignored,
            "shares_counted": self.shares_counted,
            "mass_deletions": self.mass_deletions,
            "sources": self.sources,
        }


@dataclass
class RunReport:
    """What one run did. `to_dict()` is the handler's JSON answer."""

    scheduled_time: datetime
    dry_run: bool
    created: list[dict[str, str]] = field(default_factory=list)
    deleted: list[dict[str, str]] = field(default_factory=list)
    deferred: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    foreign_marked: list[dict[str, str]] = field(default_factory=list)
    unlisted: list[dict[str, str]] = field(default_factory=list)
    # Deletions a change of policy caused, waiting for the grace: cluster, snapshot, policy (the one that
    # deletes it), kept_by (the recorded one that keeps it), since, deletable_after (ISO 8601 UTC).
    pending: list[dict[str, str | None]] = field(default_factory=list)
    mass_deletions: list[str] = field(default_factory=list)  # clusters this run deleted most snapshots of
    busy_retries: int = 0
    quota_exceeded: int = 0
    throttles: int = 0
    quota: Quota | None = None
    clusters_managed: int = 0
    out_of_policy: list[str] = field(default_factory=list)
    newly_out_of_policy: list[str] = field(default_factory=list)  # out of policy since the previous run
    missed: list[dict[str, str]] = field(default_factory=list)  # slots that ended without a snapshot
    warnings: list[dict[str, str]] = field(default_factory=list)  # policies the schedule cannot keep
    oldest_recovery_point_age: float | None = None
    duration_ms: float = 0.0
    dr: DrReport | None = None  # None when no DR target is configured
    vault: VaultReport | None = None  # set by a vault run (SNAPSHOT_VAULT) only

    def add_created(self, cluster: str, snapshot: str) -> None:
        self.created.append({"cluster": cluster, "snapshot": snapshot})

    def add_deleted(self, cluster: str, snapshot: str) -> None:
        self.deleted.append({"cluster": cluster, "snapshot": snapshot})

    def add_deferred(self, cluster: str, code: Reason, reason: str) -> None:
        self.deferred.append({"cluster": cluster, "code": code.value, "reason": reason})

    def add_skipped(self, cluster: str, code: Reason, reason: str) -> None:
        self.skipped.append({"cluster": cluster, "code": code.value, "reason": reason})

    def add_failed(self, cluster: str, error: str, message: str) -> None:
        self.failed.append({"cluster": cluster, "error": error, "message": message})

    def add_foreign_marked(self, cluster: str, snapshot: str, reason: str) -> None:
        self.foreign_marked.append({"cluster": cluster, "snapshot": snapshot, "reason": reason})

    def add_missed(self, cluster: str, slot: datetime, reason: str) -> None:
        self.missed.append({"cluster": cluster, "slot": slot.isoformat(), "reason": reason})

    def add_warning(self, cluster: str, code: str, message: str) -> None:
        self.warnings.append({"cluster": cluster, "code": code, "message": message})

    def add_unlisted(self, cluster: str, reason: str) -> None:
        self.unlisted.append({"cluster": cluster, "reason": reason})

    def deferred_count(self, code: Reason) -> int:
        return sum(1 for entry in self.deferred if entry["code"] == code.value)

    @property
    def complete(self) -> bool:
        """Nothing failed and nothing was put off, copies to DR regions and a vault's copies included."""
        copies = any(report is not None and (report.failed or report.deferred) for report in (self.dr, self.vault))
        return not self.failed and not self.deferred and not copies

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduled_time": self.scheduled_time.isoformat(),
            "dry_run": self.dry_run,
            "created": self.created,
            "deleted": self.deleted,
            "deferred": self.deferred,
            "skipped": self.skipped,
            "failed": self.failed,
            "foreign_marked": self.foreign_marked,
            "unlisted": self.unlisted,
            "pending": self.pending,
            "missed": self.missed,
            "warnings": self.warnings,
            "stats": {
                "clusters_managed": self.clusters_managed,
                "clusters_out_of_policy": self.out_of_policy,
                "mass_deletions": self.mass_deletions,
                "clusters_newly_out_of_policy": self.newly_out_of_policy,
                "oldest_recovery_point_age_seconds": self.oldest_recovery_point_age,
                "busy_retries": self.busy_retries,
                "quota_exceeded": self.quota_exceeded,
                "throttles": self.throttles,
                "quota": None if self.quota is None else {"used": self.quota.used, "max": self.quota.max},
                "duration_ms": round(self.duration_ms, 1),
            },
            **({"dr": self.dr.to_dict()} if self.dr is not None else {}),
            **({"vault": self.vault.to_dict()} if self.vault is not None else {}),
        }
