"""A policy tag edit cannot erase history before anyone notices, through the real handler.

Given a cluster whose snapshots were taken under one policy, when its tag changes to a policy that keeps
fewer, then what the change alone would delete waits `policyChangeGraceHours` (default 24) from the first
snapshot taken under the new policy: every run meanwhile reports it as pending (and counts it in the
`DeletionsPending` metric), restoring the tag or holding a snapshot stops it, and ordinary retention (the
same policy rolling forward) is never delayed.

The retention oracle is restic's (`plan_retention`, unit-tested against restic), applied here to the
snapshots that exist before each run; creation times are read back from RDS, not taken from the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler.policy import parse_policy
from snapshot_scheduler.retention import plan_retention

from tests.integration.scenario import (
    HOLD,
    POLICY,
    TAG,
    created,
    deleted,
    fresh_rds,
    hours,
    layer,
    metric_values,
    moto_once,
    seed_ours,
    slot_id,
)
from tests.support.fidelity import RdsFidelity
from tests.support.harness import rds_client, scheduled_event, scheduled_lambda

START = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # a Tuesday, the daily 03:00 UTC slot
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
GFS = "every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4 keep-monthly=12 keep-yearly=7"
DAILY = "every=1d at=03:00 tz=UTC keep-daily=7"
KEEP_LAST_1 = "every=1h keep-last=1"
CLUSTER = "ledger"
# gfs history: the last seven days (today's slot taken), two older Sundays, three month ends, a year end.
DAYS = [START - n * DAY for n in range(7)]
SUNDAYS = [datetime(2026, 3, 1, 3, tzinfo=UTC), datetime(2026, 2, 22, 3, tzinfo=UTC)]
MONTH_ENDS = [datetime(2026, 2, 28, 3, tzinfo=UTC), datetime(2026, 1, 31, 3, tzinfo=UTC)]
YEAR_END = datetime(2025, 12, 31, 3, tzinfo=UTC)
# What `daily` (keep-daily=7) drops at once, and gfs keeps: the history a one-word edit would erase.
HISTORY = {slot_id(CLUSTER, t) for t in [*SUNDAYS, *MONTH_ENDS, YEAR_END]}


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def empty_rds(moto_module: None) -> None:
    fresh_rds()


def gfs_cluster(name: str = CLUSTER) -> RdsFidelity:
    """A cluster tagged gfs with a gfs history, all of which gfs keeps."""
    fid = layer(START)
    fid.create_cluster(name, tags={TAG: "gfs"}, created=START - 400 * DAY)
    for slot in [*DAYS, *SUNDAYS, *MONTH_ENDS, YEAR_END]:
        seed_ours(fid, name, slot, GFS)
    assert oracle_deletes(fid, GFS, name) == set()
    return fid


def retag(fid: RdsFidelity, value: str | None, name: str = CLUSTER) -> None:
    client = rds_client(fid)
    (cluster,) = client.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"]
    if value is None:
        client.remove_tags_from_resource(ResourceName=cluster["DBClusterArn"], TagKeys=[TAG])
    else:
        client.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=[{"Key": TAG, "Value": value}])


def hold(fid: RdsFidelity, snapshot: str) -> None:
    client = rds_client(fid)
    (found,) = client.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snapshot)["DBClusterSnapshots"]
    client.add_tags_to_resource(ResourceName=found["DBClusterSnapshotArn"], Tags=[{"Key": HOLD, "Value": "true"}])


def oracle_deletes(fid: RdsFidelity, policy: str, name: str = CLUSTER) -> set[str]:
    """What restic retention under `policy` removes from the available, un-held snapshots that exist now."""
    candidates = [
        s for s in fid.snapshots(name) if s.status == "available" and HOLD not in s.tags and s.created is not None
    ]
    plan = plan_retention(parse_policy(policy), candidates, key=lambda s: s.created)
    return {s.id for s in plan.remove}


def first_snapshot_under(fid: RdsFidelity, policy: str, name: str = CLUSTER) -> datetime:
    """When RDS says the first snapshot recording `policy` was created (the grace starts there)."""
    times = [s.created for s in fid.snapshots(name) if s.tags.get(POLICY) == policy and s.created is not None]
    return min(times)


def pending(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["snapshot"]: entry for entry in report["pending"]}


def test_a_tag_changed_from_gfs_to_daily_deletes_nothing_for_the_grace_reports_it_pending_then_prunes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a gfs cluster whose tag someone changes to daily just after today's snapshot
    fid = gfs_cluster()
    retag(fid, "daily")
    grace_ends: datetime | None = None
    pruned_at: datetime | None = None

    with scheduled_lambda(fid) as handler:
        # When the hourly runs go on for three days
        for at in hours(START + HOUR, 3 * 24):
            would_delete = oracle_deletes(fid, DAILY)
            started = grace_ends is not None
            report = handler.run(at)
            metrics = metric_values(capsys)[-1]
            if created(report):
                grace_ends = grace_ends or first_snapshot_under(fid, DAILY) + 24 * HOUR
            if grace_ends is None or at < grace_ends:
                # Then until 24 hours after the first daily snapshot nothing is deleted: every deletion daily
                # wants waits, reported with the policy that deletes it and the one that keeps it
                assert deleted(report) == set(), at
                assert set(pending(report)) == would_delete, at
                assert would_delete >= HISTORY
                for entry in report["pending"]:
                    assert (entry["cluster"], entry["policy"], entry["kept_by"]) == (CLUSTER, DAILY, GFS), entry
                    if started:
                        assert grace_ends is not None
                        assert entry["deletable_after"] == grace_ends.isoformat(), entry
                assert metrics["DeletionsPending"] == len(would_delete), at
                assert metrics["SnapshotsDeleted"] == 0, at
            elif pruned_at is None:
                # ... then the first run after the grace prunes what daily does not keep, and says it was a lot
                pruned_at = at
                assert deleted(report) == would_delete, at
                assert report["pending"] == [], at
                assert metrics["DeletionsPending"] == 0, at
                assert metrics["MassDeletions"] == 1, at
            else:
                # ... and daily rolls forward from there as usual
                assert deleted(report) == would_delete, at
                assert report["pending"] == [], at

    assert grace_ends is not None and pruned_at is not None
    assert grace_ends <= pruned_at < grace_ends + HOUR
    assert not HISTORY & {s.id for s in fid.snapshots(CLUSTER)}


def test_restoring_the_tag_within_the_grace_deletes_nothing_gfs_keeps() -> None:
    # Given the tag changed to daily, and the first daily snapshot taken
    fid = gfs_cluster()
    retag(fid, "daily")
    with scheduled_lambda(fid) as handler:
        for at in hours(START + HOUR, 24):
            assert deleted(handler.run(at)) == set(), at
        assert first_snapshot_under(fid, DAILY) >= START + DAY

        # When an operator restores the tag within the grace, and the runs go on past it
        retag(fid, "gfs")
        for at in hours(START + DAY + HOUR, 3 * 24):
            would_delete = oracle_deletes(fid, GFS)
            report = handler.run(at)

            # Then nothing is pending, and only what gfs itself lets go is deleted
            assert report["pending"] == [], at
            assert deleted(report) == would_delete, at

    assert {s.id for s in fid.snapshots(CLUSTER)} >= HISTORY


def test_a_hold_stops_a_pending_deletion() -> None:
    # Given the tag changed to daily, and an operator who holds the year end and one month end during the grace
    fid = gfs_cluster()
    retag(fid, "daily")
    kept = {slot_id(CLUSTER, YEAR_END), slot_id(CLUSTER, MONTH_ENDS[0])}
    with scheduled_lambda(fid) as handler:
        first = handler.run(START + HOUR)
        assert kept <= set(pending(first))
        for snapshot in kept:
            hold(fid, snapshot)

        # When the runs go on past the grace
        reports = [handler.run(at) for at in hours(START + 2 * HOUR, 3 * 24)]

    # Then the held snapshots were no longer pending and survive; the rest of the history went after the grace
    assert not kept & set(pending(reports[0]))
    remaining = {s.id for s in fid.snapshots(CLUSTER)}
    assert kept <= remaining
    assert not (HISTORY - kept) & remaining
    assert all(deleted(r) == set() for r in reports[:23])


def test_a_grace_of_zero_prunes_at_once() -> None:
    # Given a deployment with policyChangeGraceHours=0, and the gfs cluster's tag changed to daily
    fid = gfs_cluster()
    retag(fid, "daily")
    would_delete = oracle_deletes(fid, DAILY)

    # When the next run happens
    with scheduled_lambda(fid, env={"SNAPSHOT_POLICY_CHANGE_GRACE_HOURS": "0"}) as handler:
        report = handler.run(START + HOUR)

    # Then it deletes what daily does not keep, at once
    assert would_delete >= HISTORY
    assert deleted(report) == would_delete
    assert report["pending"] == []


def test_ordinary_daily_rolling_is_not_delayed() -> None:
    # Given a daily cluster with eight days of daily snapshots, and one that moved from gfs to daily weeks ago
    fid = layer(START)
    fid.create_cluster("billing", tags={TAG: "daily"}, created=START - 400 * DAY)
    fid.create_cluster("moved", tags={TAG: "daily"}, created=START - 400 * DAY)
    for n in range(1, 9):
        seed_ours(fid, "billing", START - n * DAY, DAILY)
        seed_ours(fid, "moved", START - n * DAY, DAILY)
    seed_ours(fid, "moved", YEAR_END, GFS, extra={HOLD: "true"})  # gfs history an operator kept
    seed_ours(fid, "moved", datetime(2026, 1, 31, 3, tzinfo=UTC), GFS)
    oldest = {slot_id("billing", START - 8 * DAY), slot_id("moved", START - 8 * DAY)}

    # When the 03:00 run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then the day that rolled out of keep-daily=7 is deleted in this very run, and so is the old gfs leftover
    assert deleted(report) == oldest | {slot_id("moved", datetime(2026, 1, 31, 3, tzinfo=UTC))}
    assert report["pending"] == []


def test_flipping_through_a_second_policy_within_the_grace_does_not_shorten_it() -> None:
    # Given the tag changed to daily, the first daily snapshot taken, then changed again to keep-last=1 hourly
    fid = gfs_cluster()
    retag(fid, "daily")
    with scheduled_lambda(fid) as handler:
        for at in hours(START + HOUR, 25):
            handler.run(at)
        before_flip = {s.id for s in fid.snapshots(CLUSTER)}
        retag(fid, KEEP_LAST_1)

        # When the runs go on for the day the daily grace would have ended in
        reports = {at: handler.run(at) for at in hours(START + DAY + 2 * HOUR, 24)}
        grace_ends = first_snapshot_under(fid, "every=1h at=03:00 tz=UTC keep-last=1") + 24 * HOUR

    # Then nothing taken under gfs or daily is deleted: the grace counts from keep-last=1's first snapshot
    # (only keep-last=1's own hourly snapshots roll, those no earlier policy keeps)
    assert grace_ends > max(reports)
    assert before_flip <= {s.id for s in fid.snapshots(CLUSTER)}
    assert all(not deleted(report) & before_flip for report in reports.values())
    last = reports[max(reports)]
    assert set(pending(last)) >= HISTORY
    assert {entry["kept_by"] for entry in last["pending"]} <= {GFS, DAILY}


def test_a_cluster_untagged_after_a_policy_change_keeps_the_grace_for_its_orphaned_snapshots() -> None:
    # Given the tag changed to keep-last=1 hourly, its first snapshot taken, then the tag removed
    fid = gfs_cluster()
    retag(fid, KEEP_LAST_1)
    spec = "every=1h at=03:00 tz=UTC keep-last=1"
    with scheduled_lambda(fid) as handler:
        first = handler.run(START + HOUR)
        assert created(first) == {CLUSTER: slot_id(CLUSTER, START + HOUR)}
        retag(fid, None)

        # When the runs go on; the orphaned snapshots are pruned by the policy recorded on the newest
        reports = {at: handler.run(at) for at in hours(START + 2 * HOUR, 30)}
    grace_ends = first_snapshot_under(fid, spec) + 24 * HOUR

    # Then nothing is deleted before 24 hours after keep-last=1's first snapshot; all but the newest after
    assert all(deleted(r) == set() for at, r in reports.items() if at < grace_ends)
    assert set(pending(reports[START + 2 * HOUR])) >= HISTORY
    assert {s.id for s in fid.snapshots(CLUSTER)} == {slot_id(CLUSTER, START + HOUR)}


def test_a_run_ahead_of_the_clock_that_meets_the_quota_deletes_nothing_before_the_grace_ends() -> None:
    # Given a gfs cluster changed to daily, whose first daily snapshot starts the grace, and an hourly cluster
    fid = gfs_cluster()
    retag(fid, "daily")
    fid.create_cluster("other", tags={TAG: KEEP_LAST_1}, created=START - 400 * DAY)
    with scheduled_lambda(fid) as handler:
        handler.run(START + DAY)
        grace_ends = first_snapshot_under(fid, DAILY) + 24 * HOUR
        # ... a full snapshot quota, and an event for 5 minutes after the grace ends, delivered 5 minutes before
        # it (10 minutes ahead of the clock, within the skew a run accepts)
        fid.quota = fid.manual_snapshots_used
        fid.clock.advance_to(grace_ends - 5 * MINUTE)

        # When that run meets the quota on "other" and lists again to free room
        report = handler.invoke(scheduled_event(grace_ends + 5 * MINUTE))

    # Then nothing the change alone deletes went before the grace ended, on the first look or the second
    assert report["stats"]["quota_exceeded"] >= 1
    assert deleted(report) == set()
    assert {s.id for s in fid.snapshots(CLUSTER)} >= HISTORY
