"""What makes a snapshot ours: the marker, and every other proof agreeing (model.Snapshot.doubt).

Every snapshot this service writes must pass (whatever the cluster id, zone or slot); each proof that fails
makes a marked snapshot foreign, with a reason naming that proof.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from snapshot_scheduler import tags
from snapshot_scheduler.model import Cluster, Snapshot
from snapshot_scheduler.planning import PolicyContext, plan_run, snapshot_tags

DEPLOYMENT = "prod"
TAG = "snapshot-policy"
CONTEXT = PolicyContext(tag_key=TAG, deployment=DEPLOYMENT, named={}, default_at="03:00", default_tz="UTC")
AT = datetime(2026, 3, 29, 1, 45, tzinfo=UTC)  # Berlin's spring change; 07:15 in Kolkata
LONG_ID = "payments-ledger-primary-cluster-eu-central-1-production-blue"


def made_by_the_service(cluster_id: str, policy: str) -> Snapshot:
    """The snapshot a run would create for this cluster now: its planned identifier and tags."""
    cluster = Cluster(cluster_id, f"arn:aws:rds:eu-west-1:1:cluster:{cluster_id}", "aurora-postgresql", "available", {})
    cluster = replace(cluster, tags={TAG: policy, "team": "payments"})
    (plan,) = plan_run(CONTEXT, [cluster], [], AT).clusters
    assert plan.create is not None
    return Snapshot(
        id=plan.create,
        cluster_id=cluster_id,
        arn=f"arn:aws:rds:eu-west-1:1:cluster-snapshot:{plan.create}",
        status="available",
        snapshot_type="manual",
        created=AT,
        tags=snapshot_tags(CONTEXT, plan),
    )


@pytest.mark.parametrize("cluster_id", ["orders", LONG_ID])
@pytest.mark.parametrize(
    "policy",
    [
        "daily",
        "every=1h keep-last=3",
        "every=1d at=02:30 tz=Europe/Berlin keep-daily=7",
        "every=1d tz=Asia/Kolkata keep-last=7",
    ],
)
def test_every_snapshot_the_service_writes_is_ours(cluster_id: str, policy: str) -> None:
    snapshot = made_by_the_service(cluster_id, policy)

    assert snapshot.doubt() is None
    assert snapshot.managed_by(DEPLOYMENT)
    assert not snapshot.managed_by("staging")


OURS = made_by_the_service("orders", "daily")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"source_arn": "arn:aws:rds:us-west-2:1:cluster-snapshot:orders-x"}, "it is a copy of", id="copy"),
        pytest.param({"snapshot_type": "shared"}, "not a manual one", id="shared"),
        pytest.param({"id": "orders-before-upgrade"}, "its identifier is not 'orders-20260328-0300'", id="own-name"),
        pytest.param({"id": "awsbackup:job-1"}, "its identifier is not", id="aws-backup"),
        pytest.param({"cluster_id": "orders-restored"}, "is not its cluster 'orders-restored'", id="restored"),
        pytest.param({"tags": {tags.SLOT: None}}, "slot tag None is not a time", id="no-slot"),
        pytest.param({"tags": {tags.SLOT: "2026-03-10T03:00:00"}}, "is not a time with a zone", id="naive-slot"),
        pytest.param({"tags": {tags.SLOT: "2026-03-09T03:00:00+00:00"}}, "its identifier is not", id="other-slot"),
        pytest.param({"tags": {tags.CLUSTER: ""}}, "tag '' is not its cluster", id="no-cluster"),
        pytest.param({"tags": {tags.CLUSTER: "Orders--x"}}, "is not its cluster", id="other-cluster"),
    ],
)
def test_a_marked_snapshot_that_fails_one_proof_is_not_ours_and_says_which(
    changes: dict[str, object], reason: str
) -> None:
    if "tags" in changes:  # changed tags; None removes one
        changed = {**OURS.tags, **changes["tags"]}  # type: ignore[dict-item]
        changes = {"tags": {key: value for key, value in changed.items() if value is not None}}
    snapshot = replace(OURS, **changes)  # type: ignore[arg-type]

    doubt = snapshot.doubt()

    assert doubt is not None and reason in doubt
    assert snapshot.marked_by(DEPLOYMENT)
    assert not snapshot.managed_by(DEPLOYMENT)


def test_the_recorded_cluster_is_compared_as_rds_compares_identifiers_without_case() -> None:
    snapshot = replace(OURS, tags={**OURS.tags, tags.CLUSTER: "ORDERS"})

    assert snapshot.managed_by(DEPLOYMENT)


def test_planning_reports_foreign_marked_snapshots_once_and_prunes_only_ours() -> None:
    cluster = Cluster("orders", "arn", "aurora-postgresql", "available", {TAG: "every=1d keep-last=1"})
    copy = replace(OURS, id="orders-copy", created=datetime(2020, 1, 1, tzinfo=UTC))
    unmarked = replace(copy, id="orders-hand-made", tags={})

    plan = plan_run(CONTEXT, [cluster], [copy, copy, unmarked], AT)

    assert [(f.snapshot.id, f.reason) for f in plan.foreign_marked] == [
        (
            "orders-copy",
            "its identifier is not 'orders-20260328-0300', the one made for cluster 'orders' at "
            "2026-03-28T03:00:00+00:00",
        )
    ]
    assert all(not p.delete for p in plan.clusters)
