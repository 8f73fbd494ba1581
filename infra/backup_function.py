"""The backup function, its schedule, its dead-letter queues and its least-privilege role."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jsii
from aws_cdk import Acknowledgment, ArnFormat, CfnResource, Duration, Stack, TimeZone, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from snapshot_scheduler.dr import region_targets
from snapshot_scheduler.vault import Vault

from infra import contract
from infra.bundling import function_code
from infra.config import Settings
from infra.dr_access import dr_snapshot_arn, grant_dr_copies, grant_shares
from infra.vault_access import grant_vault

RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
# pip's name for the Lambda arm64 platform (Amazon Linux 2023, glibc 2.34: manylinux2014 wheels run there).
PIP_PLATFORM: Final = "manylinux2014_aarch64"
# Lambda's asynchronous retries of a failed run (its maximum is 2); the run is idempotent.
ASYNC_RETRY_ATTEMPTS: Final = 2
# Scheduler's retries when handing the event to Lambda fails (not when the run fails).
SCHEDULER_RETRY_ATTEMPTS: Final = 3
# A run that has waited longer than this is stale: the next scheduled run supersedes it.
MAX_LAMBDA_EVENT_AGE: Final = Duration.hours(6)
MAX_SCHEDULER_EVENT_AGE: Final = Duration.hours(24)
# Failed events are kept for two weeks (the SQS maximum) so a holiday does not lose them.
DLQ_RETENTION: Final = Duration.days(14)

# The operator's hold in IAM. The engine (snapshot_scheduler.tags.held) holds a snapshot that carries the hold
# key in any letter case with any value but false/no/0/off (any case, stripped). What AWS documents:
# - rds:cluster-snapshot-tag/<key> is the value of tag <key> on the DB cluster snapshot the request acts on. The
#   RDS/Aurora guide lists it and says "Custom tag identifiers are case-sensitive":
#   https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAM.SpecifyingCustomTags.html
# - The IAM guide says context key names, and the tag key inside aws:RequestTag/ and ResourceTag/ keys, are not
#   case-sensitive ("aws:ResourceTag/TagKey1" matches a tag TagKey1 or tagkey1, but not both):
#   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
# - A negated operator (StringNotEqualsIgnoreCase) is true when the key is absent, hence the Null check beside
#   it (Null "false" = the key is present):
#   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
#   Operators in one statement are ANDed, the values of a negated operator NORed, several keys under one
#   operator ANDed: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html
# The two guides disagree on case, so we take the stricter reading (case-sensitive) and deny delete on the
# spellings an operator is likely to type, one statement each (in one statement the keys would be ANDed: the
# snapshot would need all three). If IAM does fold case, the extra statements repeat the same test, harmlessly.
# Other mixed spellings (Snapshot-hold) and keys with surrounding spaces are held by the engine alone; a value
# with surrounding spaces (" false ") is held by IAM though the engine releases it: the delete fails, the
# snapshot stays. rds:AddTagsToResource (RDS also checks it when a create carries tags) is denied whenever a
# request tag key is the hold key in any case: aws:TagKeys lists the request's tag keys as values, compared
# here case-insensitively. rds:RemoveTagsFromResource is granted only with a DR target that is an account, and
# only for the share tags (dr_access.grant_shares), so the function can neither set nor clear a hold.
HOLD_DENY_SPELLINGS: Final = (
    ("NeverDeleteHeldSnapshots", contract.HOLD_TAG),
    ("NeverDeleteHeldSnapshotsTitleCase", contract.HOLD_TAG.title()),
    ("NeverDeleteHeldSnapshotsUpperCase", contract.HOLD_TAG.upper()),
)


_RETENTION: Final = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


@dataclass(frozen=True, kw_only=True)
class BackupFunctionProps:
    settings: Settings
    # The marker value written on every snapshot this deployment creates (and the metric dimension).
    deployment: str


def function_environment(settings: Settings, deployment: str) -> dict[str, str]:
    """Exactly the variables snapshot_scheduler.config.Settings.from_env() requires, and SNAPSHOT_VAULT on a vault."""
    return {
        contract.ENV_POLICY_TAG_KEY: settings.policy_tag_key,
        contract.ENV_DEPLOYMENT: deployment,
        contract.ENV_NAMED_POLICIES: json.dumps(dict(settings.named_policies), sort_keys=True),
        contract.ENV_DEFAULT_AT: settings.default_at,
        contract.ENV_DEFAULT_TZ: settings.default_timezone,
        contract.ENV_GRACE_MINUTES: str(settings.grace_minutes),
        contract.ENV_POLICY_CHANGE_GRACE_HOURS: str(settings.policy_change_grace_hours),
        contract.ENV_ENGINES: ",".join(settings.engines),
        contract.ENV_DRY_RUN: "true" if settings.dry_run else "false",
        contract.ENV_API_RATE: _decimal(settings.api_rate),
        contract.ENV_API_BURST: str(settings.api_burst),
        contract.ENV_BUSY_RETRY_SECONDS: str(settings.busy_retry_seconds),
        contract.ENV_SCHEDULE_MINUTES: str(settings.schedule.interval_minutes),
        contract.ENV_SERVICE_NAME: contract.SERVICE_NAME,
        contract.ENV_METRICS_NAMESPACE: settings.metric_namespace,
        contract.ENV_LOG_LEVEL: settings.log_level,
        contract.ENV_DR_TARGETS: json.dumps({t.name: t.spec() for t in settings.dr_targets.values()}, sort_keys=True),
        contract.ENV_DR_POLICIES: json.dumps(dict(settings.dr_policies), sort_keys=True),
        contract.ENV_DR_TAG_KEY: settings.dr_tag_key,
        contract.ENV_DR_COPY_LIMIT: str(settings.dr_copy_limit),
        contract.ENV_DR_STUCK_HOURS: str(settings.dr_stuck_hours),
        **({contract.ENV_VAULT: vault_json(settings.vault)} if settings.vault else {}),
    }


def vault_json(vault: Vault) -> str:
    """SNAPSHOT_VAULT, set on a vault deployment only: the vault as validated, its policy spelled out and every
    default filled in, so the function reads what the stack built its role and alarms for."""
    sources = [
        {"account": s.account, "regions": list(s.regions), **({"deployment": s.deployment} if s.deployment else {})}
        for s in vault.sources
    ]
    return json.dumps(
        {
            "sources": sources,
            "policy": vault.policy.spec(),
            **({"kmsKey": vault.kms_key} if vault.kms_key else {}),
            "minRetentionDays": vault.min_retention.days,
            "sharesExpectedHours": int(vault.shares_expected.total_seconds() // 3600),
        },
        sort_keys=True,
    )


def _decimal(number: float) -> str:
    """Exactly the number, in the plain digits the function reads (repr never uses an exponent in 0.1-1000)."""
    return str(int(number)) if number.is_integer() else repr(number)


def schedule_input(settings: Settings) -> dict[str, object]:
    """What the handler receives: the scheduled time (ISO 8601 UTC), and dry_run only when switched on."""
    payload: dict[str, object] = {"time": scheduler.ContextAttribute.scheduled_time}
    if settings.dry_run:
        payload["dry_run"] = True
    return payload


class BackupFunction(Construct):
    """The scheduled Lambda function with everything it needs to run unattended."""

    def __init__(self, scope: Construct, construct_id: str, *, props: BackupFunctionProps) -> None:
        super().__init__(scope, construct_id)
        settings = props.settings
        interval = Duration.minutes(settings.schedule.interval_minutes)

        self.failure_queue = _dead_letter_queue(self, "FailedRuns", "failed runs after Lambda's retries")
        self.schedule_queue = _dead_letter_queue(
            self, "UndeliveredSchedules", "schedule events Scheduler could not hand to Lambda"
        )

        self.log_group = logs.LogGroup(self, "Logs", retention=_RETENTION[settings.log_retention_days])
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="snapshot-scheduler backup function: RDS cluster snapshots of opted-in clusters only",
        )
        copy_targets = region_targets(settings.dr_targets)
        dr_regions = sorted({target.region for target in copy_targets.values()})
        _grant_describe(self.role)
        if settings.vault is not None:
            grant_vault(self.role, vault=settings.vault, deployment=props.deployment)
        else:
            _grant_rds(self.role, policy_tag_key=settings.policy_tag_key, deployment=props.deployment)
            grant_dr_copies(self.role, targets=copy_targets, deployment=props.deployment)
            grant_shares(self.role, targets=settings.dr_targets, deployment=props.deployment)
        _deny_holds(self.role, dr_regions)
        self.log_group.grant_write(self.role)

        self.function = lambda_.Function(
            self,
            "Function",
            description="Takes and expires tag-driven manual snapshots of RDS/Aurora DB clusters",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=contract.HANDLER,
            # Powertools is bundled (lambda_src/requirements.txt): no layer, whose ARN differs by partition
            # and region and whose release would differ from the one the tests run.
            code=function_code(runtime=RUNTIME, platform=PIP_PLATFORM),
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_seconds),
            # Opt-in (reservedConcurrency): reserving any needs an account limit above Lambda's unreserved 100.
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            role=self.role,
            log_group=self.log_group,
            environment=function_environment(settings, props.deployment),
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            max_event_age=_at_most(interval, MAX_LAMBDA_EVENT_AGE),
            on_failure=_SendOnlyQueueDestination(self.failure_queue),
        )

        # CDK renders both a Role GetAtt and a DependsOn on the role; cfn-lint's W3005 flags the redundant,
        # harmless DependsOn. Ignored on this resource only.
        _cfn(self.function).add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})

        stack = Stack.of(self)
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            description="EventBridge Scheduler: invoke the snapshot-scheduler backup function, nothing else",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": stack.account,
                        "aws:SourceArn": stack.format_arn(
                            service="scheduler",
                            resource="schedule-group",
                            resource_name="default",
                            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                        ),
                    }
                },
            ),
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"Runs snapshot-scheduler ({settings.schedule.expression}, {settings.schedule.timezone})",
            schedule=scheduler.ScheduleExpression.expression(
                settings.schedule.expression, TimeZone.of(settings.schedule.timezone)
            ),
            time_window=scheduler.TimeWindow.off(),
            target=_InvokeFunctionOnly(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object(schedule_input(settings)),
                retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
                max_event_age=_at_most(interval, MAX_SCHEDULER_EVENT_AGE),
                dead_letter_queue=self.schedule_queue,
                role=self.scheduler_role,
            ),
        )
        self._acknowledge(settings.policy_tag_key, vault=settings.vault is not None)

    def _acknowledge(self, policy_tag_key: str, *, vault: bool) -> None:
        """cdk-nag findings that are deliberate here, each with its reason."""
        stack = Stack.of(self)
        runtime_reason = (
            f"{RUNTIME.name} is chosen on purpose, not left to drift to the newest runtime: move it only after "
            "running the tests on that Python."
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(id="AwsSolutions-L1", reason=runtime_reason),
            Acknowledgment(id="Serverless-LambdaLatestVersion", reason=runtime_reason),
            Acknowledgment(
                id="Serverless-LambdaDLQ",
                reason="Failed asynchronous runs go to the on-failure destination (EventInvokeConfig -> "
                "FailedRuns SQS queue), which records the event and the error; a DeadLetterConfig would "
                "duplicate it with less information.",
            ),
        )
        describe = Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="rds:DescribeDBClusters, rds:DescribeDBClusterSnapshots and rds:DescribeAccountAttributes "
            "list the whole account and region (read-only); X-Ray's PutTraceSegments and "
            "PutTelemetryRecords (active tracing) have no resource-level permissions.",
        )
        policy = Validations.of(self.role.node.find_child("DefaultPolicy"))
        if vault:  # a vault snapshots no cluster: its own findings are acknowledged in vault_access
            policy.acknowledge(describe)
            return
        policy.acknowledge(
            describe,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{_nag_rds_arn(stack)}:cluster:*]",
                reason="rds:CreateDBClusterSnapshot on any cluster of the account and region, but IAM allows it "
                f"only on clusters that carry the opt-in tag (Null rds:cluster-tag/{policy_tag_key} = false).",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{_nag_rds_arn(stack)}:cluster-snapshot:"
                f"{contract.SNAPSHOT_ID_PATTERN}]",
                reason="Snapshot names are made at run time, each <cluster>-<slot>: IAM allows creating and "
                f"tagging such a snapshot only with this deployment's {contract.MARKER_TAG} request tag, and "
                "deleting one only when it carries our marker (rds:cluster-snapshot-tag condition).",
            ),
        )


@jsii.implements(lambda_.IDestination)
class _SendOnlyQueueDestination:
    """An on-failure destination that grants Lambda what it uses, sqs:SendMessage on the queue, and not the
    GetQueueAttributes and GetQueueUrl that CDK's SqsDestination adds."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, _scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType
    ) -> lambda_.DestinationConfig:
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self._queue.queue_arn]))
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


class _InvokeFunctionOnly(scheduler_targets.LambdaInvoke):
    """The Scheduler target, granting invoke on the function alone: the schedule calls its unqualified ARN, never
    a version or alias (CDK's LambdaInvoke grants those too, as function-ARN:*)."""

    def __init__(self, function: lambda_.IFunction, **props: Any) -> None:
        super().__init__(function, **props)
        self._function = function

    def _add_target_action_to_role(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self._function.function_arn])
        )


def _nag_rds_arn(stack: Stack) -> str:
    """How cdk-nag spells this stack's RDS ARN prefix in a finding id: pseudo parameters as <AWS::...>
    in an environment-agnostic stack, the literal values in a stack bound to an account and region."""

    def spelled(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition = spelled(stack.partition, "Partition")
    return f"arn:{partition}:rds:{spelled(stack.region, 'Region')}:{spelled(stack.account, 'AccountId')}"


def _cfn(construct: Construct) -> CfnResource:
    child = construct.node.default_child
    assert isinstance(child, CfnResource)
    return child


def _at_most(duration: Duration, ceiling: Duration) -> Duration:
    return duration if duration.to_seconds() <= ceiling.to_seconds() else ceiling


def _dead_letter_queue(scope: Construct, construct_id: str, holds: str) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )
    reason = f"This queue is itself a dead-letter queue ({holds}); a DLQ of a DLQ has nothing to catch."
    Validations.of(queue).acknowledge(
        Acknowledgment(id="AwsSolutions-SQS3", reason=reason),
        Acknowledgment(id="Serverless-SQSRedrivePolicy", reason=reason),
    )
    return queue


def _grant_describe(role: iam.Role) -> None:
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DescribeClustersSnapshotsAndQuota",
            actions=list(contract.RDS_DESCRIBE_ACTIONS),
            resources=["*"],
        )
    )


def _grant_rds(role: iam.Role, *, policy_tag_key: str, deployment: str) -> None:
    """Least privilege enforced by IAM: create only on opted-in clusters, only with our marker; delete
    only what carries our marker (never what an operator holds: _deny_holds); never re-mark another
    deployment's snapshot."""
    stack = Stack.of(role)
    clusters = stack.format_arn(
        service="rds", resource="cluster", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )
    snapshots = stack.format_arn(
        service="rds", resource="cluster-snapshot", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )
    slot_snapshots = stack.format_arn(
        service="rds",
        resource="cluster-snapshot",
        resource_name=contract.SNAPSHOT_ID_PATTERN,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="SnapshotOptedInClustersOnly",
            actions=[contract.RDS_CREATE_SNAPSHOT],
            resources=[clusters],
            conditions={"Null": {f"rds:cluster-tag/{policy_tag_key}": "false"}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="CreateSnapshotsCarryingOurMarker",
            actions=[contract.RDS_CREATE_SNAPSHOT, contract.RDS_ADD_TAGS],
            resources=[slot_snapshots],
            conditions={"StringEquals": {f"aws:RequestTag/{contract.MARKER_TAG}": deployment}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DeleteOnlyOurSnapshots",
            actions=[contract.RDS_DELETE_SNAPSHOT],
            resources=[slot_snapshots],
            conditions={"StringEquals": {f"rds:cluster-snapshot-tag/{contract.MARKER_TAG}": deployment}},
        )
    )
    # RDS authorises the tags of a create as rds:AddTagsToResource on the new snapshot (RDS user guide,
    # "Grant permission to tag Amazon RDS resources during creation"), so IAM cannot tell that from tagging an
    # existing snapshot. Whether RDS then sees the new snapshot's tags as absent or as the request's is not
    # documented: the deny holds either way, since a create carries our own marker.
    _deny(role, "NeverRemarkAnotherDeploymentsSnapshot", contract.RDS_ADD_TAGS, [snapshots], {
        "Null": {f"rds:cluster-snapshot-tag/{contract.MARKER_TAG}": "false"},
        "StringNotEquals": {f"rds:cluster-snapshot-tag/{contract.MARKER_TAG}": deployment},
    })  # fmt: skip


def _deny_holds(role: iam.Role, dr_regions: Sequence[str] = ()) -> None:
    """Never delete what an operator holds (here and in every DR region), never set or clear a hold: on every
    deployment, the vault's too."""
    stack = Stack.of(role)
    snapshots = stack.format_arn(
        service="rds", resource="cluster-snapshot", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )
    guarded = [snapshots, *(dr_snapshot_arn(stack, region) for region in dr_regions)]
    for sid, key in HOLD_DENY_SPELLINGS:
        # The snapshot carries the key (Null false = present) and its value is none of the explicit noes (a
        # negated operator NORs its values).
        _deny(role, sid, contract.RDS_DELETE_SNAPSHOT, guarded, {
            "Null": {f"rds:cluster-snapshot-tag/{key}": "false"},
            "StringNotEqualsIgnoreCase": {f"rds:cluster-snapshot-tag/{key}": list(contract.HOLD_RELEASED_VALUES)},
        })  # fmt: skip
    _deny(role, "NeverSetOrClearAHold", contract.RDS_ADD_TAGS, guarded, {
        "ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": [contract.HOLD_TAG]},
    })  # fmt: skip


def _deny(role: iam.Role, sid: str, action: str, resources: Sequence[str], conditions: dict[str, Any]) -> None:
    role.add_to_policy(
        iam.PolicyStatement(
            sid=sid, effect=iam.Effect.DENY, actions=[action], resources=list(resources), conditions=conditions
        )
    )
