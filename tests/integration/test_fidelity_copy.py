"""The fidelity layer's copies between regions, driven by plain boto3 clients: what RDS does and moto does not.

Two regions of one account on one simulated clock (`Regions`): a source layer and a destination layer,
each with its own token bucket, quota and pagination. Copies are started in the destination region with
the source's ARN, as RDS requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.fidelity import Regions, SimClock, TokenBucket
from tests.support.harness import moto_rds, rds_client

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SOURCE, DEST, EU = "us-east-1", "us-west-2", "eu-west-1"


@pytest.fixture(scope="module")
def moto_module() -> Iterator[None]:
    with moto_rds():
        yield


@pytest.fixture(autouse=True)
def moto(moto_module: None) -> None:
    from moto.kms.models import kms_backends  # noqa: PLC0415
    from moto.rds.models import rds_backends  # noqa: PLC0415

    rds_backends.reset()
    kms_backends.reset()


class World:
    """A source and a destination region, a boto3 client in each behind its layer."""

    def __init__(self, **dest_options: Any) -> None:
        self.regions = Regions(SimClock(START))
        self.clock = self.regions.clock
        self.source = self.regions.layer(SOURCE, bucket=TokenBucket.unlimited())
        dest_options.setdefault("bucket", TokenBucket.unlimited())
        self.dest = self.regions.layer(DEST, **dest_options)
        self.east = rds_client(self.source, region=SOURCE)
        self.west = rds_client(self.dest, region=DEST)

    def snapshot(self, cluster: str, snapshot: str, *, encrypted: bool = False) -> str:
        """A cluster and an available manual snapshot of it in the source region; the snapshot's ARN."""
        if self.source.record(snapshot) is None and cluster not in {r.id for r in self.source.moto.clusters()}:
            self.source.create_cluster(cluster, encrypted=encrypted)
        self.source.seed_snapshot(cluster, snapshot, created=self.clock.now())
        record = self.source.record(snapshot)
        assert record is not None
        return record.arn

    def copy(self, source_arn: str, target: str, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.west.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=source_arn,
            TargetDBClusterSnapshotIdentifier=target,
            SourceRegion=SOURCE,
            **params,
        )
        return answer["DBClusterSnapshot"]

    def described(self, target: str) -> dict[str, Any]:
        (found,) = self.west.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=target)["DBClusterSnapshots"]
        return found  # type: ignore[no-any-return]


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_copy_is_copying_with_rising_progress_then_available_with_its_source_arn() -> None:
    world = World(copying_for=timedelta(hours=4))
    arn = world.snapshot("orders", "orders-20260301-0300")

    started = world.copy(arn, "orders-dr", Tags=[{"Key": "k", "Value": "v"}])
    world.clock.advance(timedelta(hours=1))
    an_hour_in = world.described("orders-dr")
    world.clock.advance(timedelta(hours=3))
    done = world.described("orders-dr")

    assert (started["Status"], started["PercentProgress"]) == ("copying", 0)
    assert (an_hour_in["Status"], an_hour_in["PercentProgress"]) == ("copying", 25)
    assert (done["Status"], done["PercentProgress"]) == ("available", 100)
    assert done["SourceDBClusterSnapshotArn"] == arn
    assert done["DBClusterSnapshotArn"].split(":")[3] == DEST
    assert done["SnapshotCreateTime"] == START  # when the copy started
    assert done["TagList"] == [{"Key": "k", "Value": "v"}]
    assert (
        "SourceDBClusterSnapshotArn"
        not in world.east.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="orders-20260301-0300")[
            "DBClusterSnapshots"
        ][0]
    )


def test_a_sixth_copy_in_flight_to_one_region_is_refused_with_its_own_message_until_one_finishes() -> None:
    world = World(copying_for=timedelta(hours=2))
    arns = [world.snapshot(f"db{n}", f"db{n}-snap") for n in range(6)]
    for n in range(5):
        world.copy(arns[n], f"db{n}-dr")

    with pytest.raises(ClientError) as excinfo:
        world.copy(arns[5], "db5-dr")
    world.clock.advance(timedelta(hours=2))
    world.copy(arns[5], "db5-dr")

    code, message = error_code(excinfo)
    assert code == "SnapshotQuotaExceeded"
    assert "5" in message and "at a time" in message and "manual snapshots" not in message
    assert world.described("db5-dr")["Status"] == "copying"


def test_a_full_destination_quota_refuses_a_copy_with_the_quota_message() -> None:
    world = World(quota=1)
    arns = [world.snapshot(f"db{n}", f"db{n}-snap") for n in range(2)]
    world.copy(arns[0], "db0-dr")

    with pytest.raises(ClientError) as excinfo:
        world.copy(arns[1], "db1-dr")

    assert error_code(excinfo) == ("SnapshotQuotaExceeded", "Cannot create more than 1 manual snapshots")
    quotas = world.west.describe_account_attributes()["AccountQuotas"]
    assert {"AccountQuotaName": "ManualClusterSnapshots", "Used": 1, "Max": 1} in quotas


def test_deleting_a_copying_copy_cancels_it_and_frees_its_in_flight_place() -> None:
    world = World(copy_limit=1)
    arns = [world.snapshot(f"db{n}", f"db{n}-snap") for n in range(2)]
    world.copy(arns[0], "db0-dr")

    world.west.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="db0-dr")
    world.copy(arns[1], "db1-dr")

    assert {s.id for s in world.dest.snapshots()} == {"db1-dr"}


def test_deleting_the_source_before_the_copy_is_available_fails_the_copy_and_a_failed_copy_can_be_deleted() -> None:
    world = World(copying_for=timedelta(hours=2))
    arn = world.snapshot("orders", "orders-snap")
    world.copy(arn, "orders-dr")
    world.clock.advance(timedelta(hours=1))

    world.east.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap")
    world.clock.advance(timedelta(hours=5))
    failed = world.described("orders-dr")
    world.west.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-dr")

    assert (failed["Status"], failed["PercentProgress"]) == ("failed", 50)
    assert world.dest.snapshots() == []


def test_deleting_the_source_after_the_copy_is_available_leaves_the_copy_alone() -> None:
    world = World(copying_for=timedelta(hours=1))
    arn = world.snapshot("orders", "orders-snap")
    world.copy(arn, "orders-dr")
    world.clock.advance(timedelta(hours=1))

    world.east.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap")

    assert world.described("orders-dr")["Status"] == "available"


def progress(client: Any, target: str) -> tuple[str, int]:
    (found,) = client.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=target)["DBClusterSnapshots"]
    return found["Status"], found["PercentProgress"]


def test_copies_of_one_source_are_queued_across_regions_the_later_at_0_percent_until_the_earlier_ends() -> None:
    world = World(copying_for=timedelta(hours=2))
    eu_layer = world.regions.layer(EU, bucket=TokenBucket.unlimited(), copying_for=timedelta(hours=2))
    eu = rds_client(eu_layer, region=EU)
    arn = world.snapshot("orders", "orders-snap")
    other = world.snapshot("ledger", "ledger-snap")
    world.copy(arn, "orders-dr")
    world.clock.advance(timedelta(minutes=30))
    eu.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="orders-dr-eu", SourceRegion=SOURCE
    )
    eu.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=other, TargetDBClusterSnapshotIdentifier="ledger-dr-eu", SourceRegion=SOURCE
    )

    seen = []
    for _ in range(4):
        world.clock.advance(timedelta(hours=1))
        seen.append((progress(world.west, "orders-dr"), progress(eu, "orders-dr-eu")))
    ledger = progress(eu, "ledger-dr-eu")

    assert seen == [
        (("copying", 75), ("copying", 0)),  # 1h30 in: the west copy runs, the EU one waits its turn
        (("available", 100), ("copying", 25)),  # it began when the west copy ended, 2h after that began
        (("available", 100), ("copying", 75)),
        (("available", 100), ("available", 100)),
    ]
    assert ledger == ("available", 100)  # another source's copy is not queued behind them
    (queued,) = eu.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="orders-dr-eu")["DBClusterSnapshots"]
    assert queued["SnapshotCreateTime"] == START + timedelta(minutes=30)  # when it was asked for


def test_cancelling_the_earlier_copy_of_a_source_lets_the_queued_one_begin_then_and_failures_reach_both() -> None:
    world = World(copying_for=timedelta(hours=2))
    arn = world.snapshot("orders", "orders-snap")
    for target in ("first", "second", "third"):
        world.copy(arn, target)
    world.clock.advance(timedelta(hours=1))

    world.west.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="second")  # cancelled while queued
    world.west.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="first")  # cancelled halfway
    world.clock.advance(timedelta(hours=1))
    third_halfway = progress(world.west, "third")
    world.east.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap")

    assert third_halfway == ("copying", 50)  # began when the first was cancelled, not when it would have ended
    assert progress(world.west, "third") == ("failed", 50)
    assert {s.id for s in world.dest.snapshots()} == {"third"}


def test_a_source_still_creating_cannot_be_copied() -> None:
    world = World()
    world.source.create_cluster("orders")
    world.source.seed_snapshot("orders", "orders-snap", created=START, creating_until=START + timedelta(hours=1))
    record = world.source.record("orders-snap")
    assert record is not None

    with pytest.raises(ClientError) as excinfo:
        world.copy(record.arn, "orders-dr")

    assert error_code(excinfo)[0] == "InvalidDBClusterSnapshotStateFault"


def test_an_unknown_source_is_not_found() -> None:
    world = World()

    with pytest.raises(ClientError) as excinfo:
        world.copy(f"arn:aws:rds:{SOURCE}:123456789012:cluster-snapshot:nothing", "nothing-dr")

    assert error_code(excinfo)[0] == "DBClusterSnapshotNotFoundFault"


def test_an_existing_target_identifier_is_already_exists() -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap")
    world.copy(arn, "orders-dr")

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-dr")

    assert error_code(excinfo)[0] == "DBClusterSnapshotAlreadyExistsFault"


def test_an_encrypted_cross_region_copy_needs_a_destination_key() -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap", encrypted=True)

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-dr")

    code, message = error_code(excinfo)
    assert code == "InvalidParameterValue" and "KMS key" in message


@pytest.mark.parametrize("named_by", ["alias", "arn"])
def test_an_encrypted_copy_with_a_key_of_the_destination_is_encrypted_under_it(named_by: str) -> None:
    world = World()
    key_arn = world.dest.create_kms_key("alias/snapshot-dr")
    arn = world.snapshot("orders", "orders-snap", encrypted=True)

    world.copy(arn, "orders-dr", KmsKeyId="alias/snapshot-dr" if named_by == "alias" else key_arn)

    (copy,) = world.dest.snapshots()
    assert copy.encrypted and copy.kms_key_id == key_arn


@pytest.mark.parametrize("key", ["alias/nobody-made-this", "source-region-key"])
def test_a_key_the_destination_cannot_use_is_kms_key_not_accessible(key: str) -> None:
    world = World()
    if key == "source-region-key":
        key = world.source.create_kms_key("alias/snapshot-dr")  # a key of the source region, not the destination
    arn = world.snapshot("orders", "orders-snap", encrypted=True)

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-dr", KmsKeyId=key)

    assert error_code(excinfo)[0] == "KMSKeyNotAccessibleFault"
    assert world.dest.snapshots() == []


def test_an_unencrypted_source_must_not_be_given_a_key() -> None:
    world = World()
    world.dest.create_kms_key("alias/snapshot-dr")
    arn = world.snapshot("orders", "orders-snap")

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-dr", KmsKeyId="alias/snapshot-dr")

    code, message = error_code(excinfo)
    assert code == "InvalidParameterValue" and "not encrypted" in message


def test_copy_tags_copies_every_tag_and_explicit_tags_replace_them() -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap")
    world.east.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "snapshot-hold", "Value": "true"}])

    world.copy(arn, "with-copy-tags", CopyTags=True)
    world.copy(arn, "with-tags", CopyTags=True, Tags=[{"Key": "mine", "Value": "1"}])

    tags = {s.id: s.tags for s in world.dest.snapshots()}
    assert tags == {"with-copy-tags": {"snapshot-hold": "true"}, "with-tags": {"mine": "1"}}


def test_each_region_has_its_own_bucket_quota_and_counts() -> None:
    regions = Regions(SimClock(START))
    east = regions.layer(SOURCE, bucket=TokenBucket(burst=1, rate=0.0), quota=7)
    west = regions.layer(DEST, bucket=TokenBucket.unlimited(), quota=3)
    east_client = rds_client(east, region=SOURCE, attempts=1)
    west_client = rds_client(west, region=DEST)

    east_client.describe_db_clusters()
    with pytest.raises(ClientError):
        east_client.describe_db_clusters()  # east's bucket is empty
    for _ in range(3):
        west_client.describe_db_clusters()  # west's is not

    assert (east.calls["DescribeDBClusters"], west.calls["DescribeDBClusters"]) == (1, 3)
    assert east.clock is west.clock
    assert (east.quota, west.quota) == (7, 3)


def test_a_layer_refuses_a_client_of_another_region_and_a_region_gets_one_layer() -> None:
    regions = Regions(SimClock(START))
    west = regions.layer(DEST)

    with pytest.raises(ValueError, match="serves region us-west-2"):
        rds_client(west, region=SOURCE)
    with pytest.raises(ValueError, match="already has a layer"):
        regions.layer(DEST)
