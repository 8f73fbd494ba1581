"""doctor's checks over an in-memory deployment: the states moto cannot put a stack in, and the parsing of
the local context."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler import config, doctor
from snapshot_scheduler.adapters.deployment import DeploymentReader, StackView, Subscription
from snapshot_scheduler.doctor import Check, Findings, LocalContext, Status

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:alarms"


class FakeDeployment(DeploymentReader):
    def __init__(self, stack: StackView | None = None, subscriptions: list[Subscription] | None = None) -> None:
        super().__init__(lambda service: None)
        self._stack = stack
        self._subscriptions = subscriptions or []

    def stack(self, name: str) -> StackView | None:
        return self._stack

    def subscriptions(self, topic_arn: str) -> list[Subscription]:
        return self._subscriptions


def stack(status: str) -> StackView:
    return StackView("SnapshotScheduler", status, NOW - timedelta(days=1), None, TOPIC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ROLLBACK_COMPLETE", Status.FAIL),  # the first deploy failed: nothing runs
        ("CREATE_FAILED", Status.FAIL),
        ("DELETE_IN_PROGRESS", Status.FAIL),
        ("UPDATE_ROLLBACK_COMPLETE", Status.WARN),  # the version before the failed update still runs
    ],
)
def test_a_stack_that_does_not_run_as_deployed_is_flagged(status: str, expected: Status) -> None:
    (check,) = doctor.check_stack(FakeDeployment(stack(status)), LocalContext(), Findings())
    assert check.status is expected
    assert status in check.message
    assert "describe-stack-events" in check.action


def test_recipients_who_have_not_confirmed_receive_nothing_yet() -> None:
    pending = [Subscription("email", "oncall@example.com", confirmed=False)]

    check = doctor.check_alarm_recipients(
        FakeDeployment(subscriptions=pending), stack("CREATE_COMPLETE"), LocalContext()
    )

    assert check.status is Status.WARN
    assert "oncall@example.com await confirmation" in check.message


@pytest.mark.parametrize(
    ("statuses", "code"),
    [([], 0), ([Status.OK], 0), ([Status.OK, Status.WARN], 1), ([Status.WARN, Status.FAIL, Status.OK], 2)],
)
def test_exit_status_is_the_worst_check(statuses: list[Status], code: int) -> None:
    assert doctor.exit_status([Check("c", status, "m") for status in statuses]) == code


def test_the_local_context_is_read_as_cdk_json_holds_it_or_as_c_gives_it() -> None:
    as_json: dict[str, Any] = {
        "reservedConcurrency": 1,
        "alarmEmails": ["a@example.com"],
        "namedPolicies": {"tier1": "every=4h keep-last=6"},
        "engines": ["aurora-postgresql"],
        "stackName": "Backups",
    }
    as_text = {key: value if isinstance(value, str) else json.dumps(value) for key, value in as_json.items()}

    for context in (as_json, as_text):
        local = doctor.local_context(context, "cdk.json", None)
        assert local.reserved_concurrency == 1
        assert local.alarm_emails == ("a@example.com",)
        assert local.stack_name == "Backups"
        assert local.environment[config.NAMED_POLICIES] == '{"tier1": "every=4h keep-last=6"}'
        assert local.environment[config.ENGINES] == "aurora-postgresql"
        assert local.environment[config.DEPLOYMENT] == "Backups"  # the marker defaults to the stack name
    assert doctor.local_context({"stackName": "Backups"}, None, "Other").stack_name == "Other"


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(30 minutes)", timedelta(minutes=30)),
        ("rate(2 days)", timedelta(days=2)),
        ("cron(0 3 * * ? *)", timedelta(days=1)),
    ],
)
def test_the_heartbeat_window_follows_the_schedule(expression: str, interval: timedelta) -> None:
    assert doctor._interval(expression) == interval
