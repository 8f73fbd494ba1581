"""Creates started while the snapshot sweep is still being read: the sweep is a chain of pages, one round trip
after another, that leaves most of the API rate unused, and a run at a slot's start has a create to make for
most clusters.

Only a cluster whose slot began after the previous run (planning.fresh_slots) is created early: its slot's
snapshot can exist only if this event came twice. Creating is idempotent by identifier and never deletes;
every deletion still waits for the whole sweep. Anything but a plain success (the identifier taken: a
duplicate delivery or a concurrent run; a busy cluster; any error) stops the early creates, and that cluster
and the rest are left to the plan, which knows the listing: at most ACT_WORKERS calls are made twice. When
the sweep ends, the creates stop too, and the plan takes what is left, most overdue first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from snapshot_scheduler.adapters.rds import RdsAdapter, RdsError
from snapshot_scheduler.model import Cluster, Quota, Snapshot
from snapshot_scheduler.observability import logger
from snapshot_scheduler.planning import ClusterPlan, PolicyContext, fresh_slots, snapshot_tags
from snapshot_scheduler.workers import ACT_WORKERS, in_parallel

Started = tuple[ClusterPlan, Snapshot]


class EarlyCreates:
    """Start the fresh slots' snapshots beside the snapshot sweep (`start`), then stop and hand over what
    was started (`stop`)."""

    def __init__(
        self,
        context: PolicyContext,
        rds: RdsAdapter,
        *,
        at: datetime,
        now: datetime,
        run_interval: timedelta,
        allows: Callable[[], bool],
    ) -> None:
        self._context = context
        self._rds = rds
        self._at = at
        self._now = now
        self._run_interval = run_interval
        self._allows = allows
        self._stopped = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-creates")
        self._work: Future[list[Started | None]] | None = None

    def start(self, clusters: Sequence[Cluster], quota: Quota | None) -> None:
        """With the cluster listing and the quota read: start, unless the quota lacks room for every one
        (then the plan decides who gets it, most overdue first)."""
        fresh = fresh_slots(self._context, clusters, self._at, self._now, self._run_interval)
        if not fresh or quota is None or quota.max - quota.used < len(fresh) + ACT_WORKERS:
            return
        self._work = self._pool.submit(in_parallel, self._create, fresh)

    def stop(self) -> list[Started]:
        """No more new creates; wait for those in flight; what was started, in the order of the clusters."""
        self._stopped.set()
        try:
            return [] if self._work is None else [done for done in self._work.result() if done is not None]
        finally:
            self._pool.shutdown()

    def _create(self, plan: ClusterPlan) -> Started | None:
        if self._stopped.is_set() or not self._allows():
            return None
        assert plan.create is not None
        extra = {"cluster": plan.cluster_id, "snapshot": plan.create}
        try:
            made = self._rds.create_snapshot(plan.create, plan.cluster_id, snapshot_tags(self._context, plan))
        except RdsError as error:
            self._stopped.set()
            logger.info(f"early creates stop: {error}; the plan takes this cluster and the rest", extra=extra)
            return None
        except Exception:  # a bug: the plan meets this cluster again, and reports what it finds
            self._stopped.set()
            logger.exception("early creates stop: unexpected error", extra=extra)
            return None
        if made is None:  # started, but RDS named no record: the plan's listing decides
            self._stopped.set()
            return None
        logger.info("snapshot started", extra=extra)
        return plan, made
