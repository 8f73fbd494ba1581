"""The function role: least privilege that IAM enforces, whatever the code does."""

from __future__ import annotations

import fnmatch
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from snapshot_scheduler import naming, tags

from infra import contract
from tests.infra import iam_model
from tests.infra.synthesis import Synthesized, synth


def rds_arn(resource: str, name: str = "*") -> dict[str, Any]:
    account_region = [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":rds:", *account_region, f":{resource}:{name}"]]}


CLUSTERS = rds_arn("cluster")
SNAPSHOTS = rds_arn("cluster-snapshot")
# Only identifiers of the shape naming.snapshot_id makes: <cluster>-YYYYMMDD-HHMM.
SLOT_SNAPSHOTS = rds_arn("cluster-snapshot", "*-20??????-????")


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
        SLOT_SNAPSHOTS,
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
        SLOT_SNAPSHOTS,
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


def test_the_denies_are_exactly_the_hold_and_marker_guards(default_synth: Synthesized, custom: Synthesized) -> None:
    for synthesized in (default_synth, custom):
        denies = {s["Sid"] for s in function_statements(synthesized) if s["Effect"] == "Deny"}
        assert denies == {*HOLD_DENIES, "NeverSetOrClearAHold", "NeverRemarkAnotherDeploymentsSnapshot"}


# ---- the IAM model: what the role can do, whatever the code does --------------------------------------------

RDS = "arn:aws:rds:us-east-1:123456789012"  # the pseudo parameters as iam_model renders them
MARKER = tags.MARKER
OURS = naming.snapshot_id("orders", datetime(2026, 11, 10, 3, 0, tzinfo=UTC))
FOLD = pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])


def snapshot_arn(identifier: str) -> str:
    return f"{RDS}:cluster-snapshot:{identifier}"


def delete(identifier: str, snapshot_tags: dict[str, str]) -> iam_model.Request:
    return iam_model.Request("rds:DeleteDBClusterSnapshot", snapshot_arn(identifier), resource_tags=snapshot_tags)


def add_tags(identifier: str, snapshot_tags: dict[str, str], new: dict[str, str]) -> iam_model.Request:
    return iam_model.Request(
        "rds:AddTagsToResource", snapshot_arn(identifier), resource_tags=snapshot_tags, request_tags=new
    )


# How RDS authorises CreateDBClusterSnapshot with Tags. Documented: it also checks rds:AddTagsToResource (RDS
# user guide, "Grant permission to tag Amazon RDS resources during creation"). Not documented: which tags
# the new snapshot shows to that check. Every reading is modelled; the stack must work and be safe under each.
RDS_READINGS = {
    "no-tagging-check": None,
    "tagging-check-sees-no-tags": False,
    "tagging-check-sees-the-request-tags": True,
}


def create_allowed(
    statements: list[dict[str, Any]], cluster_tags: dict[str, str], identifier: str, request_tags: dict[str, str],
    *, reading: bool | None, fold_case: bool,
) -> bool:  # fmt: skip
    requests = [
        iam_model.Request("rds:CreateDBClusterSnapshot", f"{RDS}:cluster:orders", cluster_tags, request_tags),
        iam_model.Request("rds:CreateDBClusterSnapshot", snapshot_arn(identifier), {}, request_tags),
    ]
    if reading is not None:
        requests.append(add_tags(identifier, request_tags if reading else {}, request_tags))
    return all(iam_model.allowed(statements, r, fold_case=fold_case) for r in requests)


@FOLD
@pytest.mark.parametrize("reading", RDS_READINGS.values(), ids=RDS_READINGS.keys())
def test_a_run_can_create_its_snapshot_with_its_tags_under_every_reading_of_rds(
    default_synth: Synthesized, reading: bool | None, fold_case: bool
) -> None:
    statements = function_statements(default_synth)
    ours = {MARKER: "SnapshotScheduler", tags.POLICY: "daily", tags.SLOT: "2026-11-10T03:00Z", tags.CLUSTER: "orders"}
    policy_tag = {"snapshot-policy": "daily", "team": "payments"}
    assert create_allowed(statements, policy_tag, OURS, ours, reading=reading, fold_case=fold_case)
    # ... but never of a cluster that did not opt in, without our marker, or under a name not of a slot.
    assert not create_allowed(statements, {"team": "payments"}, OURS, ours, reading=reading, fold_case=fold_case)
    without = {k: v for k, v in ours.items() if k != MARKER}
    assert not create_allowed(statements, policy_tag, OURS, without, reading=reading, fold_case=fold_case)
    assert not create_allowed(statements, policy_tag, "orders-final", ours, reading=reading, fold_case=fold_case)


# Request tags a role could write, in any combination of two: our marker, another's, a hold, anything else.
TAG_MOVES = [
    dict(pair)
    for size in (1, 2)
    for pair in itertools.combinations(
        [(MARKER, "SnapshotScheduler"), (MARKER, "other"), (tags.HOLD, "false"), ("owner", "dba")], size
    )
    if len({key for key, _ in pair}) == size
]


def deletable_after_some_allowed_tagging(
    statements: list[dict[str, Any]],
    identifier: str,
    start: dict[str, str],
    *,
    fold_case: bool,
    moves: list[dict[str, str]] = TAG_MOVES,
) -> bool:
    """Whether any sequence of tag writes (from `moves`) the role is allowed ends in a delete it is allowed."""
    seen: list[dict[str, str]] = []
    frontier = [start]
    while frontier:
        state = frontier.pop()
        if state in seen:
            continue
        seen.append(state)
        if iam_model.allowed(statements, delete(identifier, state), fold_case=fold_case):
            return True
        for new in moves:
            if iam_model.allowed(statements, add_tags(identifier, state, new), fold_case=fold_case):
                frontier.append({**state, **new})
    return False


# Snapshots this deployment did not create, and whether IAM alone keeps the role from ever deleting them.
FOREIGN = {
    "another deployment's": (OURS, {MARKER: "other", tags.SLOT: "2026-11-10T03:00Z"}, True),
    "AWS Backup's": ("awsbackup:job-8f1c2e4a-1b2c-4d5e-9f00-123456789abc", {}, True),
    "a person's, named freely": ("orders-before-migration", {"owner": "dba"}, True),
    "a person's, held": (OURS, {"snapshot-hold": "true"}, True),
    "a person's, released hold, named freely": ("orders-2026-11-10", {"snapshot-hold": "false"}, True),
    # The one case IAM cannot tell from a snapshot being created: no marker, no hold, and a name of the shape
    # <anything>-YYYYMMDD-HHMM. The engine never tags an existing snapshot; README says so.
    "a person's, unmarked, named like a slot": (OURS, {"owner": "dba"}, False),
    # IAM's wildcards cannot require digits: the pattern *-20??????-???? also fits names that are no slot's.
    "a person's, unmarked, named to fit the slot pattern": ("orders-20261110-full", {"owner": "dba"}, False),
}


@FOLD
@pytest.mark.parametrize(("identifier", "start", "protected"), FOREIGN.values(), ids=FOREIGN.keys())
def test_no_sequence_of_allowed_calls_deletes_a_snapshot_the_deployment_did_not_create(
    default_synth: Synthesized, identifier: str, start: dict[str, str], protected: bool, fold_case: bool
) -> None:
    statements = function_statements(default_synth)
    assert deletable_after_some_allowed_tagging(statements, identifier, start, fold_case=fold_case) != protected


@FOLD
def test_another_deployments_snapshot_can_never_be_re_marked_as_ours(
    default_synth: Synthesized, fold_case: bool
) -> None:
    statements = function_statements(default_synth)
    theirs = {MARKER: "other"}
    remark = add_tags(OURS, theirs, {MARKER: "SnapshotScheduler"})
    assert not iam_model.allowed(statements, remark, fold_case=fold_case)
    # Our own snapshot may carry our marker again (a create's retried tagging), nothing else changes.
    assert iam_model.allowed(
        statements, add_tags(OURS, {MARKER: "SnapshotScheduler"}, {MARKER: "SnapshotScheduler"}), fold_case=fold_case
    )


def test_the_iam_name_pattern_covers_every_identifier_the_engine_makes_and_no_aws_made_one() -> None:
    pattern = contract.SNAPSHOT_ID_PATTERN
    slots = [datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, tzinfo=UTC)]
    for cluster in ("a", "orders", "x" * 63, "payments-eu-west-1-" + "y" * 60):
        for slot in slots:
            assert fnmatch.fnmatchcase(naming.snapshot_id(cluster, slot), pattern)
    for other in ("rds:orders-2026-11-10-03-00", "awsbackup:job-8f1c2e4a-1b2c-4d5e-9f00-123456789abc", "orders-final"):
        assert not fnmatch.fnmatchcase(other, pattern)


@pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])
@pytest.mark.parametrize("key", ["snapshot-hold", "Snapshot-Hold", "SNAPSHOT-HOLD"])
@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "", "keep until audit", "false", "No", "0", "OFF"])
def test_iam_denies_delete_exactly_when_the_engine_holds(
    default_synth: Synthesized, fold_case: bool, key: str, value: str
) -> None:
    snapshot_tags = {"snapshot-scheduler:deployment": "SnapshotScheduler", key: value}
    deletable = iam_model.allowed(function_statements(default_synth), delete(OURS, snapshot_tags), fold_case=fold_case)
    assert deletable == (not tags.held(snapshot_tags))


@pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])
def test_iam_allows_delete_of_a_snapshot_without_a_hold(default_synth: Synthesized, fold_case: bool) -> None:
    snapshot_tags = {"snapshot-scheduler:deployment": "SnapshotScheduler", "snapshot-scheduler:slot": "x"}
    assert iam_model.allowed(function_statements(default_synth), delete(OURS, snapshot_tags), fold_case=fold_case)


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
