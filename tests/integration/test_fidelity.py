"""The fidelity layer against moto, driven by plain boto3 clients: every behaviour it adds to moto.

Each test builds its own layer on a simulated clock inside `mock_aws`, so nothing here needs the engine
except the last group, which runs the real Lambda handler behind the layer (skipped if it cannot import).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.fidelity import RdsFidelity, SimClock, TokenBucket
from tests.support.harness import REGION, FakeLambdaContext, moto_rds, rds_client, scheduled_lambda

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
MARKER = {"snapshot-scheduler:deployment": "test-deployment"}


@pytest.fixture(scope="module")
def moto_module() -> Iterator[None]:
    with moto_rds():
        yield


@pytest.fixture(autouse=True)
def moto(moto_module: None) -> None:
    """One mock for the module (fast clients), an empty RDS for each test."""
    from moto.rds.models import rds_backends  # noqa: PLC0415

    rds_backends.reset()


def layer(**options: Any) -> tuple[RdsFidelity, Any]:
    """A layer on a simulated clock (unlimited bucket unless given) and a standard-mode client behind it."""
    options.setdefault("clock", SimClock(START))
    options.setdefault("bucket", TokenBucket.unlimited())
    attempts = options.pop("attempts", 11)
    fidelity = RdsFidelity(**options)
    return fidelity, rds_client(fidelity, attempts=attempts)


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def pages(client: Any, operation: str, key: str, **params: Any) -> list[list[str]]:
    """Follow Markers by hand: the identifiers on each page."""
    ident = "DBClusterIdentifier" if key == "DBClusters" else "DBClusterSnapshotIdentifier"
    found: list[list[str]] = []
    while True:
        answer = getattr(client, operation)(**params)
        found.append([item[ident] for item in answer[key]])
        if "Marker" not in answer:
            return found
        params["Marker"] = answer["Marker"]


def create_snapshot(client: Any, cluster: str, snapshot: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.create_db_cluster_snapshot(
        DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=snapshot
    )
    return answer["DBClusterSnapshot"]


# --------------------------------------------------------------------------------------------- pagination


def test_describe_clusters_pages_by_max_records_and_follows_the_marker() -> None:
    fidelity, client = layer()
    created = fidelity.create_clusters(45)

    found = pages(client, "describe_db_clusters", "DBClusters", MaxRecords=20)

    assert [len(page) for page in found] == [20, 20, 5]
    assert [ident for page in found for ident in page] == sorted(created)


def test_describe_pages_default_to_100_records() -> None:
    fidelity, client = layer()
    fidelity.create_clusters(150)

    found = pages(client, "describe_db_clusters", "DBClusters")

    assert [len(page) for page in found] == [100, 50]


@pytest.mark.parametrize("operation", ["describe_db_clusters", "describe_db_cluster_snapshots"])
@pytest.mark.parametrize("max_records", [0, 19, 101])
def test_max_records_outside_20_to_100_is_invalid_parameter_value(operation: str, max_records: int) -> None:
    _, client = layer()

    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(MaxRecords=max_records)

    code, message, status = error_of(excinfo)
    assert (code, status) == ("InvalidParameterValue", 400)
    assert "between 20 and 100" in message


def test_a_marker_that_is_not_one_of_ours_is_invalid_parameter_value() -> None:
    _, client = layer()

    with pytest.raises(ClientError) as excinfo:
        client.describe_db_clusters(Marker="%%%")

    assert error_of(excinfo)[0] == "InvalidParameterValue"


def test_snapshot_sweep_filtered_to_manual_pages_past_automated_snapshots() -> None:
    fidelity, client = layer(quota=1000)
    clusters = fidelity.create_clusters(30)  # moto gives each an automated snapshot
    for cluster in clusters:
        fidelity.seed_snapshot(cluster, f"{cluster}-manual", created=START)

    by_filter = pages(
        client,
        "describe_db_cluster_snapshots",
        "DBClusterSnapshots",
        Filters=[{"Name": "snapshot-type", "Values": ["manual"]}],
        MaxRecords=20,
    )
    by_type = pages(client, "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual")
    everything = pages(client, "describe_db_cluster_snapshots", "DBClusterSnapshots")

    assert [len(page) for page in by_filter] == [20, 10]
    assert sorted(ident for page in by_filter for ident in page) == sorted(f"{c}-manual" for c in clusters)
    assert by_type == [sorted(f"{c}-manual" for c in clusters)]
    assert sum(len(page) for page in everything) == 60


def test_a_last_page_that_is_exactly_full_ends_without_a_marker() -> None:
    fidelity, client = layer()
    fidelity.create_clusters(40)

    found = pages(client, "describe_db_clusters", "DBClusters", MaxRecords=20)

    assert [len(page) for page in found] == [20, 20]


def test_optionally_a_full_last_page_carries_a_marker_to_an_empty_page() -> None:
    fidelity, client = layer(marker_on_full_last_page=True)
    fidelity.create_clusters(40)

    found = pages(client, "describe_db_clusters", "DBClusters", MaxRecords=20)
    by_paginator = [
        len(page["DBClusters"])
        for page in client.get_paginator("describe_db_clusters").paginate(PaginationConfig={"PageSize": 20})
    ]

    assert [len(page) for page in found] == [20, 20, 0]
    assert by_paginator == [20, 20, 0]


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        pytest.param(-2, [(0, 20), (18, 38), (36, 45)], id="back-repeats"),
        pytest.param(3, [(0, 20), (23, 43), (46, 46)], id="on-omits"),  # the Marker promised more
    ],
)
def test_shifted_pages_list_records_twice_or_never(by: int, expected: list[tuple[int, int]]) -> None:
    fidelity, client = layer(quota=1000)
    created = sorted(fidelity.create_clusters(45))
    for cluster in created:
        fidelity.seed_snapshot(cluster, f"{cluster}-manual", created=START)
    fidelity.shift_pages("DescribeDBClusters", by)
    fidelity.shift_pages("DescribeDBClusterSnapshots", by)

    clusters = pages(client, "describe_db_clusters", "DBClusters", MaxRecords=20)
    snapshots = pages(
        client, "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual", MaxRecords=20
    )

    assert clusters == [created[first:last] for first, last in expected]
    assert snapshots == [[f"{c}-manual" for c in created[first:last]] for first, last in expected]


def test_pages_shift_only_for_the_two_describes_and_never_so_far_that_a_sweep_stalls() -> None:
    fidelity, _ = layer()

    with pytest.raises(ValueError, match="only the two describes"):
        fidelity.shift_pages("DescribeDBInstances", 1)
    with pytest.raises(ValueError, match="stall"):
        fidelity.shift_pages("DescribeDBClusters", -20)


def test_a_sweep_reads_moto_once_and_serves_later_pages_from_that_read() -> None:
    fidelity, client = layer(quota=1000)
    for cluster in fidelity.create_clusters(5):
        for n in range(20):
            fidelity.seed_snapshot(cluster, f"{cluster}-{n:02d}", created=START)
    reads = 0
    read = fidelity.moto.snapshots

    def counted() -> Any:
        nonlocal reads
        reads += 1
        return read()

    fidelity.moto.snapshots = counted  # type: ignore[method-assign]

    first = pages(client, "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual")
    second = pages(client, "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual")

    assert [len(page) for page in first] == [100] == [len(page) for page in second]
    assert reads == 2  # one per sweep (its first page), none for later pages


def test_without_rereads_a_sweep_serves_the_layers_own_view_until_refresh() -> None:
    # Given a layer told that every change goes through it, and a snapshot made behind its back
    fidelity, client = layer(quota=1000, reread_each_sweep=False)
    fidelity.create_cluster("db")
    create_snapshot(client, "db", "through-the-layer")

    def ids() -> list[str]:
        answer = client.describe_db_cluster_snapshots(SnapshotType="manual")
        return [s["DBClusterSnapshotIdentifier"] for s in answer["DBClusterSnapshots"]]

    assert ids() == ["through-the-layer"]
    create_snapshot(boto3.client("rds", region_name=REGION), "db", "behind-its-back")  # straight to moto

    # Then later sweeps keep serving its own view, until refresh() makes it read moto again
    assert ids() == ["through-the-layer"]
    fidelity.refresh()
    assert ids() == ["behind-its-back", "through-the-layer"]


def test_changes_made_through_the_layer_mid_sweep_show_on_later_pages() -> None:
    fidelity, client = layer(quota=1000)
    fidelity.create_cluster("db")
    for n in range(30):
        fidelity.seed_snapshot("db", f"snap-{n:02d}", created=START)
    first = client.describe_db_cluster_snapshots(SnapshotType="manual", MaxRecords=20)

    create_snapshot(client, "db", "snap-99")
    client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="snap-25")
    rest = client.describe_db_cluster_snapshots(SnapshotType="manual", MaxRecords=20, Marker=first["Marker"])

    assert [s["DBClusterSnapshotIdentifier"] for s in rest["DBClusterSnapshots"]] == [
        *(f"snap-{n}" for n in range(20, 30) if n != 25),
        "snap-99",
    ]


def test_describe_filters_by_cluster_id_arn_and_engine_and_a_missing_cluster_is_not_found() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("pg", engine="aurora-postgresql")
    fidelity.create_cluster("my", engine="aurora-mysql")
    fidelity.create_cluster("graph", engine="neptune")
    arn = client.describe_db_clusters(DBClusterIdentifier="pg")["DBClusters"][0]["DBClusterArn"]

    by_arn = client.describe_db_clusters(DBClusterIdentifier=arn)["DBClusters"]
    by_engine = client.describe_db_clusters(
        Filters=[{"Name": "engine", "Values": ["aurora-mysql", "aurora-postgresql"]}]
    )["DBClusters"]
    with pytest.raises(ClientError) as excinfo:
        client.describe_db_clusters(DBClusterIdentifier="gone")

    assert [c["DBClusterIdentifier"] for c in by_arn] == ["pg"]
    assert [c["DBClusterIdentifier"] for c in by_engine] == ["my", "pg"]
    assert error_of(excinfo)[0::2] == ("DBClusterNotFoundFault", 404)


def test_describe_returns_the_fields_the_engine_reads() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db", engine="aurora-mysql", tags={"snapshot-policy": "daily"})
    fidelity.seed_snapshot("db", "db-snap", created=START - timedelta(days=1), tags=MARKER)

    (cluster,) = client.describe_db_clusters()["DBClusters"]
    (snapshot,) = client.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]

    assert cluster["DBClusterIdentifier"] == "db"
    assert cluster["DBClusterArn"].endswith(":cluster:db")
    assert (cluster["Status"], cluster["Engine"]) == ("available", "aurora-mysql")
    assert cluster["TagList"] == [{"Key": "snapshot-policy", "Value": "daily"}]
    assert cluster["ClusterCreateTime"] == START
    assert snapshot["DBClusterSnapshotIdentifier"] == "db-snap"
    assert snapshot["DBClusterIdentifier"] == "db"
    assert snapshot["DBClusterSnapshotArn"].endswith(":cluster-snapshot:db-snap")
    assert snapshot["SnapshotCreateTime"] == START - timedelta(days=1)
    assert (snapshot["SnapshotType"], snapshot["Status"], snapshot["PercentProgress"]) == ("manual", "available", 100)
    assert snapshot["TagList"] == [{"Key": "snapshot-scheduler:deployment", "Value": "test-deployment"}]


# ------------------------------------------------------------------------------------------------ quota


def test_manual_quota_refuses_with_snapshot_quota_exceeded_and_ignores_automated_snapshots() -> None:
    fidelity, client = layer(quota=3)
    fidelity.create_clusters(5)  # five automated snapshots: they do not count
    fidelity.seed_snapshot("db-0000", "old-1", created=START)
    fidelity.seed_snapshot("db-0000", "old-2", created=START)

    create_snapshot(client, "db-0001", "third")
    with pytest.raises(client.exceptions.SnapshotQuotaExceededFault) as excinfo:
        create_snapshot(client, "db-0002", "fourth")

    assert error_of(excinfo) == ("SnapshotQuotaExceeded", "Cannot create more than 3 manual snapshots", 400)
    assert [s.id for s in fidelity.snapshots()] == ["old-1", "old-2", "third"]
    assert fidelity.calls["CreateDBClusterSnapshot"] == 2  # botocore does not retry the quota fault
    assert fidelity.faults["SnapshotQuotaExceeded"] == 1


def test_snapshots_not_counting_against_the_quota_are_automated_and_aws_backup_ones() -> None:
    fidelity, client = layer(quota=1)
    fidelity.create_cluster("db")
    fidelity.seed_snapshot("db", "rds:db-2026-03-01-03-00", created=START, snapshot_type="automated")
    fidelity.seed_snapshot("db", "awsbackup:job-1", created=START)

    create_snapshot(client, "db", "mine")

    assert fidelity.manual_snapshots_used == 1


def test_deleting_a_manual_snapshot_frees_quota() -> None:
    fidelity, client = layer(quota=1)
    fidelity.create_cluster("db")
    fidelity.seed_snapshot("db", "old", created=START)

    client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="old")
    create_snapshot(client, "db", "new")

    assert [s.id for s in fidelity.snapshots()] == ["new"]


def test_account_attributes_report_manual_cluster_snapshots_used_and_max() -> None:
    fidelity, client = layer(quota=50)
    fidelity.create_clusters(2)
    fidelity.seed_snapshot("db-0000", "old", created=START)
    create_snapshot(client, "db-0001", "new")

    quotas = {q["AccountQuotaName"]: q for q in client.describe_account_attributes()["AccountQuotas"]}

    assert (quotas["ManualClusterSnapshots"]["Used"], quotas["ManualClusterSnapshots"]["Max"]) == (2, 50)
    assert quotas["DBClusters"]["Used"] == 2


# ---------------------------------------------------------------------------------------- cluster state


def test_a_stopped_cluster_is_described_stopped_and_refuses_snapshots_until_restored() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db")

    fidelity.set_status("db", "stopped")
    described = client.describe_db_clusters()["DBClusters"][0]["Status"]
    with pytest.raises(client.exceptions.InvalidDBClusterStateFault) as excinfo:
        create_snapshot(client, "db", "snap")
    fidelity.set_status("db", None)
    created = create_snapshot(client, "db", "snap")

    assert described == "stopped"
    code, message, status = error_of(excinfo)
    assert (code, status) == ("InvalidDBClusterStateFault", 400)
    assert "available state" in message
    assert created["DBClusterSnapshotIdentifier"] == "snap"


def test_a_cluster_busy_for_k_attempts_refuses_exactly_k_snapshots_while_described_available() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db")
    fidelity.make_busy("db", attempts=2)

    outcomes = []
    for _ in range(3):
        try:
            create_snapshot(client, "db", "snap")
            outcomes.append("created")
        except client.exceptions.InvalidDBClusterStateFault:
            outcomes.append("busy")

    assert outcomes == ["busy", "busy", "created"]
    assert client.describe_db_clusters()["DBClusters"][0]["Status"] == "available"
    assert fidelity.calls["CreateDBClusterSnapshot"] == 3  # the SDK does not retry the fault: the service must
    assert fidelity.faults["InvalidDBClusterStateFault"] == 2


def test_a_cluster_busy_until_a_time_shows_its_status_and_refuses_until_then() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db")
    fidelity.make_busy("db", until=START + timedelta(minutes=30), status="backing-up")

    status_during = client.describe_db_clusters()["DBClusters"][0]["Status"]
    with pytest.raises(client.exceptions.InvalidDBClusterStateFault):
        create_snapshot(client, "db", "snap")
    fidelity.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    status_after = client.describe_db_clusters()["DBClusters"][0]["Status"]
    created = create_snapshot(client, "db", "snap")

    assert (status_during, status_after) == ("backing-up", "available")
    assert created["DBClusterSnapshotIdentifier"] == "snap"


def test_make_busy_needs_exactly_one_of_attempts_or_until() -> None:
    fidelity, _ = layer()

    with pytest.raises(ValueError, match="exactly one"):
        fidelity.make_busy("db")
    with pytest.raises(ValueError, match="exactly one"):
        fidelity.make_busy("db", attempts=1, until=START)


def test_snapshot_of_a_missing_cluster_or_a_taken_identifier_gets_moto_s_real_error() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db")
    create_snapshot(client, "db", "snap")

    with pytest.raises(client.exceptions.DBClusterNotFoundFault):
        create_snapshot(client, "gone", "other")
    with pytest.raises(client.exceptions.DBClusterSnapshotAlreadyExistsFault):
        create_snapshot(client, "db", "snap")


# ---------------------------------------------------------------------------------------- snapshot life


def test_a_new_snapshot_is_creating_with_progress_until_its_time_has_passed_on_the_layer_clock() -> None:
    fidelity, client = layer(snapshot_creating_for=timedelta(minutes=20))
    fidelity.create_cluster("db")
    clock: SimClock = fidelity.clock  # type: ignore[assignment]

    answer = create_snapshot(client, "db", "snap")
    seen = []
    for minutes in (10, 10):
        clock.advance(timedelta(minutes=minutes))
        (snap,) = client.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="snap")["DBClusterSnapshots"]
        seen.append((snap["Status"], snap["PercentProgress"], snap["SnapshotCreateTime"]))

    assert (answer["Status"], answer["PercentProgress"], answer["SnapshotCreateTime"]) == ("creating", 0, START)
    assert seen == [("creating", 50, START), ("available", 100, START)]


def test_deleting_a_creating_snapshot_is_refused_until_it_is_available() -> None:
    fidelity, client = layer(snapshot_creating_for=timedelta(minutes=20))
    fidelity.create_cluster("db")
    create_snapshot(client, "db", "snap")

    with pytest.raises(client.exceptions.InvalidDBClusterSnapshotStateFault) as excinfo:
        client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="snap")
    fidelity.clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="snap")

    assert error_of(excinfo)[0::2] == ("InvalidDBClusterSnapshotStateFault", 400)
    assert fidelity.snapshots() == []


def test_a_seeded_snapshot_keeps_its_time_and_can_still_be_creating() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("db")
    fidelity.seed_snapshot("db", "old", created=START - timedelta(days=3), tags=MARKER)
    fidelity.seed_snapshot(
        "db", "running", created=START - timedelta(minutes=5), creating_until=START + timedelta(minutes=5)
    )

    snaps = {s["DBClusterSnapshotIdentifier"]: s for s in client.describe_db_cluster_snapshots()["DBClusterSnapshots"]}

    assert (snaps["old"]["SnapshotCreateTime"], snaps["old"]["Status"]) == (START - timedelta(days=3), "available")
    assert (snaps["running"]["Status"], snaps["running"]["PercentProgress"]) == ("creating", 50)


# ------------------------------------------------------------------------------------------- throttling


def test_an_empty_bucket_answers_throttling_which_standard_retries_absorb_on_the_layer_clock() -> None:
    fidelity, client = layer(bucket=TokenBucket(burst=2, rate=1.0), attempts=11)
    clock: SimClock = fidelity.clock  # type: ignore[assignment]

    answers = [client.describe_db_clusters() for _ in range(4)]
    retries = [answer["ResponseMetadata"]["RetryAttempts"] for answer in answers]

    assert retries[:2] == [0, 0]  # the burst
    assert retries[2] > 0  # the bucket was empty: throttled, backed off on the clock, then served
    assert fidelity.throttled["DescribeDBClusters"] == sum(retries)
    assert fidelity.calls["DescribeDBClusters"] == 4
    assert clock.slept == pytest.approx(fidelity.retry_sleep) and fidelity.retry_sleep > 0


def test_a_client_configured_like_the_engine_retries_throttling_max_attempts_times() -> None:
    fidelity = RdsFidelity(clock=SimClock(START), bucket=TokenBucket(burst=0, rate=0.0))
    config = Config(retries={"mode": "standard", "max_attempts": 3})  # botocore: 3 retries, 4 attempts
    client = fidelity.attach(boto3.client("rds", region_name="us-east-1", config=config))

    with pytest.raises(ClientError) as excinfo:
        client.describe_db_clusters()

    assert error_of(excinfo) == ("Throttling", "Rate exceeded", 400)
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert fidelity.throttled["DescribeDBClusters"] == 4


def test_throttling_reaches_the_caller_as_code_throttling_rate_exceeded_http_400() -> None:
    _, client = layer(bucket=TokenBucket(burst=1, rate=0.001), attempts=1)
    client.describe_db_clusters()

    with pytest.raises(ClientError) as excinfo:
        client.describe_db_clusters()

    assert error_of(excinfo) == ("Throttling", "Rate exceeded", 400)


def test_a_throttled_create_never_reaches_moto() -> None:
    fidelity, client = layer(bucket=TokenBucket(burst=1, rate=0.001), attempts=1)
    fidelity.create_cluster("db")
    client.describe_db_clusters()

    with pytest.raises(ClientError):
        create_snapshot(client, "db", "snap")

    assert fidelity.snapshots() == []
    assert fidelity.throttled["CreateDBClusterSnapshot"] == 1
    assert fidelity.calls["CreateDBClusterSnapshot"] == 0


def test_the_bucket_refills_as_the_layer_clock_moves() -> None:
    fidelity, client = layer(bucket=TokenBucket(burst=1, rate=2.0), attempts=1)
    client.describe_db_clusters()
    with pytest.raises(ClientError):
        client.describe_db_clusters()

    fidelity.clock.advance(timedelta(seconds=0.5))  # type: ignore[attr-defined]

    assert client.describe_db_clusters()["DBClusters"] == []


def test_random_throttling_follows_its_seed() -> None:
    def throttled_pattern(seed: int) -> list[bool]:
        _, client = layer(throttle_probability=0.5, seed=seed, attempts=1)
        pattern = []
        for _ in range(20):
            try:
                client.describe_db_clusters()
                pattern.append(False)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "Throttling"
                pattern.append(True)
        return pattern

    first, again, other = throttled_pattern(7), throttled_pattern(7), throttled_pattern(8)

    assert first == again
    assert first != other
    assert 0 < sum(first) < 20


def test_the_callers_own_before_send_handlers_run_before_the_layer() -> None:
    fidelity, client = layer(bucket=TokenBucket(burst=1, rate=1.0), attempts=1)
    clock: SimClock = fidelity.clock  # type: ignore[assignment]
    # A client-side pacer, registered after the layer as the engine's adapter does: one request per second.
    client.meta.events.register("before-send.rds", lambda **_: clock.sleep(1.0))

    for _ in range(5):
        client.describe_db_clusters()

    assert fidelity.throttled.total() == 0


# ------------------------------------------------------------------------------------ latency and counts


def test_latency_is_slept_on_the_layer_clock_for_every_attempt() -> None:
    fidelity, client = layer(latency=0.25)
    clock: SimClock = fidelity.clock  # type: ignore[assignment]

    for _ in range(4):
        client.describe_db_clusters()

    assert clock.now() == START + timedelta(seconds=1)


def test_counts_calls_by_operation_throttles_and_faults_until_reset() -> None:
    fidelity, client = layer(bucket=TokenBucket(burst=4, rate=0.001), quota=0, attempts=1)
    fidelity.create_cluster("db")
    client.describe_db_clusters()
    client.describe_account_attributes()
    with pytest.raises(ClientError):
        create_snapshot(client, "db", "snap")
    with pytest.raises(ClientError):
        client.describe_db_clusters(MaxRecords=5)
    with pytest.raises(ClientError):
        client.describe_db_clusters()

    counted = (dict(fidelity.calls), dict(fidelity.throttled), dict(fidelity.faults))
    fidelity.reset_counts()

    assert counted == (
        {"DescribeDBClusters": 2, "DescribeAccountAttributes": 1, "CreateDBClusterSnapshot": 1},
        {"DescribeDBClusters": 1},
        {"SnapshotQuotaExceeded": 1, "InvalidParameterValue": 1},
    )
    assert (fidelity.calls.total(), fidelity.throttled.total(), fidelity.faults.total()) == (0, 0, 0)


# ------------------------------------------------------------------------------------ fleet and triggers


def test_helpers_store_identifiers_lower_case_as_rds_does() -> None:
    fidelity, client = layer()
    fidelity.create_cluster("Orders-DB")
    fidelity.seed_snapshot("Orders-DB", "Orders-Snap", created=START)
    fidelity.set_status("ORDERS-DB", "stopped")

    described = client.describe_db_clusters()["DBClusters"][0]
    client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap")

    assert (described["DBClusterIdentifier"], described["Status"]) == ("orders-db", "stopped")
    assert fidelity.snapshots() == []


def test_create_clusters_builds_a_tagged_fleet_of_the_given_engine() -> None:
    fidelity, client = layer()

    created = fidelity.create_clusters(3, prefix="orders", engine="aurora-mysql", tags={"snapshot-policy": "hourly"})

    described = client.describe_db_clusters()["DBClusters"]
    assert created == ["orders-0000", "orders-0001", "orders-0002"]
    assert {(c["Engine"], c["Status"]) for c in described} == {("aurora-mysql", "available")}
    assert all(c["TagList"] == [{"Key": "snapshot-policy", "Value": "hourly"}] for c in described)


def test_an_action_can_run_before_the_nth_call_such_as_deleting_a_cluster_mid_run() -> None:
    fidelity, client = layer()
    fidelity.create_clusters(2)
    fidelity.seed_snapshot("db-0001", "kept", created=START)
    fidelity.on("CreateDBClusterSnapshot", lambda: fidelity.delete_cluster("db-0001"), nth=2)

    create_snapshot(client, "db-0000", "first")
    with pytest.raises(client.exceptions.DBClusterNotFoundFault):
        create_snapshot(client, "db-0001", "second")

    assert [c["DBClusterIdentifier"] for c in client.describe_db_clusters()["DBClusters"]] == ["db-0000"]
    assert [s.id for s in fidelity.snapshots("db-0001")] == ["kept"]


def test_a_client_can_only_be_attached_once_and_only_to_rds() -> None:
    fidelity, client = layer()

    with pytest.raises(ValueError, match="already"):
        fidelity.attach(client)
    with pytest.raises(ValueError, match="not ec2"):
        fidelity.attach(boto3.client("ec2", region_name="us-east-1"))


def test_two_clients_on_one_layer_share_its_bucket_and_state() -> None:
    fidelity, first = layer(bucket=TokenBucket(burst=2, rate=0.001), attempts=1)
    second = rds_client(fidelity, attempts=1)
    fidelity.create_cluster("db")

    create_snapshot(first, "db", "snap")
    seen_by_second = second.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    with pytest.raises(ClientError) as excinfo:
        second.describe_db_clusters()

    assert [s["DBClusterSnapshotIdentifier"] for s in seen_by_second] == ["snap"]
    assert error_of(excinfo)[0] == "Throttling"


# ------------------------------------------------------------------------------ the real Lambda handler


def test_fake_lambda_context_counts_its_budget_down_on_the_clock() -> None:
    clock = SimClock(START)
    context = FakeLambdaContext(clock, budget=timedelta(minutes=15))

    clock.advance(timedelta(minutes=14, seconds=30))

    assert context.get_remaining_time_in_millis() == 30_000
    clock.advance(timedelta(minutes=1))
    assert context.get_remaining_time_in_millis() == 0


def test_the_real_handler_runs_behind_the_layer_with_its_waits_on_the_layer_clock() -> None:
    pytest.importorskip("snapshot_scheduler.handlers.backup")
    fidelity, _ = layer(bucket=TokenBucket(burst=300, rate=12.0))
    fidelity.create_clusters(3, tags={"snapshot-policy": "daily"})
    clock: SimClock = fidelity.clock  # type: ignore[assignment]
    wall = time.monotonic()

    with scheduled_lambda(fidelity, env={"SNAPSHOT_API_RATE": "1", "SNAPSHOT_API_BURST": "1"}) as handler:
        report = handler.run(START)

    assert sorted(item["cluster"] for item in report["created"]) == ["db-0000", "db-0001", "db-0002"]
    assert all(START < s.created <= clock.now() for s in fidelity.snapshots())  # type: ignore[operator]
    assert fidelity.calls["CreateDBClusterSnapshot"] == 3
    assert fidelity.calls["DescribeAccountAttributes"] == 1
    assert clock.slept >= sum(fidelity.calls.values()) - 2  # the pacer's 1 request/s waited on the clock...
    assert time.monotonic() - wall < 5  # ...not on the wall


def test_the_handler_sees_the_lambda_budget_run_out_on_the_layer_clock() -> None:
    pytest.importorskip("snapshot_scheduler.handlers.backup")
    fidelity, _ = layer()
    fidelity.create_clusters(2, tags={"snapshot-policy": "daily"})

    with scheduled_lambda(fidelity, budget=timedelta(seconds=5)) as handler:
        report = handler.run(START)

    assert report["created"] == []
    assert sorted(item["cluster"] for item in report["deferred"]) == ["db-0000", "db-0001"]


def test_scheduled_lambda_restores_the_engine_seams_afterwards() -> None:
    rds = pytest.importorskip("snapshot_scheduler.adapters.rds")
    backup = pytest.importorskip("snapshot_scheduler.handlers.backup")
    before = (rds.build_client, backup.build_client, backup.runtime, backup.Pacer)
    fidelity, _ = layer()

    with scheduled_lambda(fidelity):
        during = rds.build_client

    assert (rds.build_client, backup.build_client, backup.runtime, backup.Pacer) == before
    assert during is not before[0]
