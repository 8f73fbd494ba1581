"""What the function's role may do for disaster-recovery copies, per destination region: enforced by IAM.

- Copy only from snapshots that carry this deployment's snapshot marker (the source region's ARNs), and only
  into copies that carry this deployment's DR marker in the request's tags (the destination's ARNs; which of
  the two ARNs RDS authorises a cross-region copy against is not documented, so both are scoped).
- Delete in a destination region only copies that carry our DR marker; the hold denies of backup_function
  cover the destination regions' ARNs too.
- kms:DescribeKey, and kms:CreateGrant only for grants to AWS resources (RDS), on the configured keys only:
  by ARN, or for an alias, on the region's keys that carry that alias (kms:ResourceAliases).
- A retired target's region keeps only the delete (its copies are still pruned) and the hold denies: no copy,
  no tagging, no KMS there.
Nothing here is granted when no DR target is configured.

For a DR target that is an account (a vault), grant_shares: share (rds:ModifyDBClusterSnapshotAttribute) only
our snapshots (the same name pattern and marker as delete); add and remove on them only the tags that record a
share (snapshot-scheduler:shared-*), never a hold; kms:DescribeKey on this region's keys (is a snapshot's key
the default aws/rds one). IAM has no condition key for the accounts a share adds: the function's code is the
guard that it only ever adds the configured accounts, never `all`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, ArnFormat, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from snapshot_scheduler.dr import DrTarget

from infra import contract


def dr_snapshot_arn(stack: Stack, region: str) -> str:
    return stack.format_arn(
        service="rds",
        region=region,
        resource="cluster-snapshot",
        resource_name="*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def grant_dr_copies(role: iam.Role, *, targets: Mapping[str, DrTarget], deployment: str) -> None:
    if not targets:
        return
    stack = Stack.of(role)
    regions = sorted({target.region for target in targets.values()})
    active = sorted((target for target in targets.values() if not target.retired), key=lambda t: t.name)
    if active:
        copy_regions = sorted({target.region for target in active})
        _grant_copy(role, stack, [dr_snapshot_arn(stack, region) for region in copy_regions], deployment)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DrDeleteOnlyOurCopies",
            actions=[contract.RDS_DELETE_SNAPSHOT],
            resources=[dr_snapshot_arn(stack, region) for region in regions],
            conditions={"StringEquals": {f"rds:cluster-snapshot-tag/{contract.DR_MARKER_TAG}": deployment}},
        )
    )
    by_alias = [target.region for index, target in enumerate(active) if _grant_key(role, stack, index, target)]
    _acknowledge(role, stack, regions, key_regions=by_alias)


def _grant_copy(role: iam.Role, stack: Stack, copies: list[str], deployment: str) -> None:
    # Sources are always snapshots of ours, named <cluster>-YYYYMMDD-HHMM in this region.
    own = stack.format_arn(
        service="rds",
        resource="cluster-snapshot",
        resource_name=contract.SNAPSHOT_ID_PATTERN,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DrCopyOnlyOurSnapshots",
            actions=[contract.RDS_COPY_SNAPSHOT],
            resources=[own],
            conditions={"StringEquals": {f"rds:cluster-snapshot-tag/{contract.MARKER_TAG}": deployment}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DrCopiesCarryOurDrMarker",
            actions=[contract.RDS_COPY_SNAPSHOT, contract.RDS_ADD_TAGS],
            resources=copies,
            conditions={"StringEquals": {f"aws:RequestTag/{contract.DR_MARKER_TAG}": deployment}},
        )
    )


def grant_shares(role: iam.Role, *, targets: Mapping[str, DrTarget], deployment: str) -> None:
    if not any(target.shares for target in targets.values()):
        return
    stack = Stack.of(role)
    own = stack.format_arn(
        service="rds",
        resource="cluster-snapshot",
        resource_name=contract.SNAPSHOT_ID_PATTERN,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    ours = {f"rds:cluster-snapshot-tag/{contract.MARKER_TAG}": deployment}
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ShareOnlyOurSnapshots",
            actions=[contract.RDS_MODIFY_SNAPSHOT_ATTRIBUTE],
            resources=[own],
            conditions={"StringEquals": ours},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="RecordSharesOnOurSnapshots",
            actions=[contract.RDS_ADD_TAGS, contract.RDS_REMOVE_TAGS],
            resources=[own],
            conditions={
                "StringEquals": ours,
                "ForAllValues:StringLike": {"aws:TagKeys": [f"{contract.SHARED_TAG_PREFIX}*"]},
                "Null": {"aws:TagKeys": "false"},
            },
        )
    )
    keys = keys_of(stack, stack.region)
    role.add_to_policy(
        iam.PolicyStatement(sid="DescribeSnapshotKeys", actions=[contract.KMS_DESCRIBE_KEY], resources=[keys])
    )
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{_spelled_kms_keys(stack)}]",
            reason="kms:DescribeKey (read only) on this region's keys: the keys of the snapshots to share are "
            "named at run time, and one under the default aws/rds key cannot be shared.",
        )
    )


def _spelled_kms_keys(stack: Stack) -> str:
    def spelled(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition, region = spelled(stack.partition, "Partition"), spelled(stack.region, "Region")
    return f"arn:{partition}:kms:{region}:{spelled(stack.account, 'AccountId')}:key/*"


def _grant_key(role: iam.Role, stack: Stack, index: int, target: DrTarget) -> bool:
    """The target's key, when it has one; True when given by alias (granted on the region's keys carrying it)."""
    if not target.kms_key:
        return False
    resource, alias = key_resource(stack, target.region, target.kms_key)
    grant_copy_key(role, (f"DrDescribeTargetKey{index}", f"DrGrantTargetKeyToRds{index}"), resource, alias)
    return alias is not None


def grant_copy_key(role: iam.Role, sids: tuple[str, str], resource: str, alias: str | None) -> None:
    """kms:DescribeKey, and kms:CreateGrant for AWS resources only (RDS's grant for the copy), on one key or,
    given an alias, on the keys matching `resource` that carry it."""
    by_alias: dict[str, Any] = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias]}} if alias else {}
    describe_sid, grant_sid = sids
    role.add_to_policy(
        iam.PolicyStatement(
            sid=describe_sid, actions=["kms:DescribeKey"], resources=[resource], conditions=by_alias or None
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid=grant_sid,
            actions=["kms:CreateGrant"],
            resources=[resource],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}, **by_alias},
        )
    )


def key_resource(stack: Stack, region: str, key: str) -> tuple[str, str | None]:
    """(IAM resource, alias to match or None) for a kmsKey as drTargets and vault accept it."""
    if key.startswith("arn:") and ":key/" in key:
        return key, None
    if key.startswith("arn:"):  # an alias ARN: KMS authorises against the key it names
        return keys_of(stack, region), key.split(":", 5)[5]
    if key.startswith("alias/"):
        return keys_of(stack, region), key
    return (
        stack.format_arn(
            service="kms", region=region, resource="key", resource_name=key, arn_format=ArnFormat.SLASH_RESOURCE_NAME
        ),
        None,
    )


def keys_of(stack: Stack, region: str, account: str | None = None) -> str:
    """Every KMS key of a region (of the stack's account, or of `account`)."""
    return stack.format_arn(
        service="kms",
        region=region,
        account=account,
        resource="key",
        resource_name="*",
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def _acknowledge(role: iam.Role, stack: Stack, regions: list[str], *, key_regions: list[str]) -> None:
    """cdk-nag's wildcard findings, each where it arises: copies in every target region, keys (by alias) only
    in the regions of active targets whose key is an alias."""

    def spelled(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition, account = spelled(stack.partition, "Partition"), spelled(stack.account, "AccountId")
    findings = []
    for region in regions:
        findings.append(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:rds:{region}:{account}:cluster-snapshot:*]",
                reason=f"DR copies in {region} are named at run time; IAM allows copying and tagging (not into a "
                f"retired target's region) only with this deployment's {contract.DR_MARKER_TAG} request tag and "
                "deleting only copies carrying it, never a held one.",
            )
        )
    for region in key_regions:
        findings.append(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:kms:{region}:{account}:key/*]",
                reason=f"A DR target key in {region} given by alias: only keys carrying that alias "
                "(kms:ResourceAliases), DescribeKey and CreateGrant for AWS resources only.",
            )
        )
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(*findings)
