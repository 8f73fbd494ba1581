"""Read-only views of a deployed stack for `snapshot-scheduler doctor`: CloudFormation, Lambda, EventBridge
Scheduler, CloudWatch and SNS, with the operator's credentials.

The function never calls these: DOCTOR_IAM_ACTIONS are what the person running `doctor` needs, not what the
stack grants its role. `ClientError`s become DeploymentError naming the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from snapshot_scheduler.errors import SnapshotSchedulerError

# What doctor calls beyond the RDS describes (README, "The CLI").
DOCTOR_IAM_ACTIONS = (
    "cloudformation:DescribeStacks",
    "cloudformation:ListStackResources",
    "lambda:GetAccountSettings",
    "lambda:GetFunctionConfiguration",
    "lambda:GetFunctionConcurrency",
    "scheduler:ListSchedules",
    "scheduler:GetSchedule",
    "cloudwatch:GetMetricStatistics",
    "sns:ListSubscriptionsByTopic",
    # A vault's prerequisites: its key, and the snapshots its sources share (in each source region).
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "rds:DescribeDBClusterSnapshots",
)
PENDING = "PendingConfirmation"  # SNS's SubscriptionArn until the endpoint confirms
# Logical ids CDK derives from the construct paths (infra/stack.py: Backup/Function, Monitoring/AlarmTopic).
BACKUP_FUNCTION = "BackupFunction"
ALARM_TOPIC = "MonitoringAlarmTopic"


class DeploymentError(SnapshotSchedulerError):
    """A read of the deployment failed; `code` is the error code on the wire."""

    def __init__(self, call: str, code: str, message: str) -> None:
        super().__init__(f"{call}: {code}: {message}")
        self.code = code


@dataclass(frozen=True)
class StackView:
    name: str
    status: str
    created: datetime | None
    function: str | None  # the backup function's name
    topic: str | None  # the alarm topic's ARN


@dataclass(frozen=True)
class FunctionView:
    name: str
    arn: str
    environment: Mapping[str, str]
    reserved: int | None  # reserved concurrency; None: the account's unreserved pool
    role: str | None = None  # the execution role's ARN


@dataclass(frozen=True)
class AccountConcurrency:
    limit: int
    unreserved: int


@dataclass(frozen=True)
class ScheduleView:
    name: str
    group: str
    state: str
    expression: str


@dataclass(frozen=True)
class KeyView:
    arn: str
    state: str  # Enabled, Disabled, PendingDeletion, ...
    policy: Mapping[str, Any]  # the key policy (its "default" policy document)


@dataclass(frozen=True)
class Subscription:
    protocol: str
    endpoint: str
    confirmed: bool


# (service, region or None for the session's) -> a boto3 client.
ClientFactory = Callable[[str, str | None], Any]


def client_factory(region: str | None = None, profile: str | None = None) -> ClientFactory:
    """boto3 clients of one session, standard-mode retries; AWS_ENDPOINT_URL is honoured."""
    session = boto3.session.Session(region_name=region, profile_name=profile)
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)

    def client(service: str, in_region: str | None = None) -> Any:
        return session.client(service, region_name=in_region or session.region_name, config=config)  # type: ignore[call-overload]

    return client


class DeploymentReader:
    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients
        self._made: dict[tuple[str, str | None], Any] = {}

    def stack(self, name: str) -> StackView | None:
        """The stack, or None when no stack of that name exists in this region."""
        try:
            answer = self._call("cloudformation", "describe_stacks", StackName=name)
        except DeploymentError as error:
            if error.code == "ValidationError" and "does not exist" in str(error):
                return None
            raise
        stack = answer["Stacks"][0]
        resources = list(
            self._pages("cloudformation", "list_stack_resources", "StackResourceSummaries", StackName=name)
        )
        return StackView(
            name=stack["StackName"],
            status=stack["StackStatus"],
            created=stack.get("CreationTime"),
            function=_physical(resources, "AWS::Lambda::Function", BACKUP_FUNCTION),
            topic=_physical(resources, "AWS::SNS::Topic", ALARM_TOPIC),
        )

    def function(self, name: str) -> FunctionView:
        config = self._call("lambda", "get_function_configuration", FunctionName=name)
        concurrency = self._call("lambda", "get_function_concurrency", FunctionName=name)
        reserved = concurrency.get("ReservedConcurrentExecutions")
        return FunctionView(
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            environment=dict(config.get("Environment", {}).get("Variables", {})),
            reserved=None if reserved is None else int(reserved),
            role=config.get("Role"),
        )

    def account_concurrency(self) -> AccountConcurrency:
        answer = self._call("lambda", "get_account_settings")
        limit = answer["AccountLimit"]
        return AccountConcurrency(
            limit=int(limit["ConcurrentExecutions"]), unreserved=int(limit["UnreservedConcurrentExecutions"])
        )

    def schedules_invoking(self, function_arn: str) -> list[ScheduleView]:
        """Every EventBridge Scheduler schedule whose target is the function (any qualifier)."""
        found = []
        for summary in self._pages("scheduler", "list_schedules", "Schedules"):
            target = summary.get("Target", {}).get("Arn", "")
            if target == function_arn or target.startswith(function_arn + ":"):
                group = summary.get("GroupName", "default")
                detail = self._call("scheduler", "get_schedule", Name=summary["Name"], GroupName=group)
                expression = detail.get("ScheduleExpression", "")
                found.append(ScheduleView(summary["Name"], group, detail.get("State", ""), expression))
        return found

    def last_datapoint(
        self, namespace: str, metric: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> datetime | None:
        """When the metric last had a datapoint above zero between `start` and `end` (5-minute periods)."""
        answer = self._call(
            "cloudwatch",
            "get_metric_statistics",
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": key, "Value": value} for key, value in dimensions.items()],
            StartTime=start,
            EndTime=end,
            Period=300,
            Statistics=["Sum"],
        )
        times = [point["Timestamp"] for point in answer.get("Datapoints", []) if point.get("Sum", 0) > 0]
        return max(times, default=None)

    def kms_key(self, key: str) -> KeyView | None:
        """The key (an alias, id or ARN) with its state and policy, or None when there is no such key."""
        try:
            described = self._call("kms", "describe_key", KeyId=key)["KeyMetadata"]
        except DeploymentError as error:
            if error.code == "NotFoundException":
                return None
            raise
        policy = self._call("kms", "get_key_policy", KeyId=described["Arn"], PolicyName="default")["Policy"]
        return KeyView(arn=described["Arn"], state=described.get("KeyState", ""), policy=json.loads(policy))

    def newest_share(self, account: str, region: str) -> datetime | None:
        """When the newest DB cluster snapshot `account` shares with us from `region` was created (None: none)."""
        created = [
            snapshot["SnapshotCreateTime"]
            for snapshot in self._pages(
                "rds",
                "describe_db_cluster_snapshots",
                "DBClusterSnapshots",
                region=region,
                SnapshotType="shared",
                IncludeShared=True,
            )
            if snapshot.get("DBClusterSnapshotArn", "").split(":")[3:5] == [region, account]
            and snapshot.get("SnapshotCreateTime") is not None
        ]
        return max(created, default=None)

    def subscriptions(self, topic_arn: str) -> list[Subscription]:
        return [
            Subscription(item.get("Protocol", ""), item.get("Endpoint", ""), item.get("SubscriptionArn", "") != PENDING)
            for item in self._pages("sns", "list_subscriptions_by_topic", "Subscriptions", TopicArn=topic_arn)
        ]

    def _client(self, service: str, region: str | None = None) -> Any:
        if (service, region) not in self._made:
            self._made[service, region] = self._clients(service, region)
        return self._made[service, region]

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client(service), operation)(**params)
        except ClientError as error:
            raise _error(service, operation, error) from error

    def _pages(
        self, service: str, operation: str, key: str, *, region: str | None = None, **params: Any
    ) -> Iterator[dict[str, Any]]:
        try:
            for page in self._client(service, region).get_paginator(operation).paginate(**params):
                yield from page.get(key, [])
        except ClientError as error:
            raise _error(service, operation, error) from error


def _error(service: str, operation: str, error: ClientError) -> DeploymentError:
    detail = error.response.get("Error", {})
    return DeploymentError(f"{service}:{operation}", str(detail.get("Code", "Unknown")), str(detail.get("Message", "")))


def _physical(resources: list[dict[str, Any]], resource_type: str, logical_prefix: str) -> str | None:
    """The physical id of the stack's resource of a type: the one whose logical id the construct path
    gives, else the only one of that type."""
    of_type = [r for r in resources if r.get("ResourceType") == resource_type]
    named = [r for r in of_type if str(r.get("LogicalResourceId", "")).startswith(logical_prefix)]
    chosen = named or (of_type if len(of_type) == 1 else [])
    if not chosen:
        return None
    return str(chosen[0].get("PhysicalResourceId", "")) or None
