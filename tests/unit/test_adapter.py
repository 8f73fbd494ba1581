"""The RDS adapter's error mapping, with a real botocore client that never reaches the network."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, ReadTimeoutError
from botocore.stub import Stubber
from snapshot_scheduler.adapters.rds import QuotaExceeded, RdsAdapter, RdsError, SnapshotExists, build_client


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
