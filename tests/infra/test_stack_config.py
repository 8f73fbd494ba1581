"""cdk.json context -> Settings: defaults, every key's validation, and errors that say what to fix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra import config
from infra.backup_function import _RETENTION
from infra.config import ConfigError, DeployEnvironment, Settings, schedule_interval_minutes
from tests.infra.synthesis import cdk_json_context


def settings(**context: Any) -> Settings:
    return Settings.from_context(context)


def test_defaults_give_an_hourly_utc_deployment_named_after_the_stack() -> None:
    s = settings()
    assert s.stack_name == "SnapshotScheduler"
    assert (s.schedule.expression, s.schedule.timezone, s.schedule.interval_minutes) == ("rate(1 hour)", "UTC", 60)
    assert s.heartbeat_window_minutes == 120
    assert s.deployment is None  # the stack name, decided by the stack
    assert s.policy_tag_key == "snapshot-policy"
    assert dict(s.named_policies) == {}
    assert (s.default_at, s.default_timezone) == ("03:00", "UTC")
    assert s.metric_namespace == "SnapshotScheduler"
    assert s.alarm_emails == ()
    assert (s.grace_minutes, s.log_retention_days, s.log_level) == (60, 90, "INFO")
    assert s.policy_change_grace_hours == 24
    assert (s.memory_mb, s.timeout_seconds) == (512, 840)
    assert s.engines == ("aurora-mysql", "aurora-postgresql", "mysql", "postgres")
    assert s.dry_run is False
    assert (s.api_rate, s.api_burst) == (10.0, 200)
    assert s.environments == ()
    assert s.reserved_concurrency is None  # deploys in an account whose concurrency limit is 10


def test_cdk_json_states_every_key_with_its_default() -> None:
    context = cdk_json_context()
    ours = {key: value for key, value in context.items() if key in config.DEFAULTS}
    assert set(ours) == set(config.DEFAULTS) - {
        config.HEARTBEAT_MINUTES,
        config.DEPLOYMENT,
        config.RESERVED_CONCURRENCY,
    }
    assert Settings.from_context(context) == settings()


def test_values_from_the_command_line_arrive_as_text_and_are_decoded() -> None:
    s = settings(
        memoryMb="1024",
        dryRun="true",
        alarmEmails="a@example.com, b@example.com",
        engines="aurora-postgresql",
        namedPolicies='{"gold": "every=4h keep-hourly=24 keep-daily=7"}',
        environments='[{"account": "111111111111", "region": "eu-west-1"}]',
        logRetentionDays="30",
        apiRate="2.5",
        logLevel="debug",
    )
    assert s.memory_mb == 1024
    assert s.dry_run is True
    assert s.alarm_emails == ("a@example.com", "b@example.com")
    assert s.engines == ("aurora-postgresql",)
    assert dict(s.named_policies) == {"gold": "every=4h keep-hourly=24 keep-daily=7"}
    assert s.environments == (DeployEnvironment(account="111111111111", region="eu-west-1"),)
    assert s.log_retention_days == 30
    assert s.api_rate == 2.5
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("stackName", "1-starts-with-digit", "CloudFormation stack name"),
        ("schedule", "every hour", "rate("),
        ("schedule", "rate(1 hours)", "singular"),
        ("schedule", "rate(2 minutes)", "at least 5"),
        ("schedule", "rate(1 day)", "at most 12 hours"),
        ("schedule", "cron(0 * * * *)", "6 fields"),
        ("schedule", "cron(0 * * * * *)", "exactly one of day-of-month and day-of-week"),
        ("schedule", "cron(0 25 * * ? *)", "out of range"),
        ("schedule", "cron(0 9 ? * MON-FRI *)", "heartbeatMinutes"),
        ("scheduleTimezone", "Mars/Olympus", "IANA time zone"),
        ("heartbeatMinutes", 1, "from 5 to 720"),
        ("policyTagKey", "aws:reserved", "not starting with aws:"),
        ("policyTagKey", "", "1-128"),
        ("policyTagKey", "bad#key", "letters, digits"),
        ("namedPolicies", ["gold"], "JSON object of policy name"),
        ("namedPolicies", {"gold": 7}, "JSON object of policy name"),
        # A named policy is checked as the function parses it for a cluster (issue 8 item 5).
        ("namedPolicies", {"gold": ""}, "policy is empty"),
        ("namedPolicies", {"gold": "hourly 24 daily 7"}, "'hourly' is not a key=value word"),
        ("namedPolicies", {"gold": "every=1d keep-daily=seven"}, "keep-daily=seven is not a count"),
        ("namedPolicies", {"gold": "tz=GMT keep-daily=7"}, "tz=GMT is not a time zone"),
        ("namedPolicies", {"gold": "tz=America/Indiana keep-daily=7"}, "America/Indiana is a group of"),
        ("namedPolicies", {"gold": "silver", "silver": "daily"}, "unknown policy name 'silver'"),
        ("namedPolicies", {"gold tier": "daily"}, "cannot be selected by a tag"),
        ("namedPolicies", {"off": "daily"}, "cannot be selected by a tag"),
        ("namedPolicies", {"Gold": "daily", "gold": "gfs"}, "differ only in letter case"),
        ("defaultAt", "3am", "HH:MM"),
        ("defaultAt", "24:00", "HH:MM"),
        ("defaultAt", "\u0660\u0663:\u0660\u0660", "ASCII digits"),  # Arabic-Indic 03:00
        ("defaultAt", "\uff10\uff13:\uff10\uff10", "ASCII digits"),  # full-width 03:00
        ("defaultTimezone", "Europe/Atlantis", "IANA time zone"),
        ("defaultTimezone", "GMT", "legacy alias"),
        ("defaultTimezone", "Japan", "legacy alias"),
        ("defaultTimezone", "europe/berlin", "did you mean Europe/Berlin?"),
        ("defaultTimezone", "posix/Europe/Berlin", "Area/City zone"),
        ("defaultTimezone", "America/Indiana", "America/Indiana is a group of 8 zones"),  # item 6
        ("scheduleTimezone", "America/Argentina", "America/Argentina is a group of"),
        ("policyTagKey", " snapshot-policy", "without surrounding spaces"),
        ("policyTagKey", "snapshot-policy\t", "without surrounding spaces"),
        ("policyTagKey", "snapshot\npolicy", "letters, digits, spaces"),
        ("deployment", "prod ", "without surrounding spaces"),
        ("deployment", "\u00a0prod", "without surrounding spaces"),
        ("deployment", "", "1-256"),
        ("deployment", "rds:taken", "not starting with aws: or rds:"),
        ("metricNamespace", "AWS:Lambda", "without ':'"),
        ("alarmEmails", ["not-an-address"], "e-mail address"),
        ("alarmEmails", ["oncall@example.com\n"], "e-mail address"),  # `$` matched before a final newline
        ("alarmEmails", ["a@example.com", "a@example.com"], "without duplicates"),
        ("graceMinutes", -1, "from 0 to 10080"),
        ("graceMinutes", True, "whole number"),
        ("policyChangeGraceHours", -1, "from 0 to 720"),
        ("policyChangeGraceHours", 721, "from 0 to 720"),
        ("policyChangeGraceHours", "24h", "whole number"),
        ("logRetentionDays", 10, "one of 1, 3, 5"),
        ("logLevel", "TRACE", "one of DEBUG"),
        ("memoryMb", 64, "from 128 to 10240"),
        ("timeoutSeconds", 901, "from 60 to 900"),
        ("engines", [], "non-empty list of RDS engine names"),
        ("engines", ["Aurora MySQL"], "RDS engine names"),
        ("dryRun", "yes", "true or false"),
        ("apiRate", 0, "from 0.1 to 1000"),
        ("apiBurst", 0, "from 1 to 10000"),
        ("busyRetrySeconds", -1, "from 0 to 870"),
        ("busyRetrySeconds", 810, "at most 809"),  # the default timeout, 840 s, less the run's margin
        ("reservedConcurrency", 0, "from 1 to 1000"),
        ("reservedConcurrency", "one", "whole number"),
        ("environments", {"account": "1"}, "list of"),
        ("environments", [{"account": "123", "region": "eu-west-1"}], "12 digits"),
        ("environments", [{"account": "111111111111", "region": "Europe"}], "region name"),
        ("environments", [{"account": "111111111111", "region": "eu-west-1\n"}], "region name"),
        ("environments", [{"account": "111111111111\n", "region": "eu-west-1"}], "12 digits"),
        ("environments", [{"account": "111111111111", "region": "eu-west-1", "x": 1}], "list of"),
        (
            "environments",
            [{"account": "111111111111", "region": "eu-west-1"}] * 2,
            "each account/region pair at most once",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_key_value_and_what_is_allowed(key: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**{key: value})
    message = str(caught.value)
    assert f"{key!r}" in message
    # The value shown is the whole value, or for a list the offending item.
    shown = [value, *(value if isinstance(value, list) else [])]
    assert any(repr(item) in message for item in shown)
    assert allowed in message


def test_the_busy_retry_window_must_fit_in_the_run_and_before_the_next_run() -> None:
    assert settings(busyRetrySeconds=0).busy_retry_seconds == 0
    with pytest.raises(ConfigError, match=r"'timeoutSeconds' \(300\).*at most 269"):
        settings(timeoutSeconds=300)  # the default window of 300 s no longer fits: say which keys clash
    with pytest.raises(ConfigError, match=r"'schedule' \(600 s\).*at most 599"):
        settings(schedule="rate(10 minutes)", busyRetrySeconds=600, reservedConcurrency=1)


def test_a_misspelt_key_is_refused_rather_than_silently_ignored() -> None:
    expected = "unknown context key 'alarmEmail' (cdk.json or -c): did you mean 'alarmEmails'?"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        settings(alarmEmail=["a@example.com"])


def test_cdk_feature_flags_and_unrelated_keys_pass_through() -> None:
    settings(**{"@aws-cdk/core:target-partitions": ["aws"], "aws:cdk:bundling-stacks": [], "acknowledged": [1]})


def test_null_means_default() -> None:
    assert settings(deployment=None, schedule=None) == settings()


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("rate(1 minute)", 1),
        ("rate(15 minutes)", 15),
        ("rate(1 hour)", 60),
        ("rate(6 hours)", 360),
        ("rate(1 day)", 1440),
        ("cron(0 * * * ? *)", 60),
        ("cron(*/20 * * * ? *)", 20),
        ("cron(5,35 * ? * * *)", 30),
        ("cron(0 0/4 * * ? *)", 240),
        ("cron(30 1-5 * * ? *)", 20 * 60),  # 05:30 -> 01:30 the next day
        ("cron(0 9 ? * MON-FRI *)", None),  # not every day: the caller must say
    ],
)
def test_schedule_interval_is_the_longest_gap_between_runs(expression: str, minutes: int | None) -> None:
    assert schedule_interval_minutes(expression) == minutes


def test_a_weekday_schedule_works_when_the_heartbeat_window_is_given() -> None:
    s = settings(schedule="cron(0 * ? * MON-FRI *)", heartbeatMinutes=60)
    assert s.schedule.interval_minutes == 60
    assert s.heartbeat_window_minutes == 120


def test_heartbeat_minutes_overrides_the_derived_interval_for_the_heartbeat_only() -> None:
    s = settings(schedule="rate(30 minutes)", heartbeatMinutes=90)
    assert (s.schedule.interval_minutes, s.heartbeat_window_minutes) == (30, 180)


@pytest.mark.parametrize(
    ("schedule", "timeout"),
    [
        ("rate(10 minutes)", 840),
        ("rate(15 minutes)", 900),  # a run may take its whole timeout: the next would start as it ends
        ("cron(0,10 * * * ? *)", 840),  # 50 minutes apart once an hour, but 10 minutes apart once
    ],
)
def test_runs_that_could_overlap_are_refused_unless_concurrency_is_reserved(schedule: str, timeout: int) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(schedule=schedule, timeoutSeconds=timeout)
    message = str(caught.value)
    assert all(text in message for text in ("'schedule'", repr(schedule), "'timeoutSeconds'", "'reservedConcurrency'"))
    assert settings(schedule=schedule, timeoutSeconds=timeout, reservedConcurrency=1).reserved_concurrency == 1


def test_a_reservation_above_one_does_not_serialise_runs_so_they_must_not_overlap() -> None:
    with pytest.raises(ConfigError, match="reservedConcurrency"):
        settings(schedule="rate(5 minutes)", reservedConcurrency=2)
    assert settings(schedule="rate(30 minutes)", timeoutSeconds=900, reservedConcurrency="2").reserved_concurrency == 2


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("rate(10 minutes)", 10),
        ("cron(0,10 * * * ? *)", 10),
        ("cron(0 1,3,9,15,21 * * ? *)", 120),
        ("cron(0 3 1 * ? *)", 1440),
    ],
)
def test_the_shortest_gap_between_runs_is_known_for_every_schedule(expression: str, minutes: int) -> None:
    assert (
        settings(schedule=expression, heartbeatMinutes=720, reservedConcurrency=1).schedule.shortest_gap_minutes
        == minutes
    )


def test_every_retention_choice_is_one_cloudwatch_logs_accepts() -> None:
    assert tuple(_RETENTION) == config.LOG_RETENTION_CHOICES
