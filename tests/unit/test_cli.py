"""The CLI without AWS: policy check, settings, argument errors and exit codes, rendering, progress."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler import cli, config
from snapshot_scheduler.model import DrReport, RunReport, Snapshot
from snapshot_scheduler.planning import PolicyContext, plan_run

from tests.unit.test_dr import AT, CONTEXT, SLOT, WEST, cluster, copy_of, days, own_snapshot, plan


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No deployment variables from the caller's shell leak into these tests."""
    for name in config.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# policy check ----------------------------------------------------------------------------------------


def test_policy_check_explains_a_valid_policy_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "policy", "check", "every=1d keep-daily=7 keep-weekly=4")

    assert code == 0
    assert err == ""
    assert "is a valid policy" in out
    assert "a snapshot every day at 03:00 UTC" in out
    assert "the last snapshot of each of 7 days" in out
    assert "the last snapshot of each of 4 ISO weeks" in out


def test_policy_check_lists_the_next_slots_in_the_policy_zone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "policy", "check", "every=1w on=fri at=18:30 tz=America/New_York keep-weekly=8", "--at", "2026-11-27"
    )

    assert code == 0
    assert "a snapshot every Friday at 18:30 America/New_York" in out
    assert "2026-11-27 23:30 UTC = 2026-11-27 18:30 EST" in out
    assert "2026-12-04 23:30 UTC" in out


def test_policy_check_warns_when_the_deployments_schedule_runs_less_often_than_the_policy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, unknown, _ = run_cli(capsys, "policy", "check", "hourly")
    monkeypatch.setenv(config.SCHEDULE_MINUTES, "120")  # as the stack sets it for rate(2 hours)

    code, out, _ = run_cli(capsys, "policy", "check", "hourly")
    _, daily, _ = run_cli(capsys, "policy", "check", "daily", "--json")

    assert "warning" not in unknown  # no schedule known, nothing to say
    assert code == 0
    assert "warning" in out and "every 1 hour" in out and "only every 2 hours" in out
    assert json.loads(daily)["warning"] is None


def test_policy_check_of_a_preset_shows_its_name_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "policy", "check", "gfs")

    assert code == 0
    assert "gfs = every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4 keep-monthly=12 keep-yearly=7" in out


def test_policy_check_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "policy", "check", "hourly", "--json", "--at", "2026-11-27T10:30Z")

    answer = json.loads(out)
    assert code == 0
    assert answer["valid"] is True
    assert answer["name"] == "hourly"
    assert answer["spec"] == "every=1h at=03:00 tz=UTC keep-hourly=24 keep-daily=7"
    assert answer["next_slots"] == [
        "2026-11-27T11:00:00+00:00",
        "2026-11-27T12:00:00+00:00",
        "2026-11-27T13:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("daily,7", "contains ','"),
        ("every=1d", "keeps nothing"),
        ("every=5h keep-daily=7", "every=5h is not an interval; allowed: 1h 2h 3h 4h 6h 8h 12h 1d 1w"),
        ("weekly", "unknown policy name 'weekly'"),
        ("every=1d keep-daily=seven", "keep-daily=seven is not a count"),
        ("every=1d tz=Mars/Olympus keep-daily=7", "tz=Mars/Olympus is not a time zone"),
        # a directory of the zone database printed a traceback (IsADirectoryError)
        ("every=1d tz=America/Indiana keep-daily=7", "America/Indiana is a group of 8 zones"),
        ("every=1d tz=America/Argentina keep-daily=7", "America/Argentina is a group of"),
        ("every=1d tz=europe/berlin keep-daily=7", "did you mean Europe/Berlin?"),
    ],
)
def test_policy_check_rejects_a_bad_value_with_the_services_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], value: str, says: str
) -> None:
    code, out, err = run_cli(capsys, "policy", "check", value)

    assert code == 2
    assert out == ""
    assert err.startswith(f"snapshot-scheduler: policy tag snapshot-policy={value!r}: ")
    assert says in err


def test_policy_check_error_is_the_reason_the_run_reports(capsys: pytest.CaptureFixture[str]) -> None:
    settings = cli.load_settings(cli.build_parser().parse_args(["policy", "check", "x"]), environ={})

    _, _, err = run_cli(capsys, "policy", "check", "daily,7")

    assert err.strip() == "snapshot-scheduler: " + cli.policy_error_reason(settings, "daily,7")


def test_policy_check_of_off_says_the_cluster_is_not_managed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "policy", "check", "off")

    assert code == 0
    assert "not managed" in out


def test_policy_check_knows_the_deployments_named_policies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.NAMED_POLICIES, json.dumps({"tier1": "every=4h keep-daily=14"}))

    code, out, _ = run_cli(capsys, "policy", "check", "tier1")

    assert code == 0
    assert "tier1 = every=4h" in out
    assert "a snapshot every 4 hours" in out


def test_policy_check_of_a_bad_named_policy_says_why_and_others_still_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    named = {"gold": "every=1d tz=America/Indiana keep-daily=7", "silver": "keep-daily=7"}
    monkeypatch.setenv(config.NAMED_POLICIES, json.dumps(named))

    code, out, err = run_cli(capsys, "policy", "check", "gold")
    assert (code, out) == (2, "")
    assert "policy 'gold'" in err and "America/Indiana is a group of" in err and "Traceback" not in err

    code, out, _ = run_cli(capsys, "policy", "check", "silver")
    assert code == 0 and "silver = every=1d" in out


def test_a_default_zone_that_is_a_directory_is_a_settings_error_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.DEFAULT_TZ, "America/Indiana")

    code, out, err = run_cli(capsys, "policy", "check", "daily")

    assert (code, out) == (2, "")
    assert "SNAPSHOT_DEFAULT_TZ='America/Indiana'" in err and "America/Indiana/Indianapolis" in err


# settings ----------------------------------------------------------------------------------------------


def test_settings_default_to_the_stacks_defaults() -> None:
    args = cli.build_parser().parse_args(["status"])

    settings = cli.load_settings(args, environ={})

    assert settings.policy_tag_key == "snapshot-policy"
    assert settings.deployment == "SnapshotScheduler"
    assert settings.default_at == "03:00"
    assert not settings.dry_run


def test_settings_take_the_environment_and_flags_override_it() -> None:
    args = cli.build_parser().parse_args(["--deployment", "prod-eu", "status"])
    environ = {config.DEPLOYMENT: "from-env", config.POLICY_TAG_KEY: "backup", config.DEFAULT_AT: "01:30"}

    settings = cli.load_settings(args, environ=environ)

    assert settings.deployment == "prod-eu"
    assert settings.policy_tag_key == "backup"
    assert settings.default_at == "01:30"


def test_a_bad_flag_value_is_exit_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--deployment", "a,b", "policy", "check", "gfs")

    assert code == 2
    assert out == ""
    assert "--deployment 'a,b' is invalid" in err


def test_a_bad_environment_value_is_exit_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.GRACE_MINUTES, "soon")

    code, _, err = run_cli(capsys, "policy", "check", "gfs")

    assert code == 2
    assert f"{config.GRACE_MINUTES}='soon' is invalid" in err


# argument errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["policy"],
        ["policy", "check"],
        ["frobnicate"],
        ["run", "--at", "yesterday"],
        ["run", "--timeout", "0"],
        ["plan", "--dry-run"],
    ],
)
def test_bad_usage_is_exit_2_with_a_usage_message(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run_cli(capsys, *argv)

    assert code == 2
    assert out == ""
    assert "usage: snapshot-scheduler" in err


def test_a_time_without_zone_is_utc() -> None:
    args = cli.build_parser().parse_args(["run", "--at", "2026-11-27T03:00"])

    assert args.at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_a_time_with_offset_is_converted_to_utc() -> None:
    args = cli.build_parser().parse_args(["plan", "--at", "2026-11-27T04:00+01:00"])

    assert args.at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_no_region_is_exit_2_with_a_hint(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")

    code, _, err = run_cli(capsys, "status")

    assert code == 2
    assert "--region" in err


def test_an_unknown_profile_is_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")

    code, _, err = run_cli(capsys, "--profile", "nope", "--region", "eu-west-1", "plan")

    assert code == 2
    assert "nope" in err


# rendering and progress --------------------------------------------------------------------------------


def test_tables_align_their_columns() -> None:
    text = cli.render_table(("A", "LONGER"), [("x", "1"), ("wide value", "2")])

    lines = text.splitlines()
    assert lines[0] == "A           LONGER"
    assert lines[1].startswith("----------  ------")
    assert lines[3] == "wide value  2"


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class FakeModel:
    def __init__(self, name: str) -> None:
        self.name = name


def test_progress_shows_on_a_terminal_once_the_command_takes_a_while() -> None:
    now = [0.0]
    terminal = FakeTerminal(tty=True)
    progress = cli.Progress(terminal, clock=lambda: now[0])

    progress.after_call(model=FakeModel("DescribeDBClusters"))
    assert terminal.getvalue() == ""  # a quick command shows nothing
    now[0] = 2.0
    progress.after_call(model=FakeModel("CreateDBClusterSnapshot"))
    progress.close()

    shown = terminal.getvalue()
    assert "2 RDS calls (1 describe pages, 1 creates, 0 deletes)" in shown
    assert shown.endswith("\r\x1b[K")  # the line is cleared at the end


def test_progress_stays_silent_when_stderr_is_not_a_terminal() -> None:
    now = [0.0]
    pipe = FakeTerminal(tty=False)
    progress = cli.Progress(pipe, clock=lambda: now[0])

    now[0] = 5.0
    progress.after_call(model=FakeModel("DescribeDBClusters"))
    progress.close()

    assert pipe.getvalue() == ""


def test_plan_shows_why_an_unlisted_clusters_snapshots_are_kept_not_that_they_are_pruned() -> None:
    context = PolicyContext("snapshot-policy", "prod", {}, "03:00", "UTC")
    slot = datetime(2026, 3, 9, 3, 0, tzinfo=UTC)
    tags = {
        "snapshot-scheduler:deployment": "prod",
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": slot.isoformat(),
        "snapshot-scheduler:policy": "every=1d at=03:00 tz=UTC keep-last=1",
    }
    snapshot = Snapshot("orders-20260309-0300", "orders", "arn", "available", "manual", slot, tags)
    at = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)

    text = cli.render_plan(plan_run(context, [], [snapshot], at).clusters, at)

    assert "pruned by its recorded policy" not in text
    assert "fail  ClusterUnconfirmed: missing from the cluster listing" in text


def test_policy_check_dr_explains_a_dr_tag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "policy", "check", "--dr", "to=dr-west+dr-eu keep-daily=7")

    assert (code, err) == (0, "")
    assert "to=dr-west+dr-eu every=1d at=03:00 tz=UTC keep-daily=7" in out
    assert "a copy every day at 03:00 UTC" in out


@pytest.mark.parametrize(("value", "says"), [("keep-daily=7", "names no target"), ("to=dr-west", "keeps nothing")])
def test_policy_check_dr_rejects_a_bad_dr_tag_with_exit_2(
    capsys: pytest.CaptureFixture[str], value: str, says: str
) -> None:
    code, out, err = run_cli(capsys, "policy", "check", "--dr", value)

    assert (code, out) == (2, "")
    assert err.startswith(f"snapshot-scheduler: DR tag snapshot-dr={value!r}: ") and says in err


def test_policy_check_dr_knows_the_configured_targets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.DR_TARGETS, '{"dr-west": {"region": "us-west-2"}}')

    code, _, err = run_cli(capsys, "policy", "check", "--dr", "to=dr-east keep-daily=7")

    assert code == 2 and "target 'dr-east' is not configured; configured targets: dr-west" in err


def test_policy_check_dr_resolves_a_named_dr_policy_from_the_deployments_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.DR_TARGETS, '{"dr-west": {"region": "us-west-2"}}')
    monkeypatch.setenv(config.DR_POLICIES, '{"dr-standard": "to=dr-west keep-daily=7 keep-weekly=4"}')

    code, out, err = run_cli(capsys, "policy", "check", "--dr", "DR-Standard")
    _, answer, _ = run_cli(capsys, "policy", "check", "--dr", "dr-standard", "--json")
    unknown, _, says = run_cli(capsys, "policy", "check", "--dr", "dr-gold")

    assert (code, err) == (0, "")
    assert "DR-Standard = to=dr-west every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4" in out
    assert json.loads(answer)["name"] == "dr-standard" and json.loads(answer)["targets"] == ["dr-west"]
    assert unknown == 2 and "unknown DR policy name 'dr-gold'; known names: dr-standard" in says


def test_policy_check_dr_of_a_name_without_the_configuration_says_where_names_come_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(config.DR_POLICIES, raising=False)

    code, out, err = run_cli(capsys, "policy", "check", "--dr", "dr-standard")

    assert (code, out) == (2, "")
    assert "unknown DR policy name 'dr-standard'; known names: none configured" in err
    assert f"set {config.DR_POLICIES} to its JSON" in err


# DR copies in status, plan and run ---------------------------------------------------------------------


def test_status_shows_progress_and_flags_a_stuck_copy_and_a_failed_one() -> None:
    # Given orders' previous copy still copying after 30 hours, billing's ended failed, ledger's fine
    stuck = replace(copy_of("orders", SLOT - days(2), status="copying", created=AT - timedelta(hours=30)), progress=12)
    failed = copy_of("billing", SLOT - days(1), status="failed")
    fine = copy_of("ledger", SLOT - days(1))
    snapshots = [own_snapshot(name, SLOT) for name in ("orders", "billing", "ledger")]
    clusters = [cluster(name) for name in ("orders", "billing", "ledger")]
    _, planned = plan(clusters, snapshots, {WEST: [stuck, failed, fine]})

    # When status is shown at the run's time, with a grace of an hour and drStuckHours 24
    status = cli.dr_status(planned, AT, timedelta(hours=1), timedelta(hours=24))
    text = cli.render_dr_status(status)

    # Then the stuck copy and the failed one need a look, ledger's copy is fresh
    rows = {row.cluster: row.to_dict() for row in status.targets}
    assert status.attention
    assert rows["orders"]["stuck"] == [{"snapshot": stuck.id, "progress": 12, "since": "2026-03-08T21:05:00+00:00"}]
    assert rows["orders"]["attention"] and "still copying since 2026-03-08 21:05 UTC" in rows["orders"]["problems"][-1]
    assert rows["billing"]["failed"] == [failed.id] and rows["billing"]["attention"]
    assert (rows["ledger"]["state"], rows["ledger"]["newest_copy"], rows["ledger"]["age_seconds"]) == (
        "ok",
        fine.id,
        int((AT - (SLOT - days(1))).total_seconds()),
    )
    assert f"{stuck.id} 12%" in text
    assert "billing -> dr-west" in text and "ended failed" in text


def test_plan_lists_copies_most_overdue_first_with_their_sources_and_what_dr_retention_deletes() -> None:
    # Given three clusters: c never copied, a copied two days ago, b yesterday (keep-last=1 in the target)
    dr = "to=dr-west keep-last=1"
    spec = "to=dr-west every=1d at=03:00 tz=UTC keep-last=1"
    copies = [
        copy_of("a", SLOT - days(2), policy=spec),
        copy_of("b", SLOT - days(1), policy=spec),
        copy_of("b", SLOT - days(2), policy=spec),
    ]
    snapshots = [own_snapshot(name, SLOT) for name in "abc"]
    _, planned = plan([cluster(name, dr=dr) for name in "abc"], snapshots, {WEST: copies})

    # When the plan is shown, as JSON and as text
    answer = {t["cluster"]: t for t in cli.dr_plan_to_dict(planned)["targets"]}
    text = " ".join(cli.render_dr_plan(planned).split())

    # Then the copies start c, a, b, each from the slot's snapshot, and b's older copy is deleted with its reason
    assert [answer[name]["copy"]["order"] for name in "cab"] == [1, 2, 3]
    assert [answer[name]["copy"]["source"] for name in "cab"] == [
        "c-20260310-0300",
        "a-20260310-0300",
        "b-20260310-0300",
    ]
    assert answer["a"]["copy"]["overdue_seconds"] == days(2).total_seconds()
    assert "2nd of 3 to start in us-west-2, most overdue first: its newest copy there is 2d 0h older" in text
    assert answer["b"]["delete"] == [
        {
            "snapshot": "b-20260308-0300-dr-useast1",
            "time": "2026-03-08T03:00:00+00:00",
            "reason": f"not kept by the DR policy ({spec})",
        }
    ]
    assert f"delete b-20260308-0300-dr-useast1 (2026-03-08 03:00 UTC): not kept by the DR policy ({spec})" in text


def test_plan_names_the_dr_policy_a_cluster_selects_by_name() -> None:
    context = replace(CONTEXT, named={"dr-standard": "to=dr-west keep-last=2"})

    _, planned = plan([cluster("orders", dr="dr-standard")], [own_snapshot("orders", SLOT)], context=context)

    (answer,) = cli.dr_plan_to_dict(planned)["targets"]
    assert (answer["name"], answer["policy"]) == ("dr-standard", "to=dr-west every=1d at=03:00 tz=UTC keep-last=2")
    assert "policy dr-standard: copies to dr-west:" in " ".join(cli.render_dr_plan(planned).split())


def test_plan_shows_a_cluster_that_left_dr_pruned_by_its_recorded_policy() -> None:
    spec = "to=dr-west every=1d at=03:00 tz=UTC keep-last=1"
    copies = [copy_of("gone", SLOT - days(n), policy=spec) for n in (1, 2)]

    _, planned = plan([], [], {WEST: copies})

    text = " ".join(cli.render_dr_plan(planned).split())
    assert "gone -> us-west-2 (target no longer named) (left DR: pruned by the recorded DR policy)" in text
    assert "not kept by the DR policy recorded on the newest copy" in text
    (row,) = cli.dr_status(planned, AT, timedelta(hours=1), timedelta(hours=24)).targets
    assert (row.state, row.attention, row.copies) == ("orphaned", False, 2)


def test_the_run_report_lists_the_copies_started_deferred_and_skipped() -> None:
    report = RunReport(scheduled_time=AT, dry_run=False, dr=DrReport())
    assert report.dr is not None
    report.dr.add(
        "started", "orders", WEST, "dr-west", snapshot="orders-20260310-0300-dr-useast1", source="orders-20260310-0300"
    )
    report.dr.add("deferred", "billing", WEST, "dr-west", code="copy-limit", reason="5 copies are in progress")
    report.dr.add("skipped", "secret", WEST, "dr-west", code="kms", reason="no key")

    text = " ".join(cli.render_report(report).split())

    assert (
        "copy started orders orders-20260310-0300-dr-useast1 to dr-west (us-west-2) from orders-20260310-0300" in text
    )
    assert "copy deferred billing dr-west (us-west-2): copy-limit: 5 copies are in progress" in text
    assert "copy skipped secret dr-west (us-west-2): kms: no key" in text
    assert "Not complete" in text  # a deferred copy is put off, as a deferred snapshot is: exit status 1


def test_status_flags_a_target_with_no_copy_even_when_a_run_would_start_one() -> None:
    # Given an encrypted cluster whose target names a key: the plan would copy it, but only trying tells
    # whether the key is usable in that region
    _, planned = plan([cluster("secret")], [own_snapshot("secret", SLOT, encrypted=True)])

    (row,) = cli.dr_status(planned, AT, timedelta(hours=1), timedelta(hours=24)).targets

    assert planned.copies() and (row.state, row.attention) == ("OUT OF POLICY", True)
    assert row.problems == ("no copy in us-west-2 and none copying (a run would start one now)",)
