"""Backups that stop must raise an alarm: the real handler against moto plus the fidelity layer.

A cluster that was being backed up and no longer is counts as out of policy (`ClustersOutOfPolicy`), judged by
the policy recorded on its snapshots when its current one is unusable, whatever stopped it; only a deliberate
stop (the tag set to `off`) is not alarmed, and it is still reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.scenario import (
    TAG,
    created,
    fresh_rds,
    layer,
    metric_values,
    moto_once,
    reasons,
    seed_ours,
    slot_id,
    snapshot_ids,
)
from tests.support.fidelity import RdsFidelity
from tests.support.harness import rds_client, scheduled_lambda

START = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONG_AGO = START - 60 * DAY
DAILY = "every=1d keep-daily=3"


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def empty_rds(moto_module: None) -> None:
    fresh_rds()


def backed_up_daily(fid: RdsFidelity, *names: str, engine: str = "aurora-postgresql") -> None:
    """Clusters on DAILY with a snapshot for each of the last four days (the newest one day old at START)."""
    for name in names:
        fid.create_cluster(name, engine=engine, tags={TAG: DAILY}, created=LONG_AGO)
        for days in range(1, 5):
            seed_ours(fid, name, START - days * DAY, DAILY)


def retag(fid: RdsFidelity, cluster: str, *, remove: str | None = None, **tags: str) -> None:
    client = rds_client(fid)
    (raw,) = client.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"]
    if remove is not None:
        client.remove_tags_from_resource(ResourceName=raw["DBClusterArn"], TagKeys=[remove])
    if tags:
        pairs = [{"Key": key, "Value": value} for key, value in tags.items()]
        client.add_tags_to_resource(ResourceName=raw["DBClusterArn"], Tags=pairs)


def out_of_policy(report: dict[str, Any]) -> list[str]:
    return list(report["stats"]["clusters_out_of_policy"])


def test_a_second_cluster_whose_tag_breaks_later_raises_the_count_the_alarm_watches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two daily clusters backed up until yesterday, and a third that stays healthy
    fid = layer(START)
    backed_up_daily(fid, "first", "second", "healthy")

    with scheduled_lambda(fid) as handler:
        # When the first one's tag breaks, and a day later the second one's
        retag(fid, "first", **{TAG: "daily,7"})
        handler.run(START)
        day_one = handler.run(START + 3 * HOUR)
        retag(fid, "second", **{TAG: "every=1d keep-daily=seven"})
        before = {cluster: snapshot_ids(fid, cluster) for cluster in ("first", "second")}
        handler.run(START + DAY)
        day_two = handler.run(START + DAY + 3 * HOUR)
        metrics = metric_values(capsys)

    # Then each broken cluster counts out of policy once its recorded daily policy is breached, so the count
    # behind ClustersOutOfPolicy rises when the second one breaks (PolicyErrors alone would not change)
    assert out_of_policy(day_one) == ["first"]
    assert out_of_policy(day_two) == ["first", "second"]
    assert [m["ClustersOutOfPolicy"] for m in (metrics[1], metrics[3])] == [1, 2]
    assert reasons(day_two, "skipped") == {"first": "policy-error", "second": "policy-error"}
    # ... and nothing of theirs was deleted while their tags cannot be read
    assert {cluster: snapshot_ids(fid, cluster) for cluster in before} == before


def break_tag(fid: RdsFidelity, cluster: str) -> None:
    retag(fid, cluster, **{TAG: "daily,7"})


def spell_key_in_another_case(fid: RdsFidelity, cluster: str) -> None:
    retag(fid, cluster, remove=TAG, **{TAG.title(): DAILY})


def remove_tag(fid: RdsFidelity, cluster: str) -> None:
    retag(fid, cluster, remove=TAG)


def set_off(fid: RdsFidelity, cluster: str) -> None:
    retag(fid, cluster, **{TAG: "off"})


def test_each_cluster_that_falls_out_of_policy_is_counted_once_while_others_stay_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two daily clusters whose tags broke, the second one snapshotted two hours later than the first
    fid = layer(START)
    backed_up_daily(fid, "first", "healthy")
    fid.create_cluster("second", tags={TAG: "daily,7"}, created=LONG_AGO)
    seed_ours(fid, "second", START - DAY + 2 * HOUR, DAILY)
    retag(fid, "first", **{TAG: "daily,7"})

    # When hourly runs go on
    with scheduled_lambda(fid) as handler:
        reports = [handler.run(START + n * HOUR) for n in range(6)]
        metrics = metric_values(capsys)

    # Then each counts in ClustersNewlyOutOfPolicy in the one run that finds it fallen out (its snapshot older
    # than the daily interval plus the hour of grace), while ClustersOutOfPolicy keeps counting both
    newly = [report["stats"]["clusters_newly_out_of_policy"] for report in reports]
    assert newly == [[], [], ["first"], [], ["second"], []]
    assert [m["ClustersNewlyOutOfPolicy"] for m in metrics] == [0, 0, 1, 0, 1, 0]
    assert [len(out_of_policy(report)) for report in reports] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("stop", "code", "alarmed"),
    [
        pytest.param(break_tag, "policy-error", True, id="broken-tag"),
        pytest.param(spell_key_in_another_case, "policy-error", True, id="key-in-another-case"),
        pytest.param(remove_tag, "untagged", True, id="tag-removed"),
        pytest.param(set_off, "off", False, id="deliberate-off"),
    ],
)
def test_a_cluster_whose_backups_stop_counts_out_of_policy_unless_stopped_deliberately(
    stop: Callable[[RdsFidelity, str], None], code: str, alarmed: bool
) -> None:
    # Given a daily cluster backed up until yesterday, and a healthy one
    fid = layer(START)
    backed_up_daily(fid, "stopped", "healthy")

    # When its backups stop for that reason, and the runs go on past its daily interval plus the grace
    stop(fid, "stopped")
    with scheduled_lambda(fid) as handler:
        reports = [handler.run(START + n * HOUR) for n in range(4)]

    # Then it is reported every run with the reason, and from when its recorded policy is breached it counts
    # out of policy (a deliberate `off` is reported, never alarmed)
    assert all(reasons(report, "skipped") == {"stopped": code} for report in reports)
    assert out_of_policy(reports[0]) == []
    assert out_of_policy(reports[-1]) == (["stopped"] if alarmed else [])
    assert created(reports[0]) == {"healthy": slot_id("healthy", START)}
    # ... its snapshots are kept as its recorded policy (keep-daily=3) keeps them, never below one
    kept = {slot_id("stopped", START - n * DAY) for n in range(1, 4 if code != "policy-error" else 5)}
    assert snapshot_ids(fid, "stopped") == kept


def test_a_cluster_of_an_engine_no_longer_managed_counts_out_of_policy() -> None:
    # Given a mysql cluster backed up until yesterday, and a deployment that then stops managing mysql
    fid = layer(START)
    backed_up_daily(fid, "legacy", engine="mysql")
    backed_up_daily(fid, "current")
    engines = {"SNAPSHOT_ENGINES": "aurora-mysql,aurora-postgresql"}

    # When the runs go on past its daily interval plus the grace
    with scheduled_lambda(fid, env=engines) as handler:
        reports = [handler.run(START + n * HOUR) for n in range(4)]

    # Then it is reported and counts out of policy, and its snapshots are pruned only by the recorded policy
    assert reasons(reports[-1], "skipped") == {"legacy": "engine-not-managed"}
    assert out_of_policy(reports[-1]) == ["legacy"]
    assert snapshot_ids(fid, "legacy") == {slot_id("legacy", START - n * DAY) for n in range(1, 4)}


def test_a_first_snapshot_stuck_in_creating_counts_out_of_policy_after_the_interval_and_grace() -> None:
    # Given a new daily cluster whose first snapshot never finishes
    fid = layer(START, snapshot_creating_for=30 * DAY)
    fid.create_cluster("new", tags={TAG: DAILY}, created=LONG_AGO)

    # When the runs go on for a day and more
    with scheduled_lambda(fid) as handler:
        first = handler.run(START)
        soon = handler.run(START + HOUR)
        late = handler.run(START + DAY + 2 * HOUR)

    # Then the snapshot under way keeps it in policy only for its interval plus the grace
    assert created(first) == {"new": slot_id("new", START)}
    assert out_of_policy(first) == out_of_policy(soon) == []
    assert reasons(late, "deferred") == {"new": "in-progress"}
    assert out_of_policy(late) == ["new"]


# ------------------------------------------------------------------------------------------- missed slots


def missed(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(entry["cluster"], entry["slot"], entry["reason"]) for entry in report["missed"]]


def test_an_hourly_policy_under_a_two_hour_schedule_counts_each_slot_no_run_took_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an hourly cluster and a daily one, and a deployment that runs every two hours
    fid = layer(START)
    fid.create_cluster("hourly-db", tags={TAG: "hourly"}, created=LONG_AGO)
    fid.create_cluster("daily-db", tags={TAG: DAILY}, created=LONG_AGO)
    every_two_hours = {"SNAPSHOT_SCHEDULE_MINUTES": "120"}

    # When it runs three times
    with scheduled_lambda(fid, env=every_two_hours) as handler:
        reports = [handler.run(START + n * 2 * HOUR) for n in range(3)]
        metrics = metric_values(capsys)

    # Then each run counts the hourly slot that began after the previous run and ended without one, once
    sparse = "schedule-too-sparse"
    assert [missed(report) for report in reports] == [
        [("hourly-db", (START + (2 * n - 1) * HOUR).isoformat(), sparse)] for n in range(3)
    ]
    assert [m["SlotsMissed"] for m in metrics] == [1, 1, 1]
    assert snapshot_ids(fid, "hourly-db") == {slot_id("hourly-db", START + 2 * n * HOUR) for n in range(3)}
    # ... and every run warns that the hourly policy cannot be kept by this schedule; the daily one can
    for report in reports:
        (warning,) = report["warnings"]
        assert (warning["cluster"], warning["code"]) == ("hourly-db", sparse)
        assert "every 1 hour" in warning["message"] and "every 2 hours" in warning["message"]


def test_a_slot_its_last_run_could_not_take_is_counted_by_that_run_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given hourly runs, an hourly cluster busy for most of the 03:00 slot, and a daily one busy at 03:00 only
    fid = layer(START)
    fid.create_cluster("hourly-db", tags={TAG: "hourly"}, created=LONG_AGO)
    fid.create_cluster("daily-db", tags={TAG: DAILY}, created=LONG_AGO)
    fid.make_busy("hourly-db", until=START + 50 * MINUTE, status="backing-up")
    fid.make_busy("daily-db", until=START + 50 * MINUTE, status="backing-up")

    # When the 03:00 and 04:00 runs happen
    with scheduled_lambda(fid) as handler:
        first = handler.run(START)
        second = handler.run(START + HOUR)
        metrics = metric_values(capsys)

    # Then the 03:00 run, the hourly slot's last, counts it missed as busy; the daily slot is not missed,
    # since the 04:00 run of the same slot takes it
    assert reasons(first, "deferred") == {"hourly-db": "busy", "daily-db": "busy"}
    assert missed(first) == [("hourly-db", START.isoformat(), "busy")]
    assert created(second) == {"hourly-db": slot_id("hourly-db", START + HOUR), "daily-db": slot_id("daily-db", START)}
    assert missed(second) == []
    assert [m["SlotsMissed"] for m in metrics] == [1, 0]


def test_slots_lost_to_the_quota_or_a_snapshot_still_creating_are_counted_with_their_reason() -> None:
    # Given hourly runs, a full quota for one cluster's slot, and another whose previous snapshot takes hours
    fid = layer(START, quota=2)
    fid.create_cluster("quota-db", tags={TAG: "hourly"}, created=LONG_AGO)
    fid.create_cluster("slow-db", tags={TAG: "hourly"}, created=LONG_AGO)
    fid.seed_snapshot("quota-db", "by-hand", created=LONG_AGO)
    seed_ours(fid, "slow-db", START - HOUR, "hourly", creating_until=START + 3 * HOUR)

    # When the 03:00 run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then both slots are counted missed, each with its reason
    assert sorted(missed(report)) == [
        ("quota-db", START.isoformat(), "quota"),
        ("slow-db", START.isoformat(), "in-progress"),
    ]


def test_a_stale_event_counts_the_slot_it_came_too_late_for() -> None:
    # Given hourly runs of an hourly cluster whose 03:00 event was held up until 04:30
    fid = layer(START)
    fid.create_cluster("db", tags={TAG: "hourly"}, created=LONG_AGO)
    with scheduled_lambda(fid) as handler:
        on_time = handler.run(START + HOUR)
        fid.clock.sleep(30 * 60)

        # When the 03:00 event arrives
        late = handler.run(START)

    # Then the 03:00 slot is counted missed by it, once, as a stale event
    assert missed(on_time) == []
    assert missed(late) == [("db", START.isoformat(), "stale-event")]
