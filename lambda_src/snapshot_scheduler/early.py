"""Creates started while the snapshot sweep is still being read: the sweep is a chain of pages, one round trip
after another, that leaves most of the API rate unused, and a run at a slot's start has a create to make for
most clusters.

Only a cluster whose slot began after the previous run (planning.fresh_slots) is created early: its slot's
snapshot can exist only if this event came twice or another run took it. Creating is idempotent by identifier
and never deletes; every deletion still waits for the whole sweep. Each fresh slot is tried once, four at a
time, whatever the sweep is doing: the service's actor settles each answer as the plan would, or leaves the
cluster to the plan (a busy cluster, the identifier taken, the quota met: the last two stop every early create
not yet sent). So which clusters are tried early never depends on how fast the sweep goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from snapshot_scheduler.model import Cluster, Quota, Snapshot, by_id
from snapshot_scheduler.planning import ClusterPlan, PolicyContext, fresh_slots
from snapshot_scheduler.workers import ACT_WORKERS, in_parallel

Attempt = Callable[[ClusterPlan], Snapshot | None]  # the snapshot made, for the listing; None: none to add


class EarlyCreates:
    """`start` the fresh slots' creates once the clusters and the quota are read; `finish` waits for them and
    gives the snapshots they made."""

    def __init__(
        self, context: PolicyContext, attempt: Attempt, *, at: datetime, now: datetime, run_interval: timedelta
    ) -> None:
        self._context = context
        self._attempt = attempt
        self._at = at
        self._now = now
        self._run_interval = run_interval
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-creates")
        self._work: Future[list[Snapshot | None]] | None = None

    def start(self, clusters: Sequence[Cluster], quota: Quota | None) -> None:
        """Unless the quota lacks room for a create of every cluster that carries a policy tag: then the plan,
        after pruning, gives the room to the most overdue."""
        fresh = fresh_slots(self._context, clusters, self._at, self._now, self._run_interval)
        tagged = sum(self._context.tag_key in cluster.tags for cluster in by_id(clusters).values())
        if fresh and quota is not None and quota.max - quota.used >= tagged + ACT_WORKERS:
            self._work = self._pool.submit(in_parallel, self._attempt, fresh)

    def finish(self) -> list[Snapshot]:
        """Wait for every early create; the snapshots they made, as RDS answered them (creating)."""
        try:
            return [] if self._work is None else [made for made in self._work.result() if made is not None]
        finally:
            self._pool.shutdown()
