"""One run of the service over an in-memory RDS: what exists afterwards, what was deleted, what was reported.

Given a fleet (tests/support/fake_rds.py), when a run happens at a scheduled time, then the snapshots, the
calls made and the report are what an operator expects. No network, no moto, no real sleeping: the run's
Lambda clock is a fake that moves only when the service sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from snapshot_scheduler import planning, service, tags
from snapshot_scheduler.adapters.rds import (
    ClusterBusy,
    ClusterNotFound,
    QuotaExceeded,
    RdsAdapter,
    RdsError,
    SnapshotBusy,
    SnapshotExists,
)
from snapshot_scheduler.config import Settings
from snapshot_scheduler.model import Quota, RunReport, Snapshot
from snapshot_scheduler.naming import snapshot_id
from snapshot_scheduler.policy import Policy, PolicyError, parse_policy

from tests.support.fake_rds import FakeRds, LambdaClock, managed_snapshot, settings

DEPLOYMENT = "prod"
TAG = "snapshot-policy"
AT = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)  # a scheduled run, 5 minutes into the daily 03:00 UTC slot
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
DAILY3 = "every=1d keep-daily=3"

NAMED = '{"gold": "every=1d keep-daily=7 keep-weekly=4"}'


def make_settings(**changes: object) -> Settings:
    base = {"deployment": DEPLOYMENT, "policy_tag_key": TAG, "named_policies": json.loads(NAMED)}
    return settings(**{**base, **changes})


@pytest.fixture(autouse=True)
def no_real_sleeping(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"the unit tier must not really sleep ({seconds}s)")

    monkeypatch.setattr(time, "sleep", refuse)
    yield


@pytest.fixture
def rds() -> FakeRds:
    return FakeRds(now=AT)


def run(
    rds: FakeRds,
    at: datetime = AT,
    *,
    dry_run: bool = False,
    clock: LambdaClock | None = None,
    settings: Settings | None = None,
) -> RunReport:
    clock = clock or LambdaClock(rds)
    adapter = cast(RdsAdapter, rds)  # the fake has the adapter's surface, not its class
    return service.run(
        settings or make_settings(), adapter, at, dry_run=dry_run, budget=clock.budget(), rng=random.Random(7)
    )


def managed(
    rds: FakeRds,
    cluster: str,
    slot: datetime,
    *,
    policy: str = DAILY3,
    deployment: str = DEPLOYMENT,
    status: str = "available",
    held: bool = False,
) -> Snapshot:
    return managed_snapshot(rds, cluster, slot, policy=policy, deployment=deployment, status=status, held=held)


def history(rds: FakeRds, cluster: str, days: int, *, policy: str = DAILY3, first: int = 1) -> list[Snapshot]:
    """Daily snapshots for the slots `first`..`days` days before today's, newest first."""
    return [managed(rds, cluster, SLOT - timedelta(days=d), policy=policy) for d in range(first, days + 1)]


def ids(snapshots: list[Snapshot]) -> set[str]:
    return {s.id for s in snapshots}


def entries(report_list: list[dict[str, str]], cluster: str) -> list[dict[str, str]]:
    return [entry for entry in report_list if entry["cluster"] == cluster]


# --- creating: one snapshot per due slot --------------------------------------------------------------------


def test_due_cluster_gets_one_snapshot_named_for_its_slot(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    report = run(rds)

    assert rds.snapshot_ids() == {"orders-20260310-0300"}
    assert report.created == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert report.failed == [] and report.deferred == [] and report.skipped == []


def test_second_run_in_the_same_slot_creates_nothing(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    run(rds)

    again = run(rds, AT + timedelta(minutes=30))

    assert rds.created_ids() == ["orders-20260310-0300"]
    assert again.created == [] and again.failed == []


def test_missed_run_is_caught_up_by_a_later_run_in_the_same_slot(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    run(rds, datetime(2026, 3, 10, 22, 0, tzinfo=UTC))

    assert rds.snapshot_ids() == {"orders-20260310-0300"}


def test_older_slots_are_never_back_filled(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    managed(rds, "orders", SLOT - timedelta(days=4))

    run(rds)

    assert rds.created_ids() == ["orders-20260310-0300"]


@pytest.mark.parametrize("cluster_tags", [{}, {TAG: "off"}, {TAG: "OFF"}, {"other-tag": "daily"}])
def test_cluster_without_a_policy_is_not_touched(rds: FakeRds, cluster_tags: dict[str, str]) -> None:
    rds.add_cluster("orders", cluster_tags)

    report = run(rds)

    assert rds.calls_to("create_snapshot") == []
    assert report.created == [] and report.skipped == [] and report.clusters_managed == 0


def test_clusters_of_other_engines_are_not_managed(rds: FakeRds) -> None:
    rds.add_cluster("graph", {TAG: "daily"}, engine="neptune")
    rds.add_cluster("docs", {TAG: "daily"}, engine="docdb")

    run(rds)

    assert rds.calls_to("create_snapshot") == []


def test_named_policy_from_the_deployment_is_used(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "gold"})

    run(rds)

    (created,) = rds.snapshots_by_id.values()
    assert created.tags[tags.POLICY] == "every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4"


# --- retention ----------------------------------------------------------------------------------------------


def test_retention_deletes_what_the_policy_no_longer_keeps(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    old = history(rds, "orders", 6)

    report = run(rds)

    assert set(rds.deleted_ids()) == ids(old[3:])
    assert sorted(report.deleted, key=lambda e: e["snapshot"]) == sorted(
        ({"cluster": "orders", "snapshot": s.id} for s in old[3:]), key=lambda e: e["snapshot"]
    )
    assert rds.snapshot_ids() == ids(old[:3]) | {"orders-20260310-0300"}


def test_retention_runs_before_any_snapshot_is_started(rds: FakeRds) -> None:
    for cluster in ("a-db", "b-db", "c-db"):
        rds.add_cluster(cluster, {TAG: DAILY3})
        history(rds, cluster, 5)

    run(rds)

    order = [call[0] for call in rds.calls if call[0] in ("create_snapshot", "delete_snapshot")]
    assert order == ["delete_snapshot"] * 6 + ["create_snapshot"] * 3


def test_held_snapshot_is_never_deleted_and_takes_no_place_in_the_counters(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    newest, second, held_one, fourth, fifth = (
        managed(rds, "orders", SLOT - timedelta(days=d), held=(d == 3)) for d in range(1, 6)
    )

    run(rds)

    # the held snapshot stays, and the three newest un-held ones are what keep-daily=3 keeps
    assert held_one.id in rds.snapshot_ids()
    assert {newest.id, second.id, fourth.id} <= rds.snapshot_ids()
    assert rds.deleted_ids() == [fifth.id]


@pytest.mark.parametrize(
    ("snapshot_id_", "snapshot_tags", "snapshot_type"),
    [
        pytest.param("orders-hand-made", {}, "manual", id="no-marker"),
        pytest.param("orders-other", {tags.MARKER: "staging"}, "manual", id="other-deployments-marker"),
        pytest.param("orders-marker-case", {tags.MARKER: "PROD"}, "manual", id="marker-differs-in-case"),
        pytest.param("rds:orders-2026-01-01-00-00", {tags.MARKER: DEPLOYMENT}, "automated", id="automated"),
        pytest.param("awsbackup:job-1234", {tags.MARKER: DEPLOYMENT}, "manual", id="aws-backup-with-our-marker"),
        pytest.param("orders-shared", {tags.MARKER: DEPLOYMENT}, "shared", id="shared-with-us"),
        pytest.param(
            "orders-before-upgrade", {tags.MARKER: DEPLOYMENT, tags.CLUSTER: "orders"}, "manual", id="marked-own-name"
        ),
        pytest.param(
            "orders-20200101-0000", {tags.MARKER: DEPLOYMENT, tags.CLUSTER: "billing"}, "manual", id="other-cluster"
        ),
    ],
)
def test_snapshots_that_are_not_ours_are_never_deleted(
    rds: FakeRds, snapshot_id_: str, snapshot_tags: dict[str, str], snapshot_type: str
) -> None:
    # Given an old snapshot of a managed cluster that this deployment did not make
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    history(rds, "orders", 3, policy="every=1d keep-last=1")
    stranger = rds.add_snapshot(
        snapshot_id_,
        "orders",
        datetime(2020, 1, 1, tzinfo=UTC),
        {**snapshot_tags, tags.POLICY: "every=1d at=03:00 tz=UTC keep-last=1", tags.SLOT: "2020-01-01T00:00:00+00:00"},
        snapshot_type=snapshot_type,
    )

    run(rds)

    assert stranger.id in rds.snapshot_ids()
    assert stranger.id not in rds.deleted_ids()
    assert len(rds.deleted_ids()) == 2  # our own old ones did go


@pytest.mark.parametrize("status", ["failed", "copying", "deleting", "incompatible-restore", "weird-new-status"])
def test_snapshots_that_are_not_available_are_never_deleted(rds: FakeRds, status: str) -> None:
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    history(rds, "orders", 2, policy="every=1d keep-last=1")
    stuck = managed(rds, "orders", SLOT - timedelta(days=30), status=status, policy="every=1d keep-last=1")

    run(rds)

    assert stuck.id in rds.snapshot_ids()
    assert stuck.id not in rds.deleted_ids()


def test_the_last_gate_never_deletes_a_snapshot_that_the_same_plan_keeps(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a retention bug that puts every snapshot it keeps on the delete list as well
    real_retain = planning.retain

    def keeps_and_deletes(
        policy: Policy, snapshots: list[Snapshot]
    ) -> tuple[tuple[planning.Kept, ...], tuple[Snapshot, ...]]:
        kept, _ = real_retain(policy, snapshots)
        return kept, tuple(k.snapshot for k in kept)

    monkeypatch.setattr(planning, "retain", keeps_and_deletes)
    rds.add_cluster("orders", {TAG: DAILY3})
    before = ids(history(rds, "orders", 3))

    report = run(rds)

    # Then nothing is deleted, and each refusal is reported
    assert rds.deleted_ids() == []
    assert before <= rds.snapshot_ids()
    assert sorted(e["error"] for e in report.failed) == ["RefusedDelete"] * 3
    assert all("the same plan keeps it" in e["message"] for e in report.failed)


def test_newest_available_snapshot_is_never_deleted(rds: FakeRds) -> None:
    # Given a stopped cluster whose only available snapshot is long outside keep-within, and a failed newer one
    rds.add_cluster("orders", {TAG: "every=1d keep-within=1d"}, status="stopped")
    newest_available = managed(rds, "orders", SLOT - timedelta(days=40), policy="every=1d keep-within=1d")
    managed(rds, "orders", SLOT - timedelta(days=2), status="failed", policy="every=1d keep-within=1d")

    run(rds)

    assert newest_available.id in rds.snapshot_ids()


def test_orphans_of_a_deleted_cluster_are_pruned_by_the_policy_on_their_newest_snapshot(rds: FakeRds) -> None:
    # Given snapshots of a cluster that no longer exists; the newest records keep-last=2, older ones keep-last=9
    older = [managed(rds, "gone", SLOT - timedelta(days=d), policy="keep-last=9") for d in range(3, 8)]
    newest = managed(rds, "gone", SLOT - timedelta(days=2), policy="every=1d keep-last=2")

    report = run(rds)

    assert rds.snapshot_ids() == {newest.id, older[0].id}
    assert sorted(e["snapshot"] for e in entries(report.deleted, "gone")) == sorted(s.id for s in older[1:])
    assert rds.calls_to("create_snapshot") == []


def test_a_cluster_the_listing_missed_is_looked_up_once_and_a_failed_lookup_keeps_all_its_snapshots(
    rds: FakeRds,
) -> None:
    # Given "orders" (keep-last=1, three snapshots) missing from the listing, and its lookup failing
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    rds.unlisted.add("orders")
    before = ids(history(rds, "orders", 3, policy="every=1d keep-last=1"))
    rds.fail("cluster", RdsError("Throttling", "Rate exceeded"), target="orders")

    report = run(rds)

    # Then nothing of it is deleted, and the run says why
    assert rds.calls_to("cluster") == [("cluster", "orders")]
    assert rds.deleted_ids() == []
    assert before <= rds.snapshot_ids()
    assert [(e["cluster"], e["error"]) for e in report.failed] == [("orders", "ClusterUnconfirmed")]


def test_a_cluster_the_listing_missed_but_a_lookup_finds_is_planned_as_listed_and_reported(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    rds.unlisted.add("orders")
    older = history(rds, "orders", 2, policy="every=1d keep-last=1")[-1]

    report = run(rds)

    assert rds.created_ids() == [snapshot_id("orders", SLOT)]
    assert rds.deleted_ids() == [older.id]
    assert [e["cluster"] for e in report.unlisted] == ["orders"]
    assert report.clusters_managed == 1


@pytest.mark.parametrize(
    "found",
    [None, {"engine": "neptune"}, {"tags": {}}, {"tags": {TAG: "off"}}],
    ids=["gone", "engine", "untagged", "off"],
)
def test_a_cluster_the_listing_missed_that_a_lookup_finds_gone_or_unmanaged_is_pruned_as_an_orphan(
    rds: FakeRds, found: dict[str, object] | None
) -> None:
    cluster = rds.add_cluster("orders", {TAG: "every=1d keep-last=9"})
    if found is None:
        rds.remove_cluster("orders")
    else:
        rds.clusters_by_id["orders"] = dataclasses.replace(cluster, **found)  # type: ignore[arg-type]
        rds.unlisted.add("orders")
    older, newest = history(rds, "orders", 2, policy="every=1d keep-last=1")[::-1]

    report = run(rds)

    assert rds.calls_to("cluster") == [("cluster", "orders")]
    assert rds.deleted_ids() == [older.id]
    assert newest.id in rds.snapshot_ids()
    assert rds.created_ids() == []
    assert report.unlisted == ([] if found is None else [{"cluster": "orders", "reason": report.unlisted[0]["reason"]}])


def test_no_cluster_is_looked_up_when_the_listing_shows_every_cluster_our_snapshots_name(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    rds.add_cluster("plain", {})
    history(rds, "orders", 3, policy="every=1d keep-last=1")
    managed(rds, "plain", SLOT - timedelta(days=1), policy="every=1d keep-last=1")
    rds.add_snapshot("hand-made", "elsewhere", SLOT)

    run(rds)

    assert rds.calls_to("cluster") == []


def test_the_second_look_for_quota_reuses_the_runs_lookups(rds: FakeRds) -> None:
    # Given a deleted cluster's snapshots, and a full quota that makes the run look again
    rds.quota_max = 3
    history(rds, "gone", 2, policy="every=1d keep-last=2")
    rds.add_cluster("due", {TAG: "every=1d keep-last=1"})
    managed(rds, "due", SLOT - timedelta(days=1), policy="every=1d keep-last=1")

    run(rds)

    assert len(rds.calls_to("manual_snapshots")) == 2
    assert rds.calls_to("cluster") == [("cluster", "gone")]


@pytest.mark.parametrize("cluster_tags", [{}, {TAG: "off"}], ids=["tag-removed", "tag-off"])
def test_orphans_of_a_cluster_that_lost_its_tag_are_pruned_too(rds: FakeRds, cluster_tags: dict[str, str]) -> None:
    rds.add_cluster("orders", cluster_tags)
    old = history(rds, "orders", 6)

    run(rds)

    assert rds.snapshot_ids() == ids(old[:3])
    assert rds.calls_to("create_snapshot") == []


def test_orphans_are_never_pruned_below_one(rds: FakeRds) -> None:
    # keep-within counts from the newest snapshot, so the newest always stays, however old
    old = [managed(rds, "gone", SLOT - timedelta(days=d), policy="every=1d keep-within=1h") for d in range(30, 36)]

    run(rds)

    assert rds.snapshot_ids() == {old[0].id}


def test_orphans_with_an_unreadable_recorded_policy_are_all_kept(rds: FakeRds) -> None:
    old = history(rds, "gone", 5)
    newest = old[0]
    rds.snapshots_by_id[newest.id] = dataclasses.replace(newest, tags={**newest.tags, tags.POLICY: "keep-daily=lots"})

    run(rds)

    assert rds.snapshot_ids() == ids(old)


def test_orphans_of_another_deployment_are_not_ours_to_prune(rds: FakeRds) -> None:
    theirs = [managed(rds, "gone", SLOT - timedelta(days=d), deployment="staging") for d in range(1, 8)]

    run(rds)

    assert rds.snapshot_ids() == ids(theirs)


# --- a bad policy tag ---------------------------------------------------------------------------------------


def test_policy_error_skips_the_cluster_with_its_message_and_deletes_none_of_its_snapshots(rds: FakeRds) -> None:
    # Given a cluster whose tag became unreadable, with plenty of old snapshots, and a healthy neighbour
    rds.add_cluster("broken", {TAG: "daily,7"})
    kept = history(rds, "broken", 10)
    rds.add_cluster("healthy", {TAG: "daily"})

    report = run(rds)

    # Then none of its snapshots go, it gets no new one, and the report says why in the parser's words
    assert ids(kept) <= rds.snapshot_ids()
    assert not any(call[1].startswith("broken") for call in rds.calls_to("create_snapshot"))
    (skipped,) = entries(report.skipped, "broken")
    assert skipped["code"] == "policy-error"
    with pytest.raises(PolicyError) as parse_error:
        parse_policy("daily,7")
    assert str(parse_error.value) in skipped["reason"]
    assert "daily,7" in skipped["reason"]
    # and the neighbour carries on
    assert entries(report.created, "healthy") == [{"cluster": "healthy", "snapshot": "healthy-20260310-0300"}]


@pytest.mark.parametrize("text", ["platinum", "every=1d", "every=1d keep-daily=0", "on=mon keep-daily=7", ""])
def test_every_kind_of_bad_policy_is_a_skip_not_a_crash(rds: FakeRds, text: str) -> None:
    rds.add_cluster("broken", {TAG: text})
    rds.add_cluster("healthy", {TAG: "daily"})

    report = run(rds)

    assert [e["code"] for e in entries(report.skipped, "broken")] == ["policy-error"]
    assert "healthy-20260310-0300" in rds.snapshot_ids()


@pytest.mark.parametrize(
    "within",
    [
        "9999y",
        "800000d",
    ],
)
def test_a_policy_that_breaks_retention_does_not_stop_the_other_clusters(rds: FakeRds, within: str) -> None:
    policy = f"every=1d keep-within={within}"
    rds.add_cluster("forever", {TAG: policy})
    history(rds, "forever", 3, policy=policy)
    rds.add_cluster("healthy", {TAG: "daily"})

    run(rds)

    assert "healthy-20260310-0300" in rds.snapshot_ids()


def test_one_clusters_planning_failure_does_not_stop_the_others(rds: FakeRds, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a slot computation that breaks for one cluster's zone (a bug no rule foresaw)
    real_slot = planning.current_slot

    def broken_for_apia(policy: Policy, at: datetime) -> datetime:
        if policy.tz == "Pacific/Apia":
            raise RuntimeError("no slot")
        return real_slot(policy, at)

    monkeypatch.setattr(planning, "current_slot", broken_for_apia)
    at = datetime(2011, 12, 30, 10, 30, tzinfo=UTC)
    rds.now = at
    rds.add_cluster("apia", {TAG: "every=1d at=23:00 tz=Pacific/Apia keep-daily=7"})
    history(rds, "apia", 3, policy="every=1d at=23:00 tz=Pacific/Apia keep-daily=1")
    rds.add_cluster("healthy", {TAG: "daily"})
    before = set(rds.snapshot_ids())

    # When a run plans both
    report = run(rds, at)

    # Then the broken cluster fails alone, keeps every snapshot, and the healthy one is served
    assert "healthy-20111230-0300" in rds.snapshot_ids()
    assert [(e["cluster"], e["error"]) for e in report.failed] == [("apia", "PlanningError")]
    assert {s for s in before if s.startswith("apia")} <= set(rds.snapshot_ids())


# --- busy, stopped, in progress -----------------------------------------------------------------------------


def test_busy_cluster_is_retried_with_backoff_then_snapshotted(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("create_snapshot", ClusterBusy, target="orders", times=2)
    clock = LambdaClock(rds)

    report = run(rds, clock=clock)

    assert rds.snapshot_ids() == {"orders-20260310-0300"}
    assert report.created == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert report.busy_retries == 2 and report.deferred == []
    assert len(clock.sleeps) == 2
    assert 0 < clock.sleeps[0] < clock.sleeps[1]  # exponential, with jitter
    assert clock.sleeps[0] <= service.BACKOFF_BASE


def test_busy_cluster_that_stays_busy_is_deferred_not_failed(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("create_snapshot", ClusterBusy, target="orders", times=10_000)
    clock = LambdaClock(rds, remaining=300)

    report = run(rds, clock=clock)

    assert [e["code"] for e in entries(report.deferred, "orders")] == ["busy"]
    assert report.failed == [] and report.created == []
    assert report.busy_retries == len(clock.sleeps) >= 3
    assert all(s <= service.BACKOFF_CAP for s in clock.sleeps)
    assert clock.remaining > 30  # it stopped retrying before the safety margin


@pytest.mark.parametrize("status", ["backing-up", "modifying", "maintenance", "upgrading", "failing-over"])
def test_cluster_busy_in_the_describe_answer_is_retried_then_deferred(rds: FakeRds, status: str) -> None:
    rds.add_cluster("orders", {TAG: "daily"}, status=status)

    report = run(rds, clock=LambdaClock(rds, remaining=120))

    assert [e["code"] for e in entries(report.deferred, "orders")] == ["busy"]
    assert rds.snapshot_ids() == set()


def test_busy_cluster_does_not_hold_up_the_others(rds: FakeRds) -> None:
    rds.add_cluster("a-busy", {TAG: "daily"})
    rds.add_cluster("b-ok", {TAG: "daily"})
    rds.add_cluster("c-ok", {TAG: "daily"})
    rds.fail("create_snapshot", ClusterBusy, target="a-busy", times=10_000)

    run(rds, clock=LambdaClock(rds, remaining=200))

    timeline = [call[0] if call[0] != "create_snapshot" else call[2] for call in rds.calls]
    first_sleep = timeline.index("sleep")
    assert {"b-ok", "c-ok"} <= set(timeline[:first_sleep])
    assert {"b-ok-20260310-0300", "c-ok-20260310-0300"} <= rds.snapshot_ids()


@pytest.mark.parametrize("status", ["stopped", "stopping"])
def test_stopped_cluster_is_skipped_with_that_reason(rds: FakeRds, status: str) -> None:
    rds.add_cluster("orders", {TAG: "daily"}, status=status)

    report = run(rds)

    assert [e["code"] for e in entries(report.skipped, "orders")] == ["stopped"]
    assert rds.calls_to("create_snapshot") == []
    assert report.deferred == [] and report.failed == []


@pytest.mark.parametrize("status", ["deleting", "inaccessible-encryption-credentials", "migration-failed"])
def test_cluster_that_cannot_be_snapshotted_is_skipped(rds: FakeRds, status: str) -> None:
    rds.add_cluster("orders", {TAG: "daily"}, status=status)

    report = run(rds)

    assert [e["code"] for e in entries(report.skipped, "orders")] == ["unavailable"]
    assert rds.calls_to("create_snapshot") == []


def test_cluster_with_an_earlier_snapshot_still_creating_is_deferred_in_progress(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    managed(rds, "orders", SLOT - timedelta(days=1), status="creating", policy="daily")

    report = run(rds)

    assert [e["code"] for e in entries(report.deferred, "orders")] == ["in-progress"]
    assert rds.calls_to("create_snapshot") == []


def test_this_slots_snapshot_still_creating_counts_as_done(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    managed(rds, "orders", SLOT, status="creating", policy="daily")

    report = run(rds)

    assert rds.calls_to("create_snapshot") == []
    assert report.deferred == [] and report.failed == [] and report.created == []


# --- quota --------------------------------------------------------------------------------------------------


def test_quota_full_prunes_again_retries_once_then_defers_the_rest_with_reason_quota(rds: FakeRds) -> None:
    # Given an account at its manual snapshot quota, with nothing left to prune, and three due clusters
    rds.quota_max = 3
    rds.new_snapshot_status = "creating"
    for cluster in ("a-db", "b-db", "c-db"):
        rds.add_cluster(cluster, {TAG: "every=1d keep-last=1"})
        managed(rds, cluster, SLOT - timedelta(days=1), policy="every=1d keep-last=1")

    report = run(rds)

    # Then the first refused cluster is retried once after a second look at retention, and then nothing
    # more is attempted: every due cluster is deferred with reason quota
    creates = rds.created_ids()
    assert len(creates) == 2 and creates[0] == creates[1]
    assert len(rds.calls_to("manual_snapshots")) == 2  # the prune again
    assert sorted(e["cluster"] for e in report.deferred) == ["a-db", "b-db", "c-db"]
    assert {e["code"] for e in report.deferred} == {"quota"}
    assert report.quota_exceeded >= 1
    assert report.failed == []


def test_scarce_quota_goes_to_the_most_overdue_cluster_first(rds: FakeRds) -> None:
    # Given room for one more snapshot and three due clusters, the one whose newest recovery point is oldest
    # ("c-stale", 5 days) must get it, whatever the names' order
    rds.quota_max = 4
    rds.new_snapshot_status = "creating"  # as in RDS: the new one is not yet a recovery point
    rds.add_cluster("a-fresh", {TAG: "every=1d keep-last=1"})
    managed(rds, "a-fresh", SLOT - timedelta(days=1), policy="every=1d keep-last=1")
    rds.add_cluster("b-recent", {TAG: "every=1d keep-last=1"})
    managed(rds, "b-recent", SLOT - timedelta(days=2), policy="every=1d keep-last=1")
    rds.add_cluster("c-stale", {TAG: "every=1d keep-last=1"})
    managed(rds, "c-stale", SLOT - timedelta(days=5), policy="every=1d keep-last=1")

    report = run(rds)

    assert [e["cluster"] for e in report.created] == ["c-stale"]
    assert sorted(e["cluster"] for e in report.deferred) == ["a-fresh", "b-recent"]
    assert {e["code"] for e in report.deferred} == {"quota"}


def test_cluster_with_no_snapshot_at_all_is_the_most_overdue(rds: FakeRds) -> None:
    rds.quota_max = 2
    rds.add_cluster("a-old", {TAG: "every=1d keep-last=1"})
    managed(rds, "a-old", SLOT - timedelta(days=9), policy="every=1d keep-last=1")
    rds.add_cluster("z-new", {TAG: "every=1d keep-last=1"})

    report = run(rds)

    assert [e["cluster"] for e in report.created] == ["z-new"]


def test_quota_freed_by_the_second_prune_lets_the_retry_succeed(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("create_snapshot", QuotaExceeded, target="orders", message="Cannot create more than 100 manual snapshots")

    report = run(rds)

    assert rds.snapshot_ids() == {"orders-20260310-0300"}
    assert report.created == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert report.deferred == [] and report.quota_exceeded == 1


def test_prune_again_frees_room_made_deletable_by_this_runs_own_snapshots(rds: FakeRds) -> None:
    # Given room for one snapshot and snapshots that become available at once (the newest then outranks
    # the old one under keep-last=1), the second look at retention frees room for the next cluster
    rds.quota_max = 4
    for cluster, age in (("a-db", 1), ("b-db", 2), ("c-db", 5)):
        rds.add_cluster(cluster, {TAG: "every=1d keep-last=1"})
        managed(rds, cluster, SLOT - timedelta(days=age), policy="every=1d keep-last=1")

    report = run(rds)

    assert [e["cluster"] for e in report.created][:2] == ["c-db", "b-db"]
    assert "c-db-20260309-0300" not in rds.snapshot_ids() and "c-db-20260305-0300" not in rds.snapshot_ids()


@pytest.mark.parametrize(
    ("second_error", "outcome"),
    [(ClusterBusy, "created"), (SnapshotExists, "done"), (ClusterNotFound, "skipped")],
)
def test_error_on_the_retry_after_quota_is_handled_like_on_a_first_attempt(
    rds: FakeRds, second_error: type[RdsError], outcome: str
) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("create_snapshot", QuotaExceeded, target="orders")
    rds.fail("create_snapshot", second_error, target="orders")

    report = run(rds)

    assert report.failed == []
    if outcome == "created":
        assert rds.snapshot_ids() == {"orders-20260310-0300"}
    elif outcome == "skipped":
        assert [e["code"] for e in report.skipped] == ["not-found"]


def test_quota_read_once_per_run_and_reported(rds: FakeRds) -> None:
    rds.quota_max = 50
    rds.add_cluster("orders", {TAG: DAILY3})
    history(rds, "orders", 4)

    report = run(rds)

    assert len(rds.calls_to("quota")) == 1
    assert report.quota is not None and (report.quota.used, report.quota.max) == (4, 50)


def test_unknown_quota_does_not_stop_the_run(rds: FakeRds) -> None:
    rds.quota_max = None
    rds.add_cluster("orders", {TAG: "daily"})

    report = run(rds)

    assert report.quota is None
    assert rds.snapshot_ids() == {"orders-20260310-0300"}


# --- other faults -------------------------------------------------------------------------------------------


def snapshot_appears_on_create(rds: FakeRds, *, deployment: str = DEPLOYMENT) -> None:
    """Someone makes the slot's snapshot between the sweep and our create call."""

    def make_it(operation: str) -> None:
        if operation == "create_snapshot" and snapshot_id("orders", SLOT) not in rds.snapshot_ids():
            managed(rds, "orders", SLOT, deployment=deployment)

    rds.on_call = make_it


def test_already_exists_made_by_a_concurrent_run_counts_as_done_once(rds: FakeRds) -> None:
    # Given a concurrent run of ours that makes the slot's snapshot just before our create
    rds.add_cluster("orders", {TAG: "daily"})
    snapshot_appears_on_create(rds)
    rds.fail("create_snapshot", SnapshotExists, target="orders")

    report = run(rds)

    # Then it is done, not retried, and not counted as this run's creation (the other run counts it)
    assert report.failed == [] and report.deferred == [] and report.skipped == []
    assert report.created == []
    assert len(rds.created_ids()) == 1


def test_already_exists_after_an_sdk_retry_is_our_own_creation(rds: FakeRds) -> None:
    # Given a create whose first attempt succeeded but whose answer was lost, so the SDK's retry meets it
    rds.add_cluster("orders", {TAG: "daily"})
    snapshot_appears_on_create(rds)
    rds.fail("create_snapshot", SnapshotExists("DBClusterSnapshotAlreadyExistsFault", "exists", retried=True))

    report = run(rds)

    # Then this run reports it created
    assert report.created == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert report.failed == []


def test_already_exists_made_by_someone_else_mid_run_is_reported_not_done(rds: FakeRds) -> None:
    # Given another deployment makes the identifier between our sweep and our create
    rds.add_cluster("orders", {TAG: "daily"})
    snapshot_appears_on_create(rds, deployment="other")
    rds.fail("create_snapshot", SnapshotExists, target="orders")

    report = run(rds)

    assert [(e["cluster"], e["error"]) for e in report.failed] == [("orders", "IdentifierTaken")]
    assert report.created == []


def test_cluster_deleted_between_describe_and_create_is_skipped(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.add_cluster("stays", {TAG: "daily"})
    rds.fail("create_snapshot", ClusterNotFound, target="orders")

    report = run(rds)

    assert [e["code"] for e in entries(report.skipped, "orders")] == ["not-found"]
    assert report.failed == []
    assert "stays-20260310-0300" in rds.snapshot_ids()


def test_unexpected_create_error_is_reported_failed_and_the_others_carry_on(rds: FakeRds) -> None:
    rds.add_cluster("a-db", {TAG: "daily"})
    rds.add_cluster("b-db", {TAG: "daily"})
    rds.fail("create_snapshot", RdsError("KMSKeyNotAccessibleFault", "key disabled"), target="a-db")

    report = run(rds)

    assert report.failed == [{"cluster": "a-db", "error": "KMSKeyNotAccessibleFault", "message": "key disabled"}]
    assert "b-db-20260310-0300" in rds.snapshot_ids()


def test_snapshot_state_fault_on_create_is_retried(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("create_snapshot", SnapshotBusy, target="orders", times=1)

    report = run(rds)

    assert report.failed == []
    assert rds.snapshot_ids() == {"orders-20260310-0300"}


def test_delete_refused_for_snapshot_state_is_left_for_the_next_run(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    old = history(rds, "orders", 4)
    rds.fail("delete_snapshot", SnapshotBusy, target=old[3].id)

    report = run(rds)

    assert old[3].id in rds.snapshot_ids()
    assert report.failed == [] and report.deleted == []
    assert "orders-20260310-0300" in rds.snapshot_ids()


def test_delete_error_is_reported_failed_and_the_run_carries_on(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    old = history(rds, "orders", 5)
    rds.fail("delete_snapshot", RdsError("AccessDenied", "not allowed"), target=old[3].id)

    report = run(rds)

    assert report.failed == [{"cluster": "orders", "error": "AccessDenied", "message": "not allowed"}]
    assert old[4].id not in rds.snapshot_ids()
    assert "orders-20260310-0300" in rds.snapshot_ids()


def test_listing_clusters_failing_fails_the_run(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("clusters", RdsError("InternalFailure", "try again"))

    with pytest.raises(RdsError):
        run(rds)


def test_throttles_met_during_the_run_are_counted(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.throttles = 41  # from earlier runs of a warm container
    rds.throttles_per_call = 1

    report = run(rds)

    assert report.throttles == len(rds.calls)


# --- time ---------------------------------------------------------------------------------------------------


def test_low_time_budget_defers_every_due_cluster_with_reason_time(rds: FakeRds) -> None:
    rds.add_cluster("a-db", {TAG: DAILY3})
    rds.add_cluster("b-db", {TAG: DAILY3})
    history(rds, "a-db", 5)

    report = run(rds, clock=LambdaClock(rds, remaining=20))

    assert rds.calls_to("create_snapshot") == [] and rds.calls_to("delete_snapshot") == []
    assert sorted((e["cluster"], e["code"]) for e in report.deferred) == [("a-db", "time"), ("b-db", "time")]


def test_time_running_out_mid_run_defers_the_clusters_left(rds: FakeRds) -> None:
    for cluster in ("a-db", "b-db", "c-db", "d-db"):
        rds.add_cluster(cluster, {TAG: "daily"})
    clock = LambdaClock(rds, remaining=100)

    def spend(operation: str) -> None:
        if operation == "create_snapshot":
            clock.remaining -= 30

    rds.on_call = spend

    report = run(rds, clock=clock)

    assert len(report.created) == 3  # 100 -> 70 -> 40 -> 10: under the 30 s margin after the third
    assert [e["code"] for e in report.deferred] == ["time"]
    assert len(report.created) + len(report.deferred) == 4


# --- dry run ------------------------------------------------------------------------------------------------


def test_dry_run_changes_nothing_but_reports_what_it_would_do(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: DAILY3})
    old = history(rds, "orders", 5)
    rds.add_cluster("broken", {TAG: "nonsense"})
    before = dict(rds.snapshots_by_id)

    report = run(rds, dry_run=True)

    assert rds.snapshots_by_id == before
    assert rds.calls_to("create_snapshot") == [] and rds.calls_to("delete_snapshot") == []
    assert report.dry_run is True
    assert report.created == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert sorted(e["snapshot"] for e in report.deleted) == sorted(s.id for s in old[3:])
    assert [e["code"] for e in report.skipped] == ["policy-error"]


# --- tags on new snapshots ----------------------------------------------------------------------------------


def test_new_snapshot_carries_marker_policy_slot_cluster_and_the_clusters_tags(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "every=1d tz=Europe/Berlin keep-daily=7", "team": "payments", "env": "prod"})

    run(rds, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))

    (snapshot,) = rds.snapshots_by_id.values()
    slot = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 03:00 CET
    assert snapshot.id == snapshot_id("orders", slot)
    assert list(snapshot.tags)[:4] == [tags.MARKER, tags.POLICY, tags.SLOT, tags.CLUSTER]
    assert snapshot.tags[tags.MARKER] == DEPLOYMENT
    assert snapshot.tags[tags.POLICY] == "every=1d at=03:00 tz=Europe/Berlin keep-daily=7"
    assert datetime.fromisoformat(snapshot.tags[tags.SLOT]) == slot
    assert snapshot.tags[tags.CLUSTER] == "orders"
    assert snapshot.tags["team"] == "payments" and snapshot.tags["env"] == "prod"


def test_aws_and_rds_tags_of_the_cluster_are_not_copied(rds: FakeRds) -> None:
    rds.add_cluster(
        "orders",
        {TAG: "daily", "aws:cloudformation:stack-name": "db", "AWS:Other": "x", "rds:thing": "y", "keep": "me"},
    )

    run(rds)

    (snapshot,) = rds.snapshots_by_id.values()
    assert not [k for k in snapshot.tags if k.lower().startswith(("aws:", "rds:"))]
    assert snapshot.tags["keep"] == "me"


def test_at_most_50_tags_ours_first(rds: FakeRds) -> None:
    user = {f"k{n:02d}": f"v{n}" for n in range(60)}
    rds.add_cluster("orders", {TAG: "daily", **user})

    report = run(rds)

    assert report.failed == []
    (snapshot,) = rds.snapshots_by_id.values()
    assert len(snapshot.tags) == 50
    assert list(snapshot.tags)[:4] == [tags.MARKER, tags.POLICY, tags.SLOT, tags.CLUSTER]


def test_a_cluster_tag_cannot_forge_our_marker(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily", tags.MARKER: "someone-else", tags.CLUSTER: "not-orders"})

    run(rds)

    (snapshot,) = rds.snapshots_by_id.values()
    assert snapshot.tags[tags.MARKER] == DEPLOYMENT
    assert snapshot.tags[tags.CLUSTER] == "orders"


# --- what the report says about recovery points -------------------------------------------------------------


def test_report_names_clusters_out_of_policy_and_the_oldest_recovery_point(rds: FakeRds) -> None:
    # Given one cluster whose newest snapshot is 3 days old (daily policy, 60 min grace), one up to date
    rds.add_cluster("stale", {TAG: "daily"})
    rds.fail("create_snapshot", ClusterBusy, target="stale", times=10_000)
    stale = managed(rds, "stale", SLOT - timedelta(days=3), policy="daily")
    rds.add_cluster("fresh", {TAG: "daily"})
    managed(rds, "fresh", SLOT - timedelta(days=1), policy="daily")

    report = run(rds, clock=LambdaClock(rds, remaining=60))

    assert report.clusters_managed == 2
    assert report.out_of_policy == ["stale"]
    assert stale.created is not None
    assert report.oldest_recovery_point_age == (AT - stale.created).total_seconds()
    stats = report.to_dict()["stats"]
    assert stats["clusters_out_of_policy"] == ["stale"]


def test_stopped_cluster_is_not_out_of_policy(rds: FakeRds) -> None:
    rds.add_cluster("parked", {TAG: "daily"}, status="stopped")
    managed(rds, "parked", SLOT - timedelta(days=6), policy="daily")

    report = run(rds)

    assert report.out_of_policy == []


def test_new_cluster_whose_first_snapshot_was_started_is_not_out_of_policy(rds: FakeRds) -> None:
    rds.add_cluster("newborn", {TAG: "daily"}, created=AT - timedelta(days=30))

    report = run(rds)

    assert report.out_of_policy == []
    assert report.oldest_recovery_point_age is None


def test_report_dict_has_the_contracted_shape(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    answer = run(rds).to_dict()

    assert {"scheduled_time", "dry_run", "created", "deleted", "deferred", "skipped", "failed"} <= set(answer)
    assert answer["scheduled_time"] == AT.isoformat()
    assert answer["created"] == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]


# --- two deployments in one account -------------------------------------------------------------------------


def test_two_deployments_never_touch_each_others_snapshots(rds: FakeRds) -> None:
    # Given two deployments with their own tag keys and markers, one cluster each and one shared cluster
    # (snapshotted at different hours by each), run alternately for two weeks
    prod = make_settings(deployment="prod", policy_tag_key="snapshot-policy")
    dr = make_settings(deployment="dr", policy_tag_key="dr-snapshot-policy")
    rds.add_cluster("only-prod", {"snapshot-policy": "every=1d keep-last=2"})
    rds.add_cluster("only-dr", {"dr-snapshot-policy": "every=1d at=05:00 keep-last=3"})
    rds.add_cluster(
        "shared", {"snapshot-policy": "every=1d keep-last=2", "dr-snapshot-policy": "every=1d at=05:00 keep-last=3"}
    )

    for day in range(14):
        for hour, deployment in ((3, prod), (5, dr)):
            rds.now = datetime(2026, 3, 1, hour, 10, tzinfo=UTC) + timedelta(days=day)
            report = run(rds, rds.now, settings=deployment)
            for entry in report.deleted:
                deleted = entry["snapshot"]
                owner = "prod" if deleted.endswith("-0300") else "dr"
                assert owner == deployment.deployment, f"{deployment.deployment} deleted {deleted}"

    def of(deployment: str, cluster: str) -> int:
        return sum(
            1 for s in rds.snapshots_by_id.values() if s.cluster_id == cluster and s.tags.get(tags.MARKER) == deployment
        )

    # (retention runs before creation, so each keeps its policy's count plus the one just made)
    assert (of("prod", "only-prod"), of("prod", "shared"), of("prod", "only-dr")) == (3, 3, 0)
    assert (of("dr", "only-dr"), of("dr", "shared"), of("dr", "only-prod")) == (4, 4, 0)


# --- a month of hourly runs ------------------------------------------------------------------------------------


def test_a_month_of_hourly_runs_takes_each_slot_once_and_keeps_exactly_the_policys_set(rds: FakeRds) -> None:
    # Given an hourly policy in Berlin over the month the clocks go back, runs at :05 past every UTC hour, and
    # snapshots that take half an hour to become available
    policy = parse_policy("every=1h keep-hourly=24 keep-daily=7 tz=Europe/Berlin")
    rds.add_cluster("orders", {TAG: "every=1h keep-hourly=24 keep-daily=7 tz=Europe/Berlin"})
    rds.new_snapshot_status = "creating"
    start = datetime(2026, 10, 10, 0, 5, tzinfo=UTC)
    made: list[str] = []

    for hour in range(24 * 31):
        at = start + timedelta(hours=hour)
        rds.now = at
        rds.finish_creating()  # the previous run's snapshot is done by now
        report = run(rds, at)
        assert report.failed == [] and report.deferred == [], at
        made += [entry["snapshot"] for entry in report.created]

    # Then each wall-clock hour got exactly one snapshot: one per run, but for the repeated hour of 25 October
    assert len(made) == len(set(made)) == 24 * 31 - 1
    # and what is left is what keep-hourly=24 keep-daily=7 keeps (the newest 24 hours, the newest of each of
    # the 7 newest local days), plus the snapshot the last run started after pruning
    remaining = {s.id: s for s in rds.snapshots_by_id.values()}
    available = sorted((s for s in remaining.values() if s.status == "available"), key=lambda s: s.time or AT)
    times = [s.time for s in available if s.time is not None]
    newest_hours = times[-24:]
    by_day: dict[object, datetime] = {}
    for t in times:
        by_day[t.astimezone(policy.zone).date()] = t
    newest_days = sorted(by_day.values())[-7:]
    assert set(times) == set(newest_hours) | set(newest_days)
    assert [s.id for s in remaining.values() if s.status == "creating"] == [made[-1]]


def test_a_hold_on_the_cluster_is_not_copied_onto_its_snapshots(rds: FakeRds) -> None:
    # Given a cluster that carries snapshot-hold=true itself (an operator's tag meant for snapshots)
    rds.add_cluster("orders", {TAG: "daily", tags.HOLD: "true", "team": "payments"})

    # When a run snapshots it
    run(rds)

    # Then the new snapshot is not held, so retention can still prune it later
    (snapshot,) = rds.snapshots_by_id.values()
    assert tags.HOLD not in snapshot.tags
    assert snapshot.tags["team"] == "payments"


def test_a_slot_identifier_held_by_another_deployment_fails_loudly(rds: FakeRds) -> None:
    # Given another deployment that already snapshotted this cluster for this slot under the same identifier
    rds.add_cluster("orders", {TAG: "daily"})
    managed(rds, "orders", SLOT, deployment="other-deployment")

    # When our run reaches the slot
    report = run(rds)

    # Then it neither counts the other's snapshot as ours nor tries to create; it reports a failure that names
    # the other deployment, and the other's snapshot stays
    assert rds.calls_to("create_snapshot") == []
    (failure,) = entries(report.failed, "orders")
    assert failure["error"] == "IdentifierTaken"
    assert "other-deployment" in failure["message"]
    assert snapshot_id("orders", SLOT) in rds.snapshot_ids()


def test_a_copy_holding_the_slots_identifier_is_not_taken_for_the_slots_snapshot(rds: FakeRds) -> None:
    # Given a copy of another region's snapshot of "orders" for this slot, arrived here with its identifier
    # and tags (the same default marker)
    rds.add_cluster("orders", {TAG: "daily"})
    ours = managed(rds, "orders", SLOT)
    rds.snapshots_by_id[ours.id] = dataclasses.replace(
        ours, source_arn=f"arn:aws:rds:us-west-2:1:cluster-snapshot:{ours.id}"
    )

    report = run(rds)

    # Then the slot is not counted done: the run says the identifier is taken, and by a copy
    (failure,) = entries(report.failed, "orders")
    assert failure["error"] == "IdentifierTaken"
    assert "it is a copy of arn:aws:rds:us-west-2" in failure["message"]
    assert [e["snapshot"] for e in report.foreign_marked] == [ours.id]
    assert ours.id in rds.snapshot_ids()


def test_discovery_reads_a_snapshot_listed_twice_once_for_quota_planning_too(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    rds.add_cluster("orders", {TAG: "daily"})
    rds.add_snapshot("hand-made", "orders", SLOT - timedelta(days=1))
    listed = rds.manual_snapshots()
    monkeypatch.setattr(rds, "manual_snapshots", lambda: listed + listed)

    discovery = service.discover(make_settings(), cast(RdsAdapter, rds), AT)

    assert [s.id for s in discovery.snapshots] == ["hand-made"]


def test_a_failed_snapshot_for_the_slot_is_reported_not_counted_as_done(rds: FakeRds) -> None:
    # Given our snapshot for the current slot ended up failed
    rds.add_cluster("orders", {TAG: "daily"})
    managed(rds, "orders", SLOT, status="failed")

    # When a run reaches the slot
    report = run(rds)

    # Then it says so (the slot is not silently lost) and deletes nothing
    (failure,) = entries(report.failed, "orders")
    assert failure["error"] == "SlotSnapshotFailed"
    assert snapshot_id("orders", SLOT) in failure["message"]
    assert rds.deleted_ids() == []


def test_an_event_that_arrives_after_its_slot_does_not_back_fill_it(rds: FakeRds) -> None:
    # Given an hourly cluster and the 03:00 event delivered at 05:30, after two later slots began
    rds.add_cluster("orders", {TAG: "every=1h keep-last=5"})
    late = SLOT + timedelta(hours=2, minutes=30)

    # When the run plans with the wall clock
    report = service.run(
        make_settings(), cast(RdsAdapter, rds), SLOT, now=late, dry_run=False, budget=LambdaClock(rds).budget()
    )

    # Then nothing is made for 03:00 and the report says why
    assert rds.created_ids() == []
    assert [(s["cluster"], s["code"]) for s in report.skipped] == [("orders", "stale-event")]


def test_an_event_late_within_its_own_slot_is_still_served(rds: FakeRds) -> None:
    # Given a daily cluster and its 03:00 event delivered at 09:00, still inside the day's slot
    rds.add_cluster("orders", {TAG: "daily"})

    # When the run plans with the wall clock
    service.run(
        make_settings(),
        cast(RdsAdapter, rds),
        SLOT,
        now=SLOT + timedelta(hours=6),
        dry_run=False,
        budget=LambdaClock(rds).budget(),
    )

    # Then the slot is caught up
    assert rds.created_ids() == ["orders-20260310-0300"]


def test_a_quota_read_that_overstates_the_room_still_ends_in_order_and_counts_every_cluster_once(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given six due clusters, overdue by 1..6 days, an account with room for two more snapshots, and a quota
    # read that claims plenty (so creates start in parallel)
    for n in range(1, 7):
        rds.add_cluster(f"db{n}", {TAG: DAILY3})
        managed(rds, f"db{n}", SLOT - timedelta(days=n))
    rds.quota_max = rds.manual_used() + 2
    monkeypatch.setattr(rds, "quota", lambda: Quota(used=0, max=1000))

    # When a run creates
    report = run(rds)

    # Then two snapshots are made, both for clusters among the most overdue in flight, the rest wait for quota,
    # and every due cluster is reported exactly once
    made = {entry["cluster"] for entry in report.created}
    waiting = {entry["cluster"] for entry in report.deferred if entry["code"] == "quota"}
    assert len(made) == 2 and made <= {"db6", "db5", "db4", "db3"}
    assert made | waiting == {f"db{n}" for n in range(1, 7)} and not made & waiting
    assert len(report.created) + len(report.deferred) == 6
    assert report.quota_exceeded >= 1
    assert report.failed == []


def test_with_room_to_spare_every_due_cluster_is_snapshotted_in_parallel_once(rds: FakeRds) -> None:
    # Given forty due clusters and a quota with room for all
    for n in range(40):
        rds.add_cluster(f"db{n:02d}", {TAG: DAILY3})
    rds.quota_max = 1000

    # When a run creates
    report = run(rds)

    # Then each got exactly one snapshot, and the report lists each once
    assert sorted(rds.created_ids()) == sorted(snapshot_id(f"db{n:02d}", SLOT) for n in range(40))
    assert sorted(e["cluster"] for e in report.created) == [f"db{n:02d}" for n in range(40)]


# --- from the review: fail-safe holds, contained errors, a delete backlog, the quota path -------------------


@pytest.mark.parametrize(
    ("key", "value"), [("Snapshot-Hold", "true"), ("snapshot-hold", "yes"), ("SNAPSHOT-HOLD", "1")]
)
def test_a_hold_in_any_spelling_keeps_the_snapshot(rds: FakeRds, key: str, value: str) -> None:
    # Given an expired snapshot an operator held with another spelling of the tag
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    history(rds, "orders", 3, policy="every=1d keep-last=1")
    oldest = snapshot_id("orders", SLOT - timedelta(days=3))
    snapshot = rds.snapshots_by_id[oldest]
    rds.snapshots_by_id[oldest] = dataclasses.replace(snapshot, tags={**snapshot.tags, key: value})

    run(rds)

    assert oldest in rds.snapshot_ids()
    assert snapshot_id("orders", SLOT - timedelta(days=2)) not in rds.snapshot_ids()


def test_a_hold_set_to_false_releases_the_snapshot(rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "every=1d keep-last=1"})
    history(rds, "orders", 2, policy="every=1d keep-last=1")
    oldest = snapshot_id("orders", SLOT - timedelta(days=2))
    snapshot = rds.snapshots_by_id[oldest]
    rds.snapshots_by_id[oldest] = dataclasses.replace(snapshot, tags={**snapshot.tags, tags.HOLD: "false"})

    run(rds)

    assert oldest not in rds.snapshot_ids()


def test_an_orphan_whose_recorded_policy_is_unreadable_is_kept_and_reported(rds: FakeRds) -> None:
    # Given snapshots of a deleted cluster whose recorded policy tag was mangled
    for snapshot in history(rds, "gone", 3):
        rds.snapshots_by_id[snapshot.id] = dataclasses.replace(snapshot, tags={**snapshot.tags, tags.POLICY: "daily,7"})

    report = run(rds)

    assert len([s for s in rds.snapshot_ids() if s.startswith("gone")]) == 3
    (skip,) = entries(report.skipped, "gone")
    assert skip["code"] == "policy-error" and "daily,7" in skip["reason"]


def test_a_failing_second_look_for_quota_does_not_stop_the_run(rds: FakeRds) -> None:
    # Given a full quota, and a listing that fails when the run looks again to free room
    rds.add_cluster("orders", {TAG: "daily"})
    rds.quota_max = 0
    sweeps = {"n": 0}

    def second_sweep_fails(operation: str) -> None:
        if operation == "manual_snapshots":
            sweeps["n"] += 1
            if sweeps["n"] == 2:
                raise RdsError("InternalFailure", "listing failed")

    rds.on_call = second_sweep_fails

    report = run(rds)

    # Then the run ends normally, with the cluster deferred for quota
    assert [e["code"] for e in report.deferred] == ["quota"]


def test_quota_refusal_in_a_parallel_pass_retries_once_not_twice(rds: FakeRds, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one due cluster, a full account, and a quota read that claims plenty of room
    rds.add_cluster("orders", {TAG: "daily"})
    rds.quota_max = 0
    monkeypatch.setattr(rds, "quota", lambda: Quota(used=0, max=1000))

    report = run(rds)

    # Then create is called twice: the refusal, then the one retry after pruning again
    assert len(rds.calls_to("create_snapshot")) == 2
    assert report.quota_exceeded == 2
    assert [e["code"] for e in report.deferred] == ["quota"]


def test_a_delete_backlog_does_not_starve_the_due_snapshots(rds: FakeRds) -> None:
    # Given 10 due clusters, each with 20 expired snapshots, and time for about 60 calls
    for n in range(10):
        rds.add_cluster(f"db{n}", {TAG: "every=1d keep-last=1"})
        history(rds, f"db{n}", 21, policy="every=1d keep-last=1")
    rds.quota_max = 10_000
    clock = LambdaClock(rds, remaining=30 + 60 * 0.5)

    def half_a_second(operation: str) -> None:
        if operation in ("create_snapshot", "delete_snapshot"):
            clock.remaining -= 0.5

    rds.on_call = half_a_second

    report = run(rds, clock=clock, settings=make_settings(api_rate=1.0))

    # Then every due cluster got its snapshot; the deletions that did not fit wait for the next run
    assert sorted(e["cluster"] for e in report.created) == [f"db{n}" for n in range(10)]
    assert 0 < len(report.deleted) < 200


def test_parallel_quota_refusals_are_all_retried_once_the_second_look_frees_room(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given twelve due clusters with three expired snapshots each, an account that is really full, a quota
    # read that claims room (so creates start in parallel), and too little time to prune before creating
    for n in range(12):
        rds.add_cluster(f"db{n:02d}", {TAG: "every=1d keep-last=1"})
        history(rds, f"db{n:02d}", 4, policy="every=1d keep-last=1")
    rds.quota_max = rds.manual_used()
    monkeypatch.setattr(rds, "quota", lambda: Quota(used=0, max=1000))

    report = run(rds, settings=make_settings(api_rate=0.01))  # 12 / 0.01 = 1,200 s kept: no early prune

    # Then the quota refused the first creates, the second look freed room, and every due cluster got its snapshot
    assert report.quota_exceeded >= 1
    assert sorted(e["cluster"] for e in report.created) == [f"db{n:02d}" for n in range(12)]
    assert report.deferred == [] and report.failed == []


def test_a_bug_in_an_early_create_fails_its_cluster_once_and_the_run_still_reports(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three clusters at their slot's first run (so their creates start beside the sweep), and a bug
    # that raises creating db0's snapshot
    for n in range(3):
        rds.add_cluster(f"db{n}", {TAG: "every=1d keep-last=1"})
    create, tried = rds.create_snapshot, []

    def broken_for_db0(snapshot_id: str, cluster_id: str, tags: Mapping[str, str]) -> Snapshot:
        tried.append(cluster_id)
        if cluster_id == "db0":
            raise ValueError("a bug")
        return create(snapshot_id, cluster_id, tags)

    monkeypatch.setattr(rds, "create_snapshot", broken_for_db0)

    report = run(rds, settings=make_settings(run_interval=timedelta(hours=1)))

    # Then db0 is failed once (the plan does not try it again), the others are created
    assert [(e["cluster"], e["error"]) for e in report.failed] == [("db0", "InternalError")]
    assert sorted(e["cluster"] for e in report.created) == ["db1", "db2"]
    assert sorted(tried) == ["db0", "db1", "db2"]


def test_a_planning_error_is_reported_also_for_a_cluster_an_early_create_took(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cluster whose retention raises (a bug), at its slot's first run: its create goes out early
    real = planning.retain_after_grace

    def broken_for_bad(policy: Policy, snapshots: list[Snapshot], *args: object, **kwargs: object) -> object:
        if any(snapshot.cluster_id == "bad" for snapshot in snapshots):
            raise RuntimeError("a retention bug")
        return real(policy, snapshots, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planning, "retain_after_grace", broken_for_bad)
    rds.add_cluster("bad", {TAG: "every=1d keep-daily=3"})
    history(rds, "bad", 5)

    report = run(rds, settings=make_settings(run_interval=timedelta(hours=1)))

    # Then its snapshot was taken and its planning error is still reported (nothing of it is deleted)
    assert [e["cluster"] for e in report.created] == ["bad"]
    assert [(e["cluster"], e["error"]) for e in report.failed] == [("bad", "PlanningError")]
    assert report.deleted == []


def test_an_early_create_the_quota_refused_is_counted(rds: FakeRds) -> None:
    # Given db0's first create is refused for quota, at the slot's first run
    rds.quota_max = 1000
    for n in range(3):
        rds.add_cluster(f"db{n}", {TAG: "every=1d keep-last=1"})
    rds.fail("create_snapshot", QuotaExceeded, target="db0", times=1)

    report = run(rds, settings=make_settings(run_interval=timedelta(hours=1)))

    # Then the refusal is counted (the QuotaExceeded metric), and the plan took db0 after it
    assert report.quota_exceeded == 1
    assert sorted(e["cluster"] for e in report.created) == ["db0", "db1", "db2"]


def test_an_unexpected_error_fails_its_cluster_and_the_run_still_reports(
    rds: FakeRds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given six clusters with expired snapshots, and a bug that raises on one cluster's deletions
    for n in range(6):
        rds.add_cluster(f"db{n}", {TAG: "every=1d keep-last=1"})
        history(rds, f"db{n}", 3, policy="every=1d keep-last=1")
    delete = rds.delete_snapshot

    def broken_for_db0(snapshot: str) -> None:
        if snapshot.startswith("db0-"):
            raise ValueError("a bug")
        delete(snapshot)

    monkeypatch.setattr(rds, "delete_snapshot", broken_for_db0)

    report = run(rds)

    # Then db0 is failed, every other deletion and creation is reported
    assert {(e["cluster"], e["error"]) for e in report.failed} == {("db0", "InternalError")}
    assert len(report.deleted) == 10 and len(report.created) == 6
