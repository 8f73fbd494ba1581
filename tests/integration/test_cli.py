"""The CLI against moto (`mock_aws`): run, plan and status drive the same service as the Lambda."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from snapshot_scheduler import cli, config, tags
from snapshot_scheduler.adapters import rds as rds_adapter
from snapshot_scheduler.adapters.rds import ClusterBusy, RdsAdapter

from tests.integration.test_dr import SLOT as DR_SLOT
from tests.integration.test_dr import SOURCE as DR_SOURCE
from tests.integration.test_dr import START as DR_START
from tests.integration.test_dr import World, day
from tests.integration.test_dr import copy_name as dr_copy_name
from tests.integration.test_dr_policy_change import copied_world, retag
from tests.support.harness import moto_rds

REGION = "eu-west-1"
DEPLOYMENT = "SnapshotScheduler"


@pytest.fixture
def rds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in (*config.ENV_VARS, "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("rds", region_name=REGION)


def add_cluster(rds: Any, cluster_id: str, policy: str | None, engine: str = "aurora-postgresql") -> None:
    cluster_tags = [{"Key": "snapshot-policy", "Value": policy}] if policy is not None else []
    rds.create_db_cluster(
        DBClusterIdentifier=cluster_id,
        Engine=engine,
        MasterUsername="admin",
        MasterUserPassword="not-a-secret-1",
        Tags=cluster_tags,
    )


def manual_snapshots(rds: Any) -> dict[str, dict[str, str]]:
    answer = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    return {s["DBClusterSnapshotIdentifier"]: {t["Key"]: t["Value"] for t in s.get("TagList", [])} for s in answer}


@pytest.fixture(autouse=True)
def wall_clock_follows_at(monkeypatch: pytest.MonkeyPatch) -> None:
    """These runs stand for successive hours: the CLI's clock reads the last --at given, as if it were then."""
    _CLOCK[0] = datetime.now(UTC)
    monkeypatch.setattr(cli, "wall_clock", lambda: _CLOCK[0])


_CLOCK = [datetime.now(UTC)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    if "--at" in argv:
        _CLOCK[0] = datetime.fromisoformat(argv[argv.index("--at") + 1])
    code = cli.main(["--region", REGION, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


NOW = hour(datetime.now(UTC))  # moto stamps snapshots with the real time, so the runs happen around now


def test_run_refuses_a_time_ahead_of_the_clock_and_does_not_back_fill_a_passed_slot(
    rds: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an hourly cluster and the real clock at NOW + 30 minutes
    add_cluster(rds, "orders", "hourly")
    monkeypatch.setattr(cli, "wall_clock", lambda: NOW + timedelta(minutes=30))

    # When an operator runs for tomorrow, then for two hours ago
    ahead, _, err = run_cli(capsys, "run", "--at", (NOW + timedelta(days=1)).isoformat())
    _, out, _ = run_cli(capsys, "run", "--json", "--at", (NOW - timedelta(hours=2)).isoformat())

    # Then the first is refused with exit 2 and says why; the second makes no snapshot named for a passed slot
    assert ahead == 2 and "ahead of the clock" in err
    assert [s["code"] for s in json.loads(out)["skipped"]] == ["stale-event"]
    assert manual_snapshots(rds) == {}


def test_run_creates_due_snapshots_and_reports_them(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given two tagged clusters, one untagged
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "gfs")
    add_cluster(rds, "scratch", None)

    # When one run happens at the hour
    code, out, _ = run_cli(capsys, "run", "--at", NOW.isoformat())

    # Then both tagged clusters got their slot's snapshot, tagged as ours, and the table says so
    snapshots = manual_snapshots(rds)
    assert code == 0
    assert f"orders-{slot(0)}" in snapshots
    assert snapshots[f"orders-{slot(0)}"][tags.MARKER] == DEPLOYMENT
    assert not any(s.startswith("scratch") for s in snapshots)
    assert f"created  orders   orders-{slot(0)}" in out
    assert "0 failed; 2 clusters managed" in out


def hand_made_with_our_marker(rds: Any, *, recorded_cluster: str) -> None:
    """orders-by-hand, a snapshot of the untagged cluster "orders" carrying our marker and a cluster tag."""
    add_cluster(rds, "orders", None)
    rds.create_db_cluster_snapshot(
        DBClusterIdentifier="orders",
        DBClusterSnapshotIdentifier="orders-by-hand",
        Tags=[{"Key": tags.MARKER, "Value": DEPLOYMENT}, {"Key": tags.CLUSTER, "Value": recorded_cluster}],
    )


def test_run_lists_a_snapshot_with_our_marker_that_is_not_ours_as_foreign_marked(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a hand-made snapshot that picked up this deployment's marker
    hand_made_with_our_marker(rds, recorded_cluster="orders")

    code, out, _ = run_cli(capsys, "run", "--at", NOW.isoformat())

    assert code == 0
    assert "foreign-marked  orders   orders-by-hand: its snapshot-scheduler:slot tag None" in out
    assert "orders-by-hand" in manual_snapshots(rds)


def test_plan_lists_foreign_marked_snapshots_apart_and_plans_nothing_for_them(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a hand-made snapshot that picked up this deployment's marker and an ill-fitting cluster tag
    hand_made_with_our_marker(rds, recorded_cluster="billing")

    _, text, _ = run_cli(capsys, "plan", "--at", NOW.isoformat())
    _, out, _ = run_cli(capsys, "plan", "--json", "--at", NOW.isoformat())

    assert "Foreign-marked" in text
    assert "orders-by-hand  orders   its snapshot-scheduler:cluster tag 'billing' is not its cluster" in text
    answer = json.loads(out)
    assert [entry["snapshot"] for entry in answer["foreign_marked"]] == ["orders-by-hand"]
    assert answer["clusters"] == []


def test_run_twice_for_the_same_slot_creates_nothing_more(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "orders", "hourly")
    run_cli(capsys, "run", "--at", NOW.isoformat())

    code, out, _ = run_cli(capsys, "run", "--at", (NOW + timedelta(minutes=20)).isoformat(), "--json")

    report = json.loads(out)
    assert code == 0
    assert report["created"] == []
    assert report["complete"] is True
    assert len(manual_snapshots(rds)) == 1


def test_dry_run_changes_nothing_and_says_what_it_would_do(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "orders", "daily")

    code, out, _ = run_cli(capsys, "run", "--dry-run", "--at", NOW.isoformat())

    assert code == 0
    assert "dry run: nothing was changed" in out
    assert "1 would be created" in out
    assert manual_snapshots(rds) == {}


def test_run_json_lists_a_malformed_tag_under_skipped_with_the_reason(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    add_cluster(rds, "orders", "daily")
    add_cluster(rds, "legacy", "daily,7")

    code, out, _ = run_cli(capsys, "run", "--json", "--at", NOW.isoformat())

    report = json.loads(out)
    assert code == 0  # a skipped cluster is reported, not a failed run
    assert [entry["cluster"] for entry in report["created"]] == ["orders"]
    (skipped,) = report["skipped"]
    assert skipped["cluster"] == "legacy"
    assert skipped["code"] == "policy-error"
    assert "contains ','" in skipped["reason"]


def test_policy_check_and_the_run_word_a_bad_tag_the_same(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "legacy", "daily,7")
    _, out, _ = run_cli(capsys, "run", "--json", "--at", NOW.isoformat())
    reason = json.loads(out)["skipped"][0]["reason"]

    code, _, err = run_cli(capsys, "policy", "check", "daily,7")

    assert code == 2
    assert err.strip() == f"snapshot-scheduler: {reason}"


def test_a_deferred_cluster_makes_the_run_exit_1(
    rds: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cluster that RDS keeps refusing as busy (moto itself never does, so the adapter says so)
    add_cluster(rds, "orders", "hourly")

    def busy(self: RdsAdapter, snapshot_id: str, cluster_id: str, snapshot_tags: Any) -> None:
        raise ClusterBusy("InvalidDBClusterStateFault", "cluster is backing-up")

    monkeypatch.setattr(RdsAdapter, "create_snapshot", busy)
    monkeypatch.setattr("snapshot_scheduler.service.BACKOFF_BASE", 0.001)
    monkeypatch.setattr("snapshot_scheduler.service.BACKOFF_CAP", 0.002)

    # When a run has only a moment for retries
    code, out, _ = run_cli(capsys, "run", "--timeout", "0.2", "--at", NOW.isoformat())

    # Then it defers the cluster, says the run is not complete, and exits 1
    assert code == 1
    assert "deferred  orders" in out
    assert "Not complete" in out


def slot(hours: int) -> str:
    return (NOW + timedelta(hours=hours)).strftime("%Y%m%d-%H%M")


def test_plan_shows_creates_deletes_and_why_each_snapshot_stays(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a cluster that keeps the last two snapshots, after three runs
    add_cluster(rds, "orders", "every=1h keep-last=2")
    for hours in range(3):
        run_cli(capsys, "run", "--at", (NOW + timedelta(hours=hours)).isoformat())
    at = NOW + timedelta(hours=3)

    # When the plan is asked for the next hour
    code, out, _ = run_cli(capsys, "plan", "--at", at.isoformat())

    # Then it would create the new slot's snapshot, delete the oldest, and keeps two as "last snapshot"
    snapshots_before = set(manual_snapshots(rds))
    assert code == 0
    assert f"create  orders-{slot(3)}" in out
    assert f"delete  orders-{slot(0)}" in out
    assert f"keep    orders-{slot(2)}" in out
    assert "last snapshot" in out
    assert "a snapshot every hour" in out
    assert set(manual_snapshots(rds)) == snapshots_before  # plan changes nothing


def test_plan_json_gives_every_kept_snapshot_its_reasons(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "orders", "every=1h keep-last=2")
    for hours in range(3):
        run_cli(capsys, "run", "--at", (NOW + timedelta(hours=hours)).isoformat())

    _, out, _ = run_cli(capsys, "plan", "--json", "--at", (NOW + timedelta(hours=3)).isoformat())

    (orders,) = json.loads(out)["clusters"]
    assert orders["create"] == f"orders-{slot(3)}"
    assert [entry["reasons"] for entry in orders["keep"]] == [["last snapshot"], ["last snapshot"]]
    assert len(orders["delete"]) == 1


def test_status_is_0_while_every_cluster_is_in_policy(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "daily")
    run_cli(capsys, "run")

    code, out, _ = run_cli(capsys, "status")

    assert code == 0
    assert "orders   ok" in out
    assert "billing  ok" in out
    assert "a snapshot every hour (anchored at 03:00 UTC)" in out  # the policy in words


def test_status_flags_a_cluster_out_of_policy_and_a_bad_tag_with_exit_1(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given snapshots taken now, and a cluster whose tag does not parse
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "daily")
    add_cluster(rds, "legacy", "daily,7")
    run_cli(capsys, "run")

    # When status is asked three hours later (hourly's interval plus the 60-minute grace is two hours)
    code, out, _ = run_cli(capsys, "status", "--json", "--at", (datetime.now(UTC) + timedelta(hours=3)).isoformat())

    # Then the hourly cluster is out of policy, the daily one is fine, the bad tag needs a look
    answer = {row["cluster"]: row for row in json.loads(out)["clusters"]}
    assert code == 1
    assert answer["orders"]["state"] == "OUT OF POLICY"
    assert answer["orders"]["snapshots"] == 1
    assert answer["orders"]["age_seconds"] >= 3 * 3600 - 60
    assert answer["billing"]["state"] == "ok"
    assert answer["billing"]["next_slot"] is not None
    assert answer["legacy"]["state"] == "policy-error"
    assert "contains ','" in answer["legacy"]["problem"]


def test_status_flags_a_cluster_whose_backups_stopped_by_its_recorded_policy(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two hourly clusters with a snapshot each; then one tag is removed and the other set to off
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "hourly")
    run_cli(capsys, "run")
    arns = {c["DBClusterIdentifier"]: c["DBClusterArn"] for c in rds.describe_db_clusters()["DBClusters"]}
    rds.remove_tags_from_resource(ResourceName=arns["orders"], TagKeys=["snapshot-policy"])
    rds.add_tags_to_resource(ResourceName=arns["billing"], Tags=[{"Key": "snapshot-policy", "Value": "off"}])

    # When status is asked three hours later
    code, out, _ = run_cli(capsys, "status", "--json", "--at", (datetime.now(UTC) + timedelta(hours=3)).isoformat())

    # Then the cluster whose tag vanished is out of policy by the hourly policy its snapshot records; the one
    # stopped on purpose is shown as off, needing no attention
    answer = {row["cluster"]: row for row in json.loads(out)["clusters"]}
    assert code == 1
    assert (answer["orders"]["state"], answer["orders"]["attention"]) == ("untagged, OUT OF POLICY", True)
    assert (answer["billing"]["state"], answer["billing"]["attention"]) == ("off", False)


def test_status_and_plan_warn_of_a_policy_the_deployments_schedule_cannot_keep(
    rds: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an hourly and a daily cluster, and the deployment's schedule (rate(2 hours)) in the environment
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "daily")
    monkeypatch.setenv(config.SCHEDULE_MINUTES, "120")

    # When status and plan are asked
    _, status, _ = run_cli(capsys, "status", "--json")
    _, plan, _ = run_cli(capsys, "plan")

    # Then both say the hourly policy cannot be kept, and nothing about the daily one
    rows = {row["cluster"]: row["warning"] for row in json.loads(status)["clusters"]}
    assert rows["billing"] is None
    assert rows["orders"] is not None and "only every 2 hours" in rows["orders"]
    assert plan.count("warning") == 1 and rows["orders"] in plan


def test_another_deployment_marker_sees_none_of_our_snapshots(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "orders", "hourly")
    run_cli(capsys, "run")

    _, out, _ = run_cli(capsys, "--deployment", "other", "status", "--json")

    (orders,) = json.loads(out)["clusters"]
    assert orders["snapshots"] == 0
    assert orders["newest_snapshot"] is None


def test_logs_go_to_stderr_so_stdout_stays_a_table(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(rds, "legacy", "daily,7")

    _, out, err = run_cli(capsys, "run", "--at", NOW.isoformat())

    assert not any(line.startswith("{") for line in out.splitlines())
    assert '"level":"ERROR"' in err  # the service's own log line for the bad tag


def test_plan_shows_each_clusters_steady_state_and_the_fleets(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a daily and an hourly cluster, one held snapshot of ours and one a person made
    add_cluster(rds, "orders", "hourly")
    add_cluster(rds, "billing", "daily")
    run_cli(capsys, "run", "--at", NOW.isoformat())
    (ours,) = [s for s, t in manual_snapshots(rds).items() if t.get(tags.CLUSTER) == "billing"]
    arn = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=ours)["DBClusterSnapshots"][0]
    rds.add_tags_to_resource(ResourceName=arn["DBClusterSnapshotArn"], Tags=[{"Key": tags.HOLD, "Value": "yes"}])
    rds.create_db_cluster_snapshot(DBClusterIdentifier="billing", DBClusterSnapshotIdentifier="before-upgrade")

    # When the plan is asked for, as text and as JSON
    _, out, _ = run_cli(capsys, "plan")
    _, raw, _ = run_cli(capsys, "plan", "--json")

    # Then hourly needs 31, daily 8 plus the held one, and the person's snapshot counts too
    steady = json.loads(raw)["steady_state"]
    assert {c["cluster"]: c["total"] for c in steady["clusters"]} == {"billing": 9, "orders": 31}
    assert steady["not_ours"] == 1
    assert steady["total"] == 41
    assert "your policies need 41 manual snapshots at steady state (1 held, 1 not ours included)" in out


def test_plan_status_and_run_show_deletions_a_policy_change_caused_as_pending(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three snapshots taken under keep-last=3, then the tag changed to keep-last=1
    add_cluster(rds, "orders", "every=1h keep-last=3")
    for hours in range(3):
        run_cli(capsys, "run", "--at", (NOW + timedelta(hours=hours)).isoformat())
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
    rds.add_tags_to_resource(
        ResourceName=cluster["DBClusterArn"], Tags=[{"Key": "snapshot-policy", "Value": "every=1h keep-last=1"}]
    )
    at = (NOW + timedelta(hours=3)).isoformat()

    # When an operator asks for the plan and the status, and a run happens
    _, plan_json, _ = run_cli(capsys, "plan", "--json", "--at", at)
    _, plan_text, _ = run_cli(capsys, "plan", "--at", at)
    status_code, status_json, _ = run_cli(capsys, "status", "--json", "--at", at)
    _, run_json, _ = run_cli(capsys, "run", "--json", "--at", at)

    # Then the plan lists what keep-last=1 would delete as pending, kept by keep-last=3, and deletes nothing
    (orders,) = json.loads(plan_json)["clusters"]
    assert orders["delete"] == []
    assert orders["pending"]
    assert {p["kept_by"] for p in orders["pending"]} == {"every=1h at=03:00 tz=UTC keep-last=3"}
    assert "pending  policy changed:" in plan_text
    # ... status needs attention (exit 1) and says so
    (row,) = json.loads(status_json)["clusters"]
    assert status_code == 1
    assert row["pending"] == len(orders["pending"])
    assert row["pending_deletable_after"] == orders["pending"][0]["deletable_after"]
    # ... and the run deletes none of them and reports them
    report = json.loads(run_json)
    assert report["deleted"] == []
    assert {p["snapshot"] for p in report["pending"]} == {p["snapshot"] for p in orders["pending"]}


# DR copies: status and plan against two regions behind the fidelity layer --------------------------------


@pytest.fixture
def dr_regions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for two regions of one account; the DR world of test_dr (copies that take hours, the 5-copy
    limit, KMS rules); the CLI runs inside the handler's environment, whose build_client attaches the layers."""
    for name in (*config.ENV_VARS, "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with moto_rds():
        yield


def dr_cli(capsys: pytest.CaptureFixture[str], world: World, at: datetime, *argv: str) -> tuple[int, str]:
    """The CLI at `at` (the layer's clock moved there), through the same layers as the handler."""
    world.clock.advance_to(at)  # type: ignore[attr-defined]
    _CLOCK[0] = at  # `run` checks its time against the clock, as the Lambda does
    capsys.readouterr()  # the handler's own output so far
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_client", rds_adapter.build_client)  # the harness's: layer attached
        code = cli.main(["--region", DR_SOURCE, *argv, "--at", at.isoformat()])
    return code, capsys.readouterr().out


def squeezed(text: str) -> str:
    """Text output with runs of spaces as one: the assertions name words, not column widths."""
    return re.sub(r" {2,}", " ", text)


def by_cluster(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["cluster"]: row for row in answer["dr"]["targets"]}


def test_status_and_plan_show_copies_in_flight_one_deferred_for_the_copy_limit_and_one_skipped_for_kms(
    dr_regions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given six DR-tagged clusters and an encrypted one, and a DR target with no kmsKey
    world = World(copying_for=timedelta(hours=3))
    for n in range(6):
        world.cluster(f"db{n}")
    world.cluster("secret", encrypted=True)
    with world.handler({"dr-west": {"region": "us-west-2"}}) as handler:
        day(handler, 0)  # 03:05 own snapshots; 04:05 five copies start, db0 waits, secret is skipped
        at = DR_START + timedelta(hours=2)

        # When an operator asks for status and plan an hour into the copies
        status_code, status_json = dr_cli(capsys, world, at, "status", "--json")
        _, status_text = dr_cli(capsys, world, at, "status")
        _, plan_json = dr_cli(capsys, world, at, "plan", "--json")
        _, plan_text = dr_cli(capsys, world, at, "plan")

    # Then status shows the five copies in flight with their progress, db0 without a copy, secret skipped
    rows = by_cluster(json.loads(status_json))
    assert status_code == 1
    for n in range(1, 6):
        assert rows[f"db{n}"]["in_flight"][0]["snapshot"] == dr_copy_name(f"db{n}")
        assert rows[f"db{n}"]["in_flight"][0]["progress"] == 33  # an hour of three
        assert (rows[f"db{n}"]["state"], rows[f"db{n}"]["attention"]) == ("first copy pending", False)
    assert rows["db0"]["newest_copy"] is None and rows["db0"]["in_flight"] == []
    assert rows["db0"]["state"] == "OUT OF POLICY" and any("copy-limit" in p for p in rows["db0"]["problems"])
    assert (rows["secret"]["state"], rows["secret"]["attention"]) == ("kms, OUT OF POLICY", True)
    assert "has no kmsKey" in rows["secret"]["problems"][0]
    assert f"{dr_copy_name('db1')} 33%" in squeezed(status_text)
    assert "secret -> dr-west snapshot secret-20260310-0300 is encrypted" in squeezed(status_text)
    # ... and plan: db0's copy deferred (copy-limit) with its source, secret skipped (kms), the rest copying
    plans = by_cluster(json.loads(plan_json))
    assert plans["db0"]["copy"]["snapshot"] == dr_copy_name("db0")
    assert plans["db0"]["copy"]["source"] == "db0-20260310-0300"
    assert (
        plans["db0"]["defer"]["code"] == "copy-limit" and "5 copies are in progress" in plans["db0"]["defer"]["reason"]
    )
    assert plans["secret"]["skip"]["code"] == "kms" and plans["secret"]["copy"] is None
    assert plans["db3"]["copy"] is None and [c["progress"] for c in plans["db3"]["in_flight"]] == [33]
    assert f"copy {dr_copy_name('db0')} from db0-20260310-0300" in squeezed(plan_text)
    assert "defer copy-limit: 5 copies are in progress to us-west-2" in squeezed(plan_text)
    assert "skip kms: snapshot secret-20260310-0300 is encrypted and target dr-west" in squeezed(plan_text)
    assert f"keep {dr_copy_name('db3')} (2026-03-10 03:00 UTC): status copying; 33% copied since" in squeezed(plan_text)


def test_plan_orders_copies_most_overdue_first_and_lists_failed_and_pruned_copies_status_their_age(
    dr_regions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two clusters copied daily, keep-last=1 in the target, copies that take an hour
    world = World(copying_for=timedelta(hours=1))
    world.cluster("orders", dr="to=dr-west keep-last=1")
    world.cluster("billing", dr="to=dr-west keep-last=1")
    spec = "to=dr-west every=1d at=03:00 tz=UTC keep-last=1"
    with world.handler() as handler:
        day(handler, 0)
        # billing's copy fails (its source went while it was copying)
        world.regions.source_deleted(f"arn:aws:rds:{DR_SOURCE}:123456789012:cluster-snapshot:billing-20260310-0300")
        failed_code, failed_status = dr_cli(
            capsys, world, DR_START + timedelta(hours=1, minutes=30), "status", "--json"
        )
        _, failed_plan = dr_cli(capsys, world, DR_START + timedelta(hours=1, minutes=30), "plan")
        handler.run(DR_START + timedelta(hours=3))  # deletes the failed copy
        handler.run(DR_START + timedelta(days=1))  # the next day's own snapshots
        _, next_day = dr_cli(capsys, world, DR_START + timedelta(days=1, hours=1), "plan", "--json")
        handler.run(DR_START + timedelta(days=1, hours=1))  # both copies start
        later = DR_START + timedelta(days=1, hours=2, minutes=25)
        _, status = dr_cli(capsys, world, later, "status", "--json")
        _, plan_json = dr_cli(capsys, world, later, "plan", "--json")
        _, plan_text = dr_cli(capsys, world, later, "plan")

    # Then the failed copy needs a look, and plan deletes it saying why
    rows = by_cluster(json.loads(failed_status))
    assert failed_code == 1
    assert rows["billing"]["failed"] == [dr_copy_name("billing")] and rows["billing"]["attention"] is True
    assert f"delete {dr_copy_name('billing')} (2026-03-10 03:00 UTC): the copy ended failed" in squeezed(failed_plan)
    # ... the next day billing (no copy at all) starts before orders (a day behind), with their sources
    plans = by_cluster(json.loads(next_day))
    assert plans["billing"]["copy"]["order"] == 1 and plans["orders"]["copy"]["order"] == 2
    assert plans["orders"]["copy"]["source"] == "orders-20260311-0300"
    assert "no copy of it there yet" in plans["billing"]["copy"]["why"]
    assert "2nd of 2 to start in us-west-2, most overdue first" in plans["orders"]["copy"]["why"]
    # ... once the new copies are available, status shows the newest and its age, plan prunes the older one
    rows = by_cluster(json.loads(status))
    assert rows["orders"]["newest_copy"] == dr_copy_name("orders", DR_SLOT + timedelta(days=1))
    assert rows["orders"]["age_seconds"] == 2 * 3600 + 30 * 60  # at 05:30, from its slot, 03:00
    assert rows["orders"]["state"] == "ok" and rows["orders"]["copies"] == 2
    plans = by_cluster(json.loads(plan_json))
    assert plans["orders"]["delete"] == [
        {
            "snapshot": dr_copy_name("orders"),
            "time": DR_SLOT.isoformat(),
            "reason": f"not kept by the DR policy ({spec})",
        }
    ]
    assert plans["orders"]["keep"][0]["snapshot"] == dr_copy_name("orders", DR_SLOT + timedelta(days=1))
    assert f"delete {dr_copy_name('orders')} (2026-03-10 03:00 UTC): not kept by the DR policy" in squeezed(plan_text)


def test_run_copies_to_the_dr_regions_as_the_function_does_and_lists_the_copies(
    dr_regions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two DR-tagged clusters whose own snapshots the scheduled function took at 03:05
    world = World(copying_for=timedelta(hours=1))
    world.cluster("orders")
    world.cluster("secret", encrypted=True)  # alias/snapshot-dr was never made in the DR region
    with world.handler() as handler:
        handler.run(DR_START)

        # When an operator runs the CLI at 04:05 (text), then again at 06:05 (JSON)
        code, text = dr_cli(capsys, world, DR_START + timedelta(hours=1), "run")
        _, again = dr_cli(capsys, world, DR_START + timedelta(hours=3), "run", "--json")

    # Then the first run copied orders to us-west-2 and skipped secret for its key, saying so; the second
    # found the copy available and copied nothing twice
    assert code == 0  # a skip is reported, as a skipped cluster is: the run is complete
    assert world.copies() == {dr_copy_name("orders"): "available"}
    text = squeezed(text)
    assert f"copy started orders {dr_copy_name('orders')} to dr-west (us-west-2) from orders-20260310-0300" in text
    assert "copy skipped secret dr-west (us-west-2): kms: target dr-west (region us-west-2) cannot use KMS key" in text
    report = json.loads(again)["dr"]
    assert report["started"] == [] and report["targets_managed"] == 2


def test_status_plan_and_run_show_copies_a_dr_policy_change_would_delete_as_pending(
    dr_regions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given copies kept by keep-daily=7 keep-monthly=12, and the DR tag changed to keep-daily=1
    world = copied_world()
    retag(world, "to=dr-west keep-daily=1")
    doomed = {dr_copy_name("orders", DR_SLOT - timedelta(days=d)) for d in range(2, 8)} | {
        dr_copy_name("orders", datetime(2026, 2, 28, 3, tzinfo=UTC))
    }
    with world.handler() as handler:
        handler.run(DR_START)  # today's own snapshot; the copy waits for the next run
        at = DR_START + timedelta(minutes=30)

        # When an operator asks for status and plan, and runs it dry
        status_code, status_json = dr_cli(capsys, world, at, "status", "--json")
        _, status_text = dr_cli(capsys, world, at, "status")
        _, plan_json = dr_cli(capsys, world, at, "plan", "--json")
        _, plan_text = dr_cli(capsys, world, at, "plan")
        _, run_text = dr_cli(capsys, world, at, "run", "--dry-run")

    # Then status needs attention: ten copies the old DR policy keeps will go when the grace ends
    (row,) = json.loads(status_json)["dr"]["targets"]
    assert status_code == 1 and row["attention"] is True
    assert row["pending"] == 10 and row["pending_deletable_after"] == (at + timedelta(hours=24)).isoformat()
    assert "orders -> dr-west DR policy changed: 10 copies that 'to=dr-west every=1d at=03:00 tz=UTC keep-daily=7 " in (
        squeezed(status_text)
    )
    assert "restore the DR tag or hold them to keep them" in status_text
    assert "11 (10 pending)" in status_text
    # ... the plan deletes none of them and lists each, with the policies that delete and keep it
    (plan,) = json.loads(plan_json)["dr"]["targets"]
    assert plan["delete"] == []
    assert doomed <= {p["snapshot"] for p in plan["pending"]}
    assert {(p["policy"], p["kept_by"]) for p in plan["pending"]} == {
        (
            "to=dr-west every=1d at=03:00 tz=UTC keep-daily=1",
            "to=dr-west every=1d at=03:00 tz=UTC keep-daily=7 keep-monthly=12",
        )
    }
    assert "pending DR policy changed: 10 copies" in squeezed(plan_text)
    # ... and a run says so, deleting nothing
    assert f"copy pending orders {dr_copy_name('orders', DR_SLOT - timedelta(days=2))} in us-west-2: kept by" in (
        squeezed(run_text)
    )
    assert "10 copy deletions caused by a DR policy change wait for the grace" in run_text
    assert "copy deleted" not in run_text
