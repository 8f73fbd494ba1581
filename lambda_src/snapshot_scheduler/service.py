"""One run: discover (RDS; at a slot's first run, creates start beside the snapshot sweep: early.py), decide
(planning, pure), act (delete, then create what is left), report.

The handler and the CLI both call `run` and `discover`; the RDS adapter is injected, so tests use moto
with the fidelity layer, or a fake.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Any, TypeVar

from snapshot_scheduler.adapters.kms import KmsAdapter
from snapshot_scheduler.adapters.rds import (
    AccessDenied,
    ClusterBusy,
    ClusterNotFound,
    QuotaExceeded,
    RdsAdapter,
    RdsError,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
)
from snapshot_scheduler.config import Settings
from snapshot_scheduler.copier import (
    Copier,
    Sharer,
    report_freshness,
    report_mass_deletions,
    report_plan,
    report_sharing,
)
from snapshot_scheduler.dr import DrContext, DrPlan, blind_plan, keep_sources, plan_dr
from snapshot_scheduler.early import EarlyCreates
from snapshot_scheduler.errors import ScheduleError
from snapshot_scheduler.freshness import SCHEDULE_TOO_SPARSE, schedule_warning, slot_left_untaken, slots_no_run_took
from snapshot_scheduler.model import (
    AVAILABLE,
    Cluster,
    DrReport,
    Quota,
    Reason,
    RunReport,
    Snapshot,
    by_id,
    is_mass_deletion,
)
from snapshot_scheduler.observability import logger
from snapshot_scheduler.planning import (
    PLANNING_ERROR,
    ClusterPlan,
    PolicyContext,
    RunPlan,
    identifier_taken,
    orphan_candidates,
    out_of_policy,
    plan_run,
    recovery_point_age,
    slot_snapshot_is_ours,
    snapshot_tags,
)
from snapshot_scheduler.sharing import SharePlan, plan_sharing, without_default_keys
from snapshot_scheduler.workers import ACT_WORKERS, in_parallel

BACKOFF_BASE = 2.0  # seconds before the first retry of a busy cluster
BACKOFF_CAP = 60.0
# How far a run's time may lie ahead of the clock (clock skew). Further, and its snapshots would be named
# for slots that have not begun: refused, never acted on.
FUTURE_SKEW = timedelta(minutes=15)

R = TypeVar("R")


@dataclass(frozen=True)
class Budget:
    """The run's time: seconds left, how to wait, and the margin below which no new work starts."""

    remaining: Callable[[], float]
    sleep: Callable[[float], None] = time.sleep
    margin: float = 30.0

    def allows(self, seconds: float = 0.0) -> bool:
        return self.remaining() - seconds > self.margin


@dataclass(frozen=True)
class Discovery:
    plan: RunPlan  # its deletions already spare the sources of copies (dr.protected)
    quota: Quota | None
    snapshots: tuple[Snapshot, ...] = ()  # every manual snapshot read (quota planning counts others' too)
    lookups: Mapping[str, Cluster | None] = field(default_factory=dict)  # clusters the listing missed
    dr: DrPlan | None = None
    sharing: SharePlan = field(default_factory=SharePlan)  # with DR targets that are accounts


def policy_context(settings: Settings) -> PolicyContext:
    return PolicyContext(
        tag_key=settings.policy_tag_key,
        deployment=settings.deployment,
        named=settings.named_policies,
        default_at=settings.default_at,
        default_tz=settings.default_tz,
        engines=settings.engines,
        change_grace=settings.policy_change_grace,
    )


def dr_context(settings: Settings, source_region: str) -> DrContext:
    return DrContext(
        tag_key=settings.dr_tag_key,
        deployment=settings.deployment,
        source_region=source_region,
        targets=settings.dr_targets,
        named=settings.dr_policies,
        default_at=settings.default_at,
        default_tz=settings.default_tz,
        copy_limit=settings.dr_copy_limit,
        stuck_after=settings.dr_stuck,
        change_grace=settings.policy_change_grace,
    )


def discover(
    settings: Settings,
    rds: RdsAdapter,
    at: datetime,
    *,
    now: datetime | None = None,
    regions: Mapping[str, RdsAdapter] | None = None,
    kms: KmsAdapter | None = None,
    early: EarlyCreates | None = None,
) -> Discovery:
    """Read the fleet (one sweep each over clusters and manual snapshots, and over each DR target's region)
    and decide. Changes nothing but for one kms:DescribeKey per key of a snapshot to share, and the `early`
    creates, started once the clusters and the quota are read and waited for before planning, which sees
    their snapshots as part of the listing."""
    dr_regions = dict(regions or {}) if settings.dr_targets else {}
    # The reads are independent page chains: side by side, the run waits for the longest only.
    with ThreadPoolExecutor(max_workers=3 + 2 * len(dr_regions)) as pool:
        # Every engine: a cluster we were backing up whose engine is no longer managed must still be seen.
        clusters = pool.submit(rds.clusters)
        snapshots = pool.submit(rds.manual_snapshots)
        quota = pool.submit(rds.quota)
        sweeps = {region: pool.submit(adapter.manual_snapshots) for region, adapter in dr_regions.items()}
        quotas = {region: pool.submit(adapter.quota) for region, adapter in dr_regions.items()}
        fleet, account = clusters.result(), quota.result()
        if early is not None:
            early.start(fleet, account)
        listing = snapshots.result()
        # One record per snapshot, for quota planning too. A snapshot this run started is as RDS answered it,
        # creating, whatever page listed it: no snapshot is ready seconds after it started.
        manual = list(by_id([*listing, *(early.finish() if early is not None else [])]).values())
        destinations, unreadable = {}, {}
        for region, sweep in sweeps.items():
            try:
                destinations[region] = list(by_id(sweep.result()).values())
            except RdsError as error:  # the cluster's own snapshots go on; DR waits for the next run
                logger.error(f"could not read DR region {region}: {error}", extra={"region": region})
                unreadable[region] = str(error)
        dest_quotas = {region: read.result() for region, read in quotas.items()}
    context = policy_context(settings)
    lookups = _look_up_missing(rds, context, fleet, manual)
    plan = plan_run(context, fleet, manual, at, now=now, lookups=lookups)
    if not settings.dr_targets:
        return Discovery(plan, account, tuple(manual), lookups)
    dr_of = dr_context(settings, rds.region)
    managed = [cluster for cluster in fleet if cluster.engine in settings.engines]
    if unreadable:
        dr = blind_plan(dr_of, plan, unreadable, dest_quotas)
    else:
        dr = plan_dr(dr_of, managed, plan, manual, destinations, at=at, now=now, quotas=dest_quotas)
    sharing = plan_sharing(dr_of, managed, plan, manual, at=at, now=now or at)
    if sharing.keys() and kms is not None:
        sharing = without_default_keys(sharing, kms.key_managers(sharing.keys()))
    protected = {**sharing.protected, **dr.protected}
    return Discovery(keep_sources(plan, protected), account, tuple(manual), lookups, dr, sharing)


def _discover_for(
    report: RunReport, early: EarlyCreates | None, settings: Settings, rds: RdsAdapter, at: datetime, **kwargs: Any
) -> Discovery:
    """discover(); when it fails after creates started beside the sweep, they still end (their answers
    reported), and their snapshots are kept and said loudly before the run fails: no report will count them
    (the next run sees them in its listing)."""
    try:
        return discover(settings, rds, at, early=early, **kwargs)
    except Exception:
        if early is not None:
            early.finish()
        if report.created:
            logger.error(
                f"reading the fleet failed after {len(report.created)} snapshots were started beside the "
                "snapshot sweep; they are kept",
                extra={"snapshots": [entry["snapshot"] for entry in report.created]},
            )
        raise


def _look_up_missing(
    rds: RdsAdapter, context: PolicyContext, clusters: list[Cluster], snapshots: list[Snapshot]
) -> dict[str, Cluster | None]:
    """Look up, one call each, the clusters our snapshots name that the listing did not show (none when it
    missed nothing): only a lookup that finds no cluster lets their snapshots be pruned as orphans. A
    failed lookup leaves the cluster out, and its snapshots are all kept."""
    found: dict[str, Cluster | None] = {}
    for cluster_id in orphan_candidates(context, clusters, snapshots):
        try:
            found[cluster_id] = rds.cluster(cluster_id)
        except RdsError as error:
            logger.error(
                f"could not look up a cluster missing from the listing: {error}", extra={"cluster": cluster_id}
            )
    return found


def run(
    settings: Settings,
    rds: RdsAdapter,
    at: datetime,
    *,
    dry_run: bool,
    budget: Budget,
    now: datetime | None = None,
    rng: random.Random | None = None,
    regions: Mapping[str, RdsAdapter] | None = None,
    kms: KmsAdapter | None = None,
) -> RunReport:
    """One run for the scheduled time `at`; `now` is the wall clock when known (see plan_run)."""
    if now is not None and at > now + FUTURE_SKEW:
        raise ScheduleError(
            f"the run's time {at.isoformat()} is {at - now} ahead of the clock ({now.isoformat()}); "
            f"allowed: at most {FUTURE_SKEW} ahead"
        )
    started = time.monotonic()
    throttles_before = rds.throttles
    planned_for = _planning_time(at, now)
    report = RunReport(scheduled_time=at, dry_run=dry_run)
    actor = _Actor(settings, rds, budget, report, rng or random.Random(), now=now)
    early = None if dry_run else _early_creates(settings, actor, planned_for, now or at)
    discovery = _discover_for(report, early, settings, rds, planned_for, now=now, regions=regions, kms=kms)
    report.quota = discovery.quota
    dr = discovery.dr
    protected = {**discovery.sharing.protected, **dr.protected} if dr is not None else {}
    actor.discovered(discovery.lookups, protected)
    _report_decisions(discovery.plan, report, settled=actor.settled)
    copier = sharer = None
    if dr is not None:
        report.dr = DrReport()
        report_plan(dr, report.dr)
        report_sharing(discovery.sharing, report.dr)
        copier = Copier(dr_context(settings, rds.region), regions or {}, report.dr, allows=budget.allows)
        sharer = Sharer(dr_context(settings, rds.region), rds, report.dr, allows=budget.allows, now=now or at)
    if dry_run:
        actor.pretend(discovery.plan)
        if copier is not None and sharer is not None and dr is not None:
            copier.pretend(dr)
            sharer.pretend(discovery.sharing)
    else:
        due = [cluster for cluster in discovery.plan.due if cluster.cluster_id not in actor.settled]
        actor.prune(discovery.plan, reserve=len(due) / settings.api_rate)  # a backlog must not starve creates
        actor.create(due)
        actor.prune(discovery.plan)  # whatever the reserve held back
        if copier is not None and sharer is not None and dr is not None:  # own snapshots first, then DR
            copier.prune(dr)  # frees the destination's quota
            copier.start(dr)
            sharer.act(discovery.sharing)
    if dr is not None and report.dr is not None:
        report_freshness(dr, report.dr, max(at, now or at), settings.grace, settings.dr_stuck)
        report_mass_deletions(dr, report.dr)
    under_way = {entry["cluster"] for entry in report.created} | actor.made_elsewhere
    _report_recovery_points(discovery.plan, report, settings.grace, max(at, now or at), under_way)
    _report_mass_deletions(discovery.plan, report)
    if settings.run_interval is not None:
        late = now is not None and now - at >= settings.run_interval  # the next scheduled run has happened
        _report_missed_slots(discovery.plan, report, settings.run_interval, under_way, late=late)
        if not late:
            _report_newly_out_of_policy(discovery.plan, report, settings.grace, settings.run_interval, under_way)
    report.throttles = rds.throttles - throttles_before
    report.duration_ms = (time.monotonic() - started) * 1000
    return report


def _early_creates(settings: Settings, actor: _Actor, at: datetime, now: datetime) -> EarlyCreates | None:
    """The creates a slot's first run starts beside the snapshot sweep; none without the schedule's interval,
    which tells a slot's first run from a later one."""
    if settings.run_interval is None:
        return None
    return EarlyCreates(
        policy_context(settings), actor.attempt_early, at=at, now=now, run_interval=settings.run_interval
    )


def _report_decisions(plan: RunPlan, report: RunReport, *, settled: frozenset[str] = frozenset()) -> None:
    """What planning decided. For a cluster an early create `settled` (early.py), what planning decided about
    its slot's snapshot (in progress, the identifier taken) is left out: the early create's answer was reported."""
    for cluster_id in plan.unlisted:
        reason = "missing from the cluster listing, found by a direct lookup: planned as if listed"
        logger.warning(f"unlisted: {reason}", extra={"cluster": cluster_id})
        report.add_unlisted(cluster_id, reason)
    for foreign in plan.foreign_marked:
        snapshot = foreign.snapshot
        logger.warning(
            f"foreign-marked: snapshot carries this deployment's marker but is not ours ({foreign.reason}); left alone",
            extra={"cluster": snapshot.cluster_id, "snapshot": snapshot.id},
        )
        report.add_foreign_marked(snapshot.cluster_id, snapshot.id, foreign.reason)
    for cluster in plan.clusters:
        _report_pending(cluster, report)
        about_its_slot = cluster.fail is None or cluster.fail[0] != PLANNING_ERROR
        if cluster.cluster_id in settled and about_its_slot:
            continue
        if cluster.fail is not None:
            error, message = cluster.fail
            logger.error(f"failed: {message}", extra={"cluster": cluster.cluster_id, "error": error})
            report.add_failed(cluster.cluster_id, error, message)
        elif cluster.skip is not None:
            code, reason = cluster.skip
            log = logger.error if code is Reason.POLICY_ERROR else logger.info
            log(f"skipped: {reason}", extra={"cluster": cluster.cluster_id, "reason": code.value})
            report.add_skipped(cluster.cluster_id, code, reason)
        elif cluster.defer is not None:
            code, reason = cluster.defer
            logger.info(f"deferred: {reason}", extra={"cluster": cluster.cluster_id, "reason": code.value})
            report.add_deferred(cluster.cluster_id, code, reason)


def _report_pending(cluster: ClusterPlan, report: RunReport) -> None:
    """Deletions a change of policy caused, waiting for the grace: loudly, so someone can stop them."""
    report.pending += [{"cluster": cluster.cluster_id, **pending.entry()} for pending in cluster.pending]
    if cluster.pending:
        first = cluster.pending[0]
        logger.warning(
            f"policy change: {len(cluster.pending)} snapshots that {first.kept_by!r} keeps would be deleted by "
            f"{first.policy!r}; they wait until {first.deletable_after.isoformat()} at the earliest. Restore the "
            "policy tag, or hold the snapshots, to keep them",
            extra={"cluster": cluster.cluster_id, "pending": [p.snapshot.id for p in cluster.pending]},
        )


def _report_mass_deletions(plan: RunPlan, report: RunReport) -> None:
    deleted = Counter(entry["cluster"] for entry in report.deleted)
    for cluster in plan.clusters:
        count, total = deleted[cluster.cluster_id], len(cluster.kept) + len(cluster.delete)
        if is_mass_deletion(count, total):
            report.mass_deletions.append(cluster.cluster_id)
            logger.warning(
                f"mass deletion: {count} of {total} snapshots deleted", extra={"cluster": cluster.cluster_id}
            )


def _report_recovery_points(
    plan: RunPlan, report: RunReport, grace: timedelta, at: datetime, started: set[str]
) -> None:
    """After acting: is every watched cluster's newest available snapshot recent enough at `at`? `started`:
    clusters whose slot snapshot is under way."""
    report.clusters_managed = len(plan.managed)
    watched = plan.watched
    report.out_of_policy = [
        p.cluster_id for p in watched if out_of_policy(p, at, grace, started=p.cluster_id in started)
    ]
    ages = [age for p in watched if (age := recovery_point_age(p, at)) is not None]
    report.oldest_recovery_point_age = max(ages).total_seconds() if ages else None
    for cluster_id in report.out_of_policy:
        logger.warning("out of policy: no recent enough snapshot", extra={"cluster": cluster_id})


def _report_newly_out_of_policy(
    plan: RunPlan, report: RunReport, grace: timedelta, run_interval: timedelta, started: set[str]
) -> None:
    """Clusters that fell out of policy since the previous run: out of policy at this run's scheduled time and
    not at the previous one's. Each is counted by one run, so its alarm notifies once per cluster that falls
    out, also while others keep ClustersOutOfPolicy in ALARM."""
    at = plan.scheduled_time
    report.newly_out_of_policy = [
        p.cluster_id
        for p in plan.watched
        if out_of_policy(p, at, grace, started=p.cluster_id in started)
        and not out_of_policy(p, at - run_interval, grace)
    ]


def _report_missed_slots(
    plan: RunPlan, report: RunReport, run_interval: timedelta, under_way: set[str], *, late: bool
) -> None:
    """Slots that ended without a snapshot, each counted by one run (see freshness), and the policies this
    schedule cannot keep. A `late` run (a delayed event) leaves the slots no run took to the runs after it."""
    at = plan.scheduled_time
    outcomes = {e["cluster"]: e["code"] for e in (*report.deferred, *report.skipped)}
    outcomes |= {e["cluster"]: e["error"] for e in report.failed}
    for cluster in plan.managed:
        assert cluster.policy is not None
        warning = schedule_warning(cluster.policy, run_interval)
        if warning is not None:
            logger.warning(f"policy warning: {warning}", extra={"cluster": cluster.cluster_id})
            report.add_warning(cluster.cluster_id, SCHEDULE_TOO_SPARSE, warning)
        missed = [] if late else slots_no_run_took(cluster, at, run_interval)
        untaken = cluster.cluster_id not in under_way and bool(cluster.create or cluster.skip or cluster.fail)
        reason = outcomes.get(cluster.cluster_id, "unknown") if untaken else None
        last = slot_left_untaken(cluster, at, run_interval, reason)
        for slot in [*missed, *([last] if last is not None else [])]:
            extra = {"cluster": slot.cluster_id, "slot": slot.slot.isoformat(), "reason": slot.reason}
            logger.warning("slot missed: it ended without a snapshot", extra=extra)
            report.add_missed(slot.cluster_id, slot.slot, slot.reason)


class _Outcome(Enum):
    DONE = auto()  # settled for this run: created, deferred, skipped or failed
    BUSY = auto()
    UNTRIED = auto()  # a parallel pass met the quota: tried again in order, one at a time


class _Actor:
    """Carries out a plan: deletes first (to free quota), then creates, most overdue first.

    Calls go out ACT_WORKERS at a time (workers.py). When the quota is short, creates go one at a time, most
    overdue first, so scarce room goes to the clusters that need it most.
    """

    def __init__(
        self,
        settings: Settings,
        rds: RdsAdapter,
        budget: Budget,
        report: RunReport,
        rng: random.Random,
        *,
        now: datetime | None,
    ) -> None:
        self._settings = settings
        self._protected: Mapping[str, str] = {}  # sources of copies: never deleted, even after a fresh look
        self._now = now
        self._lookups: Mapping[str, Cluster | None] = {}  # reused by the second look: one per missing cluster
        self._context = policy_context(settings)
        self._rds = rds
        self._budget = budget
        self._report = report
        self._rng = rng
        self._lock = threading.Lock()  # guards the report and the fields below across workers
        self._deleted: set[str] = set()
        self._repruned = False
        self._quota_full = False
        self._met_quota: dict[str, QuotaExceeded] = {}  # clusters refused for quota in a parallel pass
        self._parallel = False
        self.made_elsewhere: set[str] = set()  # clusters whose slot snapshot a concurrent run of ours made
        self._settled: set[str] = set()  # clusters an early create settled: the plan neither tries nor reports them
        self._early_stop = threading.Event()  # the identifier taken or the quota met: no more early creates

    def discovered(self, lookups: Mapping[str, Cluster | None], protected: Mapping[str, str]) -> None:
        """What discovery found that a second look (`_reprune`) must honour."""
        self._lookups, self._protected = lookups, protected

    @property
    def settled(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._settled)

    def pretend(self, plan: RunPlan) -> None:
        for cluster in plan.clusters:
            for snapshot in cluster.delete:
                self._report.add_deleted(cluster.cluster_id, snapshot.id)
        for cluster in plan.due:
            assert cluster.create is not None
            self._report.add_created(cluster.cluster_id, cluster.create)

    def prune(self, plan: RunPlan, *, reserve: float = 0.0, parallel: bool = True) -> None:
        """Delete what retention removes, while the run has `reserve` seconds to spare beyond its margin."""
        work = [(cluster.cluster_id, snapshot) for cluster in plan.clusters for snapshot in cluster.delete]
        kept = plan.kept_ids
        waiting = in_parallel(
            lambda item: not self._contained(item[0], True, lambda: self._delete(*item, kept, reserve=reserve)),
            work,
            parallel=parallel,
        ).count(True)
        if waiting:
            logger.info(f"{waiting} deletions wait for time later in this run or the next run")

    def _delete(self, cluster_id: str, snapshot: Snapshot, kept: frozenset[str], *, reserve: float) -> bool:
        """Delete one snapshot that its plan does not keep (`kept`); False when there was no time to try."""
        with self._lock:
            if snapshot.id in self._deleted:
                return True
            if not self._budget.allows(reserve):
                return False
            self._deleted.add(snapshot.id)
        extra = {"cluster": cluster_id, "snapshot": snapshot.id}
        refusal = _refusal(snapshot, self._settings.deployment, kept)
        if refusal is not None:  # planning never lets one through; if it did, refuse and say so loudly
            logger.error(refusal, extra=extra)
            self._record(self._report.add_failed, cluster_id, "RefusedDelete", refusal)
            return True
        try:
            self._rds.delete_snapshot(snapshot.id)
        except (SnapshotBusy, SnapshotNotFound) as error:
            logger.info(f"not deleted now, left for the next run: {error}", extra=extra)
            return True
        except RdsError as error:
            logger.error(f"delete failed: {error}", extra=extra)
            self._record(self._report.add_failed, cluster_id, error.code, error.message)
            return True
        logger.info("deleted", extra=extra)
        self._record(self._report.add_deleted, cluster_id, snapshot.id)
        return True

    def create(self, due: list[ClusterPlan]) -> None:
        quota = self._report.quota
        # Parallel only with room to spare: with ACT_WORKERS in flight, the last few could race for it. The
        # room left is what the quota read showed less the snapshots this run started since (early.py).
        room = None if quota is None else quota.max - quota.used - len(self._report.created)
        self._parallel = room is not None and room >= len(due) + ACT_WORKERS
        window = self._busy_retry_window()
        busy = self._attempt_all(due)
        attempt = 0
        while busy and not self._quota_full:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * self._rng.uniform(0.5, 1.0)
            if not self._budget.allows(delay) or not window(delay):
                break
            self._budget.sleep(delay)
            attempt += 1
            self._report.busy_retries += len(busy)
            busy = self._attempt_all(busy, retry=True)
        for cluster in busy:
            if self._quota_full:
                self._defer(cluster, Reason.QUOTA, "manual snapshot quota is full")
            else:
                retried = f"{self._settings.busy_retry.total_seconds():.0f} s"
                self._defer(cluster, Reason.BUSY, f"cluster stayed busy for {retried} of retries; the next run retries")

    def _busy_retry_window(self) -> Callable[[float], bool]:
        """Whether a wait of so many seconds still ends within busyRetrySeconds of now, on the run's own
        clock: a cluster in a long backup or maintenance must not keep every run alive to its timeout."""
        end = self._budget.remaining() - self._settings.busy_retry.total_seconds()
        return lambda delay: self._budget.remaining() - delay >= end

    def _attempt_all(self, clusters: list[ClusterPlan], *, retry: bool = False) -> list[ClusterPlan]:
        """Attempt each (in parallel while there is room); return the ones still busy, in order."""

        def attempt(cluster: ClusterPlan) -> _Outcome:
            return self._contained(cluster.cluster_id, _Outcome.DONE, lambda: self._attempt(cluster, retry=retry))

        outcomes = in_parallel(attempt, clusters, parallel=self._parallel)
        if _Outcome.UNTRIED in outcomes:  # the quota turned out short: one at a time from here, most overdue first
            self._parallel = False
            outcomes = [
                attempt(c) if outcome is _Outcome.UNTRIED else outcome
                for c, outcome in zip(clusters, outcomes, strict=True)
            ]
        return [c for c, outcome in zip(clusters, outcomes, strict=True) if outcome is _Outcome.BUSY]

    def _attempt(self, cluster: ClusterPlan, *, retry: bool = False) -> _Outcome:
        if self._quota_full:
            self._defer(cluster, Reason.QUOTA, "manual snapshot quota is full")
            return _Outcome.DONE
        if self._parallel and self._met_quota:
            return _Outcome.UNTRIED
        met = self._met_quota.pop(cluster.cluster_id, None)
        if met is not None and not self._repruned:  # refused in the parallel pass: straight to the second look
            return self._quota_exceeded(cluster, met, retry=retry)
        if not self._budget.allows():
            self._defer(cluster, Reason.TIME, "the run's time ran short; the next run takes it")
            return _Outcome.DONE
        assert cluster.create is not None
        extra = {"cluster": cluster.cluster_id, "snapshot": cluster.create}
        try:
            self._create(cluster)
        except QuotaExceeded as error:
            with self._lock:
                self._report.quota_exceeded += 1
            return self._quota_exceeded(cluster, error, retry=retry)
        except (ClusterBusy, SnapshotBusy) as error:
            # SnapshotBusy on create is undocumented; like a busy cluster it is retried, capped by the run.
            logger.info(f"cluster busy{' again' if retry else ''}: {error}", extra=extra)
            return _Outcome.BUSY
        except SnapshotExists as error:
            return self._already_exists(cluster, error)
        except RdsError as error:
            self._refused(cluster, error)
            return _Outcome.DONE
        self._started(cluster)
        return _Outcome.DONE

    def attempt_early(self, cluster: ClusterPlan) -> Snapshot | None:
        """A fresh slot's create before the plan (early.py): its answer settles the cluster as the plan's
        attempt would, or leaves it to the plan, which knows the listing: a busy cluster (a snapshot still
        creating, or a cluster to retry), the identifier taken (a duplicate delivery: no one-call lookup per
        cluster) or the quota met (the plan prunes first). The last two stop the early creates not yet sent.
        Returns the snapshot made, for the listing. A bug fails its cluster, once, never the run."""
        return self._contained(cluster.cluster_id, None, lambda: self._early(cluster), settle=cluster)

    def _early(self, cluster: ClusterPlan) -> Snapshot | None:
        if self._early_stop.is_set() or not self._budget.allows():
            return None
        extra = {"cluster": cluster.cluster_id, "snapshot": cluster.create}
        try:
            made = self._create(cluster)
        except SnapshotExists as error:
            if error.retried:  # our own first attempt may have made it: look, as the plan's attempt does
                self._settle(cluster)
                self._already_exists(cluster, error)
                return None
            logger.info(f"early creates stop: {error}; the plan takes the rest", extra=extra)
            self._early_stop.set()
            return None
        except QuotaExceeded as error:
            logger.info(f"early creates stop: {error}; the plan prunes first", extra=extra)
            with self._lock:
                self._report.quota_exceeded += 1
            self._early_stop.set()
            return None
        except (ClusterBusy, SnapshotBusy) as error:
            logger.info(f"cluster busy: {error}; the plan takes it", extra=extra)
            return None
        except RdsError as error:
            self._settle(cluster)
            self._refused(cluster, error)
            return None
        self._settle(cluster)
        self._started(cluster)
        return made

    def _settle(self, cluster: ClusterPlan) -> None:
        with self._lock:
            self._settled.add(cluster.cluster_id)

    def _started(self, cluster: ClusterPlan) -> None:
        assert cluster.create is not None
        logger.info("snapshot started", extra={"cluster": cluster.cluster_id, "snapshot": cluster.create})
        self._record(self._report.add_created, cluster.cluster_id, cluster.create)

    def _refused(self, cluster: ClusterPlan, error: RdsError) -> None:
        """A create RDS refused for good in this run (not busy, not the quota, not the identifier taken)."""
        extra = {"cluster": cluster.cluster_id, "snapshot": cluster.create}
        if isinstance(error, ClusterNotFound):
            self._record(self._report.add_skipped, cluster.cluster_id, Reason.NOT_FOUND, "cluster was deleted")
        elif isinstance(error, AccessDenied):
            code, message = _denied(cluster, error)
            logger.error(f"snapshot refused: {message}", extra=extra)
            self._record(self._report.add_failed, cluster.cluster_id, code, message)
        else:
            logger.error(f"snapshot failed: {error}", extra=extra)
            self._record(self._report.add_failed, cluster.cluster_id, error.code, error.message)

    def _already_exists(self, cluster: ClusterPlan, error: SnapshotExists) -> _Outcome:
        """The identifier appeared since the sweep. Ours, after an SDK retry: our own first attempt made it
        (created). Ours at the first attempt: a concurrent run made it (done, not counted twice). Someone
        else's: reported, never counted done. Gone again: the next run in this slot tries again."""
        assert cluster.create is not None
        extra = {"cluster": cluster.cluster_id, "snapshot": cluster.create}
        try:
            existing = self._rds.snapshot(cluster.create)
        except RdsError as describe_error:
            self._record(self._report.add_failed, cluster.cluster_id, describe_error.code, describe_error.message)
            return _Outcome.DONE
        if existing is None:
            self._defer(cluster, Reason.BUSY, f"snapshot {cluster.create} was reported as existing, then not found")
        elif not slot_snapshot_is_ours(self._context, cluster.cluster_id, existing):
            code, message = identifier_taken(existing)
            logger.error(message, extra=extra)
            self._record(self._report.add_failed, cluster.cluster_id, code, message)
        elif error.retried:
            logger.info("snapshot started (the SDK's retry found our first attempt's snapshot)", extra=extra)
            self._record(self._report.add_created, cluster.cluster_id, cluster.create)
        else:
            logger.info("snapshot for this slot already exists (a concurrent run made it)", extra=extra)
            with self._lock:
                self.made_elsewhere.add(cluster.cluster_id)
        return _Outcome.DONE

    def _create(self, cluster: ClusterPlan) -> Snapshot | None:
        assert cluster.create is not None
        tags = snapshot_tags(self._context, cluster)
        return self._rds.create_snapshot(cluster.create, cluster.cluster_id, tags)

    def _quota_exceeded(self, cluster: ClusterPlan, error: QuotaExceeded, *, retry: bool) -> _Outcome:
        """Prune again (a fresh look may free room) and try once more; if still full, start nothing more.
        A parallel worker only notes it: the rest is done one at a time, most overdue first."""
        logger.warning(f"quota exceeded: {error.message}", extra={"cluster": cluster.cluster_id})
        if self._parallel:
            with self._lock:
                self._met_quota[cluster.cluster_id] = error
            return _Outcome.UNTRIED
        if not self._repruned:
            self._repruned = True
            self._reprune()
            return self._attempt(cluster, retry=retry)
        self._quota_full = True
        self._defer(cluster, Reason.QUOTA, f"manual snapshot quota is full: {error.message}")
        return _Outcome.DONE

    def _reprune(self) -> None:
        try:
            fresh = keep_sources(
                plan_run(
                    self._context,
                    self._rds.clusters(),
                    self._rds.manual_snapshots(),
                    _planning_time(self._report.scheduled_time, self._now),
                    now=self._now,
                    lookups=self._lookups,
                ),
                self._protected,
            )
        except RdsError as error:  # the retry still happens; only the chance to free room is lost
            logger.error(f"could not list again to free quota: {error}")
            return
        self.prune(fresh)  # quota is the blocker now: freeing room comes first, four deletions at a time

    def _defer(self, cluster: ClusterPlan, code: Reason, reason: str) -> None:
        logger.info(f"deferred: {reason}", extra={"cluster": cluster.cluster_id, "reason": code.value})
        self._record(self._report.add_deferred, cluster.cluster_id, code, reason)

    def _contained(
        self, cluster_id: str, fallback: R, work: Callable[[], R], *, settle: ClusterPlan | None = None
    ) -> R:
        """An unexpected error (a bug) fails its cluster, never the run: other workers may already have
        deleted or created, and the report must say so. `settle`: the plan does not try that cluster again."""
        try:
            return work()
        except Exception as error:
            if settle is not None:
                self._settle(settle)
            logger.exception("unexpected error", extra={"cluster": cluster_id})
            self._record(self._report.add_failed, cluster_id, "InternalError", repr(error))
            return fallback

    def _record(self, write: Callable[..., None], *args: object) -> None:
        """Every change to the report goes through here: workers write it from several threads."""
        with self._lock:
            write(*args)


def _planning_time(at: datetime, now: datetime | None) -> datetime:
    """What a run plans for: a run a little ahead of the clock (within the skew) plans for the clock, on its
    first look and on its second alike: no slot is taken early, no policy-change grace ends early."""
    return min(at, now or at)


def _denied(cluster: ClusterPlan, error: AccessDenied) -> tuple[str, str]:
    """Access denied on create; when the cluster hands a hold tag to its snapshots, say so: the stack denies
    setting a hold, and RDS may authorise the tags a snapshot inherits (CopyTagsToSnapshot) as if requested."""
    hold = cluster.cluster.inherited_hold if cluster.cluster is not None else None
    if hold is None:
        return error.code, error.message
    assert cluster.cluster is not None
    return (
        "HoldTagInherited",
        f"access denied: cluster {cluster.cluster_id} copies its tags to snapshots (CopyTagsToSnapshot) and "
        f"carries the tag {hold}={cluster.cluster.tags[hold]!r}, which no snapshot of this deployment may be given "
        f"(the stack denies setting a hold); remove {hold} from the cluster (put holds on snapshots) or turn "
        f"off CopyTagsToSnapshot. RDS said: {error.message}",
    )


def _refusal(snapshot: Snapshot, deployment: str, kept: frozenset[str]) -> str | None:
    """The last gate before the one irreversible act: planning already excludes these; this proves it."""
    if snapshot.id in kept:
        return f"refused to delete {snapshot.id}: the same plan keeps it"
    if not snapshot.managed_by(deployment) or snapshot.held or snapshot.status != AVAILABLE:
        return f"refused to delete {snapshot.id}: it is not an available, un-held snapshot of this deployment"
    return None
