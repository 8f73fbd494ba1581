"""Alarm topic, alarms and dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from tests.infra.synthesis import Synthesized, synth

DIMENSIONS = [{"Name": "deployment", "Value": "SnapshotScheduler"}, {"Name": "service", "Value": "snapshot-scheduler"}]


@pytest.fixture(scope="module")
def with_emails(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {
        "alarmEmails": ["oncall@example.com", "dba@example.com"],
        "schedule": "rate(30 minutes)",
        "metricNamespace": "Backups/Prod",
        "deployment": "prod",
    }
    return synth(context, outdir=tmp_path_factory.mktemp("emails"))


def alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm name without the stack prefix -> properties."""
    found = {}
    for resource in synthesized.resources("AWS::CloudWatch::Alarm").values():
        props = resource["Properties"]
        found[props["AlarmName"].split("-", 1)[1]] = props
    return found


def description_text(props: dict[str, Any]) -> str:
    return json.dumps(props["AlarmDescription"])


def test_topic_is_encrypted_with_a_rotating_customer_key_that_cloudwatch_may_use(default_synth: Synthesized) -> None:
    (key_id,) = default_synth.resources("AWS::KMS::Key")
    key = default_synth.only("AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert {
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Resource": "*",
        "Sid": "AllowCloudWatchAlarmsToUseTheKey",
    } in key["Properties"]["KeyPolicy"]["Statement"]
    topic = default_synth.only("AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_topic_accepts_only_ssl_and_cloudwatch_alarms_of_this_account(default_synth: Synthesized) -> None:
    (topic_id,) = default_synth.resources("AWS::SNS::Topic")
    statements = default_synth.only("AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    ssl, cloudwatch = statements
    assert ssl == {
        "Action": "sns:Publish",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": "*",
        "Resource": {"Ref": topic_id},
        "Sid": "AllowPublishThroughSSLOnly",
    }
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Action"] == "sns:Publish"
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Only this stack's alarms (all named <stackName>-...), not every alarm of the account.
    assert json.dumps(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(':alarm:SnapshotScheduler-*"]]}')
    assert all(
        name.startswith("SnapshotScheduler-") for name in (a["AlarmName"] for a in alarms(default_synth).values())
    )


def test_no_subscription_without_emails(default_synth: Synthesized) -> None:
    default_synth.template().resource_count_is("AWS::SNS::Subscription", 0)


def test_synth_warns_that_alarms_notify_no_one_without_emails(
    default_synth: Synthesized, with_emails: Synthesized
) -> None:
    warning = Match.string_like_regexp("'alarmEmails' is empty: the alarms notify a topic no one is subscribed to")
    Annotations.from_stack(default_synth.stack).has_warning("*", warning)
    Annotations.from_stack(with_emails.stack).has_no_warning("*", warning)


def test_one_email_subscription_per_address(with_emails: Synthesized) -> None:
    (topic_id,) = with_emails.resources("AWS::SNS::Topic")
    subscriptions = sorted(
        (r["Properties"]["Endpoint"], r["Properties"]["Protocol"], json.dumps(r["Properties"]["TopicArn"]))
        for r in with_emails.resources("AWS::SNS::Subscription").values()
    )
    topic = json.dumps({"Ref": topic_id})
    assert subscriptions == [("dba@example.com", "email", topic), ("oncall@example.com", "email", topic)]


def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(default_synth: Synthesized) -> None:
    (topic_id,) = default_synth.resources("AWS::SNS::Topic")
    for name, props in alarms(default_synth).items():
        assert props["AlarmActions"] == [{"Ref": topic_id}], name
        assert props["OKActions"] == [{"Ref": topic_id}], name


def test_every_alarm_tells_the_on_call_what_it_means_and_what_to_do(default_synth: Synthesized) -> None:
    for name, props in alarms(default_synth).items():
        text = description_text(props)
        assert len(text) > 150, name
        assert any(verb in text for verb in ("Check", "Read", "Find", "Shorten", "fix", "correct", "lengthen")), name
        assert props["AlarmName"].startswith("SnapshotScheduler-"), name


def test_the_alarm_set_is_the_one_the_runbook_describes(default_synth: Synthesized) -> None:
    assert set(alarms(default_synth)) == {
        "ClustersOutOfPolicy",
        "ClustersNewlyOutOfPolicy",
        "SlotsMissed",
        "SnapshotsFailed",
        "PolicyErrors",
        "ManualSnapshotQuota",
        "HeartbeatMissing",
        "DeletionsPending",
        "MassDeletion",
        "FunctionErrors",
        "FunctionThrottles",
        "FailedRunsDeadLetters",
        "UndeliveredSchedulesDeadLetters",
    }


@pytest.mark.parametrize(
    ("alarm", "metric", "statistic", "comparison", "threshold"),
    [
        ("ClustersOutOfPolicy", "ClustersOutOfPolicy", "Maximum", "GreaterThanThreshold", 0),
        ("ClustersNewlyOutOfPolicy", "ClustersNewlyOutOfPolicy", "Sum", "GreaterThanThreshold", 0),
        ("SlotsMissed", "SlotsMissed", "Sum", "GreaterThanThreshold", 0),
        ("SnapshotsFailed", "SnapshotsFailed", "Sum", "GreaterThanThreshold", 0),
        ("PolicyErrors", "PolicyErrors", "Sum", "GreaterThanThreshold", 0),
        ("ManualSnapshotQuota", "ManualSnapshotQuotaUtilization", "Maximum", "GreaterThanOrEqualToThreshold", 80),
        ("DeletionsPending", "DeletionsPending", "Maximum", "GreaterThanThreshold", 0),
        ("MassDeletion", "MassDeletions", "Maximum", "GreaterThanThreshold", 0),
    ],
)
def test_run_alarms_watch_the_functions_metrics_once_per_run(
    default_synth: Synthesized, alarm: str, metric: str, statistic: str, comparison: str, threshold: int
) -> None:
    props = alarms(default_synth)[alarm]
    assert (props["Namespace"], props["MetricName"], props["Dimensions"]) == ("SnapshotScheduler", metric, DIMENSIONS)
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == (statistic, comparison, threshold)
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (3600, 1, 1)
    assert props["TreatMissingData"] == "notBreaching"


def test_heartbeat_alarm_fires_when_no_run_completes_in_twice_the_interval(default_synth: Synthesized) -> None:
    props = alarms(default_synth)["HeartbeatMissing"]
    assert (props["Namespace"], props["MetricName"], props["Dimensions"]) == (
        "SnapshotScheduler",
        "Heartbeat",
        DIMENSIONS,
    )
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == ("Sum", "LessThanThreshold", 1)
    assert (props["Period"], props["EvaluationPeriods"]) == (2 * 3600, 1)
    assert props["TreatMissingData"] == "breaching"


def test_alarm_periods_namespace_and_dimensions_follow_the_context(with_emails: Synthesized) -> None:
    found = alarms(with_emails)
    dims = [{"Name": "deployment", "Value": "prod"}, {"Name": "service", "Value": "snapshot-scheduler"}]
    for name in ("ClustersOutOfPolicy", "SnapshotsFailed", "PolicyErrors", "ManualSnapshotQuota", "HeartbeatMissing"):
        assert (found[name]["Namespace"], found[name]["Dimensions"]) == ("Backups/Prod", dims), name
    assert found["ClustersOutOfPolicy"]["Period"] == 1800
    assert found["HeartbeatMissing"]["Period"] == 3600
    assert found["FunctionErrors"]["Period"] == 1800


@pytest.mark.parametrize(("alarm", "metric"), [("FunctionErrors", "Errors"), ("FunctionThrottles", "Throttles")])
def test_function_alarms_watch_lambdas_own_metrics(default_synth: Synthesized, alarm: str, metric: str) -> None:
    (function_id,) = default_synth.resources("AWS::Lambda::Function")
    props = alarms(default_synth)[alarm]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", metric)
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == ("Sum", "GreaterThanThreshold", 0)


@pytest.mark.parametrize("queue", ["FailedRuns", "UndeliveredSchedules"])
def test_each_dead_letter_queue_alarms_on_a_visible_message(default_synth: Synthesized, queue: str) -> None:
    (queue_id,) = [i for i in default_synth.resources("AWS::SQS::Queue") if queue in i]
    props = alarms(default_synth)[f"{queue}DeadLetters"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == (
        "Maximum",
        "GreaterThanThreshold",
        0,
    )
    assert props["Period"] == 300


def dashboard_body(synthesized: Synthesized) -> str:
    """The dashboard JSON with CloudFormation references flattened to text."""
    parts = synthesized.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else json.dumps(part) for part in parts)


def test_dashboard_shows_what_the_issue_asks_for(default_synth: Synthesized) -> None:
    body = dashboard_body(default_synth)
    titles = [
        "Alarms",
        "Snapshots per run",
        "Recovery points",
        "Manual cluster snapshot quota",
        "Run duration (ms)",
        "Function errors and throttles",
        "Dead-letter queue depth",
    ]
    for title in titles:
        assert f'"title":"{title}"' in body, title
    for metric in (
        "SnapshotsCreated",
        "SnapshotsDeleted",
        "SnapshotsDeferred",
        "SnapshotsFailed",
        "ClustersOutOfPolicy",
        "SlotsMissed",
        "ClustersNewlyOutOfPolicy",
        "OldestRecoveryPointAge",
        "ManualSnapshotQuotaUsed",
        "ManualSnapshotQuotaMax",
        "RunDuration",
    ):
        assert f'"SnapshotScheduler","{metric}","deployment","SnapshotScheduler","service","snapshot-scheduler"' in body
    for metric in ('"AWS/Lambda","Errors"', '"AWS/Lambda","Throttles"', '"AWS/Lambda","Duration"'):
        assert metric in body
    assert body.count('"AWS/SQS","ApproximateNumberOfMessagesVisible"') == 2
    for alarm in alarms(default_synth):
        assert alarm in body  # the alarm status widget lists every alarm (by ARN)


def test_dashboard_is_named_after_the_stack_and_its_region(default_synth: Synthesized) -> None:
    # Dashboard names are global to the account: the region keeps two regions' deployments apart.
    assert default_synth.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardName"] == {
        "Fn::Join": ["", ["SnapshotScheduler-", {"Ref": "AWS::Region"}]]
    }
