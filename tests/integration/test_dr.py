"""Disaster-recovery copies through the real handler: two regions of one account behind the fidelity layer
(copies that take hours, the 5-copy limit, KMS rules, SourceDBClusterSnapshotArn), one simulated clock.

Identifiers and tags are written out by hand, so a renamed key or a changed identifier fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.scenario import fresh_rds, hours, metric_values, moto_once, seed_ours
from tests.support.fidelity import Regions, SimClock, TokenBucket
from tests.support.harness import rds_client, scheduled_lambda

SOURCE, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
START = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
OWN = "every=1d keep-daily=7"
OWN_SPEC = "every=1d at=03:00 tz=UTC keep-daily=7"
DR_TAG = "snapshot-dr"
DR = "to=dr-west keep-daily=3"
DR_SPEC = "to=dr-west every=1d at=03:00 tz=UTC keep-daily=3"
DR_MARKER = "snapshot-scheduler:dr-deployment"
TARGETS = {"dr-west": {"region": WEST, "kmsKey": "alias/snapshot-dr"}}


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
    """The source region (where the function runs) and the DR region, each behind its layer."""

    def __init__(self, *, copying_for: timedelta = timedelta(hours=3), **west: Any) -> None:
        self.regions = Regions(SimClock(START - timedelta(minutes=5)))
        self.clock = self.regions.clock
        self.east = self.regions.layer(SOURCE, bucket=TokenBucket())
        self.west = self.regions.layer(WEST, bucket=TokenBucket(), copying_for=copying_for, **west)
        self.east_client = rds_client(self.east, region=SOURCE)
        rds_client(self.west, region=WEST)

    def cluster(self, name: str, *, dr: str | None = DR, encrypted: bool = False) -> str:
        tags = {"snapshot-policy": OWN, **({DR_TAG: dr} if dr is not None else {})}
        return self.east.create_cluster(name, tags=tags, encrypted=encrypted, created=START - timedelta(days=60))

    def handler(self, targets: Mapping[str, Any] = TARGETS, **env: str) -> Any:
        return scheduled_lambda(self.east, env={"SNAPSHOT_DR_TARGETS": json.dumps(targets), **env})

    def copies(self) -> dict[str, str]:
        """Copy identifier -> status in the DR region (our DR marker only)."""
        return {s.id: s.status for s in self.west.snapshots() if s.tags.get(DR_MARKER)}


def dr(report: Mapping[str, Any], kind: str) -> list[dict[str, str]]:
    return list(report["dr"][kind])


def copy_name(cluster: str, slot: datetime = SLOT) -> str:
    return f"{cluster}-{slot:%Y%m%d-%H%M}-dr-useast1"


def day(handler: Any, d: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Day `d`'s 03:05 run (the cluster's own snapshot) and 04:05 run (its copy: the source is available)."""
    return handler.run(START + timedelta(days=d)), handler.run(START + timedelta(days=d, hours=1))


def test_a_copy_starts_once_its_source_is_available_and_is_copying_for_hours_across_runs() -> None:
    world = World(copying_for=timedelta(hours=3))
    world.cluster("orders")
    with world.handler() as handler:
        own, first = day(handler, 0)
        statuses, reports = [], []
        for hour in range(2, 6):
            reports.append(handler.run(START + timedelta(hours=hour)))
            statuses.append(world.copies()[copy_name("orders")])

    assert [e["snapshot"] for e in own["created"]] == ["orders-20260310-0300"]
    assert dr(own, "started") == [] and own["dr"]["out_of_policy"] == []  # its source is being made
    assert dr(first, "started") == [
        {
            "cluster": "orders",
            "region": WEST,
            "target": "dr-west",
            "snapshot": copy_name("orders"),
            "source": "orders-20260310-0300",
        }
    ]
    assert statuses == ["copying", "copying", "available", "available"]
    assert all(dr(r, "started") == [] for r in reports)  # never copied twice
    (copy,) = [s for s in world.west.snapshots() if s.id == copy_name("orders")]
    source_arn = f"arn:aws:rds:{SOURCE}:123456789012:cluster-snapshot:orders-20260310-0300"
    assert copy.source_arn == source_arn
    assert copy.tags == {
        DR_MARKER: "test-deployment",
        "snapshot-scheduler:dr-policy": DR_SPEC,
        "snapshot-scheduler:dr-target": "dr-west",
        "snapshot-scheduler:dr-source": source_arn,
        "snapshot-scheduler:dr-source-region": SOURCE,
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": SLOT.isoformat(),
    }
    assert not copy.encrypted and copy.kms_key_id == ""  # an unencrypted source gets no key
    assert reports[-1]["dr"]["out_of_policy"] == [] and reports[-1]["dr"]["targets_managed"] == 1
    assert reports[-1]["dr"]["oldest_copy_age_seconds"] == timedelta(hours=5, minutes=5).total_seconds()


def test_a_sixth_copy_is_deferred_for_the_copy_limit_then_started_by_a_later_run() -> None:
    world = World(copying_for=timedelta(hours=2))
    for n in range(6):
        world.cluster(f"db{n}")
    with world.handler() as handler:
        _, first = day(handler, 0)
        second = handler.run(START + timedelta(hours=2))  # all five still copying
        third = handler.run(START + timedelta(hours=3))

    assert len(dr(first, "started")) == 5
    assert [(e["cluster"], e["code"]) for e in dr(first, "deferred")] == [("db0", "copy-limit")]
    assert dr(second, "started") == [] and [e["code"] for e in dr(second, "deferred")] == ["copy-limit"]
    assert [e["cluster"] for e in dr(third, "started")] == ["db0"]
    assert world.west.faults["SnapshotQuotaExceeded"] == 0  # the budget came from the sweep, not from errors


def test_the_own_retention_keeps_a_source_while_its_copy_is_copying() -> None:
    world = World(copying_for=timedelta(days=3))
    world.east.create_cluster("ledger", tags={"snapshot-policy": "every=1d keep-last=1", DR_TAG: DR})
    with world.handler() as handler:
        day(handler, 0)
        next_day = day(handler, 1)
        three_days_on = handler.run(START + timedelta(days=3, hours=2))

    deleted = {entry["snapshot"] for report in next_day for entry in report["deleted"]}
    assert deleted == set()  # keep-last=1 wanted ledger-20260310-0300 gone: a copy of it was copying
    # once that copy is available it goes; the next one's source still copies and stays
    assert [e["snapshot"] for e in three_days_on["deleted"]] == ["ledger-20260310-0300"]
    assert world.copies()[copy_name("ledger")] == "available"


def test_copies_are_pruned_by_the_dr_policy_and_a_full_destination_quota_defers_after_pruning() -> None:
    world = World(copying_for=timedelta(minutes=30), quota=4)
    world.cluster("orders")
    with world.handler() as handler:
        reports = [r for d in range(6) for r in day(handler, d)]
        kept = set(world.copies())
        world.west.quota = 3  # the DR region's quota shrinks (or fills with others' snapshots)
        pruned, full = day(handler, 6)

    # keep-daily=3 over the copies that exist; the new one is copied beside them
    assert kept == {copy_name("orders", SLOT + timedelta(days=d)) for d in (2, 3, 4, 5)}
    assert all(not dr(r, "deferred") for r in reports)  # pruning made room every day
    assert [e["snapshot"] for e in dr(pruned, "deleted")] == [copy_name("orders", SLOT + timedelta(days=2))]
    assert [e["code"] for e in dr(full, "deferred")] == ["quota"]
    assert dr(full, "started") == []


def test_a_same_named_cluster_with_its_own_deployment_in_the_destination_is_untouched() -> None:
    world = World(copying_for=timedelta(minutes=30))
    world.cluster("orders")
    world.west.create_cluster("orders", tags={"snapshot-policy": "daily"})
    theirs = [
        seed_ours(world.west, "orders", SLOT - timedelta(days=d), "every=1d at=03:00 tz=UTC keep-daily=1")
        for d in range(1, 10)
    ]
    with world.handler() as handler:
        for d in range(8):
            day(handler, d)

    remaining = {s.id for s in world.west.snapshots("orders")}
    assert set(theirs) <= remaining  # never ours to prune, whatever their marker value says
    assert len(world.copies()) == 4


def test_a_copy_that_fails_is_deleted_reported_and_copied_again() -> None:
    world = World(copying_for=timedelta(hours=2))
    world.cluster("orders")
    with world.handler() as handler:
        day(handler, 0)
        world.regions.source_deleted(f"arn:aws:rds:{SOURCE}:123456789012:cluster-snapshot:orders-20260310-0300")
        failed = handler.run(START + timedelta(hours=2))
        again = handler.run(START + timedelta(hours=3))

    assert [e["error"] for e in dr(failed, "failed")] == ["CopyFailed"]
    assert [e["snapshot"] for e in dr(failed, "deleted")] == [copy_name("orders")]
    assert [e["snapshot"] for e in dr(again, "started")] == [copy_name("orders")]


def test_an_encrypted_cluster_and_a_target_without_a_usable_key_is_skipped_for_kms_and_the_rest_goes_on() -> None:
    world = World()
    world.cluster("secret", encrypted=True)
    world.cluster("plain")
    with world.handler() as handler:  # alias/snapshot-dr was never made in the DR region
        own, report = day(handler, 0)

    (skip,) = dr(report, "skipped")
    assert (skip["cluster"], skip["code"]) == ("secret", "kms")
    assert "dr-west" in skip["reason"] and WEST in skip["reason"] and "alias/snapshot-dr" in skip["reason"]
    assert [e["cluster"] for e in dr(report, "started")] == ["plain"]
    assert {e["cluster"] for e in own["created"]} == {"secret", "plain"}


def test_an_encrypted_cluster_is_copied_under_the_target_key() -> None:
    world = World()
    key = world.west.create_kms_key("alias/snapshot-dr")
    world.cluster("secret", encrypted=True)
    with world.handler() as handler:
        _, report = day(handler, 0)

    assert [e["cluster"] for e in dr(report, "started")] == ["secret"]
    (copy,) = world.west.snapshots()
    assert copy.encrypted and copy.kms_key_id == key


def test_a_cluster_that_leaves_dr_keeps_its_copies_pruned_by_the_recorded_policy_never_below_one() -> None:
    world = World(copying_for=timedelta(minutes=30))
    world.cluster("orders", dr="to=dr-west keep-last=2")
    with world.handler() as handler:
        for d in range(3):
            day(handler, d)
        arn = f"arn:aws:rds:{SOURCE}:123456789012:cluster:orders"
        world.east_client.remove_tags_from_resource(ResourceName=arn, TagKeys=[DR_TAG])
        for d in range(3, 6):
            day(handler, d)

    assert set(world.copies()) == {copy_name("orders", SLOT + timedelta(days=d)) for d in (1, 2)}


def test_a_bad_dr_tag_is_a_policy_error_and_the_own_snapshots_go_on(capsys: pytest.CaptureFixture[str]) -> None:
    world = World()
    world.cluster("orders", dr="to=dr-nowhere keep-daily=3")
    with world.handler() as handler:
        capsys.readouterr()
        report = handler.run(START)

    (error,) = report["dr"]["errors"]
    assert error["cluster"] == "orders" and "dr-nowhere" in error["reason"]
    assert [e["cluster"] for e in report["created"]] == ["orders"]
    (values,) = metric_values(capsys)
    assert values["PolicyErrors"] == 1 and values["DrCopiesStarted"] == 0


NAMED_DR = {"dr-standard": "to=dr-west every=1d keep-daily=2 keep-weekly=1"}


def test_a_cluster_tagged_with_a_named_dr_policy_is_copied_and_pruned_by_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World(copying_for=timedelta(minutes=30))
    world.cluster("orders", dr="DR-Standard")  # names match whatever their case, as for named policies
    with world.handler(SNAPSHOT_DR_POLICIES=json.dumps(NAMED_DR)) as handler:
        capsys.readouterr()
        reports = [r for d in range(4) for r in day(handler, d)]
    metrics = metric_values(capsys)

    # keep-daily=2 over the available copies (keep-weekly=1: the newest of the week, 10-13 March being one
    # week), beside the one the last run started
    assert set(world.copies()) == {copy_name("orders", SLOT + timedelta(days=d)) for d in (1, 2, 3)}
    assert [e["snapshot"] for r in reports for e in dr(r, "started")] == [
        copy_name("orders", SLOT + timedelta(days=d)) for d in range(4)
    ]
    assert [e["snapshot"] for r in reports for e in dr(r, "deleted")] == [copy_name("orders")]
    (newest,) = [s for s in world.west.snapshots() if s.id == copy_name("orders", SLOT + timedelta(days=3))]
    # the copy records the policy spelled out, so it is pruned by it even after the name is gone
    recorded = newest.tags["snapshot-scheduler:dr-policy"]
    assert recorded == "to=dr-west every=1d at=03:00 tz=UTC keep-daily=2 keep-weekly=1"
    assert all(r["dr"]["errors"] == [] for r in reports) and all(m["PolicyErrors"] == 0 for m in metrics)


def test_an_unknown_dr_policy_name_is_a_dr_policy_error_naming_it_and_the_configured_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World()
    world.cluster("orders", dr="dr-gold")
    with world.handler(SNAPSHOT_DR_POLICIES=json.dumps(NAMED_DR)) as handler:
        capsys.readouterr()
        report = handler.run(START)

    (error,) = report["dr"]["errors"]
    assert error["cluster"] == "orders"
    assert "'dr-gold'" in error["reason"] and "dr-standard" in error["reason"]
    assert [e["cluster"] for e in report["created"]] == ["orders"]  # the cluster's own snapshots go on
    (values,) = metric_values(capsys)
    assert values["PolicyErrors"] == 1 and values["DrCopiesStarted"] == 0


def test_a_dr_run_makes_the_minimum_calls_in_each_region() -> None:
    world = World(copying_for=timedelta(minutes=30))
    for n in range(3):
        world.cluster(f"db{n}")
    with world.handler() as handler:
        day(handler, 0)
        handler.run(START + timedelta(days=1))
        world.east.reset_counts()
        world.west.reset_counts()
        handler.run(START + timedelta(days=1, hours=1))

    sweep = {"DescribeDBClusterSnapshots": 1, "DescribeAccountAttributes": 1}
    assert dict(world.east.calls) == {"DescribeDBClusters": 1, **sweep}
    assert dict(world.west.calls) == {**sweep, "CopyDBClusterSnapshot": 3}


def test_an_unreadable_dr_region_stops_dr_for_the_run_but_never_the_own_snapshots_nor_deletes_a_source() -> None:
    world = World(copying_for=timedelta(days=3))
    world.east.create_cluster("ledger", tags={"snapshot-policy": "every=1d keep-last=1", DR_TAG: DR})
    with world.handler() as handler:
        day(handler, 0)
        day(handler, 1)
        world.west.bucket = TokenBucket(burst=0, rate=0.0)  # every call to the DR region is throttled
        blind = handler.run(START + timedelta(days=2))

    # keep-last=1 would delete ledger-20260310-0300, whose copy may still be copying: unseen, it is kept
    assert [e["snapshot"] for e in blind["created"]] == ["ledger-20260312-0300"]
    assert blind["deleted"] == [] and dr(blind, "started") == []
    assert [(e["region"], e["error"]) for e in dr(blind, "failed")] == [(WEST, "RegionUnreadable")]


def test_two_targets_copying_one_source_queue_and_the_source_stays_until_both_are_available() -> None:
    """RDS queues copies of one source: the second target's copy waits for the first, so it copies twice as
    long. It is stuck only once it has been copying longer than drStuckHours (20 here) since it was asked for,
    and the cluster's own retention keeps the source until that second copy is available."""
    world = World(copying_for=timedelta(hours=12))
    eu = world.regions.layer(EU, bucket=TokenBucket(), copying_for=timedelta(hours=12))
    rds_client(eu, region=EU)
    world.east.create_cluster(
        "ledger", tags={"snapshot-policy": "every=1d keep-last=1", DR_TAG: "to=dr-west+dr-eu keep-last=2"}
    )
    runs: dict[datetime, dict[str, Any]] = {}
    states: dict[datetime, tuple[str | None, ...]] = {}
    with world.handler({**TARGETS, "dr-eu": {"region": EU}}, SNAPSHOT_DR_STUCK_HOURS="20") as handler:
        for at in hours(START, 26):
            runs[at] = handler.run(at)
            states[at] = tuple(
                {s.id: s.status for s in layer.snapshots()}.get(copy_name("ledger")) for layer in (eu, world.west)
            )

    asked = START + timedelta(hours=1)  # both copies are asked for in the 04:05 run, eu-west-1's first
    assert [(e["region"], e["snapshot"]) for e in dr(runs[asked], "started")] == [
        (EU, copy_name("ledger")),
        (WEST, copy_name("ledger")),
    ]
    eu_done, west_done = asked + timedelta(hours=12), asked + timedelta(hours=24)
    for at in hours(asked, 25):
        assert states[at] == (
            "available" if at >= eu_done else "copying",
            "available" if at >= west_done else "copying",
        ), at
        stuck = [(e["region"], e["snapshot"]) for e in dr(runs[at], "stuck")]
        assert stuck == (
            [(WEST, copy_name("ledger"))] if timedelta(hours=20) < at - asked < timedelta(hours=24) else []
        ), at
    # keep-last=1 wants the first source gone from day 1's 03:05 run on: it goes once both copies are available
    deleted = {at: [e["snapshot"] for e in report["deleted"]] for at, report in runs.items() if report["deleted"]}
    assert deleted == {west_done: ["ledger-20260310-0300"]}


def test_each_dr_regions_quota_is_reported_and_the_fullest_one_is_the_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World(copying_for=timedelta(minutes=30), quota=10)
    eu = world.regions.layer(EU, bucket=TokenBucket(), quota=4)
    rds_client(eu, region=EU)
    eu.create_cluster("local", tags={})
    for n in range(3):  # someone else's snapshots use the EU region's quota
        eu.seed_snapshot("local", f"local-manual-{n}", created=START - timedelta(days=n + 1), tags={})
    world.cluster("orders", dr="to=dr-west+dr-eu keep-daily=3")
    targets = {**TARGETS, "dr-eu": {"region": EU}}
    with world.handler(targets) as handler:
        capsys.readouterr()
        own, copied = day(handler, 0)
    metrics = metric_values(capsys)

    assert own["dr"]["quotas"] == {EU: {"used": 3, "max": 4}, WEST: {"used": 0, "max": 10}}
    assert copied["dr"]["quotas"] == {EU: {"used": 3, "max": 4}, WEST: {"used": 0, "max": 10}}  # read before copies
    assert [m["DrQuotaUtilization"] for m in metrics] == [75.0, 75.0]  # the fullest region, not a sum or mean
    assert {e["region"] for e in dr(copied, "started")} == {EU, WEST}


RETIRED = {"dr-west": {**TARGETS["dr-west"], "retired": True}}
WEST_DAILY = "to=dr-west every=1d at=03:00 tz=UTC"


def seed_copies(world: World, cluster: str, recorded: Mapping[int, str]) -> None:
    """Finished copies of ours in the DR region, of the slots `days` before SLOT, each recording its DR
    policy, as earlier runs made them (tags written out by hand)."""
    world.west.create_cluster(cluster, created=START - timedelta(days=90))  # moto needs one to seed from
    for days, policy in recorded.items():
        slot = SLOT - timedelta(days=days)
        source = f"arn:aws:rds:{SOURCE}:123456789012:cluster-snapshot:{cluster}-{slot:%Y%m%d-%H%M}"
        world.west.seed_snapshot(
            cluster,
            copy_name(cluster, slot),
            created=slot + timedelta(hours=1),
            copy_of=source,
            tags={
                DR_MARKER: "test-deployment",
                "snapshot-scheduler:dr-policy": policy,
                "snapshot-scheduler:dr-target": "dr-west",
                "snapshot-scheduler:dr-source": source,
                "snapshot-scheduler:dr-source-region": SOURCE,
                "snapshot-scheduler:cluster": cluster,
                "snapshot-scheduler:slot": slot.isoformat(),
            },
        )
    world.west.delete_cluster(cluster)


def test_a_retired_target_gets_no_copy_and_its_copies_are_pruned_by_their_recorded_policy_never_below_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World(copying_for=timedelta(minutes=30))
    world.cluster("orders", dr="to=dr-west keep-daily=10")  # still tagged to the retired target, asking for more
    world.east.create_cluster("gone", tags={"snapshot-policy": OWN})  # left DR long ago
    # the newest copy of each records the policy that prunes them (the tag changed after the older ones, two
    # days ago: longer than policyChangeGraceHours, so what only keep-last=9 kept no longer waits)
    seed_copies(world, "orders", {d: f"{WEST_DAILY} keep-last={2 if d <= 2 else 9}" for d in (1, 2, 3, 4)})
    seed_copies(world, "gone", {d: f"{WEST_DAILY} keep-daily=1" for d in (1, 2, 3, 4)})
    with world.handler(RETIRED) as handler:
        capsys.readouterr()
        reports = [r for d in range(3) for r in day(handler, d)]
    metrics = metric_values(capsys)

    assert set(world.copies()) == {
        copy_name("orders", SLOT - timedelta(days=1)),
        copy_name("orders", SLOT - timedelta(days=2)),
        copy_name("gone", SLOT - timedelta(days=1)),
    }
    deleted = sorted((e["target"], e["snapshot"]) for e in dr(reports[0], "deleted"))
    assert deleted == [
        ("dr-west", copy_name(c, SLOT - timedelta(days=d)))
        for c, d in [("gone", 4), ("gone", 3), ("gone", 2), ("orders", 4), ("orders", 3)]
    ]
    assert all(dr(r, "deleted") == [] for r in reports[1:])  # pruned once, then left alone
    assert all(dr(r, "started") == [] for r in reports) and world.west.calls["CopyDBClusterSnapshot"] == 0
    for report in reports:  # every run tells the tag's owner, and nothing is alarmed
        (skip,) = dr(report, "skipped")
        assert (skip["cluster"], skip["target"], skip["code"]) == ("orders", "dr-west", "target-retired")
        assert report["dr"]["errors"] == [] and report["dr"]["out_of_policy"] == []
    assert {e["cluster"] for r in reports for e in r["created"]} == {"orders", "gone"}  # own snapshots go on
    assert all(m["PolicyErrors"] == 0 and m["DrTargetsOutOfPolicy"] == 0 for m in metrics)


def test_a_dr_tag_naming_a_retired_and_an_active_target_copies_to_the_active_one_and_keeps_the_retired_copies() -> None:
    world = World(copying_for=timedelta(minutes=30))
    eu = world.regions.layer(EU, bucket=TokenBucket(), copying_for=timedelta(minutes=30))
    rds_client(eu, region=EU)
    world.cluster("orders", dr="to=dr-west+dr-eu keep-last=3")
    world.cluster("broken", dr="to=dr-west")  # invalid: names no keep- word
    seed_copies(world, "orders", {d: "to=dr-west+dr-eu every=1d at=03:00 tz=UTC keep-last=3" for d in (1, 2, 3, 4)})
    seed_copies(world, "broken", {d: f"{WEST_DAILY} keep-last=1" for d in (1, 2, 3, 4)})
    with world.handler({**RETIRED, "dr-eu": {"region": EU}}) as handler:
        own, copied = day(handler, 0)

    assert [(e["cluster"], e["region"]) for e in dr(copied, "started")] == [("orders", EU)]
    orders_west = {c for c in world.copies() if c.startswith("orders")}
    assert orders_west == {copy_name("orders", SLOT - timedelta(days=d)) for d in (1, 2, 3)}
    assert len([c for c in world.copies() if c.startswith("broken")]) == 4  # a bad DR tag: none of its copies goes
    assert [e["cluster"] for e in own["dr"]["errors"]] == ["broken"]
    assert [(e["cluster"], e["code"]) for e in dr(copied, "skipped")] == [("orders", "target-retired")]
