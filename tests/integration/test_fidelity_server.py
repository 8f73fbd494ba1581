"""The fidelity layer in front of a moto server on 127.0.0.1 (how the demo and the CLI reach moto)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.support.fidelity import Accounts, RdsFidelity, SimClock, TokenBucket
from tests.support.harness import rds_client

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
PROD, VAULT, AWAY = "111111111111", "222222222222", "us-west-2"


@pytest.fixture
def endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server, emptied, and fake credentials to sign with."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "10000")
    with urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")):
        pass
    return moto_server


def test_pagination_quota_and_snapshot_life_work_in_front_of_a_moto_server(endpoint: str) -> None:
    fidelity = RdsFidelity(clock=SimClock(START), quota=25, snapshot_creating_for=timedelta(minutes=5))
    client = rds_client(fidelity, endpoint_url=endpoint, attempts=1)
    for n in range(25):
        fidelity.create_cluster(f"db-{n:02d}")

    first = client.describe_db_clusters(MaxRecords=20)
    rest = client.describe_db_clusters(MaxRecords=20, Marker=first["Marker"])
    for n in range(25):
        client.create_db_cluster_snapshot(
            DBClusterIdentifier=f"db-{n:02d}", DBClusterSnapshotIdentifier=f"snap-{n:02d}"
        )
    with pytest.raises(client.exceptions.SnapshotQuotaExceededFault):
        client.create_db_cluster_snapshot(DBClusterIdentifier="db-00", DBClusterSnapshotIdentifier="one-too-many")
    with pytest.raises(client.exceptions.InvalidDBClusterSnapshotStateFault):
        client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="snap-00")
    snapshots = client.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]

    assert fidelity.moto.kind == "server"
    assert (len(first["DBClusters"]), len(rest["DBClusters"]), "Marker" in rest) == (20, 5, False)
    assert len(snapshots) == 25
    assert {(s["Status"], s["SnapshotCreateTime"]) for s in snapshots} == {("creating", START)}


def test_throttling_is_retried_over_http_and_a_throttled_create_reaches_no_server(endpoint: str) -> None:
    fidelity = RdsFidelity(clock=SimClock(START), bucket=TokenBucket(burst=1, rate=1.0))
    patient = rds_client(fidelity, endpoint_url=endpoint, attempts=11)
    impatient = rds_client(fidelity, endpoint_url=endpoint, attempts=1)
    fidelity.create_cluster("db")

    served = patient.describe_db_clusters()  # takes the only token
    retried = patient.describe_db_clusters()  # throttled, backs off on the clock until a token is back
    with pytest.raises(ClientError) as excinfo:
        impatient.create_db_cluster_snapshot(DBClusterIdentifier="db", DBClusterSnapshotIdentifier="snap")

    assert (served["ResponseMetadata"]["RetryAttempts"], retried["ResponseMetadata"]["RetryAttempts"] > 0) == (0, True)
    assert excinfo.value.response["Error"]["Code"] == "Throttling"
    assert fidelity.snapshots() == []


def test_a_share_and_a_copy_across_accounts_and_regions_work_in_front_of_a_moto_server(endpoint: str) -> None:
    accounts = Accounts(SimClock(START))
    prod = accounts.layer(PROD, "us-east-1", bucket=TokenBucket.unlimited())
    prod_rds = rds_client(prod, endpoint_url=endpoint)
    vault = {region: accounts.layer(VAULT, region, copying_for=timedelta(hours=2)) for region in ("us-east-1", AWAY)}
    vault_rds = {region: rds_client(layer, region=region, endpoint_url=endpoint) for region, layer in vault.items()}
    prod.create_cluster("orders", engine="aurora-postgresql")
    arns = {}
    for name in ("orders-20260301-0300", "orders-20260302-0300"):
        prod.seed_snapshot("orders", name, created=START, tags={"team": "orders"})
        arns[name] = f"arn:aws:rds:us-east-1:{PROD}:cluster-snapshot:{name}"
        prod_rds.modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=name, AttributeName="restore", ValuesToAdd=[VAULT]
        )

    listed = vault_rds["us-east-1"].describe_db_cluster_snapshots(SnapshotType="shared", IncludeShared=True)
    for name, arn in arns.items():
        vault_rds[AWAY].copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=arn,
            TargetDBClusterSnapshotIdentifier=f"{name}-vault",
            SourceRegion="us-east-1",
            Tags=[{"Key": "vault", "Value": "yes"}],
        )
    prod_rds.modify_db_cluster_snapshot_attribute(
        DBClusterSnapshotIdentifier="orders-20260302-0300", AttributeName="restore", ValuesToRemove=[VAULT]
    )
    accounts.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    copies = vault_rds[AWAY].describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    with pytest.raises(ClientError) as not_shared:
        vault_rds[AWAY].copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=arns["orders-20260302-0300"],
            TargetDBClusterSnapshotIdentifier="again",
            SourceRegion="us-east-1",
        )

    assert sorted(
        (s["DBClusterSnapshotIdentifier"], s["SnapshotType"], s["TagList"]) for s in listed["DBClusterSnapshots"]
    ) == sorted((arn, "shared", []) for arn in arns.values())
    assert {
        (s["DBClusterSnapshotIdentifier"], s["DBClusterIdentifier"], s["Status"], s["SourceDBClusterSnapshotArn"])
        for s in copies
    } == {
        ("orders-20260301-0300-vault", "orders", "available", arns["orders-20260301-0300"]),
        ("orders-20260302-0300-vault", "orders", "failed", arns["orders-20260302-0300"]),  # revoked mid-copy
    }
    assert {tuple(map(tuple, (t.values() for t in s["TagList"]))) for s in copies} == {(("vault", "yes"),)}
    assert not_shared.value.response["Error"]["Code"] == "DBClusterSnapshotNotFoundFault"
    # The stand-in cluster the copy needed on the server is gone, with the automated snapshot moto made of it.
    assert [c.id for layer in vault.values() for c in layer.moto.clusters()] == []
    assert vault[AWAY].snapshots(snapshot_type=None) == vault[AWAY].snapshots()
    assert [s.id for s in prod.snapshots()] == sorted(arns)
