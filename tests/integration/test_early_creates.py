"""Creates started while the snapshot sweep is still being read (early.py), through the real handler.

A test that counts pages holds the snapshot sweep's first page until the creates it expects have reached the
layer (or a few seconds have passed) and notes how many had: that number tells whether they overlapped the
sweep, and the sweep then lists the same snapshots however the threads are scheduled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.scenario import (
    TAG,
    created,
    deleted,
    everything,
    fresh_rds,
    layer,
    moto_once,
    reasons,
    seed_ours,
    slot_id,
    snapshot_ids,
)
from tests.support.fidelity import RdsFidelity
from tests.support.harness import scheduled_lambda

START = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # the daily 03:00 UTC slot
DAY = timedelta(days=1)
KEEP_LAST_2 = "every=1d keep-last=2"
CLUSTERS = [f"db-{n:03d}" for n in range(120)]  # two pages of clusters
SNAPSHOT_PAGES = 4  # three of ours per cluster: 360 snapshots
SWEPT_WITH_TODAYS = 5  # and the 120 a run makes before its sweep's first page: 480
ACT_WORKERS = 4


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def empty_rds(moto_module: None) -> None:
    fresh_rds()


def fleet(**options: object) -> RdsFidelity:
    """CLUSTERS on keep-last=2, each with its snapshots of the three previous days: every run at a 03:00 slot
    has one create and one delete per cluster."""
    fid = layer(START, **{"quota": 1000, **options})
    for name in CLUSTERS:
        fid.create_cluster(name, tags={TAG: KEEP_LAST_2}, created=START - 30 * DAY)
        for days in (3, 2, 1):
            seed_ours(fid, name, START - days * DAY, KEEP_LAST_2)
    return fid


def creates_before_the_sweep(fid: RdsFidelity, expected: int, *, wait: float = 5.0) -> list[int]:
    """Hold the snapshot sweep's first page until `expected` creates have reached the layer or `wait` seconds
    passed; the list receives how many had."""
    seen: list[int] = []

    def hold() -> None:
        deadline = time.monotonic() + wait
        while fid.calls["CreateDBClusterSnapshot"] < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append(fid.calls["CreateDBClusterSnapshot"])

    fid.on("DescribeDBClusterSnapshots", hold)
    return seen


def test_a_runs_fresh_slots_are_created_while_the_snapshot_sweep_is_read_with_the_minimum_calls() -> None:
    # Given 120 clusters whose daily slot begins at this run, each with one snapshot too many
    fid = fleet()
    expired = {slot_id(name, START - 3 * DAY) for name in CLUSTERS}
    seen = creates_before_the_sweep(fid, len(CLUSTERS))
    deletes_before_last_page: list[int] = []
    fid.on(
        "DescribeDBClusterSnapshots",
        lambda: deletes_before_last_page.append(fid.calls["DeleteDBClusterSnapshot"]),
        nth=SWEPT_WITH_TODAYS,
    )

    # When the run for the slot happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then every create reached RDS while the snapshot sweep was still being read, and no delete did
    assert seen == [len(CLUSTERS)]
    assert deletes_before_last_page == [0]
    # ... and the run did what it does without overlap: one create and one delete per cluster, two describe
    # chains (the snapshot sweep, held until today's were made, listed them too: one page more)
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
    assert deleted(report) == expired
    assert report["failed"] == report["deferred"] == report["skipped"] == []
    assert fid.calls == {
        "DescribeDBClusters": 2,
        "DescribeDBClusterSnapshots": SWEPT_WITH_TODAYS,
        "DescribeAccountAttributes": 1,
        "CreateDBClusterSnapshot": len(CLUSTERS),
        "DeleteDBClusterSnapshot": len(CLUSTERS),
    }
    # ... and retention did not count the new snapshots, which RDS answered as creating, though this layer
    # listed them available: each cluster keeps its two newest older snapshots and today's
    for name in CLUSTERS:
        assert snapshot_ids(fid, name) == {slot_id(name, START - days * DAY) for days in (2, 1, 0)}


def test_a_duplicate_delivery_stops_the_early_creates_at_the_first_taken_identifier() -> None:
    # Given the run for the slot has happened; its snapshots are still being made
    fid = fleet(snapshot_creating_for=timedelta(hours=1))
    with scheduled_lambda(fid) as handler:
        handler.run(START)
        after_first = everything(fid)
        fid.reset_counts()
        creates_before_the_sweep(fid, 1)

        # When the same event is delivered again
        report = handler.run(START)

    # Then the early creates stopped at the first identifier RDS said was taken: at most one per worker in
    # flight was wasted, not one per cluster; the plan saw every slot done
    assert 1 <= fid.calls["CreateDBClusterSnapshot"] <= ACT_WORKERS
    assert report["created"] == report["deleted"] == report["failed"] == report["deferred"] == []
    assert everything(fid) == after_first


def test_a_run_that_is_not_its_slots_first_creates_after_the_sweep() -> None:
    # Given the 03:00 run was missed, so the 04:00 run (an hour later: SNAPSHOT_SCHEDULE_MINUTES=60) is the
    # first to see the slot: its snapshot may exist for all it knows
    fid = fleet()
    seen = creates_before_the_sweep(fid, 1, wait=0.5)

    # When the 04:00 run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START + timedelta(hours=1))

    # Then it created nothing before it had read the whole sweep, and then took every slot as planned
    assert seen == [0]
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
    assert fid.calls["CreateDBClusterSnapshot"] == len(CLUSTERS)
    assert fid.calls["DescribeDBClusterSnapshots"] == SNAPSHOT_PAGES


def test_a_quota_without_room_for_every_fresh_slot_leaves_the_creates_to_the_plan() -> None:
    # Given a quota with room for the 120 creates but not for 120 plus one per worker (360 used)
    fid = fleet(quota=3 * len(CLUSTERS) + len(CLUSTERS) + ACT_WORKERS - 1)
    seen = creates_before_the_sweep(fid, 1, wait=0.5)

    # When the run for the slot happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then nothing was created early; the plan pruned first and then created every slot
    assert seen == [0]
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
    assert report["failed"] == report["deferred"] == []


def test_a_busy_cluster_is_left_to_the_plan_which_retries_it_and_the_other_early_creates_go_on() -> None:
    # Given one cluster refuses its first snapshot attempt (busy)
    fid = fleet()
    fid.make_busy("db-000", attempts=1)

    # When the run for the slot happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then every cluster got its slot's snapshot: the busy one on the plan's attempt, one call more
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
    assert report["failed"] == []
    assert reasons(report, "deferred") == {}
    assert fid.calls["CreateDBClusterSnapshot"] == len(CLUSTERS) + 1


def test_an_early_create_whose_answer_was_lost_is_found_by_the_sdks_retry_and_reported_created() -> None:
    # Given RDS applies the first create it gets but its answer is lost (botocore retries; the retry finds
    # the identifier taken)
    fid = fleet()
    fid.lose_answers("CreateDBClusterSnapshot", attempts=1)
    creates_before_the_sweep(fid, len(CLUSTERS) + 1)

    # When the run for the slot happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then the snapshot that answer was about is reported created (looked up: ours), once, like all the others
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
    assert report["failed"] == report["deferred"] == []
    assert fid.calls["DescribeDBClusterSnapshots"] == SWEPT_WITH_TODAYS + 1


def test_a_dry_run_creates_nothing_early() -> None:
    fid = fleet()
    before = everything(fid)
    with scheduled_lambda(fid) as handler:
        report = handler.run(START, dry_run=True)
    assert fid.calls["CreateDBClusterSnapshot"] == 0
    assert everything(fid) == before
    assert created(report) == {name: slot_id(name, START) for name in CLUSTERS}
