"""An in-memory stand-in for `snapshot_scheduler.adapters.rds.RdsAdapter`, for the unit tier.

It offers the adapter's surface (`clusters`, `cluster`, `manual_snapshots`, `quota`, `create_snapshot`,
`delete_snapshot`, `throttles`) and keeps the RDS rules a service could trip over: identifiers are stored
lower-case and must be valid, a taken identifier raises `SnapshotExists`, only an `available` cluster can be
snapshotted, only an `available` snapshot can be deleted, the manual quota counts manual snapshots but not
AWS Backup's, and tags obey the RDS limits (so a bad tag set from the service fails loudly, as RDS would).

Faults are injected per operation, optionally per target, for a number of calls:

    rds.fail("create_snapshot", ClusterBusy, target="orders", times=2)

Every call is recorded in `calls`, in order, so tests can assert what happened before what.

Also here, for the tests that drive the service or the handler over the fake: `settings()` (the stack's
defaults with changes), `managed_snapshot()` (a snapshot as this service writes it) and `LambdaClock`
(the run's remaining time, which only the service's sleeps use up).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from snapshot_scheduler import naming, service, tags
from snapshot_scheduler.adapters.rds import (
    ClusterBusy,
    ClusterNotFound,
    QuotaExceeded,
    RdsError,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
)
from snapshot_scheduler.cli import CLI_DEFAULTS
from snapshot_scheduler.config import Settings
from snapshot_scheduler.model import Cluster, Quota, Snapshot
from snapshot_scheduler.policy import parse_policy

DEFAULT_ENGINE = "aurora-postgresql"
ACCOUNT_ARN = "arn:aws:rds:eu-west-1:123456789012"

# The wire code RDS answers with for each error class the adapter raises.
ERROR_CODES: Mapping[type[RdsError], str] = {
    ClusterBusy: "InvalidDBClusterStateFault",
    ClusterNotFound: "DBClusterNotFoundFault",
    SnapshotExists: "DBClusterSnapshotAlreadyExistsFault",
    QuotaExceeded: "SnapshotQuotaExceeded",
    SnapshotBusy: "InvalidDBClusterSnapshotStateFault",
    SnapshotNotFound: "DBClusterSnapshotNotFoundFault",
}

_IDENTIFIER = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-)){0,62}$")
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")
_MAX_TAGS = 50


@dataclass
class _Fault:
    operation: str
    error: RdsError
    target: str | None
    remaining: int


@dataclass
class FakeRds:
    """The account and region's clusters and snapshots, in memory."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 3, 5, tzinfo=UTC))
    quota_max: int | None = 100  # None: DescribeAccountAttributes gives no answer (as in moto)
    new_snapshot_status: str = "available"
    throttles_per_call: int = 0  # throttling errors the SDK met (and retried) on each call
    on_call: Callable[[str], None] | None = None  # a hook, e.g. to let the Lambda clock run down
    throttles: int = 0
    clusters_by_id: dict[str, Cluster] = field(default_factory=dict)
    snapshots_by_id: dict[str, Snapshot] = field(default_factory=dict)
    unlisted: set[str] = field(default_factory=set)  # clusters the listing misses (a direct lookup finds them)
    region: str = "eu-west-1"
    shared_by_arn: dict[str, Snapshot] = field(default_factory=dict)  # other accounts' snapshots shared with us
    new_copy_status: str = "copying"
    calls: list[tuple[str, ...]] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)  # the service calls from several threads

    # --- set-up -------------------------------------------------------------------------------------

    def add_cluster(
        self,
        cluster_id: str,
        tags: Mapping[str, str] | None = None,
        *,
        status: str = "available",
        engine: str = DEFAULT_ENGINE,
        created: datetime | None = None,
    ) -> Cluster:
        cluster = Cluster(
            id=cluster_id.lower(),
            arn=f"{ACCOUNT_ARN}:cluster:{cluster_id.lower()}",
            engine=engine,
            status=status,
            tags=dict(tags or {}),
            created=created or datetime(2020, 1, 1, tzinfo=UTC),
        )
        self.clusters_by_id[cluster.id] = cluster
        return cluster

    def add_snapshot(
        self,
        snapshot_id: str,
        cluster_id: str,
        created: datetime | None,
        tags: Mapping[str, str] | None = None,
        *,
        status: str = "available",
        snapshot_type: str = "manual",
    ) -> Snapshot:
        snapshot = Snapshot(
            id=snapshot_id.lower(),
            cluster_id=cluster_id.lower(),
            arn=f"{ACCOUNT_ARN}:cluster-snapshot:{snapshot_id.lower()}",
            status=status,
            snapshot_type=snapshot_type,
            created=created,
            tags=dict(tags or {}),
        )
        self.snapshots_by_id[snapshot.id] = snapshot
        return snapshot

    def share(self, snapshot: Snapshot) -> Snapshot:
        """Another account shares `snapshot` (its ARN names the owner) with this one."""
        self.shared_by_arn[snapshot.arn] = snapshot
        return snapshot

    def finish_copying(self, status: str = "available") -> None:
        for snapshot in list(self.snapshots_by_id.values()):
            if snapshot.status == "copying":
                self.snapshots_by_id[snapshot.id] = replace(snapshot, status=status)

    def set_cluster_status(self, cluster_id: str, status: str) -> None:
        self.clusters_by_id[cluster_id] = replace(self.clusters_by_id[cluster_id], status=status)

    def remove_cluster(self, cluster_id: str) -> None:
        del self.clusters_by_id[cluster_id]

    def finish_creating(self) -> None:
        """Every snapshot still `creating` becomes `available`."""
        for snapshot_id, snapshot in list(self.snapshots_by_id.items()):
            if snapshot.status == "creating":
                self.snapshots_by_id[snapshot_id] = replace(snapshot, status="available")

    def fail(
        self,
        operation: str,
        error: type[RdsError] | RdsError,
        *,
        target: str | None = None,
        times: int = 1,
        message: str = "injected fault",
    ) -> None:
        """The next `times` calls of `operation` (on `target`, a snapshot or cluster id, if given) raise."""
        if isinstance(error, type):
            error = error(ERROR_CODES.get(error, "InternalFailure"), message)
        self._faults.append(_Fault(operation, error, target, times))

    # --- what a test reads ----------------------------------------------------------------------------

    def snapshot_ids(self) -> set[str]:
        return set(self.snapshots_by_id)

    def snapshots_of(self, cluster_id: str) -> list[Snapshot]:
        return sorted(
            (s for s in self.snapshots_by_id.values() if s.cluster_id == cluster_id),
            key=lambda s: (s.created or datetime.min.replace(tzinfo=UTC), s.id),
        )

    def calls_to(self, operation: str) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] == operation]

    def created_ids(self) -> list[str]:
        return [call[1] for call in self.calls_to("create_snapshot")]

    def deleted_ids(self) -> list[str]:
        return [call[1] for call in self.calls_to("delete_snapshot")]

    def manual_used(self) -> int:
        """What counts against the manual cluster snapshot quota (AWS Backup's recovery points do not)."""
        return sum(
            1
            for s in self.snapshots_by_id.values()
            if s.snapshot_type == "manual" and not s.id.startswith("awsbackup:")
        )

    # --- the RdsAdapter surface -------------------------------------------------------------------------

    def clusters(self, engines: Iterable[str] | None = None) -> list[Cluster]:
        self._enter("clusters")
        wanted = None if engines is None else set(engines)
        return [
            c
            for c in self.clusters_by_id.values()
            if (wanted is None or c.engine in wanted) and c.id not in self.unlisted
        ]

    def cluster(self, cluster_id: str) -> Cluster | None:
        self._enter("cluster", cluster_id, targets=(cluster_id,))
        return self.clusters_by_id.get(cluster_id.lower())

    def manual_snapshots(self) -> list[Snapshot]:
        self._enter("manual_snapshots")
        return list(self.snapshots_by_id.values())

    def quota(self) -> Quota | None:
        try:
            self._enter("quota")
        except RdsError:
            return None  # the real adapter logs and carries on
        if self.quota_max is None:
            return None
        return Quota(used=self.manual_used(), max=self.quota_max)

    def shared_snapshots(self) -> list[Snapshot]:
        self._enter("shared_snapshots")
        return list(self.shared_by_arn.values())

    def copy_snapshot(
        self, source_arn: str, target_id: str, tags: Mapping[str, str], *, kms_key: str | None, source_region: str
    ) -> None:
        with self._lock:
            self._enter("copy_snapshot", source_arn, target_id, targets=(source_arn, target_id))
            _check_identifier(target_id)
            _check_tags(tags)
            source = self.shared_by_arn.get(source_arn)
            if source is None:
                raise SnapshotNotFound("DBClusterSnapshotNotFoundFault", f"{source_arn} not found or not shared")
            if target_id.lower() in self.snapshots_by_id:
                raise SnapshotExists("DBClusterSnapshotAlreadyExistsFault", f"{target_id} exists.")
            if source.encrypted and not kms_key:
                raise RdsError(
                    "InvalidParameterValue", "an encrypted snapshot shared from another account needs KmsKeyId"
                )
            if self.quota_max is not None and self.manual_used() >= self.quota_max:
                raise QuotaExceeded(
                    "SnapshotQuotaExceeded", f"Cannot create more than {self.quota_max} manual snapshots"
                )
            copy = self.add_snapshot(target_id, source.cluster_id, self.now, tags, status=self.new_copy_status)
            self.snapshots_by_id[copy.id] = replace(copy, source_arn=source_arn, encrypted=source.encrypted)

    def snapshot(self, snapshot_id: str) -> Snapshot | None:
        self._enter("snapshot", snapshot_id, targets=(snapshot_id,))
        return self.snapshots_by_id.get(snapshot_id.lower())

    def create_snapshot(self, snapshot_id: str, cluster_id: str, tags: Mapping[str, str]) -> Snapshot:
        """As RDS answers: the new snapshot, creating (whatever `new_snapshot_status` later lists it as)."""
        with self._lock:
            return replace(self._create_snapshot(snapshot_id, cluster_id, tags), status="creating")

    def _create_snapshot(self, snapshot_id: str, cluster_id: str, tags: Mapping[str, str]) -> Snapshot:
        self._enter("create_snapshot", snapshot_id, cluster_id, targets=(snapshot_id, cluster_id))
        _check_identifier(snapshot_id)
        _check_tags(tags)
        cluster = self.clusters_by_id.get(cluster_id)
        if cluster is None:
            raise ClusterNotFound("DBClusterNotFoundFault", f"DBCluster {cluster_id} not found.")
        if snapshot_id.lower() in self.snapshots_by_id:
            raise SnapshotExists(
                "DBClusterSnapshotAlreadyExistsFault", f"Cannot create the snapshot because {snapshot_id} exists."
            )
        if cluster.status != "available":
            raise ClusterBusy(
                "InvalidDBClusterStateFault", "Your DB cluster must be in the available state to take a snapshot."
            )
        if self.quota_max is not None and self.manual_used() >= self.quota_max:
            raise QuotaExceeded("SnapshotQuotaExceeded", f"Cannot create more than {self.quota_max} manual snapshots")
        return self.add_snapshot(snapshot_id, cluster_id, self.now, tags, status=self.new_snapshot_status)

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self._lock:
            self._delete_snapshot(snapshot_id)

    def _delete_snapshot(self, snapshot_id: str) -> None:
        self._enter("delete_snapshot", snapshot_id, targets=(snapshot_id,))
        snapshot = self.snapshots_by_id.get(snapshot_id.lower())
        if snapshot is None:
            raise SnapshotNotFound("DBClusterSnapshotNotFoundFault", f"{snapshot_id} not found.")
        if snapshot.status not in ("available", "failed"):
            raise SnapshotBusy("InvalidDBClusterSnapshotStateFault", f"{snapshot_id} is {snapshot.status}.")
        del self.snapshots_by_id[snapshot.id]

    # --- internals ----------------------------------------------------------------------------------------

    def _enter(self, operation: str, *args: str, targets: tuple[str, ...] = ()) -> None:
        self.calls.append((operation, *args))
        self.throttles += self.throttles_per_call
        if self.on_call is not None:
            self.on_call(operation)
        for fault in self._faults:
            if fault.operation != operation or fault.remaining <= 0:
                continue
            if fault.target is not None and fault.target not in targets:
                continue
            fault.remaining -= 1
            raise fault.error


def _check_identifier(snapshot_id: str) -> None:
    if not _IDENTIFIER.match(snapshot_id.lower()) or snapshot_id.endswith("-"):
        raise RdsError("InvalidParameterValue", f"{snapshot_id!r} is not a valid DB cluster snapshot identifier")


def _check_tags(tags: Mapping[str, str]) -> None:
    if len(tags) > _MAX_TAGS:
        raise RdsError("TagQuotaPerResourceExceeded", f"{len(tags)} tags; at most {_MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise RdsError("InvalidParameterValue", f"tag {key!r}={value!r} is too long")
        if not _TAG_TEXT.match(key) or not _TAG_TEXT.match(value):
            raise RdsError("InvalidParameterValue", f"tag {key!r}={value!r} has characters RDS does not allow")
        if key.lower().startswith(("aws:", "rds:")):
            raise RdsError("InvalidParameterValue", f"tag key {key!r} uses a reserved prefix")


# --- helpers for tests that run the service over the fake --------------------------------------------------------


def settings(**changes: object) -> Settings:
    """The stack's default settings (as the CLI knows them), with `changes` to its fields."""
    return dataclasses.replace(Settings.from_env(CLI_DEFAULTS), **changes)  # type: ignore[arg-type]


def managed_snapshot(
    rds: FakeRds,
    cluster: str,
    slot: datetime,
    *,
    policy: str,
    deployment: str,
    status: str = "available",
    held: bool = False,
) -> Snapshot:
    """A snapshot this service made for `slot`: its identifier, marker and tags as the service writes them."""
    snapshot_tags = {
        tags.MARKER: deployment,
        tags.POLICY: parse_policy(policy).spec(),
        tags.SLOT: slot.isoformat(),
        tags.CLUSTER: cluster,
    }
    if held:
        snapshot_tags[tags.HOLD] = "true"
    created = slot + timedelta(minutes=2) if status == "available" else None
    return rds.add_snapshot(naming.snapshot_id(cluster, slot), cluster, created, snapshot_tags, status=status)


class LambdaClock:
    """The run's remaining time in seconds; only the service's sleeps (and a test) use it up.

    Each sleep is also recorded in the fake's `calls` as ("sleep", seconds), to show what came before it.
    """

    def __init__(self, rds: FakeRds, remaining: float = 900.0) -> None:
        self.rds = rds
        self.remaining = remaining
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.rds.calls.append(("sleep", f"{seconds:.3f}"))
        self.remaining -= seconds

    def remaining_ms(self) -> int:
        return int(self.remaining * 1000)

    def budget(self, margin: float = 30.0) -> service.Budget:
        return service.Budget(remaining=lambda: self.remaining, sleep=self.sleep, margin=margin)


@dataclass
class FakeContext:
    """What Powertools and the handler read from the Lambda context."""

    clock: LambdaClock
    function_name: str = "snapshot-scheduler"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:snapshot-scheduler"
    aws_request_id: str = "c0ffee00-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return self.clock.remaining_ms()
