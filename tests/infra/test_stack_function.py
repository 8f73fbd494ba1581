"""The backup function, its asynchronous invoke configuration, dead-letter queues and schedule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.infra.synthesis import ROOT, Synthesized, synth

CUSTOM = {
    "stackName": "Backups",
    "schedule": "cron(0/15 * * * ? *)",
    "scheduleTimezone": "Europe/Berlin",
    "dryRun": True,
    "memoryMb": 1024,
    "timeoutSeconds": 900,
    "logRetentionDays": 30,
    "deployment": "prod-eu",
    # Runs 15 minutes apart may each take 15 minutes: only a reservation of 1 keeps them from overlapping.
    "reservedConcurrency": 1,
}


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(CUSTOM, outdir=tmp_path_factory.mktemp("custom"))


def ref(resource_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource_id, "Arn"]}


def logical_id(synthesized: Synthesized, cfn_type: str, path_part: str) -> str:
    """The logical id of the one resource of a type whose id contains path_part."""
    (found,) = [i for i in synthesized.resources(cfn_type) if path_part in i]
    return found


def test_function_runtime_architecture_handler_and_sizing(default_synth: Synthesized) -> None:
    default_synth.template().has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "snapshot_scheduler.handlers.backup.lambda_handler",
            "MemorySize": 512,
            "Timeout": 840,
            "TracingConfig": {"Mode": "Active"},
        },
    )


def test_by_default_no_concurrency_is_reserved_so_an_account_with_a_low_limit_can_deploy(
    default_synth: Synthesized,
) -> None:
    # Reserving even 1 needs an account limit of 101: new accounts often have 10 or 50, and the stack rolls back.
    assert "ReservedConcurrentExecutions" not in default_synth.only("AWS::Lambda::Function")["Properties"]
    assert default_synth.template_json()["Outputs"]["ReservedConcurrency"]["Value"] == "none"


def test_function_sizing_and_reservation_follow_the_context(custom: Synthesized) -> None:
    props = custom.only("AWS::Lambda::Function")["Properties"]
    assert (props["MemorySize"], props["Timeout"], props["ReservedConcurrentExecutions"]) == (1024, 900, 1)
    assert custom.template_json()["Outputs"]["ReservedConcurrency"]["Value"] == "1"


def test_the_function_needs_no_layer_so_no_arn_that_differs_by_partition_or_region(default_synth: Synthesized) -> None:
    # Powertools is bundled into the asset (tests/infra/test_stack_bundling.py ties it to the tested pin).
    assert "Layers" not in default_synth.only("AWS::Lambda::Function")["Properties"]


def test_every_arn_is_in_the_partition_of_its_region_so_china_and_govcloud_deploy(tmp_path: Path) -> None:
    partitions = {"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov", "ca-west-1": "aws"}
    fleet = synth({"environments": [{"account": "111111111111", "region": r} for r in partitions]}, outdir=tmp_path)
    for stack in fleet.stacks:
        arns = re.findall(r"arn:([a-z-]*):", json.dumps(fleet.template_json(stack)))
        assert arns and set(arns) == {partitions[stack.region]}, stack.stack_name


def test_code_asset_is_lambda_src(default_synth: Synthesized) -> None:
    manifest = json.loads((default_synth.outdir / f"{default_synth.stack.artifact_id}.assets.json").read_text())
    (asset_hash,) = [h for h, asset in manifest["files"].items() if asset["displayName"] == "Backup/Function/Code"]
    assert manifest["files"][asset_hash]["source"] == {"path": str(ROOT / "lambda_src"), "packaging": "zip"}
    code = default_synth.only("AWS::Lambda::Function")["Properties"]["Code"]
    assert code["S3Key"] == f"{asset_hash}.zip"


def test_log_group_has_the_configured_retention_and_is_the_functions(
    default_synth: Synthesized, custom: Synthesized
) -> None:
    log_group_id = logical_id(default_synth, "AWS::Logs::LogGroup", "Logs")
    default_synth.template().has_resource(
        "AWS::Logs::LogGroup", {"Properties": {"RetentionInDays": 90}, "DeletionPolicy": "Retain"}
    )
    default_synth.template().has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"LogGroup": {"Ref": log_group_id}}}
    )
    custom.template().has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_the_function_may_only_send_to_its_failure_queue_not_read_it(default_synth: Synthesized) -> None:
    queue_id = logical_id(default_synth, "AWS::SQS::Queue", "FailedRuns")
    role_id = logical_id(default_synth, "AWS::IAM::Role", "BackupRole")
    (policy,) = [
        p
        for p in default_synth.resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    sqs = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "sqs:" in json.dumps(s["Action"])]
    assert sqs == [{"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": ref(queue_id)}]


def test_failed_runs_are_retried_twice_then_sent_to_an_encrypted_ssl_only_queue(default_synth: Synthesized) -> None:
    queue_id = logical_id(default_synth, "AWS::SQS::Queue", "FailedRuns")
    function_id = logical_id(default_synth, "AWS::Lambda::Function", "Function")
    default_synth.template().has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": function_id},
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 3600,
            "DestinationConfig": {"OnFailure": {"Destination": ref(queue_id)}},
        },
    )


@pytest.mark.parametrize("queue", ["FailedRuns", "UndeliveredSchedules"])
def test_dead_letter_queues_are_encrypted_ssl_only_and_keep_messages_two_weeks(
    default_synth: Synthesized, queue: str
) -> None:
    queue_id = logical_id(default_synth, "AWS::SQS::Queue", queue)
    resources = default_synth.template_json()["Resources"]
    assert resources[queue_id]["Properties"] == {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 86400}
    (policy,) = [
        r
        for r in default_synth.resources("AWS::SQS::QueuePolicy").values()
        if r["Properties"]["Queues"] == [{"Ref": queue_id}]
    ]
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": ref(queue_id),
    } in policy["Properties"]["PolicyDocument"]["Statement"]


def test_schedule_runs_hourly_in_utc_without_a_flexible_window(default_synth: Synthesized) -> None:
    default_synth.template().has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "rate(1 hour)",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
        },
    )


def test_schedule_follows_the_context_expression_and_time_zone(custom: Synthesized) -> None:
    props = custom.only("AWS::Scheduler::Schedule")["Properties"]
    assert props["ScheduleExpression"] == "cron(0/15 * * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert props["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 15 * 60


def test_schedule_targets_the_function_with_retries_its_own_dlq_and_the_scheduled_time(
    default_synth: Synthesized,
) -> None:
    target = default_synth.only("AWS::Scheduler::Schedule")["Properties"]["Target"]
    assert target["Arn"] == ref(logical_id(default_synth, "AWS::Lambda::Function", "Function"))
    assert target["DeadLetterConfig"] == {
        "Arn": ref(logical_id(default_synth, "AWS::SQS::Queue", "UndeliveredSchedules"))
    }
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert target["RoleArn"] == ref(logical_id(default_synth, "AWS::IAM::Role", "SchedulerRole"))
    assert json.loads(target["Input"]) == {"time": "<aws.scheduler.scheduled-time>"}


def test_dry_run_switch_reaches_both_the_event_and_the_environment(custom: Synthesized) -> None:
    target = custom.only("AWS::Scheduler::Schedule")["Properties"]["Target"]
    assert json.loads(target["Input"]) == {"time": "<aws.scheduler.scheduled-time>", "dry_run": True}
    env = custom.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["SNAPSHOT_DRY_RUN"] == "true"


def test_scheduler_role_is_assumable_by_scheduler_of_this_account_only(default_synth: Synthesized) -> None:
    role = default_synth.template_json()["Resources"][logical_id(default_synth, "AWS::IAM::Role", "SchedulerRole")]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "schedule-group/default" in json.dumps(statement["Condition"]["StringEquals"]["aws:SourceArn"])


def test_scheduler_role_may_invoke_only_the_function_and_write_only_its_dlq(default_synth: Synthesized) -> None:
    function_id = logical_id(default_synth, "AWS::Lambda::Function", "Function")
    role_id = logical_id(default_synth, "AWS::IAM::Role", "SchedulerRole")
    (policy,) = [
        p
        for p in default_synth.resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            # The function alone: the schedule never calls a version or alias.
            "Resource": ref(function_id),
        },
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": ref(logical_id(default_synth, "AWS::SQS::Queue", "UndeliveredSchedules")),
        },
    ]


def test_there_is_one_function_one_schedule_and_no_legacy_rule(default_synth: Synthesized) -> None:
    template = default_synth.template()
    template.resource_count_is("AWS::Lambda::Function", 1)
    template.resource_count_is("AWS::Scheduler::Schedule", 1)
    template.resource_count_is("AWS::Events::Rule", 0)
    template.resource_count_is("AWS::SQS::Queue", 2)
    template.has_resource_properties("AWS::Lambda::Function", {"Environment": {"Variables": Match.any_value()}})
