"""Deletions caused by a change of policy wait a grace period. Pure: no I/O, no clock; time is an argument.

Tagging a cluster is a far wider permission than deleting snapshots, so a one-word tag edit (`gfs` to
`daily`) must not erase years of history in the next run. Every snapshot records the policy it was taken
under (tags.POLICY; a DR copy, its DR policy under tags.DR_POLICY: a `Record` says which tag and how to read
its retention). While the current policy has not yet been recorded, without interruption, for the grace, a
deletion it wants waits (is *pending*) when

- the snapshot was taken under another policy (it is evidence of the earlier policy: deleting it could
  make the change look older than it is), or
- a policy recorded on one of the cluster's snapshots would keep it (the current policy keeps fewer).

The grace starts at the creation of the first snapshot of the newest unbroken run of snapshots recording the
current policy: RDS sets that time, only a real run under the new tag makes such a snapshot, and retries or
dry runs make none. A revert that lasts a slot breaks the run, so a later change starts a new grace; the
evidence that separates two runs is never deleted during a grace. Ordinary retention, where every snapshot
records the current policy or the current run has stood for the grace, is never delayed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from snapshot_scheduler import tags
from snapshot_scheduler.model import Snapshot
from snapshot_scheduler.policy import Policy, PolicyError, parse_policy

DEFAULT_GRACE = timedelta(hours=24)
UNREADABLE = "(unreadable)"


@dataclass(frozen=True)
class Record:
    """Where snapshots record the policy they were made under (a tag key), and how to read its retention
    from that text (raising PolicyError when it cannot)."""

    tag_key: str
    parse: Callable[[str], Policy]

    def of(self, snapshot: Snapshot) -> str:
        """The policy `snapshot` was made under, as recorded on it."""
        return snapshot.tags.get(self.tag_key, "")

    def read(self, text: str) -> Policy | None:
        return _parse(self, text)

    def canonical(self, text: str) -> str | None:
        """The retention part of a recorded text, spelled out; None when it does not parse."""
        policy = self.read(text)
        return None if policy is None else policy.spec()


OWN = Record(tags.POLICY, parse_policy)  # the cluster's own snapshots


@dataclass(frozen=True)
class Pending:
    """A deletion the current policy wants that waits for the grace."""

    snapshot: Snapshot
    policy: str  # the current policy, spelled out: the one that would delete it
    kept_by: str  # the recorded policy it is kept for
    since: datetime | None  # creation of the first snapshot under the current policy (None: none yet)
    deletable_after: datetime  # at the earliest (while `since` is None, the grace has not begun)

    @property
    def reason(self) -> str:
        return (
            f"policy change pending: kept for {self.kept_by!r} until {self.deletable_after.isoformat()} at the earliest"
        )

    def entry(self) -> dict[str, str | None]:
        """The run report's `pending` entry (less the cluster)."""
        return {
            "snapshot": self.snapshot.id,
            "policy": self.policy,
            "kept_by": self.kept_by,
            "since": None if self.since is None else self.since.isoformat(),
            "deletable_after": self.deletable_after.isoformat(),
        }


@dataclass(frozen=True)
class Grace:
    """Retention's deletions after the grace: what goes now, what waits."""

    delete: tuple[Snapshot, ...]
    pending: tuple[Pending, ...] = ()
    # The first snapshot under the current policy, kept while the grace runs: the grace counts from it, so
    # deleting it would restart the grace run after run (keep-last=1 hourly would never prune).
    anchor: Snapshot | None = None


def hold_back(
    policy: Policy,
    snapshots: Sequence[Snapshot],
    delete: Sequence[Snapshot],
    *,
    at: datetime,
    grace: timedelta,
    deletes_under: Callable[[Policy], set[str]],
    record: Record = OWN,
) -> Grace:
    """Split `delete` (what `policy` removes from the cluster's `snapshots` at `at`) into what goes now and
    what waits. `deletes_under(q)` is what policy `q` would remove from the same snapshots; `record` says
    where each snapshot records its policy (the current one's retention is `policy`)."""
    spec = policy.spec()
    others = {text for text in {record.of(s) for s in snapshots} - {spec} if record.canonical(text) != spec}
    if not delete or grace <= timedelta(0) or not others:
        return Grace(tuple(delete))
    anchor = first_under(snapshots, spec, record)
    since = None if anchor is None else anchor.created
    if since is not None and at >= since + grace:
        return Grace(tuple(delete))
    deletable_after = (since or at) + grace
    keeps = _Keeps(others, deletes_under, record)
    now: list[Snapshot] = []
    pending: list[Pending] = []
    kept_anchor = None
    for snapshot in delete:
        own = record.of(snapshot)
        kept_by = keeps.first_keeping(snapshot, own=own if own in others else None)
        if kept_by is not None:
            pending.append(Pending(snapshot, spec, kept_by, since, deletable_after))
        elif snapshot is anchor:
            kept_anchor = snapshot
        else:
            now.append(snapshot)
    return Grace(tuple(now), tuple(pending), kept_anchor)


def first_under(snapshots: Sequence[Snapshot], spec: str, record: Record = OWN) -> Snapshot | None:
    """The oldest snapshot in the newest unbroken run of snapshots recording `spec`, in creation order
    (RDS's time, which no tag can change); None when the newest records something else."""
    first = None
    dated = [(s.created, s) for s in snapshots if s.created is not None]
    for _, snapshot in sorted(dated, key=lambda pair: pair[0], reverse=True):
        text = record.of(snapshot)
        if text != spec and record.canonical(text) != spec:
            break
        first = snapshot
    return first


class _Keeps:
    """Which recorded policies keep a snapshot; each policy's retention worked out once, when first asked."""

    def __init__(self, specs: set[str], deletes_under: Callable[[Policy], set[str]], record: Record) -> None:
        self._specs = sorted(specs)
        self._deletes_under = deletes_under
        self._record = record
        self._deleted: dict[str, set[str] | None] = {}

    def first_keeping(self, snapshot: Snapshot, *, own: str | None) -> str | None:
        """The first recorded policy (its own first) that keeps `snapshot`; else its own recorded policy when
        that is not the current one (evidence of the change); else None."""
        for spec in ([] if own is None else [own]) + self._specs:
            deleted = self._deleted_by(spec)
            if deleted is None or snapshot.id not in deleted:
                return spec or UNREADABLE
        return own

    def _deleted_by(self, spec: str) -> set[str] | None:
        """What `spec` would delete; None when it does not parse (then it keeps everything)."""
        if spec not in self._deleted:
            policy = self._record.read(spec)
            self._deleted[spec] = None if policy is None else self._deletes_under(policy)
        return self._deleted[spec]


@lru_cache(maxsize=1024)
def _parse(record: Record, text: str) -> Policy | None:
    try:
        return record.parse(text)
    except PolicyError:
        return None
