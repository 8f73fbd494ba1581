"""The fidelity layer across accounts, driven by plain boto3 clients: sharing and copying as RDS does them.

A production account shares its snapshots with a vault account; the vault lists what is shared with it and
copies it into its own account, in the production region or another (dr-facts §1.7, §5). All on one
simulated clock (`Accounts`), each account with its own moto backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.fidelity import Accounts, SimClock, TokenBucket
from tests.support.harness import moto_rds, rds_client

START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
PROD, VAULT, OTHER = "111111111111", "222222222222", "333333333333"
HOME, AWAY = "eu-west-1", "eu-central-1"


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
    """Production in HOME; the vault (and another account) in HOME and AWAY; a client for each."""

    def __init__(self, **options: Any) -> None:
        self.accounts = Accounts(SimClock(START))
        self.clock = self.accounts.clock
        options.setdefault("bucket", TokenBucket.unlimited())
        self.prod = self.accounts.layer(PROD, HOME, **options)
        self.prod_rds = rds_client(self.prod, region=HOME)
        self.vault = {region: self.accounts.layer(VAULT, region, **options) for region in (HOME, AWAY)}
        self.vault_rds = {region: rds_client(layer, region=region) for region, layer in self.vault.items()}
        self.other = self.accounts.layer(OTHER, HOME, **options)
        self.other_rds = rds_client(self.other, region=HOME)

    def snapshot(self, cluster: str, snapshot: str, *, encrypted: bool = False, kms_key: str | None = None) -> str:
        """An available manual snapshot in production (its cluster made when new); its ARN."""
        if cluster not in {record.id for record in self.prod.moto.clusters()}:
            self.prod.create_cluster(cluster, encrypted=encrypted, kms_key=kms_key)
        self.prod.seed_snapshot(cluster, snapshot, created=self.clock.now(), tags={"team": "orders"})
        record = self.prod.record(snapshot)
        assert record is not None
        return record.arn

    def share(self, snapshot: str, *accounts: str, remove: tuple[str, ...] = ()) -> None:
        self.prod_rds.modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=snapshot,
            AttributeName="restore",
            ValuesToAdd=list(accounts),
            ValuesToRemove=list(remove),
        )

    def copy(self, arn: str, target: str, *, region: str = AWAY, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.vault_rds[region].copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier=target, SourceRegion=HOME, **params
        )
        return answer["DBClusterSnapshot"]

    def described(self, target: str, *, region: str = AWAY) -> dict[str, Any]:
        answer = self.vault_rds[region].describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=target)
        (found,) = answer["DBClusterSnapshots"]
        return found  # type: ignore[no-any-return]


def shared_with(client: Any, **params: Any) -> list[dict[str, Any]]:
    pages = client.get_paginator("describe_db_cluster_snapshots").paginate(
        SnapshotType="shared", IncludeShared=True, **params
    )
    return [snapshot for page in pages for snapshot in page["DBClusterSnapshots"]]


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def test_each_account_has_its_own_fleet_and_arns() -> None:
    world = World()
    world.prod.create_cluster("orders")
    world.vault[HOME].create_cluster("orders")
    world.vault[HOME].create_cluster("billing")

    prod = world.prod_rds.describe_db_clusters()["DBClusters"]
    vault = world.vault_rds[HOME].describe_db_clusters()["DBClusters"]

    assert [c["DBClusterIdentifier"] for c in prod] == ["orders"]
    assert [c["DBClusterIdentifier"] for c in vault] == ["billing", "orders"]
    assert prod[0]["DBClusterArn"] == f"arn:aws:rds:{HOME}:{PROD}:cluster:orders"
    assert {c["DBClusterArn"].split(":")[4] for c in vault} == {VAULT}
    assert world.accounts.client(VAULT, "sts", HOME).get_caller_identity()["Account"] == VAULT


def test_the_vault_lists_what_is_shared_with_it_by_arn_without_tags_in_pages() -> None:
    world = World()
    arns = [world.snapshot("orders", f"orders-202603{day:02d}-0300") for day in range(1, 26)]
    for n in range(25):
        world.share(f"orders-202603{n + 1:02d}-0300", VAULT)
    world.snapshot("orders", "orders-private")  # not shared
    world.snapshot("orders", "orders-for-other")
    world.share("orders-for-other", OTHER)
    world.vault[HOME].create_cluster("own")
    world.vault[HOME].seed_snapshot("own", "own-snap", created=START)

    listed = shared_with(world.vault_rds[HOME], MaxRecords=20)
    mixed = world.vault_rds[HOME].describe_db_cluster_snapshots(IncludeShared=True)["DBClusterSnapshots"]
    without = world.vault_rds[HOME].describe_db_cluster_snapshots(SnapshotType="shared")["DBClusterSnapshots"]

    assert [s["DBClusterSnapshotIdentifier"] for s in listed] == arns
    assert {s["DBClusterSnapshotArn"] for s in listed} == set(arns)
    assert {(s["SnapshotType"], s["Status"], s["DBClusterIdentifier"]) for s in listed} == {
        ("shared", "available", "orders")
    }
    assert all(s["TagList"] == [] for s in listed)  # production's tags are not readable from the vault
    assert {s["DBClusterSnapshotIdentifier"] for s in mixed if s["SnapshotType"] != "automated"} == {"own-snap", *arns}
    assert without == []  # IncludeShared is what brings them [unconf]
    assert shared_with(world.vault_rds[AWAY]) == []  # shared snapshots are listed in their own region only
    assert [s["DBClusterSnapshotIdentifier"] for s in shared_with(world.other_rds)] == [
        f"arn:aws:rds:{HOME}:{PROD}:cluster-snapshot:orders-for-other"
    ]


def test_the_owners_tags_are_refused_to_the_vault_and_untouched_by_it() -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap")
    world.share("orders-snap", VAULT)
    world.vault[HOME].create_cluster("orders")
    world.vault[HOME].seed_snapshot("orders", "orders-snap", created=START, tags={"mine": "1"})

    with pytest.raises(ClientError) as listing:
        world.vault_rds[HOME].list_tags_for_resource(ResourceName=arn)
    with pytest.raises(ClientError) as tagging:
        world.vault_rds[HOME].add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "snapshot-hold", "Value": "x"}])

    assert error_code(listing) == (
        "InvalidParameterValue",
        "The specified resource name does not match an RDS resource in this region.",
    )
    assert error_code(tagging)[0] == "InvalidParameterValue"
    assert world.prod_rds.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "orders"}]
    assert {s.id: s.tags for s in world.vault[HOME].snapshots()} == {"orders-snap": {"mine": "1"}}


@pytest.mark.parametrize("region", [HOME, AWAY])
def test_a_shared_snapshot_is_copied_into_the_vault_account_copying_then_available(region: str) -> None:
    world = World(copying_for=timedelta(hours=2))
    arn = world.snapshot("orders", "orders-20260301-0300")
    world.share("orders-20260301-0300", VAULT)

    started = world.copy(arn, "orders-20260301-0300-vault", region=region, Tags=[{"Key": "vault", "Value": "yes"}])
    world.clock.advance(timedelta(hours=1))
    halfway = world.described("orders-20260301-0300-vault", region=region)
    world.clock.advance(timedelta(hours=1))
    done = world.described("orders-20260301-0300-vault", region=region)

    assert (started["Status"], halfway["Status"], halfway["PercentProgress"]) == ("copying", "copying", 50)
    assert (done["Status"], done["PercentProgress"]) == ("available", 100)
    assert done["DBClusterSnapshotArn"] == f"arn:aws:rds:{region}:{VAULT}:cluster-snapshot:orders-20260301-0300-vault"
    assert done["SourceDBClusterSnapshotArn"] == arn
    assert done["TagList"] == [{"Key": "vault", "Value": "yes"}]  # the request's tags, never production's
    assert [s.id for s in world.vault[region].snapshots()] == ["orders-20260301-0300-vault"]
    assert world.vault[region].manual_snapshots_used == 1
    assert [s.id for s in world.prod.snapshots()] == ["orders-20260301-0300"]


@pytest.mark.parametrize("how", ["never shared", "shared with another account", "share revoked", "automated"])
def test_a_snapshot_not_shared_with_the_vault_is_not_found_by_it(how: str) -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap")
    if how == "shared with another account":
        world.share("orders-snap", OTHER)
    elif how == "share revoked":
        world.share("orders-snap", VAULT)
        world.share("orders-snap", remove=(VAULT,))
    elif how == "automated":
        (automated,) = world.prod.snapshots(snapshot_type="automated")
        arn = arn.replace("orders-snap", automated.id)

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-vault")

    assert error_code(excinfo) == ("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {arn} not found.")
    assert world.vault[AWAY].snapshots() == []


def test_a_snapshot_made_public_can_be_copied_by_any_account() -> None:
    world = World()
    arn = world.snapshot("orders", "orders-snap")
    world.share("orders-snap", "all")

    world.copy(arn, "orders-vault", region=HOME)
    copied = world.other_rds.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="orders-other"
    )

    assert copied["DBClusterSnapshot"]["DBClusterSnapshotArn"].split(":")[4] == OTHER


def test_an_encrypted_snapshot_is_never_public_and_never_shared_under_the_default_key() -> None:
    world = World()
    world.snapshot("orders", "orders-default", encrypted=True)  # no key given: RDS's aws/rds key
    key = world.prod.create_kms_key("alias/orders")
    world.snapshot("billing", "billing-cmk", encrypted=True, kms_key=key)

    with pytest.raises(ClientError) as public:
        world.share("billing-cmk", "all")
    with pytest.raises(ClientError) as default_key:
        world.share("orders-default", VAULT)
    world.share("billing-cmk", VAULT)

    assert error_code(public)[0] == "InvalidParameterValue" and "encrypted" in error_code(public)[1]
    code, message = error_code(default_key)
    assert code == "InvalidParameterValue" and "default KMS key" in message and "customer managed key" in message
    attributes = world.prod_rds.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier="billing-cmk")
    (restore,) = attributes["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"]
    assert restore["AttributeValues"] == [VAULT]
    kms = world.accounts.client(PROD, "kms", HOME)
    managers = {s.id: kms.describe_key(KeyId=s.kms_key_id)["KeyMetadata"]["KeyManager"] for s in world.prod.snapshots()}
    assert managers == {"orders-default": "AWS", "billing-cmk": "CUSTOMER"}


def test_a_snapshot_still_creating_cannot_be_shared() -> None:
    world = World()
    world.prod.create_cluster("orders")
    world.prod.seed_snapshot("orders", "orders-snap", created=START, creating_until=START + timedelta(hours=1))

    with pytest.raises(ClientError) as excinfo:
        world.share("orders-snap", VAULT)

    assert error_code(excinfo)[0] == "InvalidDBClusterSnapshotStateFault"


def test_an_encrypted_shared_snapshot_is_copied_under_a_vault_key_only() -> None:
    world = World()
    key = world.prod.create_kms_key("alias/orders")
    arn = world.snapshot("orders", "orders-snap", encrypted=True, kms_key=key)
    world.share("orders-snap", VAULT)
    vault_key = world.vault[HOME].create_kms_key("alias/snapshot-vault")

    with pytest.raises(ClientError) as no_key:
        world.copy(arn, "orders-vault", region=HOME)
    world.copy(arn, "orders-vault", region=HOME, KmsKeyId="alias/snapshot-vault")

    assert error_code(no_key)[0] == "InvalidParameterValue"
    (copy,) = world.vault[HOME].snapshots()
    assert copy.encrypted and copy.kms_key_id == vault_key


def test_a_default_key_snapshot_shared_anyway_cannot_be_copied_by_the_vault() -> None:
    world = World(refuse_default_key_share=False)  # as a practitioner saw: RDS took the share
    arn = world.snapshot("orders", "orders-snap", encrypted=True)
    world.share("orders-snap", VAULT)
    world.vault[AWAY].create_kms_key("alias/snapshot-vault")

    with pytest.raises(ClientError) as excinfo:
        world.copy(arn, "orders-vault", KmsKeyId="alias/snapshot-vault")

    code, message = error_code(excinfo)
    assert code == "KMSKeyNotAccessibleFault" and f":{PROD}:key/" in message
    assert world.vault[AWAY].snapshots() == []


@pytest.mark.parametrize("ending", ["share revoked", "source deleted"])
def test_a_copy_fails_when_its_share_ends_before_it_is_available(ending: str) -> None:
    world = World(copying_for=timedelta(hours=2))
    arns = [world.snapshot("orders", f"orders-{n}") for n in range(2)]
    for n in range(2):
        world.share(f"orders-{n}", VAULT, OTHER)
    world.copy(arns[0], "orders-0-vault")
    world.copy(arns[1], "orders-1-vault")
    world.prod.create_kms_key("alias/unused")
    world.other_rds.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=arns[0], TargetDBClusterSnapshotIdentifier="orders-0-other"
    )
    world.clock.advance(timedelta(hours=1))

    if ending == "share revoked":
        world.share("orders-0", remove=(VAULT,))
    else:
        world.prod_rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-0")
    world.clock.advance(timedelta(hours=2))

    failed = world.described("orders-0-vault")
    assert (failed["Status"], failed["PercentProgress"]) == ("failed", 50)
    assert world.described("orders-1-vault")["Status"] == "available"
    (other,) = world.other.snapshots()
    assert other.status == ("available" if ending == "share revoked" else "failed")  # still shared with OTHER


def test_a_share_revoked_after_the_copy_is_available_leaves_the_copy_alone() -> None:
    world = World(copying_for=timedelta(hours=1))
    arn = world.snapshot("orders", "orders-snap")
    world.share("orders-snap", VAULT)
    world.copy(arn, "orders-vault")
    world.clock.advance(timedelta(hours=1))

    world.share("orders-snap", remove=(VAULT,))
    world.prod_rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap")

    assert world.described("orders-vault")["Status"] == "available"


def test_the_vaults_copies_count_against_its_own_in_flight_limit_and_quota() -> None:
    world = World(copying_for=timedelta(hours=2), copy_limit=2)
    arns = [world.snapshot("orders", f"orders-{n}") for n in range(3)]
    for n in range(3):
        world.share(f"orders-{n}", VAULT)
    prod_dr = world.accounts.layer(PROD, AWAY, bucket=TokenBucket.unlimited(), copy_limit=2)
    rds_client(prod_dr, region=AWAY).copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=arns[0], TargetDBClusterSnapshotIdentifier="orders-0-dr", SourceRegion=HOME
    )  # production's own DR copy to AWAY: its account's limit, not the vault's

    world.copy(arns[0], "orders-0-vault")
    world.copy(arns[1], "orders-1-vault")
    with pytest.raises(ClientError) as excinfo:
        world.copy(arns[2], "orders-2-vault")

    code, message = error_code(excinfo)
    assert code == "SnapshotQuotaExceeded" and "at a time" in message
    assert world.vault[AWAY].manual_snapshots_used == 2
