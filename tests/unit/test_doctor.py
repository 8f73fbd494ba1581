"""doctor's checks over an in-memory deployment: the states moto cannot put a stack in, and the parsing of
the local context."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler import config, doctor
from snapshot_scheduler.adapters.deployment import DeploymentReader, FunctionView, KeyView, StackView, Subscription
from snapshot_scheduler.doctor import Check, Findings, LocalContext, Status
from snapshot_scheduler.vault import parse_vault

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:alarms"


class FakeDeployment(DeploymentReader):
    def __init__(self, stack: StackView | None = None, subscriptions: list[Subscription] | None = None) -> None:
        super().__init__(lambda service, region: None)
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


# ---------------------------------------------------------------------------------------------------------
# A vault's prerequisites

ROLE = "arn:aws:iam::222222222222:role/SnapshotVault-BackupRole1-ABC"
VAULT = parse_vault(
    {
        "sources": [{"account": "111111111111", "regions": ["eu-west-1", "eu-central-1"]}],
        "policy": "keep-daily=14",
        "kmsKey": "alias/snapshot-vault",
    }
)
FUNCTION = FunctionView("SnapshotVault-Backup", "arn:aws:lambda:eu-central-1:222222222222:function:f", {}, None, ROLE)


def statement(principal: object, action: object = "kms:CreateGrant", **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


FOR_RDS = {"Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}


@pytest.mark.parametrize(
    ("statements", "verdict"),
    [
        ([statement({"AWS": ROLE}, ["kms:DescribeKey", "kms:CreateGrant"], **FOR_RDS)], True),  # README's statement
        ([statement({"AWS": "arn:aws:iam::222222222222:root"}, "kms:*")], True),  # the default policy: IAM decides
        ([statement({"AWS": "222222222222"}, "kms:Create*")], True),
        (
            [statement({"AWS": ["arn:aws:iam::222222222222:role/other", "arn:aws:iam::111111111111:root"]}, "kms:*")],
            None,
        ),
        ([statement({"AWS": ROLE}, "kms:Decrypt")], None),
        ([statement({"AWS": ROLE}, "kms:CreateGrant", Condition={"StringEquals": {"kms:ViaService": "x"}})], None),
        ([statement({"AWS": ROLE}), {**statement("*"), "Effect": "Deny"}], False),
        ([], None),
    ],
)
def test_a_key_policy_is_read_for_the_functions_right_to_create_grants(
    statements: list[dict[str, object]], verdict: bool | None
) -> None:
    assert doctor.grants_allowed({"Version": "2012-10-17", "Statement": statements}, ROLE) is verdict


class VaultDeployment(FakeDeployment):
    def __init__(self, key: KeyView | None, shares: dict[tuple[str, str], datetime]) -> None:
        super().__init__(stack("CREATE_COMPLETE"))
        self._key, self._shares = key, shares
        self.keys_asked: list[str] = []

    def kms_key(self, key: str) -> KeyView | None:
        self.keys_asked.append(key)
        return self._key

    def newest_share(self, account: str, region: str) -> datetime | None:
        return self._shares.get((account, region))


KEY_ARN = "arn:aws:kms:eu-central-1:222222222222:key/1234"
GOOD_POLICY = {"Statement": [statement({"AWS": ROLE}, "kms:CreateGrant", **FOR_RDS)]}


@pytest.mark.parametrize(
    ("key", "function", "status", "says"),
    [
        (KeyView(KEY_ARN, "Enabled", GOOD_POLICY), FUNCTION, Status.OK, f"lets {ROLE} create grants"),
        (KeyView(KEY_ARN, "Enabled", {"Statement": []}), FUNCTION, Status.FAIL, "does not let"),
        (KeyView(KEY_ARN, "PendingDeletion", GOOD_POLICY), FUNCTION, Status.FAIL, "is PendingDeletion"),
        (None, FUNCTION, Status.FAIL, "no KMS key alias/snapshot-vault"),
        (KeyView(KEY_ARN, "Enabled", {"Statement": []}), None, Status.OK, "deploy, then run doctor again"),
    ],
)
def test_the_vault_key_exists_is_enabled_and_lets_the_role_create_grants(
    key: KeyView | None, function: FunctionView | None, status: Status, says: str
) -> None:
    deployment = VaultDeployment(key, {})

    check = doctor.check_vault_key(deployment, VAULT, function)

    assert (check.status, deployment.keys_asked) == (status, ["alias/snapshot-vault"])
    assert says in check.message
    assert (check.action != "") == (status is not Status.OK)


def test_a_vault_without_a_key_is_warned_that_encrypted_shares_are_skipped() -> None:
    keyless = parse_vault({"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "daily"})
    check = doctor.check_vault_key(VaultDeployment(None, {}), keyless, FUNCTION)
    assert check.status is Status.WARN and "encrypted snapshots are skipped" in check.message


def test_each_source_region_must_have_shared_within_shares_expected_hours() -> None:
    # sharesExpectedHours defaults to 2 x 24 + 12 = 60 hours for a daily vault policy
    shares = {("111111111111", "eu-west-1"): NOW - timedelta(hours=20)}
    older = {**shares, ("111111111111", "eu-central-1"): NOW - timedelta(hours=61)}

    deployed = StackView("SnapshotVault", "CREATE_COMPLETE", NOW - timedelta(days=30), None, TOPIC)
    ok, silent = doctor.check_shares_arriving(VaultDeployment(None, shares), VAULT, deployed, NOW)
    _, stale = doctor.check_shares_arriving(VaultDeployment(None, older), VAULT, deployed, NOW)

    assert ok.status is Status.OK
    assert "eu-west-1 shared a snapshot taken 20 hours ago" in ok.message
    assert silent.status is Status.FAIL and "eu-central-1 has shared no snapshot" in silent.message
    assert "drTargets" in silent.action
    assert stale.status is Status.FAIL and "nothing newer than 2 days ago" in stale.message


def test_a_new_vault_waits_for_its_first_shares_with_a_warning() -> None:
    new = StackView("SnapshotVault", "CREATE_COMPLETE", NOW - timedelta(hours=3), None, TOPIC)
    checks = doctor.check_shares_arriving(VaultDeployment(None, {}), VAULT, new, NOW)
    assert [c.status for c in checks] == [Status.WARN, Status.WARN]


def test_the_local_vault_context_reaches_doctor_and_an_empty_one_is_no_vault() -> None:
    vault = {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "daily"}
    assert config.VAULT not in doctor.local_context({"vault": {}}, None, None).environment
    assert config.VAULT not in doctor.local_context({"vault": "{}"}, None, None).environment
    local = doctor.local_context({"vault": vault}, None, None)
    assert json.loads(local.environment[config.VAULT]) == vault
