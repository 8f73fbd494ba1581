"""`snapshot-scheduler doctor` against moto plus the fidelity layer (RDS's quota, Lambda's account settings):
each check's ok / warn / fail, the exit status, and the quota arithmetic on a fleet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from snapshot_scheduler import cli, config, tags

from tests.support.fidelity import Accounts, RdsFidelity, SimClock
from tests.support.harness import moto_rds, rds_client
from tests.support.lambda_fidelity import LambdaAccount

REGION = "us-east-1"
VAULT_ACCOUNT = "123456789012"  # moto's default account: the account doctor runs in
STACK = "SnapshotScheduler"
TAG = "snapshot-policy"
NOW = datetime.now(UTC)  # moto stamps stacks and metrics with the real time


class Account:
    """One account and region: RDS behind the fidelity layer, Lambda's account settings, the rest moto."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.rds = RdsFidelity(quota=100)
        rds_client(self.rds)
        self.lambda_account = LambdaAccount(limit=1000)
        self.context_file = tmp_path / "cdk.json"
        original_factory = cli.client_factory
        # Other accounts sharing with this one, per region (Accounts: sharing as RDS does it).
        self.accounts = Accounts(SimClock(NOW))
        self.shared_with_us: dict[str, RdsFidelity] = {}

        def client_factory(region: str | None = None, profile: str | None = None) -> Any:
            make = original_factory(region, profile)

            def client(service: str, in_region: str | None = None) -> Any:
                made = make(service, in_region)
                if service == "rds" and in_region in self.shared_with_us:
                    return self.shared_with_us[in_region].attach(made)
                return self.lambda_account.attach(made) if service == "lambda" else made

            return client

        original_build = cli.build_client
        monkeypatch.setattr(cli, "build_client", lambda *a, **k: self.rds.attach(original_build(*a, **k)))
        monkeypatch.setattr(cli, "client_factory", client_factory)
        monkeypatch.chdir(tmp_path)

    def context(self, **keys: Any) -> None:
        self.context_file.write_text(json.dumps({"app": "python3 app.py", "context": keys}))

    def cluster(self, name: str, policy: str | None, **options: Any) -> str:
        extra = options.pop("tags", {})
        cluster_tags = {TAG: policy} if policy is not None else {}
        return self.rds.create_cluster(
            name, tags={**cluster_tags, **extra}, created=NOW - timedelta(days=60), **options
        )

    def deploy(
        self,
        *,
        schedule_state: str = "ENABLED",
        heartbeat_ago: timedelta | None = timedelta(minutes=20),
        vault: dict[str, Any] | None = None,
    ) -> str:
        """A stand-in for the stack (what moto's CloudFormation can make): the function with the stack's
        environment (a vault's with `vault`), the alarm topic; the schedule and a run's heartbeat beside it."""
        environment = {**cli.CLI_DEFAULTS, config.DEPLOYMENT: STACK}
        if vault is not None:
            environment[config.VAULT] = json.dumps(vault)
        template = {
            "Resources": {
                "BackupRole": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
                },
                "BackupFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "python3.13",
                        "Handler": "snapshot_scheduler.handlers.backup.lambda_handler",
                        "Role": {"Fn::GetAtt": ["BackupRole", "Arn"]},
                        "Code": {"ZipFile": "def lambda_handler(event, context): pass"},
                        "Environment": {"Variables": environment},
                    },
                },
                "MonitoringAlarmTopic": {"Type": "AWS::SNS::Topic"},
            }
        }
        boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
        function = boto3.client("lambda").list_functions()["Functions"][0]["FunctionArn"]
        boto3.client("scheduler").create_schedule(
            Name=f"{STACK}-Schedule",
            ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": function, "RoleArn": "arn:aws:iam::123456789012:role/scheduler"},
            State=schedule_state,
        )
        if heartbeat_ago is not None:
            boto3.client("cloudwatch").put_metric_data(
                Namespace="SnapshotScheduler",
                MetricData=[
                    {
                        "MetricName": "Heartbeat",
                        "Dimensions": [
                            {"Name": "service", "Value": "snapshot-scheduler"},
                            {"Name": "deployment", "Value": STACK},
                        ],
                        "Value": 1,
                        "Timestamp": NOW - heartbeat_ago,
                    }
                ],
            )
        return function

    def share(self, source: str, region: str, cluster: str, *, age: timedelta) -> None:
        """Account `source` shares a snapshot of `cluster` in `region`, taken `age` ago, with this account."""
        if region not in self.shared_with_us:
            self.shared_with_us[region] = self.accounts.layer(VAULT_ACCOUNT, region)
        theirs = self.accounts.layer_of(source, region)
        if theirs is None:
            theirs = self.accounts.layer(source, region)
            rds_client(theirs, region=region)
        if cluster not in {record.id for record in theirs.moto.clusters()}:
            theirs.create_cluster(cluster)
        identifier = f"{cluster}-{(NOW - age):%Y%m%d-%H}00"
        theirs.seed_snapshot(cluster, identifier, created=NOW - age)
        rds_client(theirs, region=region).modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=identifier, AttributeName="restore", ValuesToAdd=[VAULT_ACCOUNT]
        )

    def topic(self) -> str:
        (topic,) = boto3.client("sns").list_topics()["Topics"]
        return str(topic["TopicArn"])


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Account]:
    for name in config.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with moto_rds(REGION):
        yield Account(monkeypatch, tmp_path)


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, dict[str, str]]]:
    """Exit status and each check by name, from the JSON output; the text output must say the same."""
    code = cli.main(["--region", REGION, "doctor", "--json", *argv])
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    text_code = cli.main(["--region", REGION, "doctor", *argv])
    text = capsys.readouterr().out
    assert text_code == code
    for check in checks.values():
        assert f"{check['status']:<4}  " in text and check["message"] in text
    return code, checks


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


# ---------------------------------------------------------------------------------------------------------
# Before cdk deploy


def seed_fleet(account: Account) -> None:
    """Three hourly clusters (31 each at steady state), a daily one (8) with one held snapshot of ours,
    and two snapshots a person made: 104."""
    for name in ("orders", "billing", "ledger"):
        account.cluster(name, "hourly")
    account.cluster("reports", "daily")
    slot = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    ours = {
        tags.MARKER: STACK,
        tags.POLICY: "every=1d at=03:00 tz=UTC keep-daily=7",
        tags.SLOT: slot.isoformat(),
        tags.CLUSTER: "reports",
        tags.HOLD: "true",
    }
    account.rds.seed_snapshot("reports", "reports-20260101-0300", created=slot, tags=ours)
    account.rds.seed_snapshot("orders", "before-upgrade", created=NOW - timedelta(days=3))
    account.rds.seed_snapshot("billing", "by-hand", created=NOW - timedelta(days=2))


def test_policies_that_outgrow_the_quota_fail_with_the_arithmetic(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a fleet whose policies need 104 manual snapshots and the default quota of 100
    seed_fleet(account)

    # When doctor runs before the stack is deployed
    code, checks = doctor(capsys)

    # Then the quota check fails with the figure, the quota and its Service Quotas code; exit 2
    assert code == 2
    assert checks["snapshot-quota"]["status"] == "fail"
    assert checks["snapshot-quota"]["message"] == (
        "your policies need 104 manual snapshots at steady state (1 held, 2 not ours included); "
        "the quota is 100 (Service Quotas L-9B510759)"
    )
    assert "L-9B510759" in checks["snapshot-quota"]["action"]
    assert checks["stack"]["status"] == "warn"  # nothing deployed here yet
    assert "heartbeat" not in checks  # only for a deployed stack


@pytest.mark.parametrize(("quota", "status", "code"), [(125, "warn", 1), (200, "ok", 1)])
def test_quota_headroom_warns_under_a_fifth_to_spare(
    account: Account, capsys: pytest.CaptureFixture[str], quota: int, status: str, code: int
) -> None:
    seed_fleet(account)
    account.rds.quota = quota
    account.context(alarmEmails=["oncall@example.com"])

    exit_code, checks = doctor(capsys)

    assert checks["snapshot-quota"]["status"] == status
    assert f"the quota is {quota}" in checks["snapshot-quota"]["message"]
    assert exit_code == code  # 1: the stack is not deployed yet, a warning


def test_reserving_concurrency_in_a_small_account_fails_before_deploy(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a new account with a concurrency limit of 50 and a context that reserves 1
    account.lambda_account.limit = 50
    account.context(reservedConcurrency=1, alarmEmails=["oncall@example.com"])

    code, checks = doctor(capsys)

    # Then doctor says cdk deploy would fail, and how much limit it needs
    assert code == 2
    check = checks["lambda-concurrency"]
    assert check["status"] == "fail"
    assert "would leave 49 unreserved" in check["message"]
    assert "L-B99A9384" in check["action"] and "at least 101" in check["action"]


def test_no_reservation_deploys_in_a_small_account(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.lambda_account.limit = 10
    account.context(alarmEmails=["oncall@example.com"])

    _, checks = doctor(capsys)

    assert checks["lambda-concurrency"]["status"] == "ok"
    assert "nothing reserved" in checks["lambda-concurrency"]["message"]


def test_fleet_problems_are_each_named(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a tagged Neptune cluster, a malformed tag, and a cluster passing its hold tag to its snapshots
    account.cluster("graph", "daily", engine="neptune")
    account.cluster("legacy", "daily,7")
    account.cluster("orders", "daily", tags={tags.HOLD: "true"}, copy_tags_to_snapshot=True)
    account.cluster("billing", "daily")
    account.context(alarmEmails=["oncall@example.com"])

    code, checks = doctor(capsys)

    assert code == 2
    assert checks["engines"]["status"] == "warn"
    assert "graph (neptune)" in checks["engines"]["message"]
    assert checks["policy-tags"]["status"] == "fail"
    assert "legacy" in checks["policy-tags"]["message"] and "','" in checks["policy-tags"]["message"]
    assert checks["hold-tags"]["status"] == "warn"
    assert "orders (snapshot-hold='true')" in checks["hold-tags"]["message"]
    assert "no-copy-tags-to-snapshot" in checks["hold-tags"]["action"]
    # and the hold makes orders' demand endless: the quota check says so
    assert checks["snapshot-quota"]["status"] == "warn"
    assert "at least 8 manual snapshots" in checks["snapshot-quota"]["message"]  # billing; graph is not managed
    assert "orders keep snapshots without end" in checks["snapshot-quota"]["message"]


def test_empty_alarm_emails_warn_that_alarms_reach_no_one(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.context(alarmEmails=[])

    _, checks = doctor(capsys)

    assert checks["alarm-recipients"]["status"] == "warn"
    assert "notify no one" in checks["alarm-recipients"]["message"]


# ---------------------------------------------------------------------------------------------------------
# After cdk deploy


def test_a_healthy_deployment_passes_every_check(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the stack deployed, its schedule enabled, a run 20 minutes ago and a confirmed recipient
    account.cluster("orders", "daily")
    account.deploy()
    boto3.client("sns").subscribe(TopicArn=account.topic(), Protocol="email", Endpoint="oncall@example.com")

    code, checks = doctor(capsys)

    assert statuses(checks) == dict.fromkeys(
        [
            "stack",
            "schedule",
            "heartbeat",
            "lambda-concurrency",
            "snapshot-quota",
            "engines",
            "policy-tags",
            "hold-tags",
            "alarm-recipients",
        ],
        "ok",
    )
    assert code == 0
    assert "oncall@example.com" in checks["alarm-recipients"]["message"]


def test_a_disabled_schedule_and_a_silent_function_fail(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the stack deployed with its schedule disabled and no run for five hours
    account.deploy(schedule_state="DISABLED", heartbeat_ago=timedelta(hours=5))

    code, checks = doctor(capsys)

    assert code == 2
    assert checks["schedule"]["status"] == "fail"
    assert "disabled" in checks["schedule"]["message"]
    assert checks["heartbeat"]["status"] == "fail"
    assert "5 hours ago" in checks["heartbeat"]["message"]
    # and with nobody subscribed to the alarm topic, alarms notify no one
    assert checks["alarm-recipients"]["status"] == "warn"
    assert account.topic() in checks["alarm-recipients"]["message"]


def test_the_deployed_reservation_is_what_counts(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    function = account.deploy()
    boto3.client("lambda").put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=1)

    _, checks = doctor(capsys)

    assert checks["lambda-concurrency"]["status"] == "ok"
    assert "reserves 1 (account limit 1000, unreserved 999)" in checks["lambda-concurrency"]["message"]


def test_credentials_that_cannot_read_a_service_fail_that_check_only(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given credentials without lambda:GetAccountSettings
    account.lambda_account.denied = True

    code, checks = doctor(capsys)

    # Then that check fails, naming the refusal, and the others still run

    assert code == 2
    assert checks["lambda-concurrency"]["status"] == "fail"
    assert "AccessDeniedException" in checks["lambda-concurrency"]["message"]
    assert checks["snapshot-quota"]["status"] == "ok"


# ---------------------------------------------------------------------------------------------------------
# A vault (issue 11)

VAULT = {
    "sources": [{"account": "111111111111", "regions": ["eu-west-1"]}],
    "policy": "keep-daily=14",
    "kmsKey": "alias/snapshot-vault",
}


def vault_key(role: str | None) -> str:
    """The vault key, its policy naming `role` as README's step 1 does (None: the policy names no one)."""
    statements = [] if role is None else [
        {"Sid": "SnapshotSchedulerVaultCopies", "Effect": "Allow", "Principal": {"AWS": role},
         "Action": ["kms:DescribeKey", "kms:CreateGrant"], "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
    ]  # fmt: skip
    kms = boto3.client("kms")
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))["KeyMetadata"]
    kms.create_alias(AliasName="alias/snapshot-vault", TargetKeyId=key["KeyId"])
    return str(key["Arn"])


def function_role() -> str:
    return str(boto3.client("lambda").list_functions()["Functions"][0]["Role"])


@pytest.mark.parametrize("policy_names_the_role", [True, False])
def test_a_deployed_vault_checks_its_key_and_its_sources_shares_not_the_fleet(
    account: Account, capsys: pytest.CaptureFixture[str], policy_names_the_role: bool
) -> None:
    # Given a vault deployed today, its key's policy naming the function's role (or no one), nothing shared yet
    account.deploy(vault=VAULT)
    key = vault_key(function_role() if policy_names_the_role else None)

    code, checks = doctor(capsys)

    assert "snapshot-quota" not in checks and "policy-tags" not in checks  # a vault has no fleet of its own
    if policy_names_the_role:
        assert checks["vault-key"]["status"] == "ok"
        assert key in checks["vault-key"]["message"] and function_role() in checks["vault-key"]["message"]
    else:
        assert checks["vault-key"]["status"] == "fail"
        assert "KMSKeyNotAccessibleFault" in checks["vault-key"]["message"]
        assert code == 2
    # moto lists no shared snapshot: a vault younger than sharesExpectedHours waits for its first
    assert checks["vault-shares"]["status"] == "warn"
    assert "source 111111111111 in eu-west-1 has shared no snapshot" in checks["vault-shares"]["message"]


def test_a_vault_key_that_does_not_exist_fails(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.deploy(vault=VAULT)

    code, checks = doctor(capsys)

    assert code == 2
    assert checks["vault-key"]["status"] == "fail"
    assert "no KMS key alias/snapshot-vault" in checks["vault-key"]["message"]


def test_each_source_region_is_checked_for_recent_shares(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a vault of two source regions: one shared a snapshot 5 hours ago (and an older one), the other
    # shared only 3 days ago (sharesExpectedHours: 2 x 24 + 12 = 60), and an unconfigured account shares too
    vault = {**VAULT, "sources": [{"account": "111111111111", "regions": ["eu-west-1", "eu-central-1"]}]}
    account.deploy(vault=vault)
    account.share("111111111111", "eu-west-1", "orders", age=timedelta(hours=5))
    account.share("111111111111", "eu-west-1", "orders", age=timedelta(days=2))
    account.share("111111111111", "eu-central-1", "billing", age=timedelta(days=3))
    account.share("333333333333", "eu-central-1", "billing", age=timedelta(hours=1))

    _, checks = doctor_lines(capsys)

    (west,) = [c for c in checks if c["check"] == "vault-shares" and "eu-west-1" in c["message"]]
    (central,) = [c for c in checks if c["check"] == "vault-shares" and "eu-central-1" in c["message"]]
    assert west["status"] == "ok" and "shared a snapshot taken 5 hours ago" in west["message"]
    assert central["status"] == "fail" and "nothing newer than 3 days ago" in central["message"]


def doctor_lines(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, str]]]:
    """Exit status and every check line (a vault has one vault-shares line per source region)."""
    code = cli.main(["--region", REGION, "doctor", "--json"])
    return code, list(json.loads(capsys.readouterr().out)["checks"])
