"""The function role: least privilege that IAM enforces, whatever the code does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from snapshot_scheduler import tags

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
    tagging = [
        s
        for s in function_statements(default_synth)
        if "rds:AddTagsToResource" in actions(s) and s["Effect"] == "Allow"
    ]
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


# The Deny statements on deleting a held snapshot: one per spelling of the hold key (IAM may match the tag
# key in rds:cluster-snapshot-tag/<key> case-sensitively; see infra/backup_function.py).
HOLD_DENIES = {
    "NeverDeleteHeldSnapshots": "snapshot-hold",
    "NeverDeleteHeldSnapshotsTitleCase": "Snapshot-Hold",
    "NeverDeleteHeldSnapshotsUpperCase": "SNAPSHOT-HOLD",
}


@pytest.mark.parametrize(("sid", "key"), HOLD_DENIES.items())
def test_held_snapshots_can_never_be_deleted(default_synth: Synthesized, sid: str, key: str) -> None:
    statement = by_sid(default_synth, sid)
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Deny",
        {"rds:DeleteDBClusterSnapshot"},
        SNAPSHOTS,
    )
    # Both operators in one statement, so ANDed: the key is present and its value is none of the noes.
    assert statement["Condition"] == {
        "Null": {f"rds:cluster-snapshot-tag/{key}": "false"},
        "StringNotEqualsIgnoreCase": {f"rds:cluster-snapshot-tag/{key}": ["false", "no", "0", "off"]},
    }


def test_the_function_can_never_set_or_clear_a_hold(default_synth: Synthesized) -> None:
    statement = by_sid(default_synth, "NeverSetOrClearAHold")
    assert (statement["Effect"], actions(statement), statement["Resource"]) == (
        "Deny",
        {"rds:AddTagsToResource"},
        SNAPSHOTS,
    )
    assert statement["Condition"] == {"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["snapshot-hold"]}}
    # Nor can it remove a tag at all.
    assert not any(a == "rds:RemoveTagsFromResource" for s in function_statements(default_synth) for a in actions(s))


def test_the_denies_are_exactly_the_hold_guards(default_synth: Synthesized, custom: Synthesized) -> None:
    for synthesized in (default_synth, custom):
        denies = {s["Sid"] for s in function_statements(synthesized) if s["Effect"] == "Deny"}
        assert denies == {*HOLD_DENIES, "NeverSetOrClearAHold"}


def _iam_denies_delete(statements: list[dict[str, Any]], snapshot_tags: dict[str, str], *, fold_case: bool) -> bool:
    """Whether a Deny on rds:DeleteDBClusterSnapshot applies to a snapshot with these tags, by IAM's rules for
    the operators the hold statements use; tag keys in condition keys compared exactly, or folded."""

    def lookup(condition_key: str) -> str | None:
        key = condition_key.removeprefix("rds:cluster-snapshot-tag/")
        found = [v for k, v in snapshot_tags.items() if (k.lower() == key.lower() if fold_case else k == key)]
        return found[0] if found else None

    def holds(operator: str, condition_key: str, expected: Any) -> bool:
        value = lookup(condition_key)
        if operator == "Null":
            return (value is None) == (str(expected) == "true")
        if operator == "StringNotEqualsIgnoreCase":
            values: list[str] = [expected] if isinstance(expected, str) else list(expected)
            return value is None or all(value.lower() != v.lower() for v in values)
        raise AssertionError(f"operator {operator} not modelled")

    return any(
        s["Effect"] == "Deny"
        and "rds:DeleteDBClusterSnapshot" in actions(s)
        and all(
            holds(operator, condition_key, expected)
            for operator, keys in s["Condition"].items()
            for condition_key, expected in keys.items()
        )
        for s in statements
    )


@pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])
@pytest.mark.parametrize("key", ["snapshot-hold", "Snapshot-Hold", "SNAPSHOT-HOLD"])
@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "", "keep until audit", "false", "No", "0", "OFF"])
def test_iam_denies_delete_exactly_when_the_engine_holds(
    default_synth: Synthesized, fold_case: bool, key: str, value: str
) -> None:
    snapshot_tags = {"snapshot-scheduler:deployment": "SnapshotScheduler", key: value}
    denied = _iam_denies_delete(function_statements(default_synth), snapshot_tags, fold_case=fold_case)
    assert denied == tags.held(snapshot_tags)


@pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])
def test_iam_allows_delete_of_a_snapshot_without_a_hold(default_synth: Synthesized, fold_case: bool) -> None:
    snapshot_tags = {"snapshot-scheduler:deployment": "SnapshotScheduler", "snapshot-scheduler:slot": "x"}
    assert not _iam_denies_delete(function_statements(default_synth), snapshot_tags, fold_case=fold_case)


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
