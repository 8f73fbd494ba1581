"""Logger and Metrics, created once; the metric names are a contract with infra/monitoring.py."""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from snapshot_scheduler.model import DrReport, Reason, RunReport, VaultReport

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
    FOREIGN_MARKED = "ForeignMarkedSnapshots"
    CLUSTERS_UNLISTED = "ClustersUnlisted"
    QUOTA_EXCEEDED = "QuotaExceeded"
    BUSY_RETRIES = "BusyClusterRetries"
    THROTTLES = "Throttles"
    QUOTA_USED = "ManualSnapshotQuotaUsed"
    QUOTA_MAX = "ManualSnapshotQuotaMax"
    QUOTA_UTILIZATION = "ManualSnapshotQuotaUtilization"
    CLUSTERS_MANAGED = "ClustersManaged"
    CLUSTERS_OUT_OF_POLICY = "ClustersOutOfPolicy"
    CLUSTERS_NEWLY_OUT_OF_POLICY = "ClustersNewlyOutOfPolicy"
    SLOTS_MISSED = "SlotsMissed"
    OLDEST_RECOVERY_POINT_AGE = "OldestRecoveryPointAge"
    RUN_DURATION = "RunDuration"
    HEARTBEAT = "Heartbeat"
    DELETIONS_PENDING = "DeletionsPending"
    MASS_DELETIONS = "MassDeletions"
    # Emitted when DR targets are configured.
    DR_COPIES_STARTED = "DrCopiesStarted"
    DR_COPIES_DELETED = "DrCopiesDeleted"
    DR_COPIES_DEFERRED = "DrCopiesDeferred"
    DR_COPIES_FAILED = "DrCopiesFailed"
    DR_COPIES_STUCK = "DrCopiesStuck"
    DR_TARGETS_OUT_OF_POLICY = "DrTargetsOutOfPolicy"
    DR_OLDEST_RECOVERY_POINT_AGE = "DrOldestRecoveryPointAge"
    DR_QUOTA_UTILIZATION = "DrQuotaUtilization"  # the fullest DR region's, like QUOTA_UTILIZATION: no region dimension
    DR_SNAPSHOTS_SHARED = "DrSnapshotsShared"  # with DR targets that are accounts (vaults)
    DR_SNAPSHOTS_UNSHARED = "DrSnapshotsUnshared"
    # Emitted by a vault run (SNAPSHOT_VAULT), with Heartbeat, RunDuration, DeletionsPending and the quota metrics.
    VAULT_COPIES_STARTED = "VaultCopiesStarted"
    VAULT_COPIES_DELETED = "VaultCopiesDeleted"
    VAULT_COPIES_DEFERRED = "VaultCopiesDeferred"
    VAULT_COPIES_FAILED = "VaultCopiesFailed"
    VAULT_COPIES_STUCK = "VaultCopiesStuck"
    VAULT_SHARES_IGNORED = "VaultSharesIgnored"
    # Per configured source, dimension SOURCE_DIMENSION besides the two above (seconds).
    VAULT_RECOVERY_POINT_AGE = "VaultRecoveryPointAge"
    VAULT_SOURCE_SILENCE = "VaultSourceSilence"


DR_METRICS = frozenset(metric for metric in Metric if metric.value.startswith("Dr"))
VAULT_METRICS = frozenset(metric for metric in Metric if metric.value.startswith("Vault"))
SOURCE_DIMENSION = "source"  # "<account>/<region>" of a vault's source


def publish(report: RunReport, deployment: str) -> None:
    """One EMF set per run. Counts are emitted even when zero, so alarms and graphs see every run."""
    if metrics.default_dimensions.get(DEPLOYMENT_DIMENSION) != deployment:  # once per container
        # A process that runs two deployments (the demo's source and vault) switches it without Powertools'
        # overwrite warning: the run's metrics are all added below, so nothing of this run is cleared.
        metrics.clear_default_dimensions()
        metrics.clear_metrics()
        metrics.set_default_dimensions(**{DEPLOYMENT_DIMENSION: deployment})
    if report.vault is not None:
        _publish_vault(report, report.vault)
        return
    count = MetricUnit.Count
    counts = {
        Metric.SNAPSHOTS_CREATED: len(report.created),
        Metric.SNAPSHOTS_DELETED: len(report.deleted),
        Metric.SNAPSHOTS_DEFERRED: len(report.deferred),
        Metric.DEFERRED_BUSY: report.deferred_count(Reason.BUSY),
        Metric.DEFERRED_QUOTA: report.deferred_count(Reason.QUOTA),
        Metric.DEFERRED_IN_PROGRESS: report.deferred_count(Reason.IN_PROGRESS),
        Metric.DEFERRED_TIME: report.deferred_count(Reason.TIME),
        Metric.CLUSTERS_SKIPPED: len(report.skipped),
        Metric.SNAPSHOTS_FAILED: len(report.failed),
        Metric.POLICY_ERRORS: sum(1 for s in report.skipped if s["code"] == Reason.POLICY_ERROR.value)
        + (len(report.dr.errors) if report.dr is not None else 0),
        Metric.FOREIGN_MARKED: len(report.foreign_marked),
        Metric.CLUSTERS_UNLISTED: len(report.unlisted),
        Metric.QUOTA_EXCEEDED: report.quota_exceeded,
        Metric.BUSY_RETRIES: report.busy_retries,
        Metric.THROTTLES: report.throttles,
        Metric.CLUSTERS_MANAGED: report.clusters_managed,
        Metric.CLUSTERS_OUT_OF_POLICY: len(report.out_of_policy),
        Metric.CLUSTERS_NEWLY_OUT_OF_POLICY: len(report.newly_out_of_policy),
        Metric.SLOTS_MISSED: len(report.missed),
        Metric.HEARTBEAT: 1,
        # A copy's history is as much at stake as a snapshot's: one alarm each, whichever it is.
        Metric.DELETIONS_PENDING: len(report.pending) + (len(report.dr.pending) if report.dr is not None else 0),
        Metric.MASS_DELETIONS: len(report.mass_deletions) + (len(report.dr.mass_deletions) if report.dr else 0),
    }
    for name, value in counts.items():
        metrics.add_metric(name=name.value, unit=count, value=value)
    _publish_quota(report)
    if report.oldest_recovery_point_age is not None:
        metrics.add_metric(
            name=Metric.OLDEST_RECOVERY_POINT_AGE.value,
            unit=MetricUnit.Seconds,
            value=report.oldest_recovery_point_age,
        )
    if report.dr is not None:
        _publish_dr(report.dr)
    metrics.add_metric(name=Metric.RUN_DURATION.value, unit=MetricUnit.Milliseconds, value=report.duration_ms)


def _publish_dr(dr: DrReport) -> None:
    counts = {
        Metric.DR_COPIES_STARTED: len(dr.started),
        Metric.DR_COPIES_DELETED: len(dr.deleted),
        Metric.DR_COPIES_DEFERRED: len(dr.deferred),
        Metric.DR_COPIES_FAILED: len(dr.failed),
        Metric.DR_COPIES_STUCK: len(dr.stuck),
        Metric.DR_TARGETS_OUT_OF_POLICY: len(dr.out_of_policy),
        Metric.DR_SNAPSHOTS_SHARED: len(dr.shared),
        Metric.DR_SNAPSHOTS_UNSHARED: len(dr.unshared),
    }
    for name, value in counts.items():
        metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)
    if dr.oldest_copy_age is not None:
        metrics.add_metric(
            name=Metric.DR_OLDEST_RECOVERY_POINT_AGE.value, unit=MetricUnit.Seconds, value=dr.oldest_copy_age
        )
    worst = dr.worst_quota_utilization
    if worst is not None:
        metrics.add_metric(name=Metric.DR_QUOTA_UTILIZATION.value, unit=MetricUnit.Percent, value=worst)


def _publish_quota(report: RunReport) -> None:
    if report.quota is not None:
        metrics.add_metric(name=Metric.QUOTA_USED.value, unit=MetricUnit.Count, value=report.quota.used)
        metrics.add_metric(name=Metric.QUOTA_MAX.value, unit=MetricUnit.Count, value=report.quota.max)
        metrics.add_metric(name=Metric.QUOTA_UTILIZATION.value, unit=MetricUnit.Percent, value=report.quota.utilization)


def _publish_vault(report: RunReport, vault: VaultReport) -> None:
    """A vault run: its counts, the heartbeat, the quota and the duration in the run's blob; each source's
    recovery point age and silence in a blob of its own, with the source as a third dimension."""
    counts = {
        Metric.VAULT_COPIES_STARTED: len(vault.started),
        Metric.VAULT_COPIES_DELETED: len(vault.deleted),
        Metric.VAULT_COPIES_DEFERRED: len(vault.deferred),
        Metric.VAULT_COPIES_FAILED: len(vault.failed),
        Metric.VAULT_COPIES_STUCK: len(vault.stuck),
        Metric.VAULT_SHARES_IGNORED: len(vault.ignored),
        Metric.MASS_DELETIONS: len(vault.mass_deletions),
        Metric.HEARTBEAT: 1,
        Metric.DELETIONS_PENDING: len(report.pending),  # an edit of the vault's policy, waiting for the grace
    }
    for name, value in counts.items():
        metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)
    _publish_quota(report)
    metrics.add_metric(name=Metric.RUN_DURATION.value, unit=MetricUnit.Milliseconds, value=report.duration_ms)
    for source in vault.sources:
        for name, key in (
            (Metric.VAULT_RECOVERY_POINT_AGE, "recovery_point_age_seconds"),
            (Metric.VAULT_SOURCE_SILENCE, "silence_seconds"),
        ):
            value = source[key]
            if value is None:
                continue
            with single_metric(
                name=name.value,
                unit=MetricUnit.Seconds,
                value=float(value),
                namespace=metrics.namespace,
                default_dimensions={**metrics.default_dimensions, SERVICE_DIMENSION: str(metrics.service)},
            ) as metric:
                metric.add_dimension(name=SOURCE_DIMENSION, value=str(source["source"]))
