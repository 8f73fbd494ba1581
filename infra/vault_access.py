"""What a vault deployment's role may do, enforced by IAM (the vault context key; README, "A vault in another
account").

- Copy only from the configured sources: snapshots named <cluster>-YYYYMMDD-HHMM in each source account and
  region (the shared snapshot's ARN), and only into this account and region's vault copy identifiers
  (<cluster>-YYYYMMDD-HHMM-v<8 hex>) carrying this vault's marker in the request's tags. Which of the two ARNs
  RDS authorises a copy against is not documented: both are scoped.
- Tag only with the vault marker (a copy's tags are authorised as rds:AddTagsToResource on the new copy); never
  re-mark another vault's copy, never set or clear a hold (the hold denies of backup_function).
- Delete only copies carrying this vault's marker, never a held one.
- kms:DescribeKey, and kms:CreateGrant for AWS resources only, on the vault key and on the sources' keys (the
  source account's key policy must also allow it).
Nothing else: no snapshot of a cluster, no sharing (ModifyDBClusterSnapshotAttribute), no RemoveTagsFromResource.
IAM has no condition key on a snapshot's age (the Service Authorization Reference lists none for RDS snapshots):
minRetentionDays is the engine's promise alone, and an SCP on the vault account is what stops a person.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from snapshot_scheduler.vault import Vault

from infra import contract
from infra.dr_access import grant_copy_key, key_resource, keys_of


def vault_copies_arn(stack: Stack, resource_name: str = contract.VAULT_COPY_ID_PATTERN) -> str:
    """This account and region's vault copies (or, with `resource_name` "*", every cluster snapshot here)."""
    return stack.format_arn(
        service="rds",
        resource="cluster-snapshot",
        resource_name=resource_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def shared_snapshots_arn(stack: Stack, account: str, region: str) -> str:
    """A source's slot snapshots, as they are shared: <cluster>-YYYYMMDD-HHMM in its account and region."""
    return stack.format_arn(
        service="rds",
        account=account,
        region=region,
        resource="cluster-snapshot",
        resource_name=contract.SNAPSHOT_ID_PATTERN,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def grant_vault(role: iam.Role, *, vault: Vault, deployment: str) -> None:
    stack = Stack.of(role)
    copies = vault_copies_arn(stack)
    marker = {"StringEquals": {f"aws:RequestTag/{contract.VAULT_MARKER_TAG}": deployment}}
    role.add_to_policy(
        iam.PolicyStatement(
            sid="VaultCopyOnlyFromConfiguredSources",
            actions=[contract.RDS_COPY_SNAPSHOT],
            resources=[shared_snapshots_arn(stack, account, region) for account, region in vault.source_keys],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="VaultCopiesCarryOurVaultMarker",
            actions=[contract.RDS_COPY_SNAPSHOT, contract.RDS_ADD_TAGS],
            resources=[copies],
            conditions=marker,
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="VaultDeleteOnlyOurCopies",
            actions=[contract.RDS_DELETE_SNAPSHOT],
            resources=[copies],
            conditions={"StringEquals": {f"rds:cluster-snapshot-tag/{contract.VAULT_MARKER_TAG}": deployment}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="NeverRemarkAnotherVaultsCopy",
            effect=iam.Effect.DENY,
            actions=[contract.RDS_ADD_TAGS],
            resources=[vault_copies_arn(stack, "*")],
            conditions={
                "Null": {f"rds:cluster-snapshot-tag/{contract.VAULT_MARKER_TAG}": "false"},
                "StringNotEquals": {f"rds:cluster-snapshot-tag/{contract.VAULT_MARKER_TAG}": deployment},
            },
        )
    )
    if vault.kms_key:
        resource, alias = key_resource(stack, stack.region, vault.kms_key)
        grant_copy_key(role, ("VaultDescribeVaultKey", "VaultGrantVaultKeyToRds"), resource, alias)
    source_keys = sorted({keys_of(stack, region, account) for account, region in vault.source_keys})
    role.add_to_policy(
        iam.PolicyStatement(sid="VaultDescribeSourceKeys", actions=["kms:DescribeKey"], resources=source_keys)
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="VaultGrantSourceKeysToRds",
            actions=["kms:CreateGrant"],
            resources=source_keys,
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
    )
    _acknowledge(role, stack, vault)


def _acknowledge(role: iam.Role, stack: Stack, vault: Vault) -> None:
    def spelled(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition, region = spelled(stack.partition, "Partition"), spelled(stack.region, "Region")
    account = spelled(stack.account, "AccountId")
    findings = [
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:{partition}:rds:{region}:{account}:cluster-snapshot:"
            f"{contract.VAULT_COPY_ID_PATTERN}]",
            reason="Vault copies are named at run time (<cluster>-<slot>-v<source>): IAM allows copying and tagging "
            f"only with this vault's {contract.VAULT_MARKER_TAG} request tag and deleting only copies carrying "
            "it, never a held one.",
        )
    ]
    for source_account, source_region in vault.source_keys:
        findings += [
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:rds:{source_region}:{source_account}:"
                f"cluster-snapshot:{contract.SNAPSHOT_ID_PATTERN}]",
                reason=f"The snapshots source {source_account} shares from {source_region} are named at run "
                "time (<cluster>-<slot>): the vault may only copy them (read), never change or delete them.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:kms:{source_region}:{source_account}:key/*]",
                reason=f"The keys of source {source_account} in {source_region} that encrypt its shared snapshots "
                "are the source's choice: DescribeKey, and CreateGrant for AWS resources (RDS) only; the source's "
                "key policy decides which keys the vault may use.",
            ),
        ]
    if vault.kms_key and key_resource(stack, stack.region, vault.kms_key)[1]:
        findings.append(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:kms:{region}:{account}:key/*]",
                reason="The vault key is given by alias: only keys carrying that alias (kms:ResourceAliases), "
                "DescribeKey and CreateGrant for AWS resources only.",
            )
        )
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(*findings)
