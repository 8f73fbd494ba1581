"""The benchmark's fleet: N clusters on one daily policy, each with about ten snapshots of ours, all due.

Seeded as this deployment's earlier runs would have left it: identifiers from the engine's naming, our
marker, policy, slot and cluster tags. The policy keeps nine daily snapshots and each cluster has ten,
so the measured run deletes exactly one per cluster (the oldest) and creates exactly one (today's slot).

A DR fleet also tags every `dr_every`-th cluster for weekly copies to one target region (`DR_TAG`), on
yesterday's weekday: the DR slot is yesterday's, whose snapshot is available, and its copy is missing, so
every DR cluster is due a copy. The destination holds four earlier weekly copies of each, made as our
copies are made (identifiers, tags, SourceDBClusterSnapshotArn); the DR policy keeps three, so the run
deletes one copy per DR cluster and starts copies up to RDS's limit of five in progress per region (the
others are deferred for the limit: a later run starts them).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from snapshot_scheduler import tags
from snapshot_scheduler.dr import COPY_LIMIT, parse_dr_policy
from snapshot_scheduler.naming import copy_id, snapshot_id
from snapshot_scheduler.policy import WEEKDAYS, parse_policy

from tests.support.fidelity import RdsFidelity

DEPLOYMENT = "bench"
POLICY_TAG_KEY = "snapshot-policy"
KEEP = 9
POLICY = f"every=1d at=03:00 keep-daily={KEEP}"
SNAPSHOTS_PER_CLUSTER = 10
PAGE = 100  # the engine asks for full pages; RDS's most
ACCOUNT = "123456789012"  # moto's
DR_TAG_KEY = "snapshot-dr"
DR_TARGET, DR_REGION = "dr-west", "us-west-2"
DR_KEEP = 3  # weekly copies kept
DR_COPIES = DR_KEEP + 1  # seeded per DR cluster: retention deletes the oldest


def scheduled_time(now: datetime | None = None) -> datetime:
    """The latest 03:00 UTC slot that has started: the run is for it, and every cluster is due."""
    now = now or datetime.now(UTC)
    at = now.replace(hour=3, minute=0, second=0, microsecond=0)
    return at if at <= now else at - timedelta(days=1)


@dataclass(frozen=True)
class Fleet:
    clusters: int
    at: datetime
    per_cluster: int = SNAPSHOTS_PER_CLUSTER
    dr_every: int = 0  # every n-th cluster is DR-tagged; 0: none

    @property
    def label(self) -> str:
        return f"{self.clusters:,}" + (f" + DR {len(self.dr_ids()):,}" if self.dr_every else "")

    def cluster_ids(self) -> list[str]:
        return [f"db-{n:04d}" for n in range(self.clusters)]

    def dr_ids(self) -> list[str]:
        return self.cluster_ids()[:: self.dr_every] if self.dr_every else []

    @property
    def dr_tag(self) -> str:
        """Weekly on yesterday's weekday: the DR slot is yesterday's 03:00, its snapshot is available."""
        weekday = WEEKDAYS[(self.at - timedelta(days=1)).weekday()]
        return f"to={DR_TARGET} every=1w on={weekday} keep-weekly={DR_KEEP}"

    def dr_slots(self) -> list[datetime]:
        """The DR slots of the seeded copies, newest first (the run's DR slot, yesterday, has none)."""
        return [self.at - timedelta(days=1 + 7 * weeks) for weeks in range(1, DR_COPIES + 1)]

    def slots(self) -> list[datetime]:
        """Days before the run's slot, newest first."""
        return [self.at - timedelta(days=days) for days in range(1, self.per_cluster + 1)]

    def minimum_calls(self) -> Counter[str]:
        """The fewest calls that do this run's work in its own region: one sweep over clusters and over manual
        snapshots at full pages, one create per due cluster, one delete per snapshot retention removes, one
        quota read."""
        return Counter(
            {
                "DescribeDBClusters": max(1, math.ceil(self.clusters / PAGE)),
                "DescribeDBClusterSnapshots": max(1, math.ceil(self.clusters * self.per_cluster / PAGE)),
                "DescribeAccountAttributes": 1,
                "CreateDBClusterSnapshot": self.clusters,
                "DeleteDBClusterSnapshot": self.clusters * max(0, self.per_cluster - KEEP),
            }
        )

    def dr_minimum_calls(self) -> Counter[str]:
        """The fewest calls in the DR region: one sweep over its manual snapshots, one quota read, one delete
        per copy retention removes, and the copies RDS lets start (five in progress per region)."""
        dr = len(self.dr_ids())
        if not dr:
            return Counter()
        return Counter(
            {
                "DescribeDBClusterSnapshots": max(1, math.ceil(dr * DR_COPIES / PAGE)),
                "DescribeAccountAttributes": 1,
                "DeleteDBClusterSnapshot": dr * (DR_COPIES - DR_KEEP),
                "CopyDBClusterSnapshot": min(dr, COPY_LIMIT),
            }
        )

    def quiet_minimum_calls(self) -> int:
        """The describes of a dry run right after the run, which reads what the run left: in the DR region
        the kept copies and the copies started."""
        own = self.minimum_calls()
        dr = len(self.dr_ids())
        if not dr:
            return own["DescribeDBClusters"] + own["DescribeDBClusterSnapshots"] + 1
        copies = dr * DR_KEEP + min(dr, COPY_LIMIT)
        return own["DescribeDBClusters"] + own["DescribeDBClusterSnapshots"] + 1 + max(1, math.ceil(copies / PAGE)) + 1


def seed(fidelity: RdsFidelity, fleet: Fleet, dr: RdsFidelity | None = None) -> None:
    """Clusters and their snapshots straight into moto, and the DR region's copies into `dr` (not API
    calls; not counted)."""
    spec = parse_policy(POLICY).spec()
    tagged = set(fleet.dr_ids())
    for cluster in fleet.cluster_ids():
        cluster_tags = {POLICY_TAG_KEY: POLICY, **({DR_TAG_KEY: fleet.dr_tag} if cluster in tagged else {})}
        fidelity.create_cluster(cluster, tags=cluster_tags, created=fleet.at - timedelta(days=365))
        for slot in fleet.slots():
            ours = {tags.MARKER: DEPLOYMENT, tags.POLICY: spec, tags.SLOT: slot.isoformat(), tags.CLUSTER: cluster}
            fidelity.seed_snapshot(cluster, snapshot_id(cluster, slot), created=slot, tags=ours)
    if tagged:
        if dr is None:
            raise ValueError("a DR fleet needs the DR region's layer")
        _seed_copies(fidelity, dr, fleet)


def _seed_copies(source: RdsFidelity, dr: RdsFidelity, fleet: Fleet) -> None:
    """Each DR cluster's earlier weekly copies in the DR region. RDS records a copy under its source's
    cluster, which the DR region does not have: a cluster of that name holds them and then goes."""
    region = source.region or ""
    dr_spec = parse_dr_policy(fleet.dr_tag).spec()
    for cluster in fleet.dr_ids():
        dr.create_cluster(cluster, created=fleet.at - timedelta(days=365))
        for slot in fleet.dr_slots():
            source_arn = f"arn:aws:rds:{region}:{ACCOUNT}:cluster-snapshot:{snapshot_id(cluster, slot)}"
            copy_tags = {
                tags.DR_MARKER: DEPLOYMENT,
                tags.DR_POLICY: dr_spec,
                tags.DR_TARGET: DR_TARGET,
                tags.DR_SOURCE: source_arn,
                tags.DR_SOURCE_REGION: region,
                tags.CLUSTER: cluster,
                tags.SLOT: slot.isoformat(),
            }
            made = slot + timedelta(hours=2)
            dr.seed_snapshot(cluster, copy_id(cluster, slot, region), created=made, tags=copy_tags, copy_of=source_arn)
        dr.delete_cluster(cluster)


def check(fidelity: RdsFidelity, fleet: Fleet) -> list[str]:
    """After the run: each cluster has today's snapshot and its nine newest older ones, nothing else."""
    by_cluster: dict[str, set[str]] = defaultdict(set)
    for snapshot in fidelity.snapshots():
        by_cluster[snapshot.cluster_id].add(snapshot.id)
    problems = []
    for cluster in fleet.cluster_ids():
        kept = [fleet.at, *fleet.slots()[:KEEP]]
        expected = {snapshot_id(cluster, slot) for slot in kept}
        found = by_cluster.pop(cluster, set())
        if found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            problems.append(f"{cluster}: missing {missing}, unexpected {extra}")
    problems.extend(f"snapshots of unknown cluster {cluster}" for cluster in sorted(by_cluster))
    return problems


def check_dr(source: RdsFidelity, dr: RdsFidelity, fleet: Fleet, *, started: bool = True) -> list[str]:
    """After the run: each DR cluster keeps its newest weekly copies, and as many of them as RDS lets copy
    at once (or none, `started` False) have yesterday's copy too, copied from yesterday's snapshot."""
    region = source.region or ""
    found: dict[str, dict[str, str]] = defaultdict(dict)  # cluster -> copy id -> its SourceDBClusterSnapshotArn
    for snapshot in dr.snapshots():
        found[snapshot.cluster_id][snapshot.id] = snapshot.source_arn
    yesterday = fleet.at - timedelta(days=1)
    copying = 0
    problems = []
    for cluster in fleet.dr_ids():
        copies = found.pop(cluster, {})
        kept = {copy_id(cluster, slot, region) for slot in fleet.dr_slots()[:DR_KEEP]}
        new = copy_id(cluster, yesterday, region)
        of = f"arn:aws:rds:{region}:{ACCOUNT}:cluster-snapshot:{snapshot_id(cluster, yesterday)}"
        if new in copies:
            copying += 1
            if copies.pop(new) != of:
                problems.append(f"{cluster}: copy {new} is not of {of}")
        if set(copies) != kept:
            missing, extra = sorted(kept - set(copies)), sorted(set(copies) - kept)
            problems.append(f"{cluster} in {dr.region}: missing {missing}, unexpected {extra}")
    expected = min(len(fleet.dr_ids()), COPY_LIMIT) if started else 0
    if copying != expected:
        problems.append(f"{copying} copies of yesterday's snapshots in {dr.region}, expected {expected}")
    problems.extend(f"copies of unknown cluster {cluster} in {dr.region}" for cluster in sorted(found))
    return problems
