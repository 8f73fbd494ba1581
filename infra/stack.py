"""One snapshot-scheduler stack per configured environment, composing the function and its monitoring."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, App, CfnOutput, Duration, Environment, Stack
from constructs import Construct

from infra import config
from infra.backup_function import BackupFunction, BackupFunctionProps
from infra.config import DeployEnvironment, Settings
from infra.monitoring import Monitoring, MonitoringProps

DESCRIPTION = "snapshot-scheduler: scheduled, tag-driven manual snapshots of RDS/Aurora DB clusters"


class SnapshotSchedulerStack(Stack):
    """Everything one deployment needs in one account and region."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=DESCRIPTION, **kwargs)
        # The marker on every snapshot this stack creates, and the metric dimension of its runs.
        self.deployment = settings.deployment or self.stack_name

        self.backup = BackupFunction(
            self, "Backup", props=BackupFunctionProps(settings=settings, deployment=self.deployment)
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            props=MonitoringProps(
                name_prefix=self.stack_name,
                dashboard_name=dashboard_name(self),
                metric_namespace=settings.metric_namespace,
                deployment=self.deployment,
                alarm_emails=settings.alarm_emails,
                run_interval=Duration.minutes(settings.schedule.interval_minutes),
                heartbeat_window=Duration.minutes(settings.heartbeat_window_minutes),
                function=self.backup.function,
                log_group=self.backup.log_group,
                dead_letter_queues={
                    "FailedRuns": self.backup.failure_queue,
                    "UndeliveredSchedules": self.backup.schedule_queue,
                },
                dr_regions=sorted({t.region for t in settings.dr_targets.values() if not t.shares}),
                dr_stuck_hours=settings.dr_stuck_hours,
                vault=settings.vault,
                grace_minutes=settings.grace_minutes,
            ),
        )
        # What `doctor` compares with the account's concurrency limit: "none" or the units reserved.
        CfnOutput(
            self,
            "ReservedConcurrency",
            description="Lambda concurrency reserved for the backup function (reservedConcurrency)",
            value="none" if settings.reserved_concurrency is None else str(settings.reserved_concurrency),
        )
        # What key policies and a vault account's SCP name (README): the role the function runs with.
        CfnOutput(
            self,
            "FunctionRoleArn",
            description="The backup function's role: name it in KMS key policies and in a vault account's SCP",
            value=self.backup.role.role_arn,
        )
        if not settings.alarm_emails:
            Annotations.of(self).add_warning_v2(
                "snapshot-scheduler:no-alarm-emails",
                f"{config.ALARM_EMAILS!r} is empty: the alarms notify a topic no one is subscribed to. Set it "
                f"(cdk.json or -c {config.ALARM_EMAILS}='[\"oncall@example.com\"]') or subscribe to the topic.",
            )


def dashboard_name(stack: Stack) -> str:
    """CloudWatch dashboard names are global to the account, unlike every other name the stack sets: the
    stack name alone would collide when the same stack is deployed to two regions of one account."""
    suffix = f"-{stack.region}"
    return stack.stack_name if stack.stack_name.endswith(suffix) else stack.stack_name + suffix


def stack_name(settings: Settings, environment: DeployEnvironment | None) -> str:
    """The configured name for a single environment; suffixed with account and region for a fleet."""
    if environment is None or len(settings.environments) < 2:
        return settings.stack_name
    return f"{settings.stack_name}-{environment.account}-{environment.region}"


def add_stacks(app: App, settings: Settings, *, default_env: Environment | None = None) -> list[SnapshotSchedulerStack]:
    """One stack per configured environment, or one for the CLI's default environment when none is."""
    if not settings.environments:
        name = stack_name(settings, None)
        return [SnapshotSchedulerStack(app, name, stack_name=name, settings=settings, env=default_env)]
    stacks = []
    for environment in settings.environments:
        name = stack_name(settings, environment)
        env = Environment(account=environment.account, region=environment.region)
        stacks.append(SnapshotSchedulerStack(app, name, stack_name=name, settings=settings, env=env))
    return stacks
