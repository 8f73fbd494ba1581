"""A vault through the real handlers: a production account's runs take snapshots and share them, a vault
account's runs (SNAPSHOT_VAULT) copy what is shared into its own account and region and keep the copies by its
own policy, all behind the fidelity layer (sharing, IncludeShared, copies across accounts and regions that
take hours, the 5-copy limit, KMS) on one simulated clock.

The source's share step here is the account's own: the test shares the snapshot each source run made, as a
source deployment with a vault target does, and takes shares back after three days. Identifiers and tags
are written out by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from snapshot_scheduler.errors import ConfigError

from tests.integration.scenario import fresh_rds, metric_values, moto_once
from tests.support.emf import emf_blobs
from tests.support.fidelity import Accounts, SimClock, TokenBucket
from tests.support.harness import REGION, rds_client, scheduled_lambda

PROD, VAULT, STRANGER = "111111111111", "222222222222", "333333333333"
VAULT_REGION = "eu-central-1"
START = datetime(2026, 3, 1, 3, 5, tzinfo=UTC)
DAY = timedelta(days=1)
MARKER = "snapshot-scheduler:vault-deployment"
SOURCE = f"{PROD}/{REGION}"
VAULT_TARGET = {"vault": {"account": VAULT, "region": VAULT_REGION, "shareHours": 72}}


# One process hosts two deployments here (a Lambda container hosts one): Powertools warns when the
# deployment dimension changes between the source's and the vault's runs.
pytestmark = pytest.mark.filterwarnings("ignore:Dimension 'deployment' has already been added")


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def fresh() -> None:
    from moto.kms.models import kms_backends  # noqa: PLC0415

    fresh_rds()
    kms_backends.reset()


def vault_setting(policy: str = "every=1d keep-daily=7 keep-weekly=4", **extra: Any) -> dict[str, Any]:
    return {"sources": [{"account": PROD, "regions": [REGION]}], "policy": policy, **extra}


class World:
    """Production (us-east-1) and the vault (eu-central-1: it lists shares in us-east-1, where RDS lists
    them, and copies into its own region), and a stranger sharing with the vault."""

    def __init__(self, *, copying_for: timedelta = timedelta(hours=2), **vault: Any) -> None:
        self.accounts = Accounts(SimClock(START - timedelta(minutes=5)))
        self.clock = self.accounts.clock
        self.prod = self.accounts.layer(PROD, REGION, bucket=TokenBucket.unlimited())
        self.prod_rds = rds_client(self.prod)
        self.vault = self.accounts.layer(VAULT, VAULT_REGION, bucket=TokenBucket(), copying_for=copying_for)
        rds_client(self.vault, region=VAULT_REGION)
        rds_client(self.accounts.layer(VAULT, REGION, bucket=TokenBucket()))  # where it lists the shares
        self.stranger = self.accounts.layer(STRANGER, REGION, bucket=TokenBucket.unlimited())
        self.stranger_rds = rds_client(self.stranger)
        self.setting = vault_setting(**vault)
        self.refused: dict[str, str] = {}  # snapshots RDS would not share: why

    def cluster(
        self, name: str, *, policy: str = "every=1d keep-daily=3", dr: str | None = None, **options: Any
    ) -> str:
        tags = {"snapshot-policy": policy, **({"snapshot-dr": dr} if dr else {})}
        return self.prod.create_cluster(name, tags=tags, created=START - timedelta(days=90), **options)

    def sharing_source_run(self, at: datetime) -> dict[str, Any]:
        """The production deployment with the vault as a DR target: its own share step shares and unshares."""
        env = {"SNAPSHOT_DEPLOYMENT": "prod", "SNAPSHOT_DR_TARGETS": json.dumps(VAULT_TARGET)}
        with scheduled_lambda(self.prod, env=env) as handler:
            return handler.run(at)

    def source_run(self, at: datetime) -> dict[str, Any]:
        """The production deployment's run, then its share step: share what it made, unshare after 3 days."""
        with scheduled_lambda(self.prod, env={"SNAPSHOT_DEPLOYMENT": "prod"}) as handler:
            report = handler.run(at)
        for entry in report["created"]:
            try:
                self.share(entry["snapshot"])
            except ClientError as error:  # as the source's share step reports kms-default-key
                self.refused[entry["snapshot"]] = error.response["Error"]["Message"]
        for snapshot in self.prod.snapshots():
            if snapshot.created is not None and at - snapshot.created > 3 * DAY:
                self.share(snapshot.id, remove=True)
        return report

    def vault_run(self, at: datetime, **setting: Any) -> dict[str, Any]:
        env = {
            "SNAPSHOT_DEPLOYMENT": "vault",
            "SNAPSHOT_VAULT": json.dumps({**self.setting, **setting}),
            "AWS_DEFAULT_REGION": VAULT_REGION,  # as Lambda sets it in the vault region
        }
        with scheduled_lambda(self.vault, env=env) as handler:
            return handler.run(at)

    def share(self, snapshot: str, *, remove: bool = False, client: Any = None) -> None:
        key = "ValuesToRemove" if remove else "ValuesToAdd"
        (client or self.prod_rds).modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=snapshot, AttributeName="restore", **{key: [VAULT]}
        )

    def copies(self) -> dict[str, str]:
        """The vault's copies (its marker): identifier -> status."""
        return {s.id: s.status for s in self.vault.snapshots() if s.tags.get(MARKER)}

    def day(self, n: int, *, vault_hours: tuple[int, ...] = (2, 5)) -> list[dict[str, Any]]:
        """Day n: the source's 03:05 run, then vault runs some hours later (the copy takes two)."""
        self.source_run(START + n * DAY)
        return [self.vault_run(START + n * DAY + timedelta(hours=h)) for h in vault_hours]


def copy_name(cluster: str, slot: datetime, account: str = PROD, region: str = REGION) -> str:
    source = hashlib.sha256(f"{account}:{region}".encode()).hexdigest()[:8]
    return f"{cluster}-{slot:%Y%m%d-%H%M}-v{source}"


def slot(n: int) -> datetime:
    return datetime(2026, 3, 1, 3, 0, tzinfo=UTC) + n * DAY


def vault_run_metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """The last vault run's own blob (its per-source metrics go in blobs of their own)."""
    return [run for run in metric_values(capsys) if "VaultCopiesStarted" in run][-1]


def started(reports: list[dict[str, Any]]) -> list[str]:
    return [entry["snapshot"] for report in reports for entry in report["vault"]["started"]]


def test_a_copy_of_each_share_lands_in_the_vault_named_and_tagged_by_the_vault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    world.cluster("orders")

    first, later = world.day(0)

    assert started([first]) == [copy_name("orders", slot(0))]
    assert world.copies() == {copy_name("orders", slot(0)): "available"}
    (copy,) = [s for s in world.vault.snapshots() if s.id == copy_name("orders", slot(0))]
    assert copy.source_arn == f"arn:aws:rds:{REGION}:{PROD}:cluster-snapshot:orders-20260301-0300"
    assert copy.tags == {
        MARKER: "vault",
        "snapshot-scheduler:vault-source-account": PROD,
        "snapshot-scheduler:vault-source-region": REGION,
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": slot(0).isoformat(),
        "snapshot-scheduler:vault-policy": "every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4",
    }
    assert started([later]) == [] and later["created"] == []
    (source,) = later["vault"]["sources"]
    assert source["source"] == SOURCE and source["silent"] is False
    assert source["recovery_point_age_seconds"] == timedelta(hours=5, minutes=5).total_seconds()  # 08:05 - 03:00


def test_a_month_then_the_source_deletes_everything_and_the_vault_keeps_its_copies_by_its_own_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    for name in ("orders", "billing"):
        world.cluster(name)
    reports = [report for n in range(30) for report in world.day(n)]

    # Every slot copied once, in the run after its share; the vault keeps 7 daily and 4 weekly copies.
    assert sorted(started(reports)) == sorted(copy_name(c, slot(n)) for c in ("orders", "billing") for n in range(30))
    kept_days = [29, 28, 27, 26, 25, 24, 23, 21, 14]  # 7 days, then the newest of 3 more ISO weeks (Sundays)
    expected = {copy_name(c, slot(n)): "available" for c in ("orders", "billing") for n in kept_days}
    assert world.copies() == expected

    # The source account deletes everything it can: snapshots, clusters.
    for snapshot in world.prod.snapshots():
        world.prod_rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snapshot.id)
    for name in ("orders", "billing"):
        world.prod.delete_cluster(name)
    capsys.readouterr()
    after = [world.vault_run(START + n * DAY) for n in range(30, 60)]

    assert all(started([r]) == [] and r["vault"]["deleted"] == [] for r in after)
    assert world.copies() == expected  # the vault's policy counts copies, not days: nothing more goes
    (source,) = after[-1]["vault"]["sources"]
    assert source["silent"] is True and source["silence_seconds"] == (START + 59 * DAY - slot(29)).total_seconds()
    blobs = emf_blobs(capsys.readouterr().out)
    silence = [b for b in blobs if b.get("source") == SOURCE and "VaultSourceSilence" in b]
    assert silence[-1]["VaultSourceSilence"] == [(START + 59 * DAY - slot(29)).total_seconds()]


def test_a_month_of_source_runs_sharing_through_their_share_step_and_vault_runs_copying() -> None:
    world = World()
    clusters = ("orders", "billing")
    for name in clusters:
        world.cluster(name, dr="to=vault")
    source, vault = [], []
    for n in range(30):  # the source at 03:05 (snapshot) and 04:05 (share); the vault at 06:05 and 09:05
        source += [world.sharing_source_run(START + n * DAY + timedelta(hours=h)) for h in (0, 1)]
        vault += [world.vault_run(START + n * DAY + timedelta(hours=h)) for h in (3, 6)]

    every_slot = {f"{c}-{slot(n):%Y%m%d-%H%M}" for c in clusters for n in range(30)}
    assert sorted(e["snapshot"] for r in source for e in r["dr"]["shared"]) == sorted(every_slot)
    assert {e["snapshot"] for r in source for e in r["dr"]["unshared"]} >= {
        f"{c}-{slot(n):%Y%m%d-%H%M}" for c in clusters for n in range(26)
    }  # each share taken back after shareHours
    assert sorted(started(vault)) == sorted(copy_name(c, slot(n)) for c in clusters for n in range(30))
    kept_days = [29, 28, 27, 26, 25, 24, 23, 21, 14]
    assert world.copies() == {copy_name(c, slot(n)): "available" for c in clusters for n in kept_days}
    assert all(not r["vault"]["failed"] and not r["vault"]["ignored"] for r in vault)
    assert all(r["vault"]["mass_deletions"] == [] for r in vault)  # rolling retention: one copy at a time


def test_shares_of_strangers_and_names_not_of_a_slot_are_ignored_and_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    world.cluster("orders")
    world.stranger.create_cluster("orders")
    world.stranger.seed_snapshot("orders", "orders-20260301-0300", created=world.clock.now())
    world.share("orders-20260301-0300", client=world.stranger_rds)
    world.prod.seed_snapshot("orders", "orders-before-upgrade", created=world.clock.now())
    world.share("orders-before-upgrade")
    capsys.readouterr()

    report = world.vault_run(START + timedelta(hours=1))

    assert world.copies() == {}
    assert sorted(entry["snapshot"] for entry in report["vault"]["ignored"]) == [
        f"arn:aws:rds:{REGION}:{PROD}:cluster-snapshot:orders-before-upgrade",
        f"arn:aws:rds:{REGION}:{STRANGER}:cluster-snapshot:orders-20260301-0300",
    ]
    (run,) = metric_values(capsys)  # no source seen: no per-source blob
    assert run["VaultSharesIgnored"] == 2 and run["VaultCopiesStarted"] == 0


def test_a_share_revoked_before_its_copy_finished_fails_and_is_copied_again_only_once_shared_again() -> None:
    world = World(copying_for=timedelta(hours=3))
    world.cluster("orders")
    world.source_run(START)
    world.vault_run(START + timedelta(hours=1))
    world.share("orders-20260301-0300", remove=True)

    failed = world.vault_run(START + timedelta(hours=2))
    not_shared = world.vault_run(START + timedelta(hours=3))
    left = world.copies()
    world.share("orders-20260301-0300")
    again = world.vault_run(START + timedelta(hours=4))

    assert [e["error"] for e in failed["vault"]["failed"]] == ["CopyFailed"]
    assert [e["snapshot"] for e in failed["vault"]["deleted"]] == [copy_name("orders", slot(0))]
    assert not_shared["vault"]["started"] == [] and left == {}
    assert started([again]) == [copy_name("orders", slot(0))]


def test_a_sixth_copy_is_deferred_for_the_copy_limit_then_started() -> None:
    world = World(copying_for=timedelta(hours=2))
    for n in range(6):
        world.cluster(f"db{n}")
    world.source_run(START)

    first = world.vault_run(START + timedelta(hours=1))
    second = world.vault_run(START + timedelta(hours=2))  # all five still copying
    third = world.vault_run(START + timedelta(hours=3, minutes=5))

    assert len(first["vault"]["started"]) == 5
    assert [e["code"] for e in first["vault"]["deferred"]] == ["copy-limit"]
    assert second["vault"]["started"] == [] and [e["code"] for e in second["vault"]["deferred"]] == ["copy-limit"]
    assert len(third["vault"]["started"]) == 1
    assert world.vault.faults["SnapshotQuotaExceeded"] == 0  # the budget came from the sweep, not from errors


def test_an_encrypted_cluster_under_a_customer_key_is_copied_under_the_vault_key_one_under_aws_rds_never_arrives() -> (
    None
):
    world = World(kmsKey="alias/snapshot-vault")
    prod_kms = world.accounts.client(PROD, "kms", REGION)
    prod_key = prod_kms.create_key()["KeyMetadata"]["Arn"]
    vault_kms = world.accounts.client(VAULT, "kms", VAULT_REGION)
    vault_key = vault_kms.create_key()["KeyMetadata"]["Arn"]
    vault_kms.create_alias(AliasName="alias/snapshot-vault", TargetKeyId=vault_key)
    world.cluster("ledger", encrypted=True, kms_key=prod_key)
    world.cluster("legacy", encrypted=True)  # under the account's aws/rds key: RDS refuses to share it
    world.source_run(START)

    report = world.vault_run(START + timedelta(hours=1))

    assert (
        list(world.refused) == ["legacy-20260301-0300"] and "default KMS key" in world.refused["legacy-20260301-0300"]
    )
    assert started([report]) == [copy_name("ledger", slot(0))]
    (copy,) = [s for s in world.vault.snapshots() if s.id == copy_name("ledger", slot(0))]
    assert copy.encrypted and copy.kms_key_id == vault_key


def test_min_retention_days_holds_copies_the_vaults_policy_would_delete() -> None:
    world = World(policy="every=1d keep-last=2", minRetentionDays=4)
    world.cluster("orders")
    for n in range(6):
        world.day(n, vault_hours=(2,))  # each copy made at 05:05, available at 07:05

    # Day 5: keep-last=2 keeps the copies of days 3 and 4; day 2's (3 days old) is held by minRetentionDays=4.
    assert sorted(world.copies()) == [copy_name("orders", slot(n)) for n in (2, 3, 4, 5)]
    later = world.vault_run(START + 9 * DAY)
    assert sorted(world.copies()) == [copy_name("orders", slot(n)) for n in (4, 5)]
    assert sorted(e["snapshot"] for e in later["vault"]["deleted"]) == [copy_name("orders", slot(n)) for n in (2, 3)]


def test_a_vault_policy_edited_to_keep_fewer_deletes_no_copy_for_the_policy_change_grace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()  # keep-daily=7 keep-weekly=4
    world.cluster("orders")
    for n in range(7):
        world.day(n, vault_hours=(2,))
    kept = set(world.copies())
    assert len(kept) == 7

    # An operator redeploys the vault with keep-last=1 (a slip): the copies made under the old policy wait.
    capsys.readouterr()
    edited = world.vault_run(START + 7 * DAY, policy="every=1d keep-last=1")
    assert edited["vault"]["deleted"] == [] and set(world.copies()) == kept
    assert sorted(p["snapshot"] for p in edited["pending"]) == sorted(kept)[:-1]
    # ... and says so in the metric the DeletionsPending alarm watches, as a source run does
    assert vault_run_metrics(capsys)["DeletionsPending"] == 6

    # The first copy under the new policy starts the grace; once it has passed, keep-last=1 applies.
    world.source_run(START + 7 * DAY)
    world.vault_run(START + 7 * DAY + timedelta(hours=2), policy="every=1d keep-last=1")
    assert len(world.copies()) == 8
    capsys.readouterr()
    after = world.vault_run(START + 9 * DAY, policy="every=1d keep-last=1")
    assert world.copies() == {copy_name("orders", slot(7)): "available"}
    assert after["pending"] == []
    # Seven of eight copies went in one run: a mass deletion, reported and metered as on the source side
    assert after["vault"]["mass_deletions"] == [f"{PROD}/{REGION}/orders"]
    metrics = vault_run_metrics(capsys)
    assert (metrics["DeletionsPending"], metrics["MassDeletions"]) == (0, 1)


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")  # it failed before publishing
def test_a_vault_naming_its_own_account_as_a_source_stops_before_anything_is_read() -> None:
    world = World()
    world.setting = {"sources": [{"account": VAULT, "regions": [REGION]}], "policy": "keep-daily=7"}

    with pytest.raises(ConfigError, match="the vault's own account"):
        world.vault_run(START)

    assert world.copies() == {}
