"""Faults that real RDS throws, met by the real Lambda handler against moto plus the fidelity layer.

Each test is one scenario: Given a fleet, When scheduled runs meet the fault, Then nothing is lost (every due
slot gets exactly one snapshot, in this run or a later run of the same slot) and nothing is wrongly deleted
(unmanaged, held, creating and still-kept snapshots survive). What the run reports, and the metrics it
prints, say what happened.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler import observability, service
from snapshot_scheduler.adapters.rds import RdsAdapter, RdsError
from snapshot_scheduler.config import Settings
from snapshot_scheduler.handlers import backup
from snapshot_scheduler.model import RunReport

from tests.integration.scenario import (
    MARKER,
    TAG,
    created,
    deleted,
    everything,
    fresh_rds,
    layer,
    metric_values,
    moto_once,
    our_tags,
    reasons,
    seed_ours,
    slot_id,
    snapshot_ids,
)
from tests.support.fidelity import RdsFidelity, TokenBucket
from tests.support.harness import DEFAULT_ENV, FakeLambdaContext, rds_client, scheduled_event, scheduled_lambda

START = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # the daily 03:00 UTC slot (the stack's default `at`)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONG_AGO = START - 60 * DAY
KEEP_LAST_1 = "every=1d keep-last=1"
KEEP_LAST_2 = "every=1d keep-last=2"


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def empty_rds(moto_module: None) -> None:
    fresh_rds()


def add_clusters(fidelity: RdsFidelity, policy: str | None, *names: str, **tags: str) -> None:
    for name in names:
        cluster_tags = {TAG: policy} if policy is not None else {}
        fidelity.create_cluster(name, tags={**cluster_tags, **tags}, created=LONG_AGO)


def pages(records: int, *, marker_on_full_last_page: bool = False) -> int:
    """Describe calls a paginated sweep needs at MaxRecords=100."""
    full_last = marker_on_full_last_page and records > 0 and records % 100 == 0
    return max(1, math.ceil(records / 100)) + (1 if full_last else 0)


# ------------------------------------------------------------------------------------------------- quota


def test_quota_exhausted_mid_run_gives_the_headroom_to_the_most_overdue_and_defers_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a quota of 11 manual snapshots with 10 used (9 ours, 1 hand-made), five clusters due whose newest
    # snapshots are of different ages, and one snapshot that keep-last=2 no longer keeps; a new snapshot takes
    # ten minutes
    fid = layer(START, quota=11, snapshot_creating_for=10 * MINUTE)
    add_clusters(fid, KEEP_LAST_2, "c-new", "c-stale", "c-mid", "c-fresh", "c-prune")
    fid.seed_snapshot("c-fresh", "before-upgrade", created=LONG_AGO)
    newest_days_ago = {"c-stale": (4, 5), "c-mid": (2, 3), "c-fresh": (1, 2), "c-prune": (1, 2, 3)}
    for cluster, days in newest_days_ago.items():
        for days_ago in days:
            seed_ours(fid, cluster, START - days_ago * DAY, KEEP_LAST_2)
    expired = slot_id("c-prune", START - 3 * DAY)
    before = set(everything(fid))

    # When the run for the 03:00 slot finds room for two after its prune
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
        metrics = metric_values(capsys)[-1]

        # Then the most overdue (no snapshot at all, then 4 days old) got the room; the rest wait for quota
        assert created(report) == {"c-new": slot_id("c-new", START), "c-stale": slot_id("c-stale", START)}
        assert reasons(report, "deferred") == {"c-mid": "quota", "c-fresh": "quota", "c-prune": "quota"}
        assert report["failed"] == []
        # ... it pruned first, pruned again on the quota error (a second sweep), retried once, then stopped
        assert deleted(report) == {expired}
        assert fid.calls["DescribeDBClusterSnapshots"] == 2
        assert fid.calls["CreateDBClusterSnapshot"] == 4
        assert fid.faults["SnapshotQuotaExceeded"] == 2
        # ... nothing retention keeps was deleted
        assert set(everything(fid)) == (before - {expired}) | set(created(report).values())
        assert metrics["QuotaExceeded"] == 2
        assert metrics["DeferredQuota"] == 3
        assert (metrics["ManualSnapshotQuotaUsed"], metrics["ManualSnapshotQuotaMax"]) == (10, 11)

        # And none is lost: with the quota raised, the next run of the same slot takes the three deferred
        fid.quota = 50
        later = handler.run(START + HOUR)

    assert created(later) == {cluster: slot_id(cluster, START) for cluster in ("c-mid", "c-fresh", "c-prune")}
    assert later["deferred"] == later["failed"] == []


def test_quota_exceeded_prunes_again_and_the_one_retry_uses_the_room_that_freed() -> None:
    # Given a full quota of 2: c-slow's old snapshot, and its snapshot for this slot still creating (so
    # keep-last=1 must keep the old one for now); c-due has no snapshot yet
    fid = layer(START, quota=2)
    add_clusters(fid, KEEP_LAST_1, "c-slow", "c-due")
    old = seed_ours(fid, "c-slow", START - DAY, KEEP_LAST_1)
    seed_ours(fid, "c-slow", START, KEEP_LAST_1, creating_until=START + 5 * MINUTE)
    # ... and by the time the run gets to create, c-slow's snapshot has finished
    fid.on("CreateDBClusterSnapshot", lambda: fid.clock.sleep(10 * 60), nth=1)

    # When the run's first create meets the full quota
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then the second prune deleted the snapshot that had become expendable, and the retry got its room
    assert deleted(report) == {old}
    assert created(report) == {"c-due": slot_id("c-due", START)}
    assert report["deferred"] == report["failed"] == []
    assert fid.calls["CreateDBClusterSnapshot"] == 2
    assert snapshot_ids(fid) == {slot_id("c-slow", START), slot_id("c-due", START)}


# -------------------------------------------------------------------------------------------- throttling


def test_throttling_storm_still_creates_every_due_snapshot_and_counts_the_throttles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 60 clusters due, each with a snapshot keep-last=1 no longer keeps; the account's RDS token bucket
    # already empty (other callers spent it) and 30% of the calls that do get a token throttled anyway
    bucket = TokenBucket(burst=300, rate=12.0)
    fid = layer(START, bucket=bucket, throttle_probability=0.3, seed=11, quota=1000)
    clusters = [f"db-{n:02d}" for n in range(60)]
    add_clusters(fid, KEEP_LAST_1, *clusters)
    for cluster in clusters:
        seed_ours(fid, cluster, START - 2 * DAY, KEEP_LAST_1)
        seed_ours(fid, cluster, START - DAY, KEEP_LAST_1)
    bucket.tokens = 0

    # When the run goes through the storm
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
    (metrics,) = metric_values(capsys)

    # Then every due snapshot was created and every expired one deleted, with nothing failed
    assert created(report) == {cluster: slot_id(cluster, START) for cluster in clusters}
    assert deleted(report) == {slot_id(cluster, START - 2 * DAY) for cluster in clusters}
    assert report["failed"] == report["deferred"] == []
    assert metrics["SnapshotsFailed"] == 0
    # ... and the throttles it rode out are counted, in the report and the metrics
    assert fid.throttled.total() > 60
    assert report["stats"]["throttles"] == fid.throttled.total() == metrics["Throttles"]
    assert snapshot_ids(fid) == {slot_id(c, START - DAY) for c in clusters} | {slot_id(c, START) for c in clusters}


# ------------------------------------------------------------------------------------------ busy cluster


@pytest.mark.parametrize("described", [None, "backing-up"], ids=["described-available", "described-backing-up"])
def test_cluster_busy_longer_than_the_run_is_deferred_busy_and_created_by_a_later_run_of_the_same_slot(
    described: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two daily clusters, one of them refusing snapshots for the next 20 minutes
    fid = layer(START)
    add_clusters(fid, "daily", "busy", "calm")
    fid.make_busy("busy", until=START + 20 * MINUTE, status=described)
    attempts: list[float] = []
    for nth in range(1, 50):
        fid.on("CreateDBClusterSnapshot", lambda: attempts.append(fid.clock.monotonic()), nth=nth)

    # When the run at the slot has 15 minutes
    with scheduled_lambda(fid, budget=timedelta(minutes=15)) as handler:
        report = handler.run(START)
        metrics = metric_values(capsys)[-1]

        # Then the busy cluster was retried with growing back-off while time allowed, then deferred busy
        assert created(report) == {"calm": slot_id("calm", START)}
        assert reasons(report, "deferred") == {"busy": "busy"}
        assert report["failed"] == []
        retries = report["stats"]["busy_retries"]
        assert retries >= 3
        # ... (a cluster described available is tried once more: early, beside the sweep, at the slot's first run)
        early = 1 if described is None else 0
        assert len(attempts) == fid.calls["CreateDBClusterSnapshot"] == 2 + early + retries
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts[1:])]  # [0] is calm's, at 0 s
        assert gaps[0] <= 2.0
        assert all(b >= a for a, b in itertools.pairwise(gaps) if b < 30)  # exponential until the cap
        assert max(gaps) <= 60.0
        assert attempts[-1] <= 15 * 60 - 30  # never past the safety margin
        assert metrics["DeferredBusy"] == 1
        assert metrics["BusyClusterRetries"] == retries

        # And the next run, in the same daily slot, takes it
        later = handler.run(START + HOUR)

    assert created(later) == {"busy": slot_id("busy", START)}
    assert snapshot_ids(fid) == {slot_id("busy", START), slot_id("calm", START)}


def test_a_cluster_busy_for_a_long_maintenance_is_retried_only_for_the_busy_retry_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an hourly schedule's run with 15 minutes, and a cluster in a 40-minute backing-up window
    fid = layer(START)
    add_clusters(fid, "daily", "busy", "calm")
    fid.make_busy("busy", until=START + 40 * MINUTE, status="backing-up")
    started = fid.clock.monotonic()

    # When the run at the slot meets it (busyRetrySeconds at its default of 300, then at 0)
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
        spent = fid.clock.monotonic() - started
        metrics = metric_values(capsys)[-1]
    fid.make_busy("busy", until=START + 2 * HOUR, status="backing-up")
    with scheduled_lambda(fid, env={"SNAPSHOT_BUSY_RETRY_SECONDS": "0"}) as handler:
        fid.clock.advance_to(START + HOUR)
        before = fid.calls["CreateDBClusterSnapshot"]
        untried = handler.run(START + HOUR)
        once = fid.calls["CreateDBClusterSnapshot"] - before

    # Then the run stopped retrying after about five minutes, not at the Lambda's timeout, and said why
    assert created(report) == {"calm": slot_id("calm", START)}
    assert reasons(report, "deferred") == {"busy": "busy"}
    assert "300 s" in report["deferred"][0]["reason"]
    assert 240 <= spent <= 300 + 60
    assert report["stats"]["busy_retries"] >= 3
    assert metrics["DeferredBusy"] == 1
    # ... and with a window of 0 a busy cluster is tried once per run, then deferred
    assert once == 1 and untried["stats"]["busy_retries"] == 0
    assert reasons(untried, "deferred") == {"busy": "busy"}


# ------------------------------------------------------------------------------ duplicates and concurrency


def test_the_same_scheduled_event_delivered_twice_makes_one_snapshot_per_slot() -> None:
    # Given three hourly clusters whose snapshots take 10 minutes
    fid = layer(START, snapshot_creating_for=10 * MINUTE)
    add_clusters(fid, "hourly", "a", "b", "c")

    # When the 03:00 event arrives, again at once, and once more an hour later in a fresh container
    with scheduled_lambda(fid) as handler:
        first = handler.run(START)
        again = handler.run(START)
        fid.clock.sleep(3600)
        handler.cold_start()
        late = handler.run(START)

    # Then the first delivery made the three snapshots and the others found the slot done: the one at once
    # tried its early creates until the first taken identifier stopped them (the three were sent together,
    # four at a time), the late one none (the slot is no longer its first run's)
    assert created(first) == {c: slot_id(c, START) for c in "abc"}
    for redelivery in (again, late):
        assert redelivery["created"] == redelivery["deferred"] == redelivery["failed"] == redelivery["deleted"] == []
    assert 3 + 1 <= fid.calls["CreateDBClusterSnapshot"] <= 3 + 3
    assert snapshot_ids(fid) == {slot_id(c, START) for c in "abc"}


def test_an_event_delivered_after_its_slot_has_passed_does_not_back_fill_that_slot_with_newer_data() -> None:
    # Given an hourly cluster whose 03:00 event was held up, and the 04:00 and 05:00 runs done
    fid = layer(START - HOUR)
    add_clusters(fid, "hourly", "db")
    with scheduled_lambda(fid) as handler:
        handler.run(START + HOUR)
        handler.run(START + 2 * HOUR)

        # When the 03:00 event finally arrives, at 05:30
        fid.clock.sleep(30 * 60)
        late = handler.run(START)

    # Then no snapshot labelled 03:00 is made from 05:30's data: older slots are never back-filled,
    # and the report says why
    assert late["created"] == []
    assert snapshot_ids(fid) == {slot_id("db", START + HOUR), slot_id("db", START + 2 * HOUR)}
    assert [(s["cluster"], s["code"]) for s in late["skipped"]] == [("db", "stale-event")]


def direct_run(fid: RdsFidelity, settings: Settings, at: datetime, client: Any | None = None) -> RunReport:
    """service.run with its own adapter over the shared layer: another Lambda container."""
    adapter = RdsAdapter(client if client is not None else rds_client(fid, attempts=11))
    budget = service.Budget(remaining=lambda: 600.0, sleep=fid.clock.sleep)
    return service.run(settings, adapter, at, dry_run=False, budget=budget)


class WarmFunction:
    """One deployment's warm Lambda container: the real handler, with that deployment's settings and its own
    RDS client on the shared layer (built once: a new boto3 session per invocation costs 0.1 s)."""

    def __init__(self, fid: RdsFidelity, env: dict[str, str]) -> None:
        self.fid = fid
        self.settings = Settings.from_env({**DEFAULT_ENV, **env})
        self.deployment = self.settings.deployment
        self.runtime = backup.Runtime(
            settings=self.settings, rds=RdsAdapter(rds_client(fid)), sleep=fid.clock.sleep, now=fid.clock.now
        )

    def run(self, at: datetime) -> dict[str, Any]:
        self.fid.clock.advance_to(at)  # type: ignore[attr-defined]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(backup, "runtime", lambda: self.runtime)
            patch.setattr(observability.metrics, "namespace", DEFAULT_ENV["POWERTOOLS_METRICS_NAMESPACE"])
            patch.setattr(observability.metrics, "service", DEFAULT_ENV["POWERTOOLS_SERVICE_NAME"])
            observability.metrics.clear_default_dimensions()  # one process plays two deployments' containers
            observability.metrics.clear_metrics()
            answer: dict[str, Any] = backup.lambda_handler(scheduled_event(at), FakeLambdaContext(self.fid.clock))
        return answer


@pytest.mark.parametrize(
    ("operation", "nth"),
    [
        ("DescribeAccountAttributes", 1),
        ("DeleteDBClusterSnapshot", 1),
        ("DeleteDBClusterSnapshot", 5),
        ("CreateDBClusterSnapshot", 1),
        ("CreateDBClusterSnapshot", 5),
    ],
)
def test_two_runs_at_once_make_one_snapshot_per_slot_and_neither_fails(operation: str, nth: int) -> None:
    # Given ten hourly clusters, each with an expired snapshot (keep-last=1) and the previous hour's
    policy = "every=1h keep-last=1"
    fid = layer(START, snapshot_creating_for=5 * MINUTE)
    clusters = [f"db-{n}" for n in range(10)]
    add_clusters(fid, policy, *clusters)
    for cluster in clusters:
        seed_ours(fid, cluster, START - 2 * HOUR, policy)
        seed_ours(fid, cluster, START - HOUR, policy)
    settings = Settings.from_env(DEFAULT_ENV)
    second: list[RunReport] = []

    # When a second run for the same slot starts and finishes while the first is at its nth call of `operation`
    fid.on(operation, lambda: second.append(direct_run(fid, settings, START)), nth=nth)
    first = direct_run(fid, settings, START)

    # Then together they made each slot's snapshot once and deleted each expired one once, with no failure
    made = [entry["snapshot"] for report in (first, *second) for entry in report.created]
    gone = [entry["snapshot"] for report in (first, *second) for entry in report.deleted]
    assert sorted(made) == sorted(slot_id(c, START) for c in clusters)
    assert sorted(gone) == sorted(slot_id(c, START - 2 * HOUR) for c in clusters)
    assert first.failed == second[0].failed == []
    assert snapshot_ids(fid) == {slot_id(c, START - HOUR) for c in clusters} | {slot_id(c, START) for c in clusters}


def test_two_runs_at_once_in_threads_make_one_snapshot_per_slot() -> None:
    # Given twenty hourly clusters, and two containers that both finish discovering before either creates
    policy = "every=1h keep-last=2"
    fid = layer(START, snapshot_creating_for=5 * MINUTE, bucket=TokenBucket.unlimited())
    clusters = [f"db-{n:02d}" for n in range(20)]
    add_clusters(fid, policy, *clusters)
    for cluster in clusters:
        seed_ours(fid, cluster, START - HOUR, policy)
    settings = Settings.from_env(DEFAULT_ENV)
    both_discovered = threading.Barrier(2, timeout=30)
    reports: list[RunReport] = []
    errors: list[BaseException] = []

    def container() -> None:
        client = rds_client(fid)
        waited = threading.Event()

        def first_create(**_: Any) -> None:  # runs before the layer, outside its lock
            if not waited.is_set():
                waited.set()
                both_discovered.wait()

        client.meta.events.register("before-send.rds.CreateDBClusterSnapshot", first_create)
        try:
            reports.append(direct_run(fid, settings, START, client))
        except BaseException as error:  # surfaced below
            errors.append(error)

    # When both run at once
    threads = [threading.Thread(target=container) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then each slot has one snapshot, each made by one of them, and neither failed
    assert errors == []
    made = [entry["snapshot"] for report in reports for entry in report.created]
    assert sorted(made) == sorted(slot_id(c, START) for c in clusters)
    assert [report.failed for report in reports] == [[], []]
    assert snapshot_ids(fid) == {slot_id(c, START - HOUR) for c in clusters} | {slot_id(c, START) for c in clusters}


# ---------------------------------------------------------------------------------------- time and races


def test_time_nearly_spent_defers_the_rest_with_reason_time_and_the_next_run_creates_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 30 daily clusters due and RDS answering each call in one second
    fid = layer(START, latency=1.0)
    clusters = [f"db-{n:02d}" for n in range(30)]
    add_clusters(fid, "daily", *clusters)

    # When the run's Lambda has only 50 seconds left (the engine keeps a safety margin of 30)
    with scheduled_lambda(fid) as handler:
        first = handler.run(START, budget=timedelta(seconds=50))
        elapsed = fid.clock.now() - START
        first_metrics = metric_values(capsys)[-1]
        # ... and the next run of the same slot has its full 15 minutes
        second = handler.run(START + HOUR)

    # Then the first run started what it could, deferred the rest with reason time, and ended in time
    done, waiting = created(first), reasons(first, "deferred")
    assert 0 < len(done) < len(clusters)
    assert set(waiting.values()) == {"time"}
    assert set(done) | set(waiting) == set(clusters)
    assert set(done).isdisjoint(waiting)
    assert elapsed < timedelta(seconds=50)
    assert first_metrics["DeferredTime"] == len(waiting)
    # ... and nothing was lost: the next run created exactly the deferred ones, for the same slot
    assert created(second) == {cluster: slot_id(cluster, START) for cluster in waiting}
    assert fid.calls["CreateDBClusterSnapshot"] == len(clusters)
    assert snapshot_ids(fid) == {slot_id(c, START) for c in clusters}


def test_cluster_deleted_between_describe_and_create_is_skipped_not_found_and_the_others_are_created() -> None:
    # Given three daily clusters; "b" has an earlier snapshot
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "a", "b", "c")
    kept = seed_ours(fid, "b", START - DAY, KEEP_LAST_1)
    # ... and "b" is deleted after the run has described the fleet, just before its first create
    fid.on("CreateDBClusterSnapshot", lambda: fid.delete_cluster("b"))

    # When the run happens, and the next one
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
        later = handler.run(START + HOUR)

    # Then "b" is skipped as not found, the others are created, nothing failed
    assert reasons(report, "skipped") == {"b": "not-found"}
    assert created(report) == {"a": slot_id("a", START), "c": slot_id("c", START)}
    assert report["failed"] == []
    # ... and "b"'s last snapshot stays (an orphan is never pruned below one)
    assert later["created"] == later["deleted"] == later["failed"] == []
    assert snapshot_ids(fid, "b") == {kept}


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_listing_clusters_failing_fails_the_invocation_so_lambda_retries_it_and_nothing_changes() -> None:
    # Given an account whose RDS token bucket is drained and not refilling (every call throttled)
    bucket = TokenBucket(burst=0, rate=0.0)
    fid = layer(START, bucket=bucket)
    add_clusters(fid, "daily", "a")
    before = everything(fid)

    with scheduled_lambda(fid) as handler:
        # When the run cannot even list the clusters
        with pytest.raises(RdsError) as excinfo:
            handler.run(START)

        # Then the invocation fails (Lambda's retries, the DLQ and the errors alarm see it) after the SDK's
        # retries, and nothing was changed
        assert excinfo.value.code == "Throttling"
        assert fid.throttled["DescribeDBClusters"] == 11
        assert everything(fid) == before

        # And Lambda's retry of the same event, once RDS answers again, takes the slot
        bucket.burst, bucket.rate = 300, 12.0
        fid.clock.sleep(60)
        retry = handler.run(START)

    assert created(retry) == {"a": slot_id("a", START)}


# ------------------------------------------------------------------------------------------ policy tags


@pytest.mark.parametrize(
    ("tag", "bad_word"),
    [
        ("every=1d keep-daily=7 keep-montly=3", "keep-montly=3"),
        ("every=5h keep-daily=7", "every=5h"),
        ("every=1d at=25:00 keep-daily=7", "at=25:00"),
        ("weekly", "weekly"),
        ("every=1d at=04:00", "keep-last"),  # keeps nothing: the message names the keep-* words to add
        # A directory of the zone database is no zone (it escaped as IsADirectoryError: a bug, not a policy error)
        ("every=1d tz=America/Indiana keep-daily=7", "tz=America/Indiana"),
        ("every=1d tz=America/Argentina/ keep-daily=7", "tz=America/Argentina/"),
        ("every=1d tz=Japan keep-daily=7", "tz=Japan"),
    ],
)
def test_malformed_policy_tag_skips_that_cluster_naming_the_bad_word_and_deletes_none_of_its_snapshots(
    tag: str, bad_word: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given two well-tagged clusters and one whose tag has a mistake; its snapshots were made under
    # keep-last=1, so any retention at all would delete two of them
    fid = layer(START)
    add_clusters(fid, "daily", "good-1")
    add_clusters(fid, "hourly", "good-2")
    add_clusters(fid, tag, "bad")
    theirs = {seed_ours(fid, "bad", START - days * DAY, KEEP_LAST_1) for days in (1, 2, 3)}
    caplog.set_level(logging.INFO)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
    (metrics,) = metric_values(capsys)

    # Then "bad" is skipped with a message naming the bad word and what is allowed, and a log line says so
    ((entry),) = report["skipped"]
    assert (entry["cluster"], entry["code"]) == ("bad", "policy-error")
    assert bad_word in entry["reason"]
    assert "allowed" in entry["reason"] or "known names" in entry["reason"] or "add at least one" in entry["reason"]
    logged = [r for r in caplog.records if getattr(r, "cluster", None) == "bad" and bad_word in r.getMessage()]
    assert logged, "no log line names the cluster and the bad word"
    assert entry["reason"] in logged[0].getMessage()
    # ... none of its snapshots is deleted and none is made
    assert snapshot_ids(fid, "bad") == theirs
    assert fid.calls["DeleteDBClusterSnapshot"] == 0
    # ... the others carry on, and the metric counts one policy error
    assert created(report) == {"good-1": slot_id("good-1", START), "good-2": slot_id("good-2", START)}
    assert report["failed"] == []
    assert (metrics["PolicyErrors"], metrics["ClustersSkipped"]) == (1, 1)


def test_a_bad_named_policy_fails_only_the_clusters_tagged_with_it_and_the_others_are_backed_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deployment whose environment (edited by hand: the synth refuses it) holds a named policy whose
    # zone is a directory of the zone database, one cluster tagged with it and two tagged otherwise
    named = {"gold": "every=1d tz=America/Indiana keep-last=1", "silver": "every=1d keep-daily=7"}
    fid = layer(START)
    add_clusters(fid, "GOLD", "tagged-gold")
    add_clusters(fid, "silver", "tagged-silver")
    add_clusters(fid, "daily", "on-a-preset")
    theirs = {seed_ours(fid, "tagged-gold", START - days * DAY, KEEP_LAST_1) for days in (1, 2, 3)}

    # When the run happens
    with scheduled_lambda(fid, env={"SNAPSHOT_NAMED_POLICIES": json.dumps(named)}) as handler:
        report = handler.run(START)
    (metrics,) = metric_values(capsys)

    # Then the run starts, the gold cluster is a policy error naming the policy and the zone, its snapshots kept
    ((entry),) = report["skipped"]
    assert (entry["cluster"], entry["code"]) == ("tagged-gold", "policy-error")
    assert "'GOLD'" in entry["reason"] and "America/Indiana is a group of" in entry["reason"]
    assert snapshot_ids(fid, "tagged-gold") == theirs
    # ... and every other cluster is backed up
    assert created(report) == {c: slot_id(c, START) for c in ("tagged-silver", "on-a-preset")}
    assert report["failed"] == []
    assert metrics["PolicyErrors"] == 1


# ------------------------------------------------------------------------------------ pages and API calls


@pytest.mark.parametrize("marker_on_full_last_page", [False, True], ids=["no-marker", "marker-to-empty-page"])
@pytest.mark.parametrize("count", [100, 200])
def test_pages_ending_on_a_page_boundary_show_every_cluster_and_snapshot_once_with_the_minimum_api_calls(
    count: int, marker_on_full_last_page: bool
) -> None:
    # Given exactly 100 or 200 clusters (and as many automated snapshots, which the sweep must filter out),
    # each with yesterday's snapshot, so the first run sweeps `count` snapshots and the next day's 2 x count
    fid = layer(START - DAY, marker_on_full_last_page=marker_on_full_last_page, quota=1000)
    clusters = [f"db-{n:04d}" for n in range(count)]
    add_clusters(fid, KEEP_LAST_1, *clusters)
    for cluster in clusters:
        seed_ours(fid, cluster, START - DAY, KEEP_LAST_1)
    counts = []

    # When two daily runs happen, each an hour after its slot began (not the slot's first run, so no create
    # starts beside the sweep and each sweep lists exactly the snapshots above, however fast it goes)
    with scheduled_lambda(fid) as handler:
        reports = []
        for at in (START + HOUR, START + DAY + HOUR):
            fid.reset_counts()
            reports.append(handler.run(at))
            counts.append(dict(fid.calls))

    # Then each run saw every cluster and every snapshot exactly once
    first, second = reports
    assert created(first) == {c: slot_id(c, START) for c in clusters}
    assert first["deleted"] == []
    assert created(second) == {c: slot_id(c, START + DAY) for c in clusters}
    assert sorted(e["snapshot"] for e in second["deleted"]) == sorted(slot_id(c, START - DAY) for c in clusters)
    # ... with the minimum of API calls: describe pages, one call per create and delete, one quota read
    # (no ListTagsForResource, no per-cluster describe, no retries)
    for run_counts, snapshots, changes in ((counts[0], count, (count, 0)), (counts[1], 2 * count, (count, count))):
        assert run_counts == {
            "DescribeDBClusters": pages(count, marker_on_full_last_page=marker_on_full_last_page),
            "DescribeDBClusterSnapshots": pages(snapshots, marker_on_full_last_page=marker_on_full_last_page),
            "DescribeAccountAttributes": 1,
            "CreateDBClusterSnapshot": changes[0],
            **({"DeleteDBClusterSnapshot": changes[1]} if changes[1] else {}),
        }
    assert fid.throttled.total() == 0


def test_a_snapshot_listed_on_two_pages_is_kept_when_retention_keeps_it() -> None:
    # Given "orders" on keep-last=2 with three snapshots, and 98 hand-made ones of "archive" listed before them,
    # so the first page of the sweep ends on orders' second newest; and pages that shift back by one record
    # (as a Marker would if a snapshot were created ahead of it mid-sweep), so that snapshot is listed again
    fid = layer(START, quota=1000)
    add_clusters(fid, KEEP_LAST_2, "orders")
    add_clusters(fid, None, "archive")
    for n in range(98):
        fid.seed_snapshot("archive", f"archive-{n:03d}", created=LONG_AGO)
    oldest, second, newest = (seed_ours(fid, "orders", START - days * DAY, KEEP_LAST_2) for days in (3, 2, 1))
    fid.shift_pages("DescribeDBClusterSnapshots", -1)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then only the oldest went: the snapshot listed twice is one snapshot, and keep-last=2 keeps it
    assert fid.calls["DescribeDBClusterSnapshots"] == 2
    assert deleted(report) == {oldest}
    assert snapshot_ids(fid, "orders") == {second, newest, slot_id("orders", START)}
    assert report["failed"] == []


class RunawaySweep(Exception):
    """Raised by the test when a sweep asks for more pages than the fleet has: it would never end."""


def stop_runaway_sweeps(fid: RdsFidelity, pages_at_most: int) -> None:
    def runaway() -> None:
        raise RunawaySweep("the sweep kept asking for pages")

    for operation in ("DescribeDBClusters", "DescribeDBClusterSnapshots"):
        fid.on(operation, runaway, nth=pages_at_most + 1)


def orders_among_two_pages_of_archive(fid: RdsFidelity) -> list[str]:
    """Cluster "orders" on keep-last=2 with three snapshots (oldest first), after 150 hand-made ones of "archive"."""
    add_clusters(fid, KEEP_LAST_2, "orders")
    add_clusters(fid, None, "archive")
    for n in range(150):
        fid.seed_snapshot("archive", f"archive-{n:03d}", created=LONG_AGO)
    return [seed_ours(fid, "orders", START - days * DAY, KEEP_LAST_2) for days in (3, 2, 1)]


def test_a_last_page_with_an_empty_marker_ends_the_sweep() -> None:
    # Given "orders" on keep-last=2 with three snapshots, 150 hand-made ones of "archive" (two pages), and
    # last pages that carry an empty Marker (sent back, it would ask for the first page again)
    fid = layer(START, quota=1000, empty_marker_on_last_page=True)
    oldest, second, newest = orders_among_two_pages_of_archive(fid)
    stop_runaway_sweeps(fid, pages_at_most=4)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then each sweep read its pages once, and retention pruned as usual
    assert fid.calls["DescribeDBClusters"] == 1
    assert fid.calls["DescribeDBClusterSnapshots"] == 2
    assert deleted(report) == {oldest}
    assert snapshot_ids(fid, "orders") == {second, newest, slot_id("orders", START)}
    assert report["failed"] == []


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
@pytest.mark.parametrize("lost_answer", [False, True], ids=["answered", "create-answer-lost"])
def test_a_page_answering_the_marker_it_was_asked_for_fails_the_run_and_deletes_nothing(
    lost_answer: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Given "orders" with three snapshots among 150 hand-made ones, and a snapshot sweep whose second page
    # answers with the Marker it was asked for (a chain that would never end)
    fid = layer(START, quota=1000)
    orders_among_two_pages_of_archive(fid)
    fid.stall_pages("DescribeDBClusterSnapshots")
    stop_runaway_sweeps(fid, pages_at_most=4)
    if lost_answer:  # the create beside the sweep is applied, its answer lost: the SDK's retry finds it taken
        fid.lose_answers("CreateDBClusterSnapshot", attempts=1)
    before = everything(fid)

    # When the run happens
    with scheduled_lambda(fid) as handler, pytest.raises(RdsError) as excinfo:
        handler.run(START)

    # Then it fails at once, naming the sweep, instead of looping to its timeout; nothing was deleted: the only
    # change is the snapshot of orders' slot, which began at this run and was started beside the sweep, kept
    # and said loudly, since no report will count it
    assert excinfo.value.code == "PaginationLoop"
    assert "describe_db_cluster_snapshots" in excinfo.value.message
    assert fid.calls["DescribeDBClusterSnapshots"] <= 3
    after = everything(fid)
    assert set(after) - set(before) == {slot_id("orders", START)}
    assert {key: after[key] for key in before} == before
    errors = [(r.getMessage(), getattr(r, "snapshots", None)) for r in caplog.records if r.levelno == logging.ERROR]
    message = "reading the fleet failed after 1 snapshots were started beside the snapshot sweep; they are kept"
    assert errors == [(message, [slot_id("orders", START)])]


def test_a_cluster_listed_on_two_pages_is_planned_once(capsys: pytest.CaptureFixture[str]) -> None:
    # Given 99 untagged clusters, then "orders" at the end of the first page of the cluster sweep, then "zeta";
    # and pages that shift back by one record, so "orders" is listed on both pages
    fid = layer(START, quota=1000)
    add_clusters(fid, None, *(f"a-{n:03d}" for n in range(99)))
    add_clusters(fid, KEEP_LAST_1, "orders", "zeta")
    fid.shift_pages("DescribeDBClusters", -1)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
        metrics = metric_values(capsys)[-1]

    # Then each managed cluster was counted and snapshotted once
    assert fid.calls["DescribeDBClusters"] == 2
    assert created(report) == {"orders": slot_id("orders", START), "zeta": slot_id("zeta", START)}
    assert fid.calls["CreateDBClusterSnapshot"] == 2
    assert report["stats"]["clusters_managed"] == metrics["ClustersManaged"] == 2
    assert report["failed"] == []


def test_a_cluster_missing_from_one_listing_is_looked_up_planned_as_listed_and_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 100 untagged clusters, then "orders" first on the second page of the cluster sweep, then "zeta";
    # orders keeps the last 3, though its snapshots recorded keep-last=1 (its tag was raised since)
    fid = layer(START, quota=1000)
    add_clusters(fid, None, *(f"a-{n:03d}" for n in range(100)))
    add_clusters(fid, "every=1d keep-last=3", "orders")
    add_clusters(fid, KEEP_LAST_1, "zeta")
    history = {seed_ours(fid, "orders", START - days * DAY, KEEP_LAST_1) for days in (1, 2, 3)}
    # ... and pages that shift on by one record (as a Marker would if a cluster before it were deleted
    # mid-sweep), so the listing never shows "orders"
    fid.shift_pages("DescribeDBClusters", 1)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
        metrics = metric_values(capsys)[-1]

    # Then orders was looked up once, found, and planned by its own tag: nothing of it deleted, its slot taken
    assert fid.calls["DescribeDBClusters"] == 2 + 1
    assert report["deleted"] == []
    assert snapshot_ids(fid, "orders") == history | {slot_id("orders", START)}
    assert created(report) == {"orders": slot_id("orders", START), "zeta": slot_id("zeta", START)}
    # ... and reported
    assert [entry["cluster"] for entry in report["unlisted"]] == ["orders"]
    assert metrics["ClustersUnlisted"] == 1
    assert report["stats"]["clusters_managed"] == 2
    assert report["failed"] == []


def test_a_deleted_clusters_snapshots_are_orphans_once_one_lookup_confirms_it_is_gone() -> None:
    # Given "gone", deleted since its four keep-last=2 snapshots were taken, and "here", listed as usual
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "gone", "here")
    old = [seed_ours(fid, "gone", START - days * DAY, KEEP_LAST_2) for days in (1, 2, 3, 4)]
    fid.delete_cluster("gone")

    # When two runs happen
    with scheduled_lambda(fid) as handler:
        counts = []
        reports = []
        for at in (START, START + HOUR):
            fid.reset_counts()
            reports.append(handler.run(at))
            counts.append(fid.calls["DescribeDBClusters"])

    # Then each run looked "gone" up once (the sweep, and one lookup), and pruned it by its recorded policy
    assert counts == [2, 2]
    assert deleted(reports[0]) == set(old[2:])
    assert reports[1]["deleted"] == []
    assert snapshot_ids(fid, "gone") == set(old[:2])
    assert reports[0]["unlisted"] == reports[0]["failed"] == []


# ----------------------------------------------------------------------------------- snapshot and cluster state


def test_a_snapshot_still_creating_defers_the_next_one_in_progress_and_is_never_deleted() -> None:
    # Given "big", whose snapshot for the 03:00 slot is not started because yesterday's is still creating, and
    # "stuck", whose old snapshot has been creating for days while a newer one finished (keep-last=1); the
    # 03:00 run was missed, so the 04:00 run is the first to see the slot (not its first run: no early creates)
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "big", "stuck")
    big_old = seed_ours(fid, "big", START - 2 * DAY, KEEP_LAST_1)
    big_yesterday = seed_ours(fid, "big", START - DAY, KEEP_LAST_1, creating_until=START + 90 * MINUTE)
    stuck = seed_ours(fid, "stuck", START - 3 * DAY, KEEP_LAST_1, creating_until=START + 7 * DAY)
    stuck_newer = seed_ours(fid, "stuck", START - DAY, KEEP_LAST_1)

    with scheduled_lambda(fid) as handler:
        # When the 04:00 run happens
        report = handler.run(START + HOUR)

        # Then both are deferred in progress; no snapshot is started and none deleted (nor tried)
        assert reasons(report, "deferred") == {"big": "in-progress", "stuck": "in-progress"}
        assert report["created"] == report["deleted"] == report["failed"] == []
        assert fid.calls["CreateDBClusterSnapshot"] == fid.calls["DeleteDBClusterSnapshot"] == 0
        assert fid.faults["InvalidDBClusterSnapshotStateFault"] == 0
        assert snapshot_ids(fid) == {big_old, big_yesterday, stuck, stuck_newer}

        # When the next run of the same slot finds big's snapshot finished
        later = handler.run(START + 2 * HOUR)

    # Then big's slot is taken and its older snapshot pruned; stuck's creating one is still untouched
    assert created(later) == {"big": slot_id("big", START)}
    assert deleted(later) == {big_old}
    assert reasons(later, "deferred") == {"stuck": "in-progress"}
    assert snapshot_ids(fid) == {big_yesterday, slot_id("big", START), stuck, stuck_newer}


def test_at_a_slots_first_run_a_cluster_with_a_snapshot_still_creating_is_tried_and_rds_decides() -> None:
    # Given "stuck", whose old snapshot has been creating for days, and "refusing", whose yesterday's snapshot
    # is still creating and which refuses a second one (as RDS may: whether it does is not documented)
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "stuck", "refusing")
    stuck = seed_ours(fid, "stuck", START - 3 * DAY, KEEP_LAST_1, creating_until=START + 7 * DAY)
    yesterday = seed_ours(fid, "refusing", START - DAY, KEEP_LAST_1, creating_until=START + 90 * MINUTE)
    fid.make_busy("refusing", until=START + 90 * MINUTE)

    # When the slot's first run happens (its creates start before it has read the snapshot listing)
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)

    # Then the stuck cluster got this slot's snapshot, and the refusing one is deferred in progress at once
    # (the plan sees its snapshot in flight: no busy retries); nothing is deleted
    assert created(report) == {"stuck": slot_id("stuck", START)}
    assert reasons(report, "deferred") == {"refusing": "in-progress"}
    assert report["failed"] == report["deleted"] == []
    assert fid.calls["CreateDBClusterSnapshot"] == 2
    assert report["stats"]["busy_retries"] == 0
    assert snapshot_ids(fid) == {stuck, slot_id("stuck", START), yesterday}


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("stopped", "stopped"),
        ("stopping", "stopped"),
        ("inaccessible-encryption-credentials", "unavailable"),
        ("migration-failed", "unavailable"),
    ],
)
def test_a_stopped_or_unusable_cluster_is_skipped_with_its_reason_and_the_others_carry_on(
    status: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two daily clusters, one of them not running; its last snapshot is two days old
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "down", "up")
    last = seed_ours(fid, "down", START - 2 * DAY, KEEP_LAST_1)
    fid.set_status("down", status)

    # When the run happens
    with scheduled_lambda(fid) as handler:
        report = handler.run(START)
    (metrics,) = metric_values(capsys)

    # Then it is skipped with that reason, never tried, its snapshot kept; the other is created
    assert reasons(report, "skipped") == {"down": code}
    assert created(report) == {"up": slot_id("up", START)}
    assert report["failed"] == report["deferred"] == []
    assert fid.calls["CreateDBClusterSnapshot"] == 1
    assert snapshot_ids(fid, "down") == {last}
    assert metrics["ClustersSkipped"] == 1
    if code == "stopped":  # a stopped database does not change: its last snapshot still stands for it
        assert report["stats"]["clusters_out_of_policy"] == []


# ------------------------------------------------------------------------------------------ deployments

BLUE = {"SNAPSHOT_DEPLOYMENT": "blue", "SNAPSHOT_POLICY_TAG_KEY": "snapshot-policy"}
GREEN = {"SNAPSHOT_DEPLOYMENT": "green", "SNAPSHOT_POLICY_TAG_KEY": "dr-policy"}


def test_two_deployments_with_their_own_tag_keys_never_touch_each_others_snapshots() -> None:
    # Given blue (tag snapshot-policy, 03:00) and green (tag dr-policy, 05:00) in one account: a cluster each
    # and one cluster both manage
    fid = layer(START - DAY)
    fid.create_cluster("only-blue", tags={"snapshot-policy": KEEP_LAST_2}, created=LONG_AGO)
    fid.create_cluster("only-green", tags={"dr-policy": "every=1d at=05:00 keep-last=3"}, created=LONG_AGO)
    fid.create_cluster(
        "shared",
        tags={"snapshot-policy": KEEP_LAST_2, "dr-policy": "every=1d at=05:00 keep-last=3"},
        created=LONG_AGO,
    )
    blue, green = WarmFunction(fid, BLUE), WarmFunction(fid, GREEN)
    owner: dict[str, str] = {}

    # When both run every few hours for a week
    for at in (START + day * DAY + hour * HOUR for day in range(7) for hour in (0, 2, 5, 11)):
        for function in (blue, green):
            before = {s.id: s.tags.get(MARKER) for s in fid.snapshots()}
            report = function.run(at)
            # Then each deleted only snapshots carrying its own marker
            assert {before[s] for s in deleted(report)} <= {function.deployment}
            assert report["failed"] == []
            owner.update({s: function.deployment for s in created(report).values()})

    # ... and each kept exactly its own policy's set (pruned by its later runs) on its own clusters only
    def of(deployment: str, cluster: str) -> set[str]:
        return {s.id for s in fid.snapshots(cluster) if s.tags.get(MARKER) == deployment}

    last = START + 6 * DAY
    assert of("blue", "only-blue") == {slot_id("only-blue", last - n * DAY) for n in range(2)}
    assert of("blue", "shared") == {slot_id("shared", last - n * DAY) for n in range(2)}
    assert of("green", "only-green") == {slot_id("only-green", last + 2 * HOUR - n * DAY) for n in range(3)}
    assert of("green", "shared") == {slot_id("shared", last + 2 * HOUR - n * DAY) for n in range(3)}
    assert of("green", "only-blue") == of("blue", "only-green") == set()
    assert all(owner[s.id] == s.tags.get(MARKER) for s in fid.snapshots() if s.id in owner)


def test_snapshots_with_our_marker_that_are_not_ours_are_left_alone_and_reported_foreign_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given "orders" on keep-last=1 with two snapshots of ours, the older one expired
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "orders")
    older, newer = (seed_ours(fid, "orders", START - days * DAY, KEEP_LAST_1) for days in (2, 1))
    older_tags = our_tags("orders", START - 2 * DAY, KEEP_LAST_1)
    # ... a person's copy of the older one, made with its tags
    copy = fid.seed_snapshot(
        "orders", "orders-before-migration", created=START - DAY, tags=older_tags, copy_of=arn("us-east-1", older)
    )
    # ... a cluster restored from it, which got its tags, and two hand-made snapshots of that cluster that
    # copy-tags-to-snapshot marked
    fid.create_cluster("orders-restored", tags=older_tags, created=START - 2 * DAY)
    restored = {
        fid.seed_snapshot("orders-restored", f"orders-restored-test-{n}", created=START - n * HOUR, tags=older_tags)
        for n in (1, 2)
    }
    # ... and two copies of another region's snapshots of "remote-db" (whose stack has the same default
    # marker), arriving under their source identifiers, tags copied; no cluster "remote-db" exists here
    fid.create_cluster("remote-db", created=LONG_AGO)
    arrived = {
        fid.seed_snapshot(
            "remote-db",
            slot_id("remote-db", START - days * DAY),
            created=START - days * DAY + HOUR,
            tags=our_tags("remote-db", START - days * DAY, KEEP_LAST_1),
            copy_of=arn("us-west-2", slot_id("remote-db", START - days * DAY)),
        )
        for days in (1, 2)
    }
    fid.delete_cluster("remote-db")
    foreign = {copy} | restored | arrived

    # When two runs happen
    with scheduled_lambda(fid) as handler:
        reports = [handler.run(START), handler.run(START + HOUR)]
        metrics = metric_values(capsys)

    # Then only our own expired snapshots were deleted (the newer once this slot's snapshot had replaced it)
    assert [deleted(report) for report in reports] == [{older}, {newer}]
    assert snapshot_ids(fid) == foreign | {slot_id("orders", START)}
    # ... and each run reported every foreign-marked snapshot once, saying why it is not ours
    for report, values in zip(reports, metrics, strict=True):
        entries = {entry["snapshot"]: entry for entry in report["foreign_marked"]}
        assert len(report["foreign_marked"]) == len(entries) == values["ForeignMarkedSnapshots"] == len(foreign)
        assert set(entries) == foreign
        assert "copy of" in entries[copy]["reason"]
        assert all("is not its cluster" in entries[s]["reason"] for s in restored)
        assert all("copy of arn:aws:rds:us-west-2" in entries[s]["reason"] for s in arrived)
        assert report["failed"] == []


def arn(region: str, snapshot: str) -> str:
    return f"arn:aws:rds:{region}:123456789012:cluster-snapshot:{snapshot}"


def one_cluster_two_deployments_one_slot() -> tuple[RdsFidelity, WarmFunction, WarmFunction]:
    """Blue (keep-last=1) and green (keep-last=7) both snapshot "shared" daily at 03:00 UTC."""
    fid = layer(START)
    fid.create_cluster(
        "shared", tags={"snapshot-policy": KEEP_LAST_1, "dr-policy": "every=1d keep-last=7"}, created=LONG_AGO
    )
    return fid, WarmFunction(fid, BLUE), WarmFunction(fid, GREEN)


def test_a_slot_identifier_held_by_another_deployment_is_reported_failed_and_left_alone() -> None:
    # Given blue (keep-last=1) and green (keep-last=7) both taking a daily 03:00 UTC snapshot of one cluster
    fid, blue, green = one_cluster_two_deployments_one_slot()

    # When both run at the slot on three days
    for day in range(3):
        blue_report = blue.run(START + day * DAY)
        green_report = green.run(START + day * DAY)

        # Then green never takes blue's snapshot for its own: it says, every time, which deployment holds it
        ((failure),) = green_report["failed"]
        assert (failure["cluster"], failure["error"]) == ("shared", "IdentifierTaken")
        assert "'blue'" in failure["message"]
        assert green_report["created"] == green_report["deleted"] == []
        assert blue_report["failed"] == []

    # ... and blue's snapshots follow blue's policy alone
    assert snapshot_ids(fid, "shared") == {slot_id("shared", START + n * DAY) for n in (1, 2)}
    assert {s.tags[MARKER] for s in fid.snapshots("shared")} == {"blue"}


# --------------------------------------------------------------------------------------------- dry run


@pytest.mark.parametrize("how", ["event", "environment"])
def test_dry_run_reports_what_it_would_do_and_changes_nothing(how: str) -> None:
    # Given a due cluster with an expired snapshot, and a due cluster with none
    fid = layer(START)
    add_clusters(fid, KEEP_LAST_1, "a", "b")
    old = seed_ours(fid, "a", START - 2 * DAY, KEEP_LAST_1)
    seed_ours(fid, "a", START - DAY, KEEP_LAST_1)
    before = everything(fid)
    env = {"SNAPSHOT_DRY_RUN": "true"} if how == "environment" else {}

    # When a dry run happens
    with scheduled_lambda(fid, env=env) as handler:
        fid.reset_counts()
        report = handler.run(START, dry_run=True) if how == "event" else handler.run(START)

    # Then it reports what a real run would do, and only read
    assert report["dry_run"] is True
    assert created(report) == {"a": slot_id("a", START), "b": slot_id("b", START)}
    assert deleted(report) == {old}
    assert everything(fid) == before
    assert set(fid.calls) == {"DescribeDBClusters", "DescribeDBClusterSnapshots", "DescribeAccountAttributes"}
