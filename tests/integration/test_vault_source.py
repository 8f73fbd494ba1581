"""The source side of a vault through the real handler: a production account shares the newest snapshot of each
DR slot with a vault account, takes the share back after shareHours, keeps a snapshot while it is shared,
skips what the default key makes unshareable, and never shares with any account but the configured ones.

Two accounts behind the fidelity layer on one simulated clock; the vault's view is its own RDS client's
(DescribeDBClusterSnapshots with IncludeShared). Identifiers, tags and report entries are written out by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler.adapters import kms as kms_adapter
from snapshot_scheduler.errors import ConfigError

from tests.integration.scenario import fresh_rds, metric_values, moto_once
from tests.support.fidelity import Accounts, SimClock, TokenBucket
from tests.support.harness import REGION, rds_client, scheduled_lambda

PROD, VAULT, OTHER = "111111111111", "222222222222", "333333333333"
VAULT_REGION = "eu-central-1"
START = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
SHARED = "snapshot-scheduler:shared-vault"
TARGETS: dict[str, Any] = {"vault": {"account": VAULT, "region": VAULT_REGION, "shareHours": 24}}


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def fresh() -> None:
    from moto.kms.models import kms_backends  # noqa: PLC0415

    fresh_rds()
    kms_backends.reset()


class World:
    """Production (where the function runs) and the vault, in one region."""

    def __init__(self) -> None:
        self.accounts = Accounts(SimClock(START - timedelta(minutes=5)))
        self.prod = self.accounts.layer(PROD, REGION, bucket=TokenBucket())
        rds_client(self.prod)
        self.vault = rds_client(self.accounts.layer(VAULT, REGION, bucket=TokenBucket.unlimited()))

    def cluster(self, name: str, *, dr: str = "to=vault", own: str = "every=1h keep-last=3", **options: Any) -> str:
        tags = {"snapshot-policy": own, "snapshot-dr": dr}
        return self.prod.create_cluster(name, tags=tags, created=START - timedelta(days=60), **options)

    def handler(self, targets: Mapping[str, Any] = TARGETS) -> Any:
        return scheduled_lambda(self.prod, env={"SNAPSHOT_DR_TARGETS": json.dumps(targets)})

    def seen_by_vault(self) -> set[str]:
        """The snapshots shared with the vault, as the vault lists them (by ARN), by name."""
        pages = self.vault.get_paginator("describe_db_cluster_snapshots").paginate(
            SnapshotType="shared", IncludeShared=True
        )
        return {
            s["DBClusterSnapshotIdentifier"].rsplit(":", 1)[1] for page in pages for s in page["DBClusterSnapshots"]
        }

    def tags(self, snapshot: str) -> dict[str, str]:
        (found,) = [s for s in self.prod.snapshots() if s.id == snapshot]
        return dict(found.tags)


def hourly(handler: Any, count: int, first: datetime = START) -> list[dict[str, Any]]:
    return [handler.run(first + timedelta(hours=n)) for n in range(count)]


def test_the_newest_snapshot_of_each_dr_slot_is_shared_once_and_the_vault_sees_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    world.cluster("orders")
    capsys.readouterr()
    with world.handler() as handler:
        reports = hourly(handler, 26)  # day 0 03:05 to day 1 04:05
    seen = world.seen_by_vault()

    shared = {r["scheduled_time"]: r["dr"]["shared"] for r in reports if r["dr"]["shared"]}
    assert shared == {
        "2026-03-10T04:05:00+00:00": [
            {
                "cluster": "orders",
                "region": VAULT_REGION,
                "target": "vault",
                "snapshot": "orders-20260310-0300",
                "account": VAULT,
            }
        ],
        "2026-03-11T04:05:00+00:00": [
            {
                "cluster": "orders",
                "region": VAULT_REGION,
                "target": "vault",
                "snapshot": "orders-20260311-0300",
                "account": VAULT,
            }
        ],
    }
    assert seen == {"orders-20260310-0300", "orders-20260311-0300"}
    assert world.tags("orders-20260311-0300")[SHARED] == "2026-03-11T04:05:00Z"
    assert [run["DrSnapshotsShared"] for run in metric_values(capsys)] == [0, 1] + [0] * 22 + [0, 1]
    assert all(r["dr"]["unshared"] == [] and r["dr"]["failed"] == [] for r in reports)


def test_a_share_is_taken_back_after_share_hours_and_only_then_may_retention_delete_the_snapshot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    world.cluster("orders")  # keeps the last 3 hourly snapshots: the shared one would go at day 0 07:05
    first = "orders-20260310-0300"
    states = []
    capsys.readouterr()
    with world.handler() as handler:
        for n in range(28):  # to day 1 06:05
            report = handler.run(START + timedelta(hours=n))
            states.append((report, first in {s.id for s in world.prod.snapshots()}, first in world.seen_by_vault()))
    metrics = metric_values(capsys)

    deleted_at = next(i for i, (r, _, _) in enumerate(states) if first in {e["snapshot"] for e in r["deleted"]})
    unshared_at = next(i for i, (r, _, _) in enumerate(states) if r["dr"]["unshared"])
    assert unshared_at == 26  # day 1 05:05: shared at 04:05 the day before, 24 h is not yet past at 04:05
    assert states[unshared_at][0]["dr"]["unshared"] == [
        {
            "cluster": "orders",
            "region": VAULT_REGION,
            "target": "vault",
            "snapshot": first,
            "shared_since": "2026-03-10T04:05:00+00:00",
        }
    ]
    assert deleted_at == unshared_at + 1  # the next run: no longer shared, retention deletes it
    assert all(exists and seen for _, exists, seen in states[1:unshared_at])  # kept and shared until then
    assert states[unshared_at][1:] == (True, False)  # still there, no longer shared, its tag gone
    assert states[deleted_at][1] is False
    assert metrics[unshared_at]["DrSnapshotsUnshared"] == 1
    assert sum(run["DrSnapshotsUnshared"] for run in metrics) == 1


def test_a_snapshot_under_the_default_key_is_skipped_kms_default_key_with_one_describe_per_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    world.cluster("orders", encrypted=True)  # RDS's default: the account's aws/rds key
    world.cluster("billing", encrypted=True)
    key = world.prod.create_kms_key("alias/ledger")
    world.cluster("ledger", encrypted=True, kms_key=key)
    described: list[str] = []
    original = kms_adapter.build_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.meta.events.register(
            "before-parameter-build.kms.DescribeKey", lambda params, **_: described.append(params["KeyId"])
        )
        return client

    monkeypatch.setattr(kms_adapter, "build_client", counting)
    with world.handler() as handler:
        handler.run(START)
        report = handler.run(START + timedelta(hours=1))

    skipped = {e["cluster"]: e for e in report["dr"]["skipped"]}
    assert sorted(skipped) == ["billing", "orders"]
    assert {e["code"] for e in skipped.values()} == {"kms-default-key"}
    assert "aws/rds" in skipped["orders"]["reason"] and "customer managed key" in skipped["orders"]["reason"]
    assert [e["snapshot"] for e in report["dr"]["shared"]] == ["ledger-20260310-0300"]
    assert sorted(described) == sorted({s.kms_key_id for s in world.prod.snapshots()})  # one per distinct key
    assert len(described) == 2
    assert [(s, add) for s, add, _ in world.prod.shares_asked] == [("ledger-20260310-0300", (VAULT,))]
    assert world.seen_by_vault() == {"ledger-20260310-0300"}


def test_no_account_but_a_configured_one_is_ever_shared_with_one_at_a_time() -> None:
    world = World()
    targets = {
        "vault": {"account": VAULT, "region": VAULT_REGION, "shareHours": 5},
        "other": {"account": OTHER, "region": REGION, "shareHours": 30},
    }
    world.cluster("orders", dr="to=vault every=1d")
    world.cluster("billing", dr="to=other+vault")
    world.cluster("ledger", dr="to=stranger")  # no such target: a DR tag error
    world.cluster("audit", dr="to=vault keep-daily=7")  # keep- words for an account: a DR tag error
    world.cluster("misc", dr="to=all")
    with world.handler(targets) as handler:
        reports = hourly(handler, 30)

    added = [add for _, add, _ in world.prod.shares_asked if add]
    removed = [remove for _, _, remove in world.prod.shares_asked if remove]
    assert added and removed  # shares were made and taken back
    assert all(len(accounts) == 1 and accounts[0] in {VAULT, OTHER} for accounts in added + removed)
    shared_clusters = {e["cluster"] for r in reports for e in r["dr"]["shared"]}
    assert shared_clusters == {"orders", "billing"}
    errors = {e["cluster"] for e in reports[0]["dr"]["errors"]}
    assert errors == {"ledger", "audit", "misc"}


def test_a_target_naming_the_functions_own_account_stops_the_run_before_anything_is_shared() -> None:
    world = World()
    world.cluster("orders")
    own = {"vault": {"account": PROD, "region": VAULT_REGION}}
    with world.handler(own) as handler, pytest.raises(ConfigError, match="the function's own account"):
        handler.run(START)

    assert world.prod.shares_asked == []
    assert world.prod.snapshots() == []


def test_a_share_whose_answer_was_lost_stays_recorded_and_is_taken_back_after_share_hours() -> None:
    # Given RDS applies the day's first share, but every answer to it is lost (the connection drops after the
    # request arrived, for all 11 tries of the SDK)
    world = World()
    world.cluster("orders", own="every=1h keep-last=3")
    first = "orders-20260310-0300"
    world.prod.lose_answers("ModifyDBClusterSnapshotAttribute", attempts=11)
    with world.handler() as handler:
        shared_run = hourly(handler, 2)[1]  # 04:05: shares the 03:00 snapshot
        seen_then, tags_then = world.seen_by_vault(), world.tags(first)
        later = hourly(handler, 26, START + timedelta(hours=2))  # to day 1 05:05

    # Then the run reports the share as failed, and the share RDS made stays recorded: kept, never shared again
    (failed,) = shared_run["dr"]["failed"]
    assert (failed["cluster"], failed["error"]) == ("orders", "ReadTimeoutError")
    assert "may have been made" in failed["message"]
    assert seen_then == {first} and tags_then[SHARED] == "2026-03-10T04:05:00Z"
    assert all(first not in {e["snapshot"] for e in r["deleted"]} for r in later[:-1])
    assert [e["snapshot"] for r in later for e in r["dr"]["shared"]] == ["orders-20260311-0300"]
    # ... and is taken back after shareHours (24), as any share: nobody is left with a share nobody takes back
    unshared = [(r["scheduled_time"], e["snapshot"]) for r in later for e in r["dr"]["unshared"]]
    assert unshared == [("2026-03-11T05:05:00+00:00", first)]
    assert first not in world.seen_by_vault()


def test_a_share_rds_refused_leaves_no_record_and_the_next_run_tries_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a snapshot under the default key whose key KMS will not describe: the share is tried, RDS refuses it
    world = World()
    world.cluster("orders", encrypted=True)
    original = kms_adapter.build_client

    def unreachable(**_: Any) -> None:
        raise OSError("KMS unreachable")

    def kms_down(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.meta.events.register("before-call.kms.DescribeKey", unreachable)
        return client

    monkeypatch.setattr(kms_adapter, "build_client", kms_down)
    with world.handler() as handler:
        reports = hourly(handler, 3)

    # Then each try fails with RDS's answer, no tag keeps the snapshot as shared, and the vault sees nothing
    failures = [e for r in reports for e in r["dr"]["failed"]]
    assert [e["error"] for e in failures] == ["InvalidParameterValue", "InvalidParameterValue"]
    assert not any("may have been made" in e["message"] for e in failures)
    assert all(SHARED not in world.tags(s.id) for s in world.prod.snapshots())
    assert world.seen_by_vault() == set()


def test_the_cli_run_skips_a_default_key_snapshot_as_the_function_does(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an encrypted cluster under RDS's default key, with the vault as a DR target
    from snapshot_scheduler import cli  # noqa: PLC0415
    from snapshot_scheduler.adapters import rds as rds_adapter  # noqa: PLC0415

    world = World()
    world.cluster("orders", encrypted=True)
    with world.handler() as handler:
        handler.run(START)  # the slot's snapshot

    # When an operator runs the deployment from the CLI an hour later
    at = START + timedelta(hours=1)
    world.accounts.clock.advance_to(at)  # type: ignore[attr-defined]
    env = {"SNAPSHOT_DR_TARGETS": json.dumps(TARGETS)}
    capsys.readouterr()
    with scheduled_lambda(world.prod, env=env), pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_client", rds_adapter.build_client)  # the harness's: the layer attached
        patch.setattr(cli, "wall_clock", lambda: at)
        code = cli.main(["--region", REGION, "run", "--json", "--at", at.isoformat()])
    report = json.loads(capsys.readouterr().out)

    # Then the snapshot is skipped for its key, as the function skips it, not tried and refused by RDS
    assert [(e["cluster"], e["code"]) for e in report["dr"]["skipped"]] == [("orders", "kms-default-key")]
    assert report["dr"]["failed"] == [] and world.prod.shares_asked == []
    assert code == 0
