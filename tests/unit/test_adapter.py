"""The RDS adapter's error mapping, with a real botocore client that never reaches the network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, NoCredentialsError, ReadTimeoutError
from botocore.stub import Stubber
from snapshot_scheduler.adapters.rds import (
    KmsKeyError,
    QuotaExceeded,
    RdsAdapter,
    RdsError,
    SnapshotExists,
    build_client,
)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return build_client(region="eu-west-1")


def test_a_network_error_the_sdk_could_not_retry_past_is_an_rds_error(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def timeout(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://rds.eu-west-1.amazonaws.com")

    monkeypatch.setattr(client, "delete_db_cluster_snapshot", timeout)

    with pytest.raises(RdsError) as raised:
        RdsAdapter(client).delete_snapshot("orders-20260310-0300")

    assert raised.value.code == "ReadTimeoutError"


def test_the_quota_error_code_without_fault_maps_to_quota_exceeded(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("create_db_cluster_snapshot", service_error_code="SnapshotQuotaExceeded")
        with pytest.raises(QuotaExceeded):
            RdsAdapter(client).create_snapshot("orders-20260310-0300", "orders", {})


def test_already_exists_says_whether_the_sdk_had_retried(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def exists_after_a_retry(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "DBClusterSnapshotAlreadyExistsFault", "Message": "exists"},
                "ResponseMetadata": {"RetryAttempts": 1},
            },
            "CreateDBClusterSnapshot",
        )

    monkeypatch.setattr(client, "create_db_cluster_snapshot", exists_after_a_retry)

    with pytest.raises(SnapshotExists) as raised:
        RdsAdapter(client).create_snapshot("orders-20260310-0300", "orders", {})

    assert raised.value.retried


def test_a_configuration_error_is_not_mistaken_for_an_rds_failure(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_credentials(**_: Any) -> None:
        raise NoCredentialsError

    monkeypatch.setattr(client, "delete_db_cluster_snapshot", no_credentials)

    with pytest.raises(NoCredentialsError):  # the CLI turns it into exit status 2 with a plain message
        RdsAdapter(client).delete_snapshot("orders-20260310-0300")


class _Body(BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


def _snapshot_page(snapshots: list[tuple[str, str]], marker: str | None) -> bytes:
    """A DescribeDBClusterSnapshots answer as RDS writes it; each tag value holds an escaped <Marker>."""
    members = "".join(
        f"<DBClusterSnapshot><DBClusterSnapshotIdentifier>{ident}</DBClusterSnapshotIdentifier>"
        f"<DBClusterIdentifier>orders</DBClusterIdentifier><SnapshotCreateTime>{created}</SnapshotCreateTime>"
        "<Status>available</Status><SnapshotType>manual</SnapshotType>"
        "<TagList><Tag><Key>note</Key><Value>&lt;Marker&gt;decoy&lt;/Marker&gt;</Value></Tag></TagList>"
        "</DBClusterSnapshot>"
        for ident, created in snapshots
    )
    tail = f"<Marker>{marker}</Marker>" if marker else ""
    return (
        '<DescribeDBClusterSnapshotsResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
        f"<DescribeDBClusterSnapshotsResult><DBClusterSnapshots>{members}</DBClusterSnapshots>{tail}"
        "</DescribeDBClusterSnapshotsResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
        "</DescribeDBClusterSnapshotsResponse>"
    ).encode()


# Three pages chained by Markers (one with an XML entity in it), keyed by the Marker that asks for them.
def test_a_cluster_looked_up_by_identifier_is_found_of_any_engine_or_none_when_rds_has_none(client: Any) -> None:
    found = {"DBClusterIdentifier": "Orders", "Engine": "neptune", "Status": "available", "TagList": []}
    with Stubber(client) as stub:
        stub.add_response("describe_db_clusters", {"DBClusters": [found]}, {"DBClusterIdentifier": "orders"})
        stub.add_client_error("describe_db_clusters", service_error_code="DBClusterNotFoundFault", http_status_code=404)
        adapter = RdsAdapter(client)
        cluster = adapter.cluster("orders")
        gone = adapter.cluster("gone")

    assert cluster is not None and (cluster.id, cluster.engine) == ("orders", "neptune")
    assert gone is None


def test_a_copy_is_read_with_its_source_and_progress(client: Any) -> None:
    copy = {
        "DBClusterSnapshotIdentifier": "orders-20260310-0300",
        "DBClusterIdentifier": "orders",
        "SnapshotType": "manual",
        "Status": "copying",
        "PercentProgress": 40,
        "SourceDBClusterSnapshotArn": "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:orders-20260310-0300",
    }
    with Stubber(client) as stub:
        stub.add_response("describe_db_cluster_snapshots", {"DBClusterSnapshots": [copy]})
        snapshot = RdsAdapter(client).snapshot("orders-20260310-0300")

    assert snapshot is not None and snapshot.source_arn == copy["SourceDBClusterSnapshotArn"]
    assert (snapshot.status, snapshot.progress) == ("copying", 40)


PAGES = {
    "": ([("s1", "2026-11-18T03:00:00.123Z")], "m&amp;2"),
    "m&2": ([("s2", "2026-11-19T03:00:00+01:00")], "m3"),
    "m3": ([("s3", "1763434800")], None),  # not ISO 8601: botocore's own parser reads it (epoch seconds)
}


def _serve_pages(client: Any) -> list[str]:
    """Answer the describe from PAGES without a network; returns the Markers asked for, in order."""
    asked: list[str] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        marker = parse_qs(str(request.body)).get("Marker", [""])[0]
        asked.append(marker)
        snapshots, next_marker = PAGES[marker]
        return AWSResponse(
            request.url, 200, {"Content-Type": "text/xml"}, _Body(_snapshot_page(snapshots, next_marker))
        )

    client.meta.events.register("before-send.rds.DescribeDBClusterSnapshots", send)
    return asked


def test_the_snapshot_sweep_follows_every_marker_once_and_reads_times_with_their_zones(client: Any) -> None:
    asked = _serve_pages(client)

    snapshots = RdsAdapter(client).manual_snapshots()

    assert [s.id for s in snapshots] == ["s1", "s2", "s3"]
    assert asked == ["", "m&2", "m3"]  # one request per page: the decoy in the tags was not taken for a Marker
    assert [s.created for s in snapshots] == [
        datetime(2026, 11, 18, 3, 0, 0, 123000, tzinfo=UTC),
        datetime(2026, 11, 19, 2, 0, tzinfo=UTC),
        datetime(2025, 11, 18, 3, 0, tzinfo=UTC),
    ]


def test_the_next_page_is_requested_while_this_page_is_still_being_parsed(client: Any) -> None:
    asked = _serve_pages(client)
    second_page_sent = threading.Event()
    client.meta.events.register(
        "before-send.rds.DescribeDBClusterSnapshots",
        lambda request, **_: second_page_sent.set() if "Marker=m" in str(request.body) else None,
    )
    overlapped: list[bool] = []

    def slow_parse(response_dict: Any, **_: Any) -> None:  # the first page's parse waits for the second request
        if b"s1" in response_dict["body"]:
            overlapped.append(second_page_sent.wait(timeout=10))

    rds = RdsAdapter(client)
    client.meta.events.register_last("before-parse.rds", slow_parse)  # after the adapter's own hook

    snapshots = rds.manual_snapshots()

    assert overlapped == [True]
    assert [s.id for s in snapshots] == ["s1", "s2", "s3"]
    assert asked == ["", "m&2", "m3"]


def test_a_page_is_parsed_only_once_the_next_page_is_requested(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The next request's thread must not wait for the GIL behind this page's parse (up to 5 ms a page).
    monkeypatch.setattr("snapshot_scheduler.adapters.rds.HANDOFF_WAIT", 10.0)  # no timing here: order only
    asked = _serve_pages(client)
    sent: list[str] = []
    client.meta.events.register_first(
        "before-send.rds.DescribeDBClusterSnapshots", lambda request, **_: sent.append(str(request.body))
    )
    parsed_after: list[int] = []
    rds = RdsAdapter(client)
    client.meta.events.register_last("before-parse.rds", lambda **_: parsed_after.append(len(sent)))

    snapshots = rds.manual_snapshots()

    assert parsed_after == [2, 3, 3]  # page 1 parsed after page 2 was sent, page 2 after page 3, the last at once
    assert [s.id for s in snapshots] == ["s1", "s2", "s3"]
    assert asked == ["", "m&2", "m3"]


SOURCE_ARN = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:orders-20260310-0300"


def copy(client: Any, kms_key: str | None) -> None:
    RdsAdapter(client).copy_snapshot(
        SOURCE_ARN, "orders-20260310-0300-dr-useast1", {"k": "v"}, kms_key=kms_key, source_region="us-east-1"
    )


@pytest.mark.parametrize("kms_key", [None, "alias/snapshot-dr"])
def test_a_copy_is_called_with_the_source_arn_explicit_tags_and_a_key_only_when_given(
    client: Any, kms_key: str | None
) -> None:
    expected = {
        "SourceDBClusterSnapshotIdentifier": SOURCE_ARN,
        "TargetDBClusterSnapshotIdentifier": "orders-20260310-0300-dr-useast1",
        "Tags": [{"Key": "k", "Value": "v"}],
        "SourceRegion": "us-east-1",  # boto3 turns it into a PreSignedUrl for the source region
    }
    if kms_key:
        expected["KmsKeyId"] = kms_key
    with Stubber(client) as stub:
        stub.add_response("copy_db_cluster_snapshot", {}, expected)
        copy(client, kms_key)
        stub.assert_no_pending_responses()


def test_a_key_the_copy_cannot_use_is_a_kms_key_error(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("copy_db_cluster_snapshot", service_error_code="KMSKeyNotAccessibleFault")
        with pytest.raises(KmsKeyError):
            copy(client, "alias/nobody")


def test_a_copy_from_the_vaults_own_region_sends_no_source_region(client: Any) -> None:
    shared = "arn:aws:rds:eu-west-1:111111111111:cluster-snapshot:orders-20260310-0300"
    expected = {
        "SourceDBClusterSnapshotIdentifier": shared,
        "TargetDBClusterSnapshotIdentifier": "orders-20260310-0300-v0a1b2c3d",
        "Tags": [{"Key": "k", "Value": "v"}],
        "KmsKeyId": "alias/snapshot-vault",
    }
    with Stubber(client) as stub:
        stub.add_response("copy_db_cluster_snapshot", {}, expected)
        RdsAdapter(client).copy_snapshot(
            shared,
            "orders-20260310-0300-v0a1b2c3d",
            {"k": "v"},
            kms_key="alias/snapshot-vault",
            source_region="eu-west-1",
        )
        stub.assert_no_pending_responses()


def test_the_shared_listing_asks_for_shared_snapshots_included_page_by_page(client: Any) -> None:
    arn = "arn:aws:rds:eu-west-1:111111111111:cluster-snapshot:orders-20260310-0300"
    page = {
        "DBClusterSnapshots": [
            {"DBClusterSnapshotIdentifier": arn, "DBClusterSnapshotArn": arn, "DBClusterIdentifier": "orders"}
        ]
    }
    with Stubber(client) as stub:
        asked = {"SnapshotType": "shared", "IncludeShared": True, "MaxRecords": 100}
        stub.add_response("describe_db_cluster_snapshots", {**page, "Marker": "m2"}, asked)
        stub.add_response("describe_db_cluster_snapshots", page, {**asked, "Marker": "m2"})
        shared = RdsAdapter(client).shared_snapshots()
        stub.assert_no_pending_responses()

    assert [(s.arn, s.cluster_id) for s in shared] == [(arn, "orders")] * 2


def test_a_share_adds_or_removes_exactly_one_account_id(client: Any) -> None:
    shared = {"DBClusterSnapshotIdentifier": "orders-20260310-0300", "AttributeName": "restore"}
    with Stubber(client) as stub:
        stub.add_response("modify_db_cluster_snapshot_attribute", {}, {**shared, "ValuesToAdd": ["222222222222"]})
        stub.add_response("modify_db_cluster_snapshot_attribute", {}, {**shared, "ValuesToRemove": ["222222222222"]})
        RdsAdapter(client).share_snapshot("orders-20260310-0300", "222222222222")
        RdsAdapter(client).unshare_snapshot("orders-20260310-0300", "222222222222")
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("account", ["all", "All", "22222222222", "222222222222,333333333333", "222222222222\n", ""])
def test_a_share_with_anything_but_one_account_id_is_refused_before_any_call(client: Any, account: str) -> None:
    with Stubber(client) as stub, pytest.raises(ValueError, match="only a 12-digit account id"):
        RdsAdapter(client).share_snapshot("orders-20260310-0300", account)
        stub.assert_no_pending_responses()
