"""Names the stack shares with the Lambda code: by value, not by import (infra/ imports only the pure modules of
lambda_src/, for their rules: see infra/config.py).

tests/infra checks each against its source of truth in lambda_src/snapshot_scheduler
(config.ENV_VARS, tags.MARKER and tags.HOLD, observability.Metric and its dimensions, adapters.rds.IAM_ACTIONS)
and runs the real handler to compare what it emits with the alarms.
"""

from __future__ import annotations

from typing import Final

HANDLER: Final = "snapshot_scheduler.handlers.backup.lambda_handler"
SERVICE_NAME: Final = "snapshot-scheduler"

# Environment variables the function's configuration loader requires (all of them, no others).
ENV_POLICY_TAG_KEY: Final = "SNAPSHOT_POLICY_TAG_KEY"
ENV_DEPLOYMENT: Final = "SNAPSHOT_DEPLOYMENT"
ENV_NAMED_POLICIES: Final = "SNAPSHOT_NAMED_POLICIES"
ENV_DEFAULT_AT: Final = "SNAPSHOT_DEFAULT_AT"
ENV_DEFAULT_TZ: Final = "SNAPSHOT_DEFAULT_TZ"
ENV_GRACE_MINUTES: Final = "SNAPSHOT_GRACE_MINUTES"
ENV_POLICY_CHANGE_GRACE_HOURS: Final = "SNAPSHOT_POLICY_CHANGE_GRACE_HOURS"
ENV_ENGINES: Final = "SNAPSHOT_ENGINES"
ENV_DRY_RUN: Final = "SNAPSHOT_DRY_RUN"
ENV_API_RATE: Final = "SNAPSHOT_API_RATE"
ENV_API_BURST: Final = "SNAPSHOT_API_BURST"
ENV_BUSY_RETRY_SECONDS: Final = "SNAPSHOT_BUSY_RETRY_SECONDS"
ENV_SCHEDULE_MINUTES: Final = "SNAPSHOT_SCHEDULE_MINUTES"
ENV_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
ENV_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
ENV_DR_TARGETS: Final = "SNAPSHOT_DR_TARGETS"
ENV_DR_POLICIES: Final = "SNAPSHOT_DR_POLICIES"
ENV_DR_TAG_KEY: Final = "SNAPSHOT_DR_TAG_KEY"
ENV_DR_COPY_LIMIT: Final = "SNAPSHOT_DR_COPY_LIMIT"
ENV_DR_STUCK_HOURS: Final = "SNAPSHOT_DR_STUCK_HOURS"
ENV_VAULT: Final = "SNAPSHOT_VAULT"

# Tags: the deployment marker the function writes on every snapshot it creates (its value is the
# deployment), and the operator's hold. IAM conditions are written on these. A hold tag holds whatever its
# value, except one of HOLD_RELEASED_VALUES in any letter case (tags.NOT_HELD).
MARKER_TAG: Final = "snapshot-scheduler:deployment"
HOLD_TAG: Final = "snapshot-hold"
HOLD_RELEASED_VALUES: Final = ("false", "no", "0", "off")
# Every identifier naming.snapshot_id makes (<cluster>-YYYYMMDD-HHMM, the slot in UTC) as an IAM resource
# pattern: IAM lets the function create, tag and delete only snapshots named so. AWS Backup's (awsbackup:...),
# automated ones (rds:...) and hand-made names that do not end in a slot are out of its reach.
SNAPSHOT_ID_PATTERN: Final = "*-20??????-????"
# On disaster-recovery copies in their destination region: a marker key of its own (value: the deployment).
DR_MARKER_TAG: Final = "snapshot-scheduler:dr-deployment"
# On a vault's copies: the vault marker, a key of its own (value: the vault's deployment).
VAULT_MARKER_TAG: Final = "snapshot-scheduler:vault-deployment"
# Every identifier naming.vault_copy_id makes (<cluster>-YYYYMMDD-HHMM-v<8 hex of the source>): the only
# snapshots a vault may create, tag and delete.
VAULT_COPY_ID_PATTERN: Final = "*-20??????-????-v????????"

# RDS actions the function calls (the stack grants exactly these).
RDS_DESCRIBE_ACTIONS: Final = (
    "rds:DescribeDBClusters",
    "rds:DescribeDBClusterSnapshots",
    "rds:DescribeAccountAttributes",
)
RDS_CREATE_SNAPSHOT: Final = "rds:CreateDBClusterSnapshot"
RDS_ADD_TAGS: Final = "rds:AddTagsToResource"
RDS_DELETE_SNAPSHOT: Final = "rds:DeleteDBClusterSnapshot"
# Granted only when DR targets are configured (adapters.rds.DR_IAM_ACTIONS), with KMS on the targets' keys.
RDS_COPY_SNAPSHOT: Final = "rds:CopyDBClusterSnapshot"
KMS_COPY_ACTIONS: Final = ("kms:DescribeKey", "kms:CreateGrant")
# Granted only when a DR target is an account (adapters.rds.SHARE_IAM_ACTIONS, adapters.kms.IAM_ACTIONS): share
# our snapshots, record each share in a tag of SHARED_TAG_PREFIX (and remove it), tell the default key apart.
RDS_MODIFY_SNAPSHOT_ATTRIBUTE: Final = "rds:ModifyDBClusterSnapshotAttribute"
RDS_REMOVE_TAGS: Final = "rds:RemoveTagsFromResource"
KMS_DESCRIBE_KEY: Final = "kms:DescribeKey"
SHARED_TAG_PREFIX: Final = "snapshot-scheduler:shared-"

# Metric dimensions on every metric of a run: exactly {service, deployment}; a vault's per-source metrics
# add `source` ("<account>/<region>").
DIMENSION_SERVICE: Final = "service"
DIMENSION_DEPLOYMENT: Final = "deployment"
DIMENSION_SOURCE: Final = "source"

# Metric names (observability.Metric) the stack alarms on or charts.
SNAPSHOTS_CREATED: Final = "SnapshotsCreated"
SNAPSHOTS_DELETED: Final = "SnapshotsDeleted"
SNAPSHOTS_DEFERRED: Final = "SnapshotsDeferred"
SNAPSHOTS_FAILED: Final = "SnapshotsFailed"
POLICY_ERRORS: Final = "PolicyErrors"
CLUSTERS_MANAGED: Final = "ClustersManaged"
CLUSTERS_OUT_OF_POLICY: Final = "ClustersOutOfPolicy"
CLUSTERS_NEWLY_OUT_OF_POLICY: Final = "ClustersNewlyOutOfPolicy"
SLOTS_MISSED: Final = "SlotsMissed"
OLDEST_RECOVERY_POINT_AGE: Final = "OldestRecoveryPointAge"
QUOTA_USED: Final = "ManualSnapshotQuotaUsed"
QUOTA_MAX: Final = "ManualSnapshotQuotaMax"
QUOTA_UTILIZATION: Final = "ManualSnapshotQuotaUtilization"
RUN_DURATION: Final = "RunDuration"
HEARTBEAT: Final = "Heartbeat"
DELETIONS_PENDING: Final = "DeletionsPending"
MASS_DELETIONS: Final = "MassDeletions"
DR_COPIES_STARTED: Final = "DrCopiesStarted"
DR_COPIES_FAILED: Final = "DrCopiesFailed"
DR_COPIES_STUCK: Final = "DrCopiesStuck"
DR_COPIES_DEFERRED: Final = "DrCopiesDeferred"
DR_TARGETS_OUT_OF_POLICY: Final = "DrTargetsOutOfPolicy"
DR_OLDEST_RECOVERY_POINT_AGE: Final = "DrOldestRecoveryPointAge"
DR_QUOTA_UTILIZATION: Final = "DrQuotaUtilization"
VAULT_COPIES_STARTED: Final = "VaultCopiesStarted"
VAULT_COPIES_DELETED: Final = "VaultCopiesDeleted"
VAULT_COPIES_DEFERRED: Final = "VaultCopiesDeferred"
VAULT_COPIES_FAILED: Final = "VaultCopiesFailed"
VAULT_COPIES_STUCK: Final = "VaultCopiesStuck"
VAULT_SHARES_IGNORED: Final = "VaultSharesIgnored"
VAULT_RECOVERY_POINT_AGE: Final = "VaultRecoveryPointAge"  # seconds, per source
VAULT_SOURCE_SILENCE: Final = "VaultSourceSilence"  # seconds since the source's newest share, per source
VAULT_METRICS: Final = (
    VAULT_COPIES_STARTED,
    VAULT_COPIES_DELETED,
    VAULT_COPIES_DEFERRED,
    VAULT_COPIES_FAILED,
    VAULT_COPIES_STUCK,
    VAULT_SHARES_IGNORED,
    VAULT_RECOVERY_POINT_AGE,
    VAULT_SOURCE_SILENCE,
)
