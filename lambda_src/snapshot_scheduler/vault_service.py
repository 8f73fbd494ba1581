"""A vault run (SNAPSHOT_VAULT set): discover what is shared with the vault, its own copies and its quota;
decide (vault.plan_vault, pure); act (delete what the vault's retention removes, then start the copies, most
overdue first, under the run's time budget); report. The handler dispatches here instead of service.run: a
vault has no clusters of its own to snapshot and no DR targets.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

from snapshot_scheduler.adapters.rds import RdsAdapter, RdsError
from snapshot_scheduler.config import Settings
from snapshot_scheduler.copier import CopyCall, Outcome, delete_copy, start_copy
from snapshot_scheduler.dr import FAILED
from snapshot_scheduler.model import AVAILABLE, Quota, Reason, RunReport, Snapshot, VaultReport, by_id, is_mass_deletion
from snapshot_scheduler.observability import logger
from snapshot_scheduler.service import Budget
from snapshot_scheduler.vault import CopyGroup, VaultContext, VaultCopy, VaultPlan, is_vault_copy, plan_vault


def vault_context(settings: Settings, region: str) -> VaultContext:
    assert settings.vault is not None
    return VaultContext(
        deployment=settings.deployment,
        region=region,
        vault=settings.vault,
        copy_limit=settings.dr_copy_limit,
        stuck_after=settings.dr_stuck,
        change_grace=settings.policy_change_grace,
    )


def discover(
    settings: Settings, rds: RdsAdapter, now: datetime, regions: Mapping[str, RdsAdapter] | None = None
) -> tuple[VaultPlan, Quota | None, dict[str, str]]:
    """Read side by side (in each source region the snapshots shared with the vault there: RDS lists a
    region's own; the vault's own manual snapshots and quota) and decide. A source region that cannot be
    read is reported (its shares wait for the next run); retention does not depend on it."""
    assert settings.vault is not None
    listers = {region: (regions or {}).get(region, rds) for _, region in settings.vault.source_keys}
    with ThreadPoolExecutor(max_workers=2 + len(listers)) as pool:
        listings = {region: pool.submit(lister.shared_snapshots) for region, lister in listers.items()}
        own = pool.submit(rds.manual_snapshots)
        quota = pool.submit(rds.quota)
        shared, unreadable = [], {}
        for region, listing in listings.items():
            try:
                shared.extend(listing.result())
            except RdsError as error:
                logger.error(f"could not list the snapshots shared in {region}: {error}", extra={"region": region})
                unreadable[region] = str(error)
        sweep = list(by_id(own.result()).values())
        plan = plan_vault(vault_context(settings, rds.region), shared, sweep, now=now, quota=quota.result())
    return plan, quota.result(), unreadable


def run(
    settings: Settings,
    rds: RdsAdapter,
    at: datetime,
    *,
    dry_run: bool,
    budget: Budget,
    now: datetime | None = None,
    regions: Mapping[str, RdsAdapter] | None = None,
) -> RunReport:
    """One vault run for the scheduled time `at`; its decisions are taken at `now` (the wall clock, when
    known): shares and copies carry their own slots, so the event's time names nothing."""
    started = time.monotonic()
    throttles_before = rds.throttles
    now = now or at
    plan, quota, unreadable = discover(settings, rds, now, regions)
    report = RunReport(scheduled_time=at, dry_run=dry_run, quota=quota, vault=VaultReport())
    assert report.vault is not None
    for region, message in unreadable.items():
        report.vault.add("failed", "*", f"*/{region}", error="RegionUnreadable", message=message)
    report_plan(plan, report.vault)
    report.pending = [
        {"cluster": group.cluster_id, "source": group.source, **pending.entry()}
        for group in plan.groups
        for pending in group.pending
    ]
    copier = VaultCopier(vault_context(settings, rds.region), rds, report.vault, now=now, allows=budget.allows)
    if dry_run:
        copier.pretend(plan)
    else:
        copier.prune(plan)  # frees the vault's quota
        copier.start(plan)
    report_sources(plan, report.vault, now, settings.vault.shares_expected if settings.vault else timedelta(0))
    report_mass_deletions(plan, report.vault)
    report.throttles = rds.throttles - throttles_before
    report.duration_ms = (time.monotonic() - started) * 1000
    return report


class VaultCopier:
    def __init__(
        self,
        context: VaultContext,
        rds: RdsAdapter,
        report: VaultReport,
        *,
        now: datetime,
        allows: Callable[[], bool],
    ) -> None:
        self._context = context
        self._rds = rds
        self._report = report
        self._now = now
        self._allows = allows  # the run's Budget.allows: no new call once the run's time is short

    def pretend(self, plan: VaultPlan) -> None:
        for group in plan.groups:
            for copy in group.delete:
                self._report.add("deleted", group.cluster_id, group.source, snapshot=copy.id)
        for job in plan.starting:
            self._report.add("started", job.cluster_id, job.source, snapshot=job.identifier, share=job.share.arn)

    def prune(self, plan: VaultPlan) -> None:
        for group in plan.groups:
            for copy in group.delete:
                if not self._allows():
                    logger.info("copy deletions wait for the next run: the run's time ran short")
                    return
                self._delete(group, copy)

    def start(self, plan: VaultPlan) -> None:
        waiting = plan.starting
        while waiting:
            job = waiting.pop(0)
            if not self._allows():
                self._defer(job, Reason.TIME, "the run's time ran short; the next run starts it")
                continue
            outcome = start_copy(
                self._rds,
                CopyCall(job.share.arn, job.identifier, job.tags, job.kms_key, job.region),
                partial(is_vault_copy, self._context.deployment),
                _extra(job.cluster_id, job.source, job.identifier),
            )
            if outcome.kind is Outcome.FULL:  # the vault takes no more copies now: the rest wait
                for rest in [job, *waiting]:
                    self._defer(rest, Reason(outcome.code), outcome.message)
                waiting = []
            elif outcome.kind is Outcome.KMS:
                reason = (
                    f"the vault key {job.kms_key!r} cannot be used for {job.share.arn}: {outcome.message}; the vault "
                    "role needs kms:CreateGrant on it, and the source's key policy must let the vault account use "
                    "the source key"
                )
                logger.error(reason, extra=_extra(job.cluster_id, job.source, job.identifier))
                self._report.add("skipped", job.cluster_id, job.source, code=Reason.KMS.value, reason=reason)
            elif outcome.kind is Outcome.FAILED:
                self._report.add("failed", job.cluster_id, job.source, error=outcome.code, message=outcome.message)
            elif outcome.kind is Outcome.STARTED:
                self._report.add("started", job.cluster_id, job.source, snapshot=job.identifier, share=job.share.arn)

    def _delete(self, group: CopyGroup, copy: Snapshot) -> None:
        extra = _extra(group.cluster_id, group.source, copy.id)
        refusal = self._refusal(copy)
        if refusal is not None:  # planning never lets one through; if it did, refuse and say so loudly
            logger.error(refusal, extra=extra)
            self._report.add("failed", group.cluster_id, group.source, error="RefusedDelete", message=refusal)
            return
        outcome = delete_copy(self._rds, copy.id, extra)
        if outcome.kind is Outcome.DELETED:
            self._report.add("deleted", group.cluster_id, group.source, snapshot=copy.id)
        elif outcome.kind is Outcome.FAILED:
            self._report.add("failed", group.cluster_id, group.source, error=outcome.code, message=outcome.message)

    def _refusal(self, copy: Snapshot) -> str | None:
        """The last gate before the one irreversible act: an un-held copy of ours, failed, or available and
        older than minRetentionDays by RDS's creation time."""
        if not is_vault_copy(self._context.deployment, copy) or copy.held or copy.status not in (AVAILABLE, FAILED):
            return f"refused to delete {copy.id}: it is not an available or failed, un-held copy of this vault"
        minimum = self._context.vault.min_retention
        if copy.status == AVAILABLE and (copy.created is None or self._now - copy.created < minimum):
            return f"refused to delete {copy.id}: it is younger than minRetentionDays={minimum.days}"
        return None

    def _defer(self, job: VaultCopy, code: Reason, reason: str) -> None:
        logger.info(f"copy deferred: {reason}", extra=_extra(job.cluster_id, job.source, job.identifier))
        self._report.add("deferred", job.cluster_id, job.source, code=code.value, reason=reason)


def _extra(cluster: str, source: str, snapshot: str) -> dict[str, str]:
    return {"cluster": cluster, "source": source, "snapshot": snapshot}


def report_plan(plan: VaultPlan, report: VaultReport) -> None:
    """What the plan itself says: shares ignored, copies that cannot start, failed and stuck copies."""
    report.shares_counted = plan.counted
    for ignored in plan.ignored:
        logger.info(f"share ignored: {ignored.reason}", extra={"snapshot": ignored.arn})
        report.ignored.append({"snapshot": ignored.arn, "reason": ignored.reason})
    for job in plan.copies:
        if job.fail is not None:
            logger.error(job.fail[1], extra=_extra(job.cluster_id, job.source, job.identifier))
            report.add("failed", job.cluster_id, job.source, error=job.fail[0], message=job.fail[1])
        if job.skip is not None:
            logger.warning(job.skip[1], extra=_extra(job.cluster_id, job.source, job.identifier))
            report.add("skipped", job.cluster_id, job.source, code=job.skip[0].value, reason=job.skip[1])
        if job.defer is not None:
            logger.info(f"copy deferred: {job.defer[1]}", extra=_extra(job.cluster_id, job.source, job.identifier))
            report.add("deferred", job.cluster_id, job.source, code=job.defer[0].value, reason=job.defer[1])
    for group in plan.groups:
        for copy in group.failed:
            message = f"copy {copy.id} ended failed; it is deleted and copied again while the source still shares it"
            logger.error(message, extra=_extra(group.cluster_id, group.source, copy.id))
            report.add("failed", group.cluster_id, group.source, error="CopyFailed", message=message)
        for copy in group.stuck:
            since = copy.created.isoformat() if copy.created else "unknown"
            logger.warning(f"copy stuck since {since}", extra=_extra(group.cluster_id, group.source, copy.id))
            report.add("stuck", group.cluster_id, group.source, snapshot=copy.id, reason=f"still copying since {since}")


def report_mass_deletions(plan: VaultPlan, report: VaultReport) -> None:
    """Mass deletions (model.is_mass_deletion) of one cluster's copies from one source; copies that ended
    failed are not history, and not counted."""
    deleted = Counter((entry["source"], entry["cluster"]) for entry in report.deleted)
    for group in plan.groups:
        count = deleted[(group.source, group.cluster_id)] - len(group.failed)
        total = len(group.kept) + len(group.delete) - len(group.failed)
        if is_mass_deletion(count, total):
            report.mass_deletions.append(f"{group.source}/{group.cluster_id}")
            logger.warning(
                f"mass deletion: {count} of {total} copies deleted",
                extra={"cluster": group.cluster_id, "source": group.source},
            )


def report_sources(plan: VaultPlan, report: VaultReport, now: datetime, expected: timedelta) -> None:
    """Each configured source's newest share seen and newest copy: the recovery point's age and the silence."""
    for view in plan.sources:
        age, silence = view.recovery_point_age(now), view.silence(now)
        silent = silence is None or silence > expected
        if silent:
            logger.warning("source silent: no share seen for longer than expected", extra={"source": view.name})
        report.sources.append(
            {
                "source": view.name,
                "newest_share": _iso(view.newest_share),
                "newest_copy": _iso(view.newest_copy),
                "recovery_point_age_seconds": None if age is None else age.total_seconds(),
                "silence_seconds": None if silence is None else silence.total_seconds(),
                "silent": silent,
            }
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
