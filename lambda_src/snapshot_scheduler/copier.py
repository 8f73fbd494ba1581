"""The act phase's copy step: after the cluster's own snapshots, delete the copies DR retention removes
(they free the destination's quota), then start the copies due, region by region, most overdue first,
under the run's shared time budget. Each destination region has its own adapter (its own pacer).
`start_copy` and `delete_copy` (the calls and what their errors mean) serve the vault's copies too.

No waiting for a place among the 5 copies in flight: what does not fit is deferred to the next run.

The share step (Sharer) for DR targets that are accounts: take back the shares older than shareHours,
then share each DR slot's newest snapshot, in the source region.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto
from functools import partial

from snapshot_scheduler.adapters.rds import (
    KmsKeyError,
    QuotaExceeded,
    RdsAdapter,
    RdsError,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
)
from snapshot_scheduler.dr import FAILED, DrContext, DrPlan, DrTarget, TargetPlan, copy_age, is_our_copy
from snapshot_scheduler.model import AVAILABLE, DrReport, Reason, Snapshot, is_mass_deletion
from snapshot_scheduler.observability import logger
from snapshot_scheduler.sharing import Share, SharePlan, Unshare, share_time
from snapshot_scheduler.tags import shared_key
from snapshot_scheduler.workers import in_parallel


class Copier:
    def __init__(
        self,
        context: DrContext,
        regions: Mapping[str, RdsAdapter],
        report: DrReport,
        *,
        allows: Callable[[], bool],
    ) -> None:
        self._context = context
        self._regions = regions
        self._report = report
        self._allows = allows  # the run's Budget.allows: no new call once the run's time is short

    def pretend(self, plan: DrPlan) -> None:
        for target in plan.targets:
            for copy in target.delete:
                _note(self._report, "deleted", target, snapshot=copy.id)
        for target in plan.copies():
            assert target.copy is not None
            _note(self._report, "started", target, snapshot=target.copy.identifier, source=target.copy.source.id)

    def prune(self, plan: DrPlan) -> None:
        """Delete what DR retention removes, ACT_WORKERS at a time; noted in the plan's order."""
        work = [(target, copy) for target in plan.targets for copy in target.delete]
        notes = in_parallel(lambda item: self._contained_delete(*item) if self._time_left() else _WAITING, work)
        for (target, _), note in zip(work, notes, strict=True):
            if note.kind in ("deleted", "failed"):
                _note(self._report, note.kind, target, **note.fields)
        if _WAITING in notes:
            logger.info(f"{notes.count(_WAITING)} copy deletions wait for the next run: the run's time ran short")

    def start(self, plan: DrPlan) -> None:
        for region in sorted({target.region for target in plan.copies()}):
            waiting = plan.copies(region)
            while waiting:
                target = waiting.pop(0)
                if not self._time_left():
                    self._defer(target, Reason.TIME, "the run's time ran short; the next run starts it")
                    continue
                full = self._copy(target)
                if full is not None:  # the region takes no more now: the rest wait for the next run
                    for rest in waiting:
                        self._defer(rest, *full)
                    waiting = []

    def _time_left(self) -> bool:
        return self._allows()

    def _contained_delete(self, target: TargetPlan, copy: Snapshot) -> _Note:
        """An unexpected error (a bug) fails its copy, never the run: other workers may have deleted, and
        the report must say so."""
        try:
            return self._delete(target, copy)
        except Exception as error:
            logger.exception("unexpected error", extra={"cluster": target.cluster_id, "snapshot": copy.id})
            return _Note("failed", {"snapshot": copy.id, "error": "InternalError", "message": repr(error)})

    def _delete(self, target: TargetPlan, copy: Snapshot) -> _Note:
        """Delete one copy past the last gate; what to note of it (`later`: left for the next run)."""
        extra = {"cluster": target.cluster_id, "region": target.region, "snapshot": copy.id}
        if not is_our_copy(self._context, copy) or copy.held or copy.status not in (AVAILABLE, FAILED):
            message = f"refused to delete {copy.id}: it is not an available or failed, un-held copy of ours"
            logger.error(message, extra=extra)  # planning never lets one through; if it did, say so loudly
            return _Note("failed", {"error": "RefusedDelete", "message": message})
        outcome = delete_copy(self._regions[target.region], copy.id, extra)
        if outcome.kind is Outcome.DELETED:
            return _Note("deleted", {"snapshot": copy.id})
        if outcome.kind is Outcome.FAILED:
            return _Note("failed", {"error": outcome.code, "message": outcome.message})
        return _Note("later", {})

    def _copy(self, target: TargetPlan) -> tuple[Reason, str] | None:
        """Start one copy; (code, reason) when the region can take no more copies in this run."""
        job = target.copy
        assert job is not None and target.target is not None
        extra = {"cluster": target.cluster_id, "region": target.region, "snapshot": job.identifier}
        outcome = start_copy(
            self._regions[target.region],
            CopyCall(job.source.arn, job.identifier, job.tags, job.kms_key, self._context.source_region),
            partial(is_our_copy, self._context),
            extra,
        )
        if outcome.kind is Outcome.FULL:
            full = Reason(outcome.code), outcome.message
            self._defer(target, *full)
            return full
        if outcome.kind is Outcome.KMS:
            reason = (
                f"target {target.target.name} (region {target.region}) cannot use KMS key {job.kms_key!r}: "
                f"{outcome.message}; give the function's role kms:CreateGrant and kms:DescribeKey in the key policy"
            )
            logger.error(reason, extra=extra)
            _note(self._report, "skipped", target, code=Reason.KMS.value, reason=reason)
        elif outcome.kind is Outcome.FAILED:
            _note(self._report, "failed", target, error=outcome.code, message=outcome.message)
        elif outcome.kind is Outcome.STARTED:
            _note(self._report, "started", target, snapshot=job.identifier, source=job.source.id)
        return None

    def _defer(self, target: TargetPlan, code: Reason, reason: str) -> None:
        logger.info(f"copy deferred: {reason}", extra={"cluster": target.cluster_id, "region": target.region})
        _note(self._report, "deferred", target, code=code.value, reason=reason)


class Outcome(Enum):
    """What one copy or delete call came to."""

    STARTED = auto()
    DONE = auto()  # a concurrent run had started the same copy: done, not counted twice
    FULL = auto()  # the region takes no more copies now: code is the Reason (quota or copy-limit)
    KMS = auto()  # the key cannot be used
    FAILED = auto()
    DELETED = auto()
    LATER = auto()  # not deletable now (busy, or already gone): the next run sees


@dataclass(frozen=True)
class _Note:
    """What the report says of one copy deletion: `deleted` or `failed` (with its fields); `later` (RDS
    answered busy or gone) and `waiting` (no time left) say nothing."""

    kind: str
    fields: Mapping[str, str]


_WAITING = _Note("waiting", {})


@dataclass(frozen=True)
class Result:
    kind: Outcome
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class CopyCall:
    """CopyDBClusterSnapshot's arguments: into the adapter's region, tags set explicitly."""

    source_arn: str
    identifier: str
    tags: Mapping[str, str]
    kms_key: str | None
    source_region: str


def start_copy(
    rds: RdsAdapter, call: CopyCall, is_ours: Callable[[Snapshot], bool], extra: Mapping[str, str]
) -> Result:
    """Start one copy (DR or vault) and say what came of it; logged with `extra`."""
    try:
        rds.copy_snapshot(
            call.source_arn, call.identifier, call.tags, kms_key=call.kms_key, source_region=call.source_region
        )
    except QuotaExceeded as error:
        code, reason = _full(rds, error)
        return Result(Outcome.FULL, code.value, reason)
    except KmsKeyError as error:
        return Result(Outcome.KMS, error.code, error.message)
    except SnapshotExists as error:
        return _exists(rds, call.identifier, error, is_ours)
    except RdsError as error:
        logger.error(f"copy failed to start: {error}", extra=extra)
        return Result(Outcome.FAILED, error.code, error.message)
    logger.info("copy started", extra=extra)
    return Result(Outcome.STARTED)


def _full(rds: RdsAdapter, error: QuotaExceeded) -> tuple[Reason, str]:
    """SnapshotQuotaExceeded on a copy is the in-flight limit or the destination's full quota: the
    destination's quota read tells them apart."""
    quota = rds.quota()
    if quota is not None and quota.used >= quota.max:
        return Reason.QUOTA, f"the manual snapshot quota of {rds.region} is full ({quota.used}/{quota.max})"
    return Reason.COPY_LIMIT, f"{rds.region} takes no more copies now ({error.message}); the next run starts it"


def _exists(rds: RdsAdapter, identifier: str, error: SnapshotExists, is_ours: Callable[[Snapshot], bool]) -> Result:
    """Our identifier exists: ours after an SDK retry (started) or a concurrent run's (done); someone
    else's is reported, never counted done."""
    try:
        existing = rds.snapshot(identifier)
    except RdsError as describe_error:
        return Result(Outcome.FAILED, describe_error.code, describe_error.message)
    if existing is None or not is_ours(existing):
        message = f"snapshot {identifier} in {rds.region} exists and is not a copy of ours"
        return Result(Outcome.FAILED, "IdentifierTaken", message)
    return Result(Outcome.STARTED if error.retried else Outcome.DONE)


def delete_copy(rds: RdsAdapter, snapshot_id: str, extra: Mapping[str, str]) -> Result:
    """Delete one copy (the caller's last gate has passed it) and say what came of it."""
    try:
        rds.delete_snapshot(snapshot_id)
    except (SnapshotBusy, SnapshotNotFound) as error:
        logger.info(f"copy not deleted now, left for the next run: {error}", extra=extra)
        return Result(Outcome.LATER, error.code, error.message)
    except RdsError as error:
        logger.error(f"copy delete failed: {error}", extra=extra)
        return Result(Outcome.FAILED, error.code, error.message)
    logger.info("copy deleted", extra=extra)
    return Result(Outcome.DELETED)


def _note(report: DrReport, kind: str, target: TargetPlan, **fields: str) -> None:
    name = target.target.name if target.target is not None else None
    report.add(kind, target.cluster_id, target.region, name, **fields)


def report_plan(plan: DrPlan, report: DrReport) -> None:
    """What the plan itself says: each DR region's quota, DR tag errors, skips, deferrals, failed and stuck
    copies."""
    report.quotas = dict(plan.quotas)
    for region, message in plan.unreadable.items():
        report.add("failed", "*", region, None, error="RegionUnreadable", message=message)
    for error in plan.errors:
        logger.error(error.message, extra={"cluster": error.cluster_id, "reason": Reason.POLICY_ERROR.value})
        report.errors.append({"cluster": error.cluster_id, "reason": error.message})
    for target in plan.targets:
        if target.fail is not None:
            _note(report, "failed", target, error=target.fail[0], message=target.fail[1])
        if target.skip is not None:
            _note(report, "skipped", target, code=target.skip[0].value, reason=target.skip[1])
        if target.defer is not None:
            _note(report, "deferred", target, code=target.defer[0].value, reason=target.defer[1])
        for copy in target.failed:
            message = f"copy {copy.id} ended failed; it is deleted and the next run copies the slot again"
            _note(report, "failed", target, error="CopyFailed", message=message)
        for copy in target.stuck:
            since = copy.created.isoformat() if copy.created else "unknown"
            _note(report, "stuck", target, snapshot=copy.id, reason=f"still copying since {since}")
        _report_pending(target, report)


def _report_pending(target: TargetPlan, report: DrReport) -> None:
    """Deletions a change of DR policy caused, waiting for the grace: loudly, so someone can stop them."""
    if not target.pending or target.policy is None:
        return
    where = {"cluster": target.cluster_id, "region": target.region}
    named = {"target": target.target.name} if target.target is not None else {}
    spec = target.policy.spec()  # the DR policy, `to=` included: the words to compare with the DR tag
    report.pending += [{**where, **named, **pending.entry(), "policy": spec} for pending in target.pending]
    first = target.pending[0]
    logger.warning(
        f"DR policy change: {len(target.pending)} copies in {target.region} that {first.kept_by!r} keeps would be "
        f"deleted by {spec!r}; they wait until {first.deletable_after.isoformat()} at the earliest. Restore the "
        "DR tag, or hold the copies, to keep them",
        extra={**where, "pending": [p.snapshot.id for p in target.pending]},
    )


def report_mass_deletions(plan: DrPlan, report: DrReport) -> None:
    """Mass deletions (model.is_mass_deletion) of one cluster's copies in one region; copies that ended failed
    are not history, and not counted."""
    deleted = Counter((entry["cluster"], entry["region"]) for entry in report.deleted)
    for target in plan.targets:
        count = deleted[(target.cluster_id, target.region)] - len(target.failed)
        total = len(target.kept) + len(target.delete) - len(target.failed)
        if is_mass_deletion(count, total):
            report.mass_deletions.append(f"{target.cluster_id}/{target.region}")
            logger.warning(
                f"mass deletion: {count} of {total} copies in {target.region} deleted",
                extra={"cluster": target.cluster_id, "region": target.region},
            )


def report_freshness(plan: DrPlan, report: DrReport, at: datetime, grace: timedelta, allowance: timedelta) -> None:
    """After acting: the age of the newest available copy per cluster and target; out of policy past the
    DR interval + grace + an allowance for the copy itself, unless the first copy is under way."""
    managed = plan.managed
    started = {(entry["cluster"], entry["region"]) for entry in report.started}
    report.targets_managed = len(managed)
    ages = [age for t in managed if (age := copy_age(t, at)) is not None]
    report.oldest_copy_age = max((age.total_seconds() for age in ages), default=None)
    for target in managed:
        if copy_out_of_policy(target, at, grace, allowance, started=(target.cluster_id, target.region) in started):
            report.out_of_policy.append(f"{target.cluster_id}/{target.region}")


def copy_out_of_policy(
    target: TargetPlan, at: datetime, grace: timedelta, allowance: timedelta, *, started: bool = False
) -> bool:
    """The newest available copy is older than the DR interval + grace + the allowance for copying, or there
    is none and the first is not under way (copying, waiting for its source, or `started`)."""
    assert target.policy is not None
    age = copy_age(target, at)
    if age is None:
        return not (target.in_flight or target.waiting or started)
    return age > target.policy.policy.every.interval + grace + allowance


class Sharer:
    """Shares with, and takes back from, the accounts of DR targets: only those accounts, one at a time."""

    def __init__(
        self, context: DrContext, rds: RdsAdapter, report: DrReport, *, allows: Callable[[], bool], now: datetime
    ) -> None:
        self._rds = rds
        self._report = report
        self._allows = allows
        self._now = now
        self._accounts = {t.account for t in context.targets.values() if t.account is not None}

    def pretend(self, plan: SharePlan) -> None:
        for unshare in plan.unshares:
            _noted(self._report, "unshared", unshare.cluster_id, unshare.target, snapshot=unshare.snapshot.id)
        for share in plan.shares:
            _noted(self._report, "shared", share.cluster_id, share.target, snapshot=share.snapshot.id)

    def act(self, plan: SharePlan) -> None:
        """Unshares first (they limit exposure), then shares, while the run has time."""
        for unshare in plan.unshares:
            if self._allows():
                self._unshare(unshare)
        for share in plan.shares:
            if self._allows():
                self._share(share)

    def _share(self, share: Share) -> None:
        target, snapshot = share.target, share.snapshot
        if not self._configured(share.cluster_id, target):
            return
        assert target.account is not None
        key = shared_key(target.name)
        extra = {"cluster": share.cluster_id, "snapshot": snapshot.id, "account": target.account}
        asked = False
        try:
            # Recorded first: a share is never left without the tag that takes it back.
            self._rds.tag_snapshot(snapshot.arn, {key: share_time(self._now)})
            asked = True  # from here on, RDS may have made the share whatever it answers
            self._rds.share_snapshot(snapshot.id, target.account)
        except RdsError as error:
            message = error.message
            if asked and error.may_have_applied:  # kept recorded: a share made is taken back on time
                message += "; the share may have been made: it stays recorded and is taken back after shareHours"
            else:
                self._forget(snapshot, key)
            logger.error(f"share failed: {error.code}: {message}", extra=extra)
            _noted(self._report, "failed", share.cluster_id, target, error=error.code, message=message)
            return
        logger.info("snapshot shared", extra=extra)
        _noted(self._report, "shared", share.cluster_id, target, snapshot=snapshot.id, account=target.account)

    def _unshare(self, unshare: Unshare) -> None:
        target, snapshot = unshare.target, unshare.snapshot
        if not self._configured(unshare.cluster_id, target):
            return
        assert target.account is not None
        extra = {"cluster": unshare.cluster_id, "snapshot": snapshot.id, "account": target.account}
        try:
            self._rds.unshare_snapshot(snapshot.id, target.account)
            self._rds.untag_snapshot(snapshot.arn, [shared_key(target.name)])
        except SnapshotNotFound:
            logger.info("shared snapshot already gone", extra=extra)
            return
        except RdsError as error:  # the tag stays: kept, and the next run takes the share back again
            logger.error(f"unshare failed: {error}", extra=extra)
            _noted(self._report, "failed", unshare.cluster_id, target, error=error.code, message=error.message)
            return
        logger.info("share taken back", extra=extra)
        since = unshare.since.isoformat() if unshare.since is not None else "unreadable"
        _noted(self._report, "unshared", unshare.cluster_id, target, snapshot=snapshot.id, shared_since=since)

    def _configured(self, cluster_id: str, target: DrTarget) -> bool:
        """The guard IAM cannot be: only an account of the configuration, never anything else."""
        if target.account in self._accounts:
            return True
        message = f"refused to share with {target.account!r}: not the account of a configured DR target"
        logger.error(message, extra={"cluster": cluster_id})
        _noted(self._report, "failed", cluster_id, target, error="RefusedShare", message=message)
        return False

    def _forget(self, snapshot: Snapshot, key: str) -> None:
        """A share RDS refused leaves no record behind (else the snapshot would be kept as shared)."""
        try:
            self._rds.untag_snapshot(snapshot.arn, [key])
        except RdsError as error:  # kept until shareHours pass, then the tag goes with a harmless unshare
            logger.warning(f"could not remove the tag of a failed share: {error}", extra={"snapshot": snapshot.id})


def report_sharing(plan: SharePlan, report: DrReport) -> None:
    for skip in plan.skips:
        logger.warning(f"not shared: {skip.reason}", extra={"cluster": skip.cluster_id, "reason": skip.code.value})
        _noted(report, "skipped", skip.cluster_id, skip.target, code=skip.code.value, reason=skip.reason)


def _noted(report: DrReport, kind: str, cluster_id: str, target: DrTarget, **fields: str) -> None:
    report.add(kind, cluster_id, target.region, target.name, **fields)
