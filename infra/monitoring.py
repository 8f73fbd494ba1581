"""Alarms (to an encrypted, SSL-only SNS topic) and one dashboard for a snapshot-scheduler deployment.

The run metrics are the function's EMF output: namespace from the configuration, dimensions exactly
{service, deployment}; tests/infra runs the real handler and checks every alarm against what it emits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import Acknowledgment, ArnFormat, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from snapshot_scheduler.vault import Vault

from infra import contract

QUOTA_UTILIZATION_THRESHOLD_PERCENT: Final = 80
# SQS publishes queue metrics every five minutes.
QUEUE_PERIOD: Final = Duration.minutes(5)
DASHBOARD_WIDTH: Final = 24


@dataclass(frozen=True, kw_only=True)
class MonitoringProps:
    # Prefix of alarm names: unique per account and region (the stack name); alarm names are regional.
    name_prefix: str
    # Dashboard names are global to the account: unique per account (the stack name and the region).
    dashboard_name: str
    metric_namespace: str
    deployment: str
    alarm_emails: Sequence[str]
    # The longest gap between two scheduled runs: each run emits one set of metrics.
    run_interval: Duration
    # No completed run in this window raises the heartbeat alarm (twice the run interval).
    heartbeat_window: Duration
    function: lambda_.IFunction
    log_group: logs.ILogGroup
    # Label (for names and the dashboard) -> dead-letter queue.
    dead_letter_queues: Mapping[str, sqs.IQueue]
    # Disaster-recovery copies are configured (drTargets): their alarms and dashboard row.
    dr_regions: Sequence[str] = ()
    dr_stuck_hours: int = 24
    # A vault deployment (the vault context key): its alarms and dashboard in place of the tag-driven ones.
    vault: Vault | None = None
    grace_minutes: int = 60


def source_labels(vault: Vault) -> list[str]:
    """The `source` dimension of a vault's per-source metrics: "<account>/<region>" (VAULT.md)."""
    return [f"{account}/{region}" for account, region in vault.source_keys]


class Monitoring(Construct):
    """Topic, alarms and dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, props: MonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.topic = self._alarm_topic()
        self.alarms: list[cloudwatch.Alarm] = []
        if props.vault is None:
            self._run_alarms()
        else:
            self._vault_alarms(props.vault)
        self._account_alarms()
        self._function_alarms()
        self._queue_alarms()
        if props.dr_regions:
            self._dr_alarms()
        self.dashboard = self._dashboard()
        if props.dr_regions:
            self._dr_dashboard_row()

    # ---- metrics ------------------------------------------------------------------------------------

    def run_metric(
        self, name: str, statistic: str, *, label: str | None = None, source: str | None = None
    ) -> cloudwatch.Metric:
        """A metric of the function's EMF output, per run interval; a vault's per-source metrics also carry
        the dimension `source` ("<account>/<region>")."""
        return cloudwatch.Metric(
            namespace=self._props.metric_namespace,
            metric_name=name,
            dimensions_map={
                contract.DIMENSION_SERVICE: contract.SERVICE_NAME,
                contract.DIMENSION_DEPLOYMENT: self._props.deployment,
                **({contract.DIMENSION_SOURCE: source} if source else {}),
            },
            statistic=statistic,
            period=self._props.run_interval,
            label=label,
        )

    def _hours(self, age_in_seconds: str, label: str) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression="age / 3600",
            using_metrics={"age": self.run_metric(age_in_seconds, "Maximum")},
            label=label,
            period=self._props.run_interval,
        )

    # ---- topic --------------------------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic:
        stack = Stack.of(self)
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the {self._props.name_prefix} alarm topic",
            enable_key_rotation=True,
            # It protects alarm notices in transit only: nothing encrypted with it outlives the stack.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch publishes alarm notifications to the encrypted topic: it needs the key, for this account.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{self._props.name_prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            # This stack's alarms only, not any alarm of the account.
                            resource_name=f"{self._props.name_prefix}-*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        for email in self._props.alarm_emails:
            subscription = topic.add_subscription(subscriptions.EmailSubscription(email))
            Validations.of(subscription).acknowledge(
                Acknowledgment(
                    id="Serverless-SNSRedrivePolicy",
                    reason=f"E-mail subscription ({email}) for alarm notices: an undeliverable notice is "
                    "counted in the topic's NumberOfNotificationsFailed, a queue of unread alarm e-mails "
                    "would help no one.",
                )
            )
        return topic

    # ---- alarms -------------------------------------------------------------------------------------

    def _alarm(
        self,
        short_name: str,
        *,
        metric: cloudwatch.IMetric,
        description: str,
        threshold: float = 0,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        """An alarm on one datapoint, to the topic on ALARM and on OK. By default: any value above zero,
        and no data is fine (a run that had nothing to report, or no run: the heartbeat alarm covers that)."""
        alarm = cloudwatch.Alarm(
            self,
            short_name,
            alarm_name=f"{self._props.name_prefix}-{short_name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=missing,
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _quota_alarm(self, short_name: str, utilization: str, *, description: str) -> None:
        """A manual snapshot quota, here or in the DR regions: one threshold for both."""
        self._alarm(
            short_name,
            metric=self.run_metric(utilization, "Maximum"),
            threshold=QUOTA_UTILIZATION_THRESHOLD_PERCENT,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description=description,
        )

    def _run_alarms(self) -> None:
        logs_hint = f" Run reports are in log group {self._props.log_group.log_group_name}."
        self._alarm(
            "ClustersOutOfPolicy",
            metric=self.run_metric(contract.CLUSTERS_OUT_OF_POLICY, "Maximum"),
            description="RECOVERY-POINT BREACH: at least one cluster we back up has no snapshot recent enough "
            "for its policy, past the grace period; this includes a cluster whose backups stopped for any reason "
            "but its tag set to off (broken or removed tag, tag key in another case, engine no longer managed), "
            "judged by the policy recorded on its snapshots. Find the clusters in the latest run report "
            "(stats.clusters_out_of_policy; deferred, skipped and failed entries give the reason: quota, busy, "
            "untagged, policy-error, engine-not-managed, access denied) or run snapshot-scheduler status. Take a "
            "manual snapshot now if the data matters, then fix the cause (set the tag to off to stop on "
            "purpose); the alarm clears after a run with none out of policy." + logs_hint,
        )
        self._alarm(
            "ClustersNewlyOutOfPolicy",
            metric=self.run_metric(contract.CLUSTERS_NEWLY_OUT_OF_POLICY, "Sum"),
            description="ANOTHER CLUSTER FELL OUT OF POLICY since the previous run (its newest snapshot just became "
            "older than its policy's interval plus the grace). ClustersOutOfPolicy stays in ALARM while any "
            "cluster is out of policy, so it says nothing about a second one; this alarm notifies once for each "
            "cluster that falls out and clears at the next run. Find the cluster in the run report "
            "(stats.clusters_newly_out_of_policy) and handle it as ClustersOutOfPolicy says." + logs_hint,
        )
        self._alarm(
            "SlotsMissed",
            metric=self.run_metric(contract.SLOTS_MISSED, "Sum"),
            description="A SNAPSHOT SLOT ENDED WITHOUT A SNAPSHOT: a cluster's policy asked for one and none was "
            "taken; that slot cannot be taken any more. Each missed slot is counted once, by the run that first "
            "knows it, so the alarm clears after the next run without one. The run report's 'missed' entries "
            "name the cluster, the slot and the reason: busy (backing up or in maintenance for the whole slot: "
            "move the policy's at= away from those windows), quota (see the ManualSnapshotQuota alarm), "
            "in-progress (the previous snapshot was still creating: lengthen every=), stale-event (the slot's "
            "run came too late: check FunctionErrors and the dead-letter queues), schedule-too-sparse (the "
            "deployment runs less often than the policy asks: the report's 'warnings' name the policy; lengthen "
            "its every= or shorten the schedule), time (the run ran out of time), or a failure's error code (see "
            "SnapshotsFailed). Take a manual snapshot now if the data matters." + logs_hint,
        )
        self._alarm(
            "SnapshotsFailed",
            metric=self.run_metric(contract.SNAPSHOTS_FAILED, "Sum"),
            description="A snapshot create or delete failed with an error that retrying will not fix "
            "(access denied, cluster not found, invalid state). The run report's 'failed' entries name the "
            "cluster, the error code and the message. Check the cluster's state and tags and the function "
            "role; the next run retries." + logs_hint,
        )
        self._alarm(
            "PolicyErrors",
            metric=self.run_metric(contract.POLICY_ERRORS, "Sum"),
            description="A cluster's policy tag value does not parse, so that cluster is NOT being "
            "snapshotted (the run report's skipped entries name the cluster and the parse error), or, with DR "
            "targets, its DR tag cannot be used, so it is NOT being copied and none of its copies is deleted "
            "(the report's dr.errors name the cluster and the bad word; its own snapshots go on); correct the "
            "tag value (or the named policy in cdk.json) and the next run picks it up." + logs_hint,
        )
        self._alarm(
            "DeletionsPending",
            metric=self.run_metric(contract.DELETIONS_PENDING, "Maximum"),
            description="A CLUSTER'S POLICY TAG (OR DR TAG) CHANGED to one that keeps fewer snapshots (or DR "
            "copies): those only the earlier policy keeps will be deleted once the new policy has stood for "
            "policyChangeGraceHours (default 24) from its first snapshot (copy). Read the run report's 'pending' "
            "and 'dr.pending' entries: they name the cluster (and the copy's region), each snapshot, the policy that "
            "deletes it, the one that keeps it and when it becomes deletable ('snapshot-scheduler plan' shows them "
            "too). If the change was intended, nothing to do: the alarm clears when they are deleted. If not, "
            "restore the tag (or tag the snapshots or copies snapshot-hold=true) before then. Check who changed "
            "the tag in CloudTrail (AddTagsToResource)." + logs_hint,
        )
        self._alarm(
            "MassDeletion",
            metric=self.run_metric(contract.MASS_DELETIONS, "Maximum"),
            description="A run deleted at least 3 snapshots of one cluster (or DR copies of one cluster in one "
            "region), and at least a third of those it had (ordinary retention deletes one or two at a time). "
            "Expected once a policy change's grace ends (a DeletionsPending alarm came first) or after holds are "
            "released. Find the cluster in the run report's stats.mass_deletions (copies: dr.mass_deletions, "
            "cluster/region) and its 'deleted' entries; if nobody meant it, check who changed its policy or DR tag "
            "or the deployment's named policies, and hold what must stay (snapshot-hold=true)." + logs_hint,
        )

    def _account_alarms(self) -> None:
        logs_hint = f" Run reports are in log group {self._props.log_group.log_group_name}."
        stopped = "NO SNAPSHOTS ARE BEING TAKEN" if self._props.vault is None else "THE VAULT COPIES NOTHING"
        self._quota_alarm(
            "ManualSnapshotQuota",
            contract.QUOTA_UTILIZATION,
            description=f"Manual DB cluster snapshots use {QUOTA_UTILIZATION_THRESHOLD_PERCENT}% or more of "
            "the regional quota (Service Quotas code L-9B510759, default 100). At 100% new snapshots fail for "
            "everyone in the account and region. Shorten retention in the policies, delete snapshots no one "
            "needs, or request a quota increase.",
        )
        self._alarm(
            "HeartbeatMissing",
            metric=self.run_metric(contract.HEARTBEAT, "Sum").with_(period=self._props.heartbeat_window),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"No run has completed in twice the schedule interval: {stopped}. "
            "Check that the EventBridge Scheduler schedule is enabled, the function's Errors and Throttles "
            "alarms, both dead-letter queues, and the function logs for timeouts or start-up (configuration) "
            "errors." + logs_hint,
        )

    def _function_alarms(self) -> None:
        function = self._props.function
        period = self._props.run_interval
        self._alarm(
            "FunctionErrors",
            metric=function.metric_errors(statistic="Sum", period=period),
            description="The backup function ended with an error or a timeout (Lambda retries twice, then "
            "sends the event to the FailedRuns queue). Read the error in the logs: a configuration error "
            "needs a redeploy with corrected cdk.json context; a timeout means a run did not finish in time: "
            "check RunDuration on the dashboard and raise timeoutSeconds (at most 900)."
            + f" Log group: {self._props.log_group.log_group_name}.",
        )
        self._alarm(
            "FunctionThrottles",
            metric=function.metric_throttles(statistic="Sum", period=period),
            description="An invocation was throttled: the account's Lambda concurrency was exhausted, or "
            "(with reservedConcurrency 1) a run was still going when the next one started. Lambda retries it "
            "until the next scheduled run supersedes it. Check the account's ConcurrentExecutions against its "
            "limit and, with a reservation, RunDuration on the dashboard against the schedule interval.",
        )

    def _queue_alarms(self) -> None:
        for label, queue in self._props.dead_letter_queues.items():
            self._alarm(
                f"{label}DeadLetters",
                metric=queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=QUEUE_PERIOD),
                description=f"The {label} dead-letter queue ({queue.queue_name}) holds events: runs that "
                "never happened or failed for good. Read the messages (they carry the event and, for failed "
                "runs, the error), fix the cause, then purge the queue; the next scheduled run catches up "
                "by itself.",
            )

    def _dr_alarms(self) -> None:
        regions = ", ".join(self._props.dr_regions)
        logs_hint = f" The run report's 'dr' section has the details; log group {self._props.log_group.log_group_name}."
        self._alarm(
            "DrRecoveryPointBreached",
            metric=self.run_metric(contract.DR_TARGETS_OUT_OF_POLICY, "Maximum"),
            description=f"DR RECOVERY-POINT BREACH: a DR-tagged cluster has no available copy in a DR region "
            f"({regions}) newer than its DR interval plus the grace plus {self._props.dr_stuck_hours} h for the "
            "copy itself. The report's 'dr' entries (deferred: copy-limit or quota, skipped: kms, failed) give "
            "the cause: raise the destination's manual snapshot quota, fix the target's KMS key policy, or "
            "look for copies held up by other tools using the region's 5 copy places." + logs_hint,
        )
        self._alarm(
            "DrCopiesFailed",
            metric=self.run_metric(contract.DR_COPIES_FAILED, "Sum"),
            description="A DR copy failed to start, ended 'failed' (deleted by the run, copied again by the next) "
            "or a DR region could not be read. The 'dr.failed' entries name the cluster, region and error: "
            "access denied means the role or the target key's policy; RegionUnreadable means no copy is made "
            "or pruned until the region answers." + logs_hint,
        )
        self._quota_alarm(
            "DrManualSnapshotQuota",
            contract.DR_QUOTA_UTILIZATION,
            description=f"Manual DB cluster snapshots use {QUOTA_UTILIZATION_THRESHOLD_PERCENT}% or more of the "
            f"regional quota in a DR region ({regions}; Service Quotas code L-9B510759, default 100, per region). "
            "Copies count against it, and so do everyone else's manual snapshots there: at 100% copies are "
            "deferred with reason quota (the DR recovery point ages) and every other tool's snapshots in that "
            "region fail. The report's dr.quotas names each region's used/max: shorten the DR tags' keep- "
            "words, delete snapshots no one needs in that region, or request a quota increase there." + logs_hint,
        )
        self._alarm(
            "DrCopyStuck",
            metric=self.run_metric(contract.DR_COPIES_STUCK, "Maximum"),
            description=f"A DR copy has been 'copying' for more than {self._props.dr_stuck_hours} h. The service "
            "never cancels a copy; large databases can take this long. If PercentProgress does not move, "
            "delete the copy in the destination region (this cancels it) and the next run copies the slot "
            "again; ask AWS support if it recurs." + logs_hint,
        )

    def _vault_alarms(self, vault: Vault) -> None:
        props = self._props
        logs_hint = f" The run report's 'vault' section has the details; log group {props.log_group.log_group_name}."
        allowed = vault.policy.every.interval.total_seconds() + 60 * props.grace_minutes + 3600 * props.dr_stuck_hours
        silence = vault.shares_expected.total_seconds()
        # A run reports a source's age and silence only once it has a copy of it, or has seen a share: until then
        # no data is a breach (over the heartbeat's window, so that a late run is no gap), and a source silenced
        # before its first share alarms too.
        for source in source_labels(vault):
            account, region = source.split("/")
            self._alarm(
                f"VaultRecoveryPointBreached-{account}-{region}",
                metric=self.run_metric(contract.VAULT_RECOVERY_POINT_AGE, "Maximum", source=source).with_(
                    period=props.heartbeat_window
                ),
                threshold=allowed,
                missing=cloudwatch.TreatMissingData.BREACHING,
                description=f"VAULT RECOVERY-POINT BREACH for source account {account} in {region}: the vault's "
                f"newest copy of one of its clusters is older than the vault policy's interval "
                f"({vault.policy.every.text}) plus graceMinutes ({props.grace_minutes}) plus drStuckHours "
                f"({props.dr_stuck_hours}) for the copy itself, or the vault has no copy of it at all (no data). "
                "Is the source still sharing (VaultSharesMissing)? "
                "Otherwise the report's 'vault' entries say why no copy was made: deferred (copy-limit: other "
                "copies hold the region's 5 places; quota: raise the vault's manual snapshot quota), skipped kms "
                "(the source key's policy must let this account use it, the vault key's policy this role), "
                "failed. The copies the vault already has are untouched." + logs_hint,
            )
            self._alarm(
                f"VaultSharesMissing-{account}-{region}",
                metric=self.run_metric(contract.VAULT_SOURCE_SILENCE, "Maximum", source=source).with_(
                    period=props.heartbeat_window
                ),
                threshold=silence,
                missing=cloudwatch.TreatMissingData.BREACHING,
                description=f"SOURCE {account} IN {region} HAS SHARED NOTHING for more than sharesExpectedHours "
                f"({int(silence // 3600)} h), or nothing since the vault was deployed (no data). "
                "Either its deployment stopped sharing (its run, its DR tag to=<vault "
                "target>, or its drTargets entry for this account changed) or someone in that account is "
                "silencing the vault: treat it as a possible compromise until you know. In the source account "
                "check the deployment's alarms and run report ('dr' entries: shared, skipped kms-default-key) "
                "and CloudTrail for ModifyDBClusterSnapshotAttribute and tag changes. The vault keeps every copy "
                "it has by its own policy meanwhile." + logs_hint,
            )
        self._alarm(
            "DeletionsPending",
            metric=self.run_metric(contract.DELETIONS_PENDING, "Maximum"),
            description="THE VAULT'S POLICY CHANGED to one that keeps fewer copies: the copies only the earlier "
            "policy keeps will be deleted once the new policy has stood for policyChangeGraceHours (default 24) "
            "from its first copy. The run report's 'pending' entries name the source, the cluster, each copy, the "
            "policy that deletes it, the one that keeps it and when it becomes deletable ('snapshot-scheduler "
            "plan' with the vault's settings lists them too). If the change was "
            "intended, nothing to do: the alarm clears when they are deleted. If not, redeploy the vault with its "
            "earlier policy (or tag the copies snapshot-hold=true) before then, and find who deployed it "
            "(CloudTrail: the CloudFormation stack update)." + logs_hint,
        )
        self._alarm(
            "MassDeletion",
            metric=self.run_metric(contract.MASS_DELETIONS, "Maximum"),
            description="A vault run deleted at least 3 copies of one cluster of one source, and at least a third "
            "of those it had (ordinary retention deletes one or two at a time). Expected once a vault policy "
            "change's grace ends (a DeletionsPending alarm came first). Find the cluster in the run report's "
            "vault.mass_deletions (<account>/<region>/<cluster>) and its 'deleted' entries; if nobody meant it, "
            "find who deployed the vault's policy (CloudTrail: the CloudFormation stack update) and hold what "
            "must stay (snapshot-hold=true)." + logs_hint,
        )
        self._alarm(
            "VaultCopiesFailed",
            metric=self.run_metric(contract.VAULT_COPIES_FAILED, "Sum"),
            description="A vault copy failed to start or ended 'failed' (the run deletes a failed copy; the next "
            "run copies the slot again while the source still shares it). The report's 'vault.failed' entries "
            "name the source, cluster and error: access denied or KMSKeyNotAccessibleFault means a key policy "
            "(the source's key must allow this account, the vault key this role) or the role; "
            "DBClusterSnapshotNotFoundFault means the source unshared or deleted it before the copy." + logs_hint,
        )
        self._alarm(
            "VaultCopyStuck",
            metric=self.run_metric(contract.VAULT_COPIES_STUCK, "Maximum"),
            description=f"A vault copy has been 'copying' for more than drStuckHours ({props.dr_stuck_hours} h). "
            "The vault never cancels a copy; large databases can take this long. If PercentProgress does not "
            "move, delete the copy in the vault (this cancels it; break-glass role if your SCP denies deletes) "
            "and the next run copies the slot again while it is shared." + logs_hint,
        )

    def _vault_rows(self, dashboard: cloudwatch.Dashboard, vault: Vault) -> None:
        half = DASHBOARD_WIDTH // 2

        def hours(name: str, title: str) -> cloudwatch.GraphWidget:
            lines = [
                cloudwatch.MathExpression(
                    expression=f"s{index} / 3600",
                    using_metrics={f"s{index}": self.run_metric(name, "Maximum", source=source)},
                    label=source,
                    period=self._props.run_interval,
                )
                for index, source in enumerate(source_labels(vault))
            ]
            return cloudwatch.GraphWidget(title=title, width=half, left=lines)

        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Vault copies per run",
                width=half,
                left=[
                    self.run_metric(contract.VAULT_COPIES_STARTED, "Sum", label="Started"),
                    self.run_metric(contract.VAULT_COPIES_DELETED, "Sum", label="Deleted"),
                    self.run_metric(contract.VAULT_COPIES_DEFERRED, "Sum", label="Deferred"),
                    self.run_metric(contract.VAULT_COPIES_FAILED, "Sum", label="Failed"),
                    self.run_metric(contract.VAULT_COPIES_STUCK, "Maximum", label="Stuck"),
                    self.run_metric(contract.VAULT_SHARES_IGNORED, "Sum", label="Shares ignored"),
                    self.run_metric(contract.DELETIONS_PENDING, "Maximum", label="Deletions pending (policy change)"),
                ],
            ),
            hours(contract.VAULT_RECOVERY_POINT_AGE, "Newest vault copy per source (hours)"),
        )
        dashboard.add_widgets(hours(contract.VAULT_SOURCE_SILENCE, "Hours since each source's newest share"))

    def _dr_dashboard_row(self) -> None:
        third = DASHBOARD_WIDTH // 3
        hours = self._hours(contract.DR_OLDEST_RECOVERY_POINT_AGE, "Oldest DR copy (hours)")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="DR copies per run",
                width=third,
                left=[
                    self.run_metric(contract.DR_COPIES_STARTED, "Sum", label="Started"),
                    self.run_metric(contract.DR_COPIES_DEFERRED, "Sum", label="Deferred"),
                    self.run_metric(contract.DR_COPIES_FAILED, "Sum", label="Failed"),
                    self.run_metric(contract.DR_COPIES_STUCK, "Maximum", label="Stuck"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="DR recovery points",
                width=third,
                left=[self.run_metric(contract.DR_TARGETS_OUT_OF_POLICY, "Maximum", label="Targets out of policy")],
                right=[hours],
            ),
            cloudwatch.GraphWidget(
                title="DR regions' manual snapshot quota",
                width=third,
                left=[self.run_metric(contract.DR_QUOTA_UTILIZATION, "Maximum", label="Fullest DR region %")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=QUOTA_UTILIZATION_THRESHOLD_PERCENT, label="alarm")
                ],
            ),
        )

    # ---- dashboard ----------------------------------------------------------------------------------

    def _snapshot_rows(self, dashboard: cloudwatch.Dashboard) -> None:
        half = DASHBOARD_WIDTH // 2
        hours = self._hours(contract.OLDEST_RECOVERY_POINT_AGE, "Oldest recovery point (hours)")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Snapshots per run",
                width=half,
                left=[
                    self.run_metric(contract.SNAPSHOTS_CREATED, "Sum", label="Created"),
                    self.run_metric(contract.SNAPSHOTS_DELETED, "Sum", label="Deleted"),
                    self.run_metric(contract.SNAPSHOTS_DEFERRED, "Sum", label="Deferred"),
                    self.run_metric(contract.SNAPSHOTS_FAILED, "Sum", label="Failed"),
                    self.run_metric(contract.DELETIONS_PENDING, "Maximum", label="Deletions pending (policy change)"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Recovery points",
                width=half,
                left=[
                    self.run_metric(contract.CLUSTERS_OUT_OF_POLICY, "Maximum", label="Clusters out of policy"),
                    self.run_metric(contract.CLUSTERS_MANAGED, "Maximum", label="Clusters managed"),
                    self.run_metric(contract.SLOTS_MISSED, "Sum", label="Slots missed"),
                    self.run_metric(contract.CLUSTERS_NEWLY_OUT_OF_POLICY, "Sum", label="Newly out of policy"),
                ],
                right=[hours],
            ),
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        props = self._props
        function = props.function
        half = DASHBOARD_WIDTH // 2
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=props.dashboard_name,
            default_interval=Duration.days(7),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=DASHBOARD_WIDTH)
        )
        if props.vault is None:
            self._snapshot_rows(dashboard)
        else:
            self._vault_rows(dashboard, props.vault)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Manual cluster snapshot quota",
                width=half,
                left=[
                    self.run_metric(contract.QUOTA_USED, "Maximum", label="Used"),
                    self.run_metric(contract.QUOTA_MAX, "Maximum", label="Max"),
                ],
                right=[self.run_metric(contract.QUOTA_UTILIZATION, "Maximum", label="Utilisation %")],
            ),
            cloudwatch.GraphWidget(
                title="Run duration (ms)",
                width=half,
                left=[
                    self.run_metric(contract.RUN_DURATION, "Maximum", label="Max"),
                    self.run_metric(contract.RUN_DURATION, "Average", label="Average"),
                ],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                width=half,
                left=[
                    function.metric_errors(statistic="Sum", period=props.run_interval, label="Errors"),
                    function.metric_throttles(statistic="Sum", period=props.run_interval, label="Throttles"),
                ],
                right=[function.metric_duration(statistic="Maximum", period=props.run_interval, label="Duration")],
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth",
                width=half,
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=QUEUE_PERIOD, label=label
                    )
                    for label, queue in props.dead_letter_queues.items()
                ],
            ),
        )
        return dashboard
