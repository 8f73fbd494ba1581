"""The function role: least privilege that IAM enforces, whatever the code does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synthesis import Synthesized, synth


def rds_arn(resource: str) -> dict[str, Any]:
    account_region = [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":rds:", *account_region, f":{resource}:*"]]}


CLUSTERS = rds_arn("cluster")
SNAPSHOTS = rds_arn("cluster-snapshot")


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"policyTagKey": "backup-policy", "deployment": "prod-eu"}, outdir=tmp_path_factory.mktemp("iam"))


def function_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    (role_id,) = [i for i in synthesized.resources("AWS::IAM::Role") if i.startswith("BackupRole")]
    (policy,) = [
        p for p in synthesized.resources("AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def by_sid(synthesized: Synthesized, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in function_statements(synthesized) if s.get("Sid") == sid]
    return statement


def actions(statement: dict[str, Any]) -> set[str]:
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def test_describes_are_the_only_grants_on_every_rds_resource(default_synth: Synthesized) -> None:
    statement = by_sid(default_synth, "DescribeClustersSnapshotsAndQuota")
    assert actions(statement) == {
        "rds:DescribeDBClusters",
        "rds:DescribeDBClusterSnapshots",
        "rds:DescribeAccountAttributes",
    }
    assert statement["Resource"] == "*"
    assert "Condition" not in statement
    rds_on_star = [
        s
        for s in function_statements(default_synth)
        if s["Resource"] == "*" and any(a.startswith("rds:") for a in actions(s))
    ]
    assert rds_on_star == [statement]


def test_snapshots_may_be_created_only_of_clusters_that_carry_the_policy_tag(
    default_synth: Synthesized, custom: Synthesized
) -> None:
    statement = by_sid(default_synth, "SnapshotOptedInClustersOnly")
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Allow",
        {"rds:CreateDBClusterSnapshot"},
        CLUSTERS,
    )
    assert statement["Condition"] == {"Null": {"rds:cluster-tag/snapshot-policy": "false"}}
    assert by_sid(custom, "SnapshotOptedInClustersOnly")["Condition"] == {
        "Null": {"rds:cluster-tag/backup-policy": "false"}
    }


def test_snapshots_may_be_created_and_tagged_only_with_this_deployments_marker(
    default_synth: Synthesized, custom: Synthesized
) -> None:
    statement = by_sid(default_synth, "CreateSnapshotsCarryingOurMarker")
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Allow",
        {"rds:CreateDBClusterSnapshot", "rds:AddTagsToResource"},
        SNAPSHOTS,
    )
    # The deployment marker defaults to the stack name.
    assert statement["Condition"] == {
        "StringEquals": {"aws:RequestTag/snapshot-scheduler:deployment": "SnapshotScheduler"}
    }
    assert by_sid(custom, "CreateSnapshotsCarryingOurMarker")["Condition"] == {
        "StringEquals": {"aws:RequestTag/snapshot-scheduler:deployment": "prod-eu"}
    }


def test_tags_may_be_added_only_through_that_create_path(default_synth: Synthesized) -> None:
    tagging = [s for s in function_statements(default_synth) if "rds:AddTagsToResource" in actions(s)]
    assert tagging == [by_sid(default_synth, "CreateSnapshotsCarryingOurMarker")]


def test_only_snapshots_carrying_this_deployments_marker_may_be_deleted(
    default_synth: Synthesized, custom: Synthesized
) -> None:
    statement = by_sid(default_synth, "DeleteOnlyOurSnapshots")
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Allow",
        {"rds:DeleteDBClusterSnapshot"},
        SNAPSHOTS,
    )
    assert statement["Condition"] == {
        "StringEquals": {"rds:cluster-snapshot-tag/snapshot-scheduler:deployment": "SnapshotScheduler"}
    }
    assert by_sid(custom, "DeleteOnlyOurSnapshots")["Condition"] == {
        "StringEquals": {"rds:cluster-snapshot-tag/snapshot-scheduler:deployment": "prod-eu"}
    }
    allows_delete = [
        s
        for s in function_statements(default_synth)
        if "rds:DeleteDBClusterSnapshot" in actions(s) and s["Effect"] == "Allow"
    ]
    assert allows_delete == [statement]


def test_held_snapshots_can_never_be_deleted(default_synth: Synthesized) -> None:
    statement = by_sid(default_synth, "NeverDeleteHeldSnapshots")
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Deny",
        {"rds:DeleteDBClusterSnapshot"},
        SNAPSHOTS,
    )
    assert statement["Condition"] == {"StringEqualsIgnoreCase": {"rds:cluster-snapshot-tag/snapshot-hold": "true"}}


def test_no_allow_uses_an_action_wildcard(default_synth: Synthesized) -> None:
    for statement in function_statements(default_synth):
        assert not any("*" in action for action in actions(statement)), statement


def test_logs_go_only_to_the_functions_own_log_group(default_synth: Synthesized) -> None:
    (log_group_id,) = default_synth.resources("AWS::Logs::LogGroup")
    (statement,) = [s for s in function_statements(default_synth) if any(a.startswith("logs:") for a in actions(s))]
    assert actions(statement) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert statement["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}


def test_the_role_is_for_lambda_and_has_no_managed_policies(default_synth: Synthesized) -> None:
    (role,) = [r for i, r in default_synth.resources("AWS::IAM::Role").items() if i.startswith("BackupRole")]
    assert "ManagedPolicyArns" not in role["Properties"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}


def test_no_role_in_the_stack_can_be_assumed_by_anything_but_its_service(default_synth: Synthesized) -> None:
    principals = {
        json.dumps(statement["Principal"], sort_keys=True)
        for role in default_synth.resources("AWS::IAM::Role").values()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    }
    assert principals == {
        json.dumps({"Service": "lambda.amazonaws.com"}),
        json.dumps({"Service": "scheduler.amazonaws.com"}),
    }
