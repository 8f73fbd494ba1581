"""The real Lambda handler over the in-memory RDS fake: the EMF blob on stdout, and the handler's answer.

`runtime()` (settings, adapter, how to wait) is replaced by one over tests/support/fake_rds.py; everything
else is the production path: handler -> service -> publish -> Powertools EMF, printed once per invocation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from snapshot_scheduler import observability
from snapshot_scheduler.adapters.rds import ClusterBusy, QuotaExceeded, RdsAdapter, RdsError
from snapshot_scheduler.config import Settings
from snapshot_scheduler.handlers import backup
from snapshot_scheduler.model import RunReport
from snapshot_scheduler.observability import DR_METRICS, VAULT_METRICS, Metric

from tests.support.emf import emf_blobs
from tests.support.fake_rds import FakeContext, FakeRds, LambdaClock, managed_snapshot, settings

NAMESPACE = "SnapshotScheduler-UnitTests"
SERVICE = "snapshot-scheduler"
DEPLOYMENT = "prod-eu"
TAG = "snapshot-policy"
AT = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
EVENT = {"time": "2026-03-10T03:05:00Z"}

# Powertools warns when an invocation that failed before publishing flushes no metrics: expected there.
NO_METRICS_WARNING = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

UNITS = {
    Metric.QUOTA_UTILIZATION: "Percent",
    Metric.OLDEST_RECOVERY_POINT_AGE: "Seconds",
    Metric.RUN_DURATION: "Milliseconds",
}


@pytest.fixture(autouse=True)
def cold_start(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The function's environment as at a cold start, and Powertools' metric state reset around each test.

    Metrics reads its namespace and service once, when created at import; a cold start sees the same
    environment as the handler, so align them with it here.
    """
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setattr(observability.metrics, "namespace", NAMESPACE)
    monkeypatch.setattr(observability.metrics, "service", SERVICE)
    reset_metrics()
    yield
    reset_metrics()


def reset_metrics() -> None:
    observability.metrics.clear_default_dimensions()
    observability.metrics.clear_metrics()


@pytest.fixture
def rds() -> FakeRds:
    return FakeRds(now=AT)


def deployment_settings(**changes: object) -> Settings:
    return settings(
        deployment=DEPLOYMENT,
        policy_tag_key=TAG,
        service_name=SERVICE,
        metrics_namespace=NAMESPACE,
        **changes,
    )


def invoke(
    monkeypatch: pytest.MonkeyPatch,
    rds: FakeRds,
    event: dict[str, Any] | None = None,
    *,
    clock: LambdaClock | None = None,
    config: Settings | None = None,
) -> dict[str, Any]:
    clock = clock or LambdaClock(rds, remaining=600)
    adapter = cast(RdsAdapter, rds)  # the fake has the adapter's surface, not its class
    runtime = backup.Runtime(
        settings=config or deployment_settings(), rds=adapter, sleep=clock.sleep, now=lambda: rds.now
    )
    monkeypatch.setattr(backup, "runtime", lambda: runtime)
    answer: dict[str, Any] = backup.lambda_handler(dict(event or EVENT), FakeContext(clock))
    return answer


def one_blob(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    blobs = emf_blobs(capsys.readouterr().out)
    assert len(blobs) == 1, f"expected one EMF blob per run, got {len(blobs)}"
    return blobs[0]


def metric_values(blob: dict[str, Any]) -> dict[str, float]:
    """Each metric's value; one run gives each metric exactly one data point."""
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    values = {}
    for definition in directive["Metrics"]:
        name = definition["Name"]
        points = blob[name] if isinstance(blob[name], list) else [blob[name]]
        assert len(points) == 1, f"{name} has {len(points)} data points in one run"
        values[name] = points[0]
    return values


def metric_units(blob: dict[str, Any]) -> dict[str, str]:
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    return {m["Name"]: m["Unit"] for m in directive["Metrics"]}


def managed(rds: FakeRds, cluster: str, days_ago: int, **kwargs: Any) -> None:
    kwargs.setdefault("policy", "daily")
    managed_snapshot(rds, cluster, SLOT - timedelta(days=days_ago), deployment=DEPLOYMENT, **kwargs)


# --- one run with something in every counter --------------------------------------------------------------


def busy_fleet(rds: FakeRds) -> None:
    """Given a fleet where each kind of outcome happens once (or a known number of times)."""
    rds.quota_max = 100
    rds.throttles_per_call = 1
    rds.add_cluster("a-new", {TAG: "daily"})  # created
    rds.add_cluster("b-history", {TAG: "every=1d keep-daily=3"})  # 2 deleted, created
    for day in range(1, 6):
        managed(rds, "b-history", day, policy="every=1d keep-daily=3")
    rds.add_cluster("c-busy", {TAG: "daily"})  # deferred busy, 3 days old: out of policy
    managed(rds, "c-busy", 3)
    rds.fail("create_snapshot", ClusterBusy, target="c-busy", times=10_000)
    rds.add_cluster("d-inflight", {TAG: "daily"})  # deferred in progress
    managed(rds, "d-inflight", 1, status="creating")
    rds.add_cluster("e-bad", {TAG: "daily,7"})  # skipped: policy error
    rds.add_cluster("f-stopped", {TAG: "daily"}, status="stopped")  # skipped: stopped; the oldest point
    managed(rds, "f-stopped", 6)
    rds.add_cluster("g-broken", {TAG: "daily"})  # failed, no snapshot ever: out of policy
    rds.fail("create_snapshot", RdsError("KMSKeyNotAccessibleFault", "key disabled"), target="g-broken")
    rds.add_cluster("h-quota", {TAG: "daily"})  # quota exceeded once, pruned again, retried: created
    rds.fail("create_snapshot", QuotaExceeded, target="h-quota")


def test_one_run_emits_one_blob_with_every_metric_and_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    busy_fleet(rds)
    used_before = rds.manual_used()
    clock = LambdaClock(rds, remaining=300)

    answer = invoke(monkeypatch, rds, clock=clock)

    blob = one_blob(capsys)
    values = metric_values(blob)
    retries = len(clock.sleeps)
    assert retries >= 1
    expected = {
        Metric.SNAPSHOTS_CREATED: 3,
        Metric.SNAPSHOTS_DELETED: 2,
        Metric.SNAPSHOTS_DEFERRED: 2,
        Metric.DEFERRED_BUSY: 1,
        Metric.DEFERRED_QUOTA: 0,
        Metric.DEFERRED_IN_PROGRESS: 1,
        Metric.DEFERRED_TIME: 0,
        Metric.CLUSTERS_SKIPPED: 2,
        Metric.SNAPSHOTS_FAILED: 1,
        Metric.POLICY_ERRORS: 1,
        Metric.FOREIGN_MARKED: 0,
        Metric.CLUSTERS_UNLISTED: 0,
        Metric.QUOTA_EXCEEDED: 1,
        Metric.BUSY_RETRIES: retries,
        Metric.THROTTLES: len([c for c in rds.calls if c[0] != "sleep"]),
        Metric.QUOTA_USED: used_before,
        Metric.QUOTA_MAX: 100,
        Metric.QUOTA_UTILIZATION: 100.0 * used_before / 100,
        Metric.CLUSTERS_MANAGED: 7,
        Metric.CLUSTERS_OUT_OF_POLICY: 2,
        Metric.OLDEST_RECOVERY_POINT_AGE: (AT - (SLOT - timedelta(days=6) + timedelta(minutes=2))).total_seconds(),
        Metric.HEARTBEAT: 1,
    }
    assert set(values) == {m.value for m in Metric if m not in DR_METRICS | VAULT_METRICS}  # no DR target, no vault
    assert {name: values[name.value] for name in expected} == expected
    assert 0 <= values[Metric.RUN_DURATION] < 60_000
    # the answer agrees with the metrics
    assert len(answer["created"]) == 3 and len(answer["deleted"]) == 2 and len(answer["failed"]) == 1


def test_blob_has_the_namespace_and_exactly_the_service_and_deployment_dimensions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    busy_fleet(rds)

    invoke(monkeypatch, rds, clock=LambdaClock(rds, remaining=120))

    blob = one_blob(capsys)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [["deployment", "service"]]
    assert (blob["service"], blob["deployment"]) == (SERVICE, DEPLOYMENT)


@pytest.mark.filterwarnings("error")
def test_a_second_deployment_in_one_process_switches_the_dimension_without_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The demo runs a source and a vault deployment in one process; Powertools warns when a default
    # dimension is overwritten, which a newcomer would read as something wrong
    for deployment in ("prod-eu", "vault"):
        observability.publish(RunReport(scheduled_time=AT, dry_run=False), deployment)
        observability.metrics.flush_metrics()

    assert [blob["deployment"] for blob in emf_blobs(capsys.readouterr().out)] == ["prod-eu", "vault"]


def test_every_metric_has_its_contracted_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    busy_fleet(rds)

    invoke(monkeypatch, rds, clock=LambdaClock(rds, remaining=120))

    units = metric_units(one_blob(capsys))
    assert units == {m.value: UNITS.get(m, "Count") for m in Metric if m not in DR_METRICS | VAULT_METRICS}


def test_quiet_run_still_emits_every_count_as_zero_and_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    # Given a fleet with nothing to do (no quota answer, no managed cluster)
    rds.quota_max = None
    rds.add_cluster("unmanaged", {})

    invoke(monkeypatch, rds)

    values = metric_values(one_blob(capsys))
    counts = {m.value for m in Metric if m not in DR_METRICS | VAULT_METRICS} - {
        Metric.QUOTA_USED,
        Metric.QUOTA_MAX,
        Metric.QUOTA_UTILIZATION,
        Metric.OLDEST_RECOVERY_POINT_AGE,
        Metric.RUN_DURATION,
        Metric.HEARTBEAT,
    }
    assert {name: values[name] for name in counts} == dict.fromkeys(counts, 0)
    assert values[Metric.HEARTBEAT] == 1
    # nothing known, nothing made up
    assert Metric.QUOTA_USED not in values and Metric.OLDEST_RECOVERY_POINT_AGE not in values


def test_quota_deferrals_are_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    rds.quota_max = 2
    rds.new_snapshot_status = "creating"
    for cluster in ("a-db", "b-db"):
        rds.add_cluster(cluster, {TAG: "every=1d keep-last=1"})
        managed(rds, cluster, 1, policy="every=1d keep-last=1")

    invoke(monkeypatch, rds)

    values = metric_values(one_blob(capsys))
    assert values[Metric.DEFERRED_QUOTA] == 2
    assert values[Metric.SNAPSHOTS_DEFERRED] == 2
    assert values[Metric.QUOTA_EXCEEDED] >= 1
    assert (values[Metric.QUOTA_USED], values[Metric.QUOTA_MAX], values[Metric.QUOTA_UTILIZATION]) == (2, 2, 100.0)


def test_time_deferrals_are_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    rds.add_cluster("a-db", {TAG: "daily"})
    rds.add_cluster("b-db", {TAG: "daily"})

    invoke(monkeypatch, rds, clock=LambdaClock(rds, remaining=10))

    values = metric_values(one_blob(capsys))
    assert (values[Metric.DEFERRED_TIME], values[Metric.SNAPSHOTS_DEFERRED]) == (2, 2)
    assert values[Metric.SNAPSHOTS_CREATED] == 0


def test_each_invocation_emits_its_own_counts_not_the_sum(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    invoke(monkeypatch, rds)
    rds.now = datetime(2026, 3, 10, 4, 5, tzinfo=UTC)  # an hour later
    invoke(monkeypatch, rds, {"time": "2026-03-10T04:05:00Z"})

    first, second = emf_blobs(capsys.readouterr().out)
    assert metric_values(first)[Metric.SNAPSHOTS_CREATED] == 1
    assert metric_values(second)[Metric.SNAPSHOTS_CREATED] == 0
    assert metric_values(second)[Metric.HEARTBEAT] == 1
    assert [sorted(d) for d in second["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [["deployment", "service"]]


@NO_METRICS_WARNING
def test_failed_run_raises_and_emits_no_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rds: FakeRds
) -> None:
    # Given RDS refuses to list clusters: the run cannot do its work at all
    rds.add_cluster("orders", {TAG: "daily"})
    rds.fail("clusters", RdsError("AccessDenied", "not authorized to perform rds:DescribeDBClusters"))

    with pytest.raises(RdsError):
        invoke(monkeypatch, rds)

    # Then Lambda sees the error (retries, DLQ, errors alarm) and the heartbeat alarm sees a missing beat
    blobs = emf_blobs(capsys.readouterr().out)
    assert not any(Metric.HEARTBEAT.value in blob for blob in blobs)


# --- the handler's answer and event -----------------------------------------------------------------------------


def test_handler_answers_with_the_report(monkeypatch: pytest.MonkeyPatch, rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    answer = invoke(monkeypatch, rds)

    assert answer["scheduled_time"] == AT.isoformat()
    assert answer["dry_run"] is False
    assert answer["created"] == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert answer["deleted"] == answer["deferred"] == answer["skipped"] == answer["failed"] == []
    json.dumps(answer)  # JSON-able


def test_event_time_is_the_run_time_not_the_clock(monkeypatch: pytest.MonkeyPatch, rds: FakeRds) -> None:
    # Given a cold start that reaches the handler 45 minutes after the scheduled time, in the same slot
    rds.add_cluster("orders", {TAG: "every=1h keep-last=3"})
    rds.now = datetime(2026, 1, 2, 3, 49, 5, tzinfo=UTC)

    answer = invoke(monkeypatch, rds, {"time": "2026-01-02T03:04:05Z"})

    # Then the run is the scheduled time's, and its slot is caught up
    assert answer["scheduled_time"] == "2026-01-02T03:04:05+00:00"
    assert answer["created"] == [{"cluster": "orders", "snapshot": "orders-20260102-0300"}]


def test_an_event_delivered_after_its_slot_is_skipped_as_stale(monkeypatch: pytest.MonkeyPatch, rds: FakeRds) -> None:
    # Given an hourly cluster and the 03:00 event delivered at 05:30 (a redrive from the dead-letter queue)
    rds.add_cluster("orders", {TAG: "every=1h keep-last=3"})
    rds.now = datetime(2026, 1, 2, 5, 30, tzinfo=UTC)

    answer = invoke(monkeypatch, rds, {"time": "2026-01-02T03:00:00Z"})

    # Then it does not back-fill 03:00 with 05:30's data
    assert answer["created"] == []
    assert [s["code"] for s in answer["skipped"]] == ["stale-event"]


def test_event_dry_run_changes_nothing(monkeypatch: pytest.MonkeyPatch, rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    answer = invoke(monkeypatch, rds, {**EVENT, "dry_run": True})

    assert answer["dry_run"] is True
    assert answer["created"] == [{"cluster": "orders", "snapshot": "orders-20260310-0300"}]
    assert rds.snapshot_ids() == set() and rds.calls_to("create_snapshot") == []


def test_deployment_dry_run_setting_changes_nothing(monkeypatch: pytest.MonkeyPatch, rds: FakeRds) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    answer = invoke(monkeypatch, rds, config=deployment_settings(dry_run=True))

    assert answer["dry_run"] is True and rds.snapshot_ids() == set()


@pytest.mark.parametrize(("value", "dry"), [("false", False), ("False", False), (False, False), ("TRUE", True)])
def test_event_dry_run_as_json_or_text(monkeypatch: pytest.MonkeyPatch, rds: FakeRds, value: object, dry: bool) -> None:
    # a templated Scheduler input gives text: "false" must not turn the run into a dry run
    rds.add_cluster("orders", {TAG: "daily"})

    answer = invoke(monkeypatch, rds, {**EVENT, "dry_run": value})

    assert answer["dry_run"] is dry
    assert rds.snapshot_ids() == (set() if dry else {"orders-20260310-0300"})


@NO_METRICS_WARNING
@pytest.mark.parametrize("value", ["yes", "0", 1])
def test_event_dry_run_that_is_not_a_boolean_is_an_error(
    monkeypatch: pytest.MonkeyPatch, rds: FakeRds, value: object
) -> None:
    rds.add_cluster("orders", {TAG: "daily"})

    with pytest.raises(ValueError, match="dry_run"):
        invoke(monkeypatch, rds, {**EVENT, "dry_run": value})

    assert rds.calls_to("create_snapshot") == []


@NO_METRICS_WARNING
@pytest.mark.parametrize("value", ["2026-03-10T03:05:00", "yesterday", "2026-13-01T00:00:00Z"])
def test_event_time_without_zone_or_unreadable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, rds: FakeRds, value: str
) -> None:
    with pytest.raises(ValueError, match="2026-11-27T03:00:00Z"):
        invoke(monkeypatch, rds, {"time": value})
