"""A vault run through the real Lambda handler over the in-memory RDS fake: what is copied, what is deleted,
what the report and the metrics say. The fake's shared listing stands for what sources share with the vault.

Identifiers and tags are written out by hand here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from snapshot_scheduler import observability
from snapshot_scheduler.adapters.rds import KmsKeyError, QuotaExceeded, RdsAdapter, RdsError
from snapshot_scheduler.config import Settings
from snapshot_scheduler.handlers import backup
from snapshot_scheduler.model import Snapshot
from snapshot_scheduler.observability import VAULT_METRICS, Metric
from snapshot_scheduler.vault import parse_vault

from tests.support.emf import emf_blobs
from tests.support.fake_rds import FakeContext, FakeRds, LambdaClock, settings

NAMESPACE, SERVICE, DEPLOYMENT = "SnapshotScheduler-UnitTests", "snapshot-scheduler", "vault"
PROD, STRANGER = "111111111111", "999999999999"
EU = "eu-west-1"
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
NOW = SLOT + timedelta(hours=1)
DAY = timedelta(days=1)
MARKER = "snapshot-scheduler:vault-deployment"


@pytest.fixture(autouse=True)
def cold_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(observability.metrics, "namespace", NAMESPACE)
    monkeypatch.setattr(observability.metrics, "service", SERVICE)
    observability.metrics.clear_default_dimensions()
    observability.metrics.clear_metrics()
    yield
    observability.metrics.clear_default_dimensions()
    observability.metrics.clear_metrics()


def vault_settings(**vault: object) -> Settings:
    loaded = {"sources": [{"account": PROD, "regions": [EU]}], "policy": "every=1d keep-daily=3", **vault}
    return settings(deployment=DEPLOYMENT, service_name=SERVICE, metrics_namespace=NAMESPACE, vault=parse_vault(loaded))


def run(
    monkeypatch: pytest.MonkeyPatch,
    rds: FakeRds,
    config: Settings | None = None,
    *,
    at: datetime = NOW,
    dry_run: bool = False,
    remaining: float = 600,
) -> dict[str, Any]:
    rds.now = at
    clock = LambdaClock(rds, remaining=remaining)
    runtime = backup.Runtime(
        settings=config or vault_settings(), rds=cast(RdsAdapter, rds), sleep=clock.sleep, now=lambda: rds.now
    )
    monkeypatch.setattr(backup, "runtime", lambda: runtime)
    event = {"time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "dry_run": dry_run}
    answer: dict[str, Any] = backup.lambda_handler(event, FakeContext(clock))
    return answer


def share(rds: FakeRds, cluster: str, slot: datetime, *, account: str = PROD, encrypted: bool = False) -> Snapshot:
    name = f"{cluster}-{slot:%Y%m%d-%H%M}"
    arn = f"arn:aws:rds:{EU}:{account}:cluster-snapshot:{name}"
    return rds.share(Snapshot(arn, cluster, arn, "available", "manual", slot, {}, encrypted=encrypted))


def copy_id(cluster: str, slot: datetime, account: str = PROD) -> str:
    return f"{cluster}-{slot:%Y%m%d-%H%M}-v{hashlib.sha256(f'{account}:{EU}'.encode()).hexdigest()[:8]}"


def vault_copies(rds: FakeRds) -> dict[str, str]:
    return {s.id: s.status for s in rds.snapshots_by_id.values() if s.tags.get(MARKER)}


def test_a_vault_run_copies_each_share_with_the_vaults_tags_and_never_snapshots_clusters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rds = FakeRds(now=NOW)
    rds.add_cluster("orders", {"snapshot-policy": "daily"})  # a vault's own clusters are none of its business
    shared = share(rds, "orders", SLOT)

    report = run(monkeypatch, rds)

    (copy,) = [s for s in rds.snapshots_by_id.values() if s.tags.get(MARKER)]
    assert copy.id == copy_id("orders", SLOT) and copy.status == "copying"
    assert copy.source_arn == shared.arn
    assert copy.tags == {
        MARKER: DEPLOYMENT,
        "snapshot-scheduler:vault-source-account": PROD,
        "snapshot-scheduler:vault-source-region": EU,
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": SLOT.isoformat(),
        "snapshot-scheduler:vault-policy": "every=1d at=03:00 tz=UTC keep-daily=3",
    }
    assert report["created"] == [] and rds.calls_to("create_snapshot") == []
    assert report["vault"]["started"] == [
        {"cluster": "orders", "source": f"{PROD}/{EU}", "snapshot": copy.id, "share": shared.arn}
    ]
    assert ("copy_snapshot", shared.arn, copy.id) in rds.calls
    assert report["vault"]["shares_counted"] == 1


def test_a_second_run_does_not_copy_again_and_prunes_by_the_vaults_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW)
    for n in range(5):
        share(rds, "orders", SLOT + n * DAY)
        run(monkeypatch, rds, at=NOW + n * DAY)
        rds.finish_copying()
    rds.shared_by_arn.clear()  # the source stops sharing: nothing changes about retention

    report = run(monkeypatch, rds, at=NOW + 5 * DAY)

    assert sorted(vault_copies(rds)) == [copy_id("orders", SLOT + n * DAY) for n in (2, 3, 4)]
    assert report["vault"]["started"] == []
    assert len(rds.calls_to("copy_snapshot")) == 5  # one per slot, never twice


def test_min_retention_days_holds_copies_the_vaults_policy_would_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW)
    config = vault_settings(minRetentionDays=30)
    for n in range(5):
        share(rds, "orders", SLOT + n * DAY)
        run(monkeypatch, rds, config, at=NOW + n * DAY)
        rds.finish_copying()

    assert len(vault_copies(rds)) == 5 and rds.calls_to("delete_snapshot") == []

    report = run(monkeypatch, rds, config, at=NOW + 31 * DAY)

    assert sorted(vault_copies(rds)) == [copy_id("orders", SLOT + n * DAY) for n in (2, 3, 4)]
    assert len(report["vault"]["deleted"]) == 2


def test_shares_that_do_not_count_are_reported_and_counted_never_copied(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rds = FakeRds(now=NOW)
    share(rds, "orders", SLOT, account=STRANGER)
    arn = f"arn:aws:rds:{EU}:{PROD}:cluster-snapshot:orders-before-upgrade"
    rds.share(Snapshot(arn, "orders", arn, "available", "manual", SLOT, {}))

    report = run(monkeypatch, rds)

    assert vault_copies(rds) == {}
    assert [entry["snapshot"] for entry in report["vault"]["ignored"]] == [
        arn,
        f"arn:aws:rds:{EU}:{STRANGER}:cluster-snapshot:orders-20260310-0300",
    ]
    (blob,) = emf_blobs(capsys.readouterr().out)  # no source seen: no per-source blob
    assert blob[Metric.VAULT_SHARES_IGNORED.value] in (2.0, [2.0])


def test_a_full_vault_defers_the_copy_for_quota_after_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW, quota_max=1)
    share(rds, "orders", SLOT)
    rds.add_snapshot("someone-elses", "x", SLOT - DAY)

    report = run(monkeypatch, rds)

    assert [(e["cluster"], e["code"]) for e in report["vault"]["deferred"]] == [("orders", "quota")]
    assert rds.calls_to("copy_snapshot") == []  # the quota read said so: no call to be refused


def test_quota_exceeded_on_a_copy_defers_it_and_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW, quota_max=None)
    share(rds, "orders", SLOT)
    share(rds, "billing", SLOT)
    rds.fail("copy_snapshot", QuotaExceeded("SnapshotQuotaExceeded", "Cannot copy more than 5"), times=1)

    report = run(monkeypatch, rds)

    assert sorted(e["cluster"] for e in report["vault"]["deferred"]) == ["billing", "orders"]
    assert {e["code"] for e in report["vault"]["deferred"]} == {"copy-limit"}
    assert vault_copies(rds) == {}


def test_a_key_the_vault_cannot_use_skips_the_copy_for_kms(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW)
    share(rds, "orders", SLOT, encrypted=True)
    rds.fail("copy_snapshot", KmsKeyError("KMSKeyNotAccessibleFault", "no grant"), times=1)

    report = run(monkeypatch, rds, vault_settings(kmsKey="alias/snapshot-vault"))

    (skipped,) = report["vault"]["skipped"]
    assert skipped["code"] == "kms" and "alias/snapshot-vault" in skipped["reason"]


def test_a_failed_copy_is_deleted_reported_and_copied_again_by_the_next_run_while_still_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rds = FakeRds(now=NOW)
    share(rds, "orders", SLOT)
    run(monkeypatch, rds)
    rds.finish_copying(status="failed")

    failing = run(monkeypatch, rds, at=NOW + timedelta(hours=1))
    retried = run(monkeypatch, rds, at=NOW + timedelta(hours=2))

    assert [e["error"] for e in failing["vault"]["failed"]] == ["CopyFailed"]
    assert [e["snapshot"] for e in failing["vault"]["deleted"]] == [copy_id("orders", SLOT)]
    assert [e["snapshot"] for e in retried["vault"]["started"]] == [copy_id("orders", SLOT)]


def test_a_dry_run_says_what_it_would_copy_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = FakeRds(now=NOW)
    share(rds, "orders", SLOT)

    report = run(monkeypatch, rds, dry_run=True)

    assert [e["snapshot"] for e in report["vault"]["started"]] == [copy_id("orders", SLOT)]
    assert vault_copies(rds) == {} and rds.calls_to("copy_snapshot") == []


def test_the_run_emits_the_vault_metrics_and_per_source_ages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rds = FakeRds(now=NOW)
    share(rds, "orders", SLOT - DAY)
    run(monkeypatch, rds, at=NOW - DAY)
    rds.finish_copying()
    capsys.readouterr()

    report = run(monkeypatch, rds)

    blobs = emf_blobs(capsys.readouterr().out)
    run_blob = next(b for b in blobs if "Heartbeat" in b)
    emitted = {m["Name"] for m in run_blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    counted = VAULT_METRICS - {Metric.VAULT_RECOVERY_POINT_AGE, Metric.VAULT_SOURCE_SILENCE}
    assert {m.value for m in counted} <= emitted
    assert Metric.SNAPSHOTS_CREATED.value not in emitted  # a vault has no snapshots of its own to count
    per_source = {
        (b["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], b["source"]): b for b in blobs if "source" in b
    }
    age = per_source[(Metric.VAULT_RECOVERY_POINT_AGE.value, f"{PROD}/{EU}")]
    assert age["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["deployment", "service", "source"]]
    assert age[Metric.VAULT_RECOVERY_POINT_AGE.value] in (DAY.total_seconds() + 3600, [DAY.total_seconds() + 3600])
    assert (Metric.VAULT_SOURCE_SILENCE.value, f"{PROD}/{EU}") in per_source
    assert report["vault"]["sources"][0]["silent"] is False


def test_a_source_region_that_cannot_be_listed_is_reported_and_the_vaults_own_retention_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rds = FakeRds(now=NOW)
    for n in range(4):
        share(rds, "orders", SLOT + n * DAY)
        run(monkeypatch, rds, at=NOW + n * DAY)
        rds.finish_copying()
    rds.fail("shared_snapshots", RdsError("AccessDenied", "not authorized to describe"), times=1)

    report = run(monkeypatch, rds, at=NOW + 4 * DAY)

    assert [(e["source"], e["error"]) for e in report["vault"]["failed"]] == [(f"*/{EU}", "RegionUnreadable")]
    assert [e["snapshot"] for e in report["vault"]["deleted"]] == [copy_id("orders", SLOT)]  # keep-daily=3
    assert report["vault"]["started"] == []
