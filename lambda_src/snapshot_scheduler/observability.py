"""Logger and Metrics, created once; the metric names are a contract with infra/monitoring.py."""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

# Every run's EMF blob carries exactly these dimensions; the stack's alarms use the same pair.
DEPLOYMENT_DIMENSION = "deployment"
SERVICE_DIMENSION = "service"


class Metric(StrEnum):
    """Metric names emitted once per run (the namespace comes from POWERTOOLS_METRICS_NAMESPACE)."""

    SNAPSHOTS_CREATED = "SnapshotsCreated"
    SNAPSHOTS_DELETED = "SnapshotsDeleted"
    SNAPSHOTS_DEFERRED = "SnapshotsDeferred"
    DEFERRED_BUSY = "DeferredBusy"
    DEFERRED_QUOTA = "DeferredQuota"
    DEFERRED_IN_PROGRESS = "DeferredInProgress"
    DEFERRED_TIME = "DeferredTime"
    CLUSTERS_SKIPPED = "ClustersSkipped"
    SNAPSHOTS_FAILED = "SnapshotsFailed"
    POLICY_ERRORS = "PolicyErrors"
    QUOTA_EXCEEDED = "QuotaExceeded"
    BUSY_RETRIES = "BusyClusterRetries"
    THROTTLES = "Throttles"
    QUOTA_USED = "ManualSnapshotQuotaUsed"
    QUOTA_MAX = "ManualSnapshotQuotaMax"
    QUOTA_UTILIZATION = "ManualSnapshotQuotaUtilization"
    CLUSTERS_MANAGED = "ClustersManaged"
    CLUSTERS_OUT_OF_POLICY = "ClustersOutOfPolicy"
    OLDEST_RECOVERY_POINT_AGE = "OldestRecoveryPointAge"
    RUN_DURATION = "RunDuration"
    HEARTBEAT = "Heartbeat"
