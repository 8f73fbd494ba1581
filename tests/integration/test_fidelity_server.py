"""The fidelity layer in front of a moto server on 127.0.0.1 (how the demo and the CLI reach moto)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.support.fidelity import RdsFidelity, SimClock, TokenBucket
from tests.support.harness import rds_client

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only these tests need the server

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def endpoint(server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server, emptied, and fake credentials to sign with."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "10000")
    with urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST")):
        pass
    return server


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
