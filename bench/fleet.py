"""The benchmark's fleet: N clusters on one daily policy, each with about ten snapshots of ours, all due.

Seeded as this deployment's earlier runs would have left it: identifiers from the engine's naming, our
marker, policy, slot and cluster tags. The policy keeps nine daily snapshots and each cluster has ten,
so the measured run deletes exactly one per cluster (the oldest) and creates exactly one (today's slot).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from snapshot_scheduler import tags
from snapshot_scheduler.naming import snapshot_id
from snapshot_scheduler.policy import parse_policy

from tests.support.fidelity import RdsFidelity

DEPLOYMENT = "bench"
POLICY_TAG_KEY = "snapshot-policy"
KEEP = 9
POLICY = f"every=1d at=03:00 keep-daily={KEEP}"
SNAPSHOTS_PER_CLUSTER = 10
PAGE = 100  # the engine asks for full pages; RDS's most


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

    def cluster_ids(self) -> list[str]:
        return [f"db-{n:04d}" for n in range(self.clusters)]

    def slots(self) -> list[datetime]:
        """Days before the run's slot, newest first."""
        return [self.at - timedelta(days=days) for days in range(1, self.per_cluster + 1)]

    def minimum_calls(self) -> Counter[str]:
        """The fewest calls that do this run's work: one sweep over clusters and over manual snapshots at
        full pages, one create per due cluster, one delete per snapshot retention removes, one quota read."""
        return Counter(
            {
                "DescribeDBClusters": max(1, math.ceil(self.clusters / PAGE)),
                "DescribeDBClusterSnapshots": max(1, math.ceil(self.clusters * self.per_cluster / PAGE)),
                "DescribeAccountAttributes": 1,
                "CreateDBClusterSnapshot": self.clusters,
                "DeleteDBClusterSnapshot": self.clusters * max(0, self.per_cluster - KEEP),
            }
        )


def seed(fidelity: RdsFidelity, fleet: Fleet) -> None:
    """Clusters and their snapshots straight into moto (not API calls; not counted)."""
    spec = parse_policy(POLICY).spec()
    for cluster in fleet.cluster_ids():
        fidelity.create_cluster(cluster, tags={POLICY_TAG_KEY: POLICY}, created=fleet.at - timedelta(days=365))
        for slot in fleet.slots():
            ours = {tags.MARKER: DEPLOYMENT, tags.POLICY: spec, tags.SLOT: slot.isoformat(), tags.CLUSTER: cluster}
            fidelity.seed_snapshot(cluster, snapshot_id(cluster, slot), created=slot, tags=ours)


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
