"""A month of hourly scheduled runs of the real handler against moto plus the fidelity layer.

Given a fleet with every kind of policy (presets, a named policy, inline ones in Berlin and New York across
their clock changes, a weekly one), snapshots that take minutes, an operator's hold, snapshots that are not
ours (hand-made, another deployment's, AWS Backup's, automated), a cluster whose tag is set to off, one that
is deleted mid-month, one retagged from gfs to daily (its history waits for the policy-change grace), a
cluster of another engine, and a three-hour outage of the scheduler; when 740+ hourly
runs happen on the simulated clock (autumn in the default suite, spring too with `-m slow`); then after
every run:

- the snapshots it created are exactly the ones due: one per wall-clock slot, the slots computed here by
  walking UTC time and reading the policy's zone (not with the engine's schedule module), caught up after
  the outage but never back-filled;
- the snapshots of ours that exist are exactly a reference model's: restic retention (`plan_retention`, the
  pure oracle, unit-tested against restic's own results) applied run by run, holds out of the counters,
  orphans pruned by their recorded policy, deletions a policy change caused held for the grace and reported
  pending;
- nothing else was touched, and the run made the minimum of API calls.

Three clusters also carry a DR tag (copies to one or two other regions, one cluster encrypted and copied under
the target's key). Copies take hours, and RDS queues copies of one source; someone else's copies fill the
5-copy limit one day; a copy fails; a cluster loses its DR tag while its copy is in progress. After every run
the copies that exist in each region, and their state, are exactly a DR reference model's, written here
without the engine's DR code: the DR slots by hand, copies due from the newest snapshot taken in the slot,
most overdue first within the limit, restic retention of the copies by the DR policy they record, failed
copies deleted and copied again; and the cluster's own retention keeps what is being copied.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from snapshot_scheduler.policy import Policy, parse_policy
from snapshot_scheduler.retention import plan_retention

from tests.integration.scenario import (
    CLUSTER,
    DEPLOYMENT,
    HOLD,
    MARKER,
    POLICY,
    SLOT,
    TAG,
    created,
    deleted,
    everything,
    fresh_rds,
    moto_once,
    reasons,
    seed_ours,
    slot_id,
)
from tests.support.fidelity import RdsFidelity, Regions, SimClock, TokenBucket
from tests.support.harness import rds_client, scheduled_lambda

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RUNS = 31 * 24
CREATING_FOR = timedelta(minutes=7)
NAMED = {"critical": "every=2h at=01:00 tz=America/New_York keep-last=6 keep-daily=3"}
POLICY_CHANGE_GRACE = timedelta(hours=24)  # the stack's default policyChangeGraceHours
GFS_SPEC = "every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4 keep-monthly=12 keep-yearly=7"


@dataclass(frozen=True)
class Schedule:
    """A policy's slots, written out by hand: every `step` hours from `at`, local time in `tz`."""

    step: int
    at: time
    tz: str = "UTC"
    weekday: int | None = None  # 0 = Monday, for weekly policies

    def slots(self, start: datetime, end: datetime) -> list[datetime]:
        """Walk UTC time in half hours, noting the first instant at which each local wall-clock time occurs
        (an autumn hour that repeats does not make a second slot); then, day by day, the slot's wall-clock
        time, or when a spring jump skipped it, the wall-clock time an hour later (shifted by the jump)."""
        zone = ZoneInfo(self.tz)
        first: dict[tuple[date, int, int], datetime] = {}
        instant = start.replace(minute=0)
        while instant <= end:
            local = instant.astimezone(zone)
            first.setdefault((local.date(), local.hour, local.minute), instant)
            instant += timedelta(minutes=30)
        days = sorted({day for day, _, _ in first})[1:-1]  # whole local days only
        found = set()
        for day in days:
            if self.weekday is not None and day.weekday() != self.weekday:
                continue
            for hour in range(self.at.hour % self.step, 24, self.step):
                wall, shifted = (day, hour, self.at.minute), (day, hour + 1, self.at.minute)
                found.add(first[wall] if wall in first else first[shifted])
        return sorted(found)


@dataclass
class Model:
    """What should exist for one cluster: our snapshots (identifier -> slot), the policy each records, when
    RDS says each was created, and which are held."""

    cluster: str
    policy: Policy
    schedule: Schedule
    managed: bool = True  # False once the tag is removed or the cluster deleted: an orphan
    snapshots: dict[str, datetime] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    slots: list[datetime] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)  # deletions a policy change caused, waiting (last step)
    kept_for_copies: set[str] = field(default_factory=set)  # what retention removes but a copy needs (last step)

    def current_slot(self, at: datetime) -> datetime:
        return self.slots[bisect.bisect_right(self.slots, at) - 1]

    def due(self, at: datetime) -> bool:
        """A managed cluster whose current slot has no snapshot (after this run's step)."""
        return self.managed and slot_id(self.cluster, self.current_slot(at)) not in self.snapshots

    def last_run_of_slot(self, at: datetime) -> bool:
        """No hourly run after `at` falls in its current slot."""
        return at + HOUR >= self.slots[bisect.bisect_right(self.slots, at)]

    def step(
        self, at: datetime, *, refused: bool = False, copied: set[str] | None = None
    ) -> tuple[set[str], str | None]:
        """One run: retention first (held ones out of the counters; sources of copies in progress or starting
        in this run, `copied`, kept), then the slot's snapshot if missing and the cluster does not refuse it
        (stopped, or busy for the whole run)."""
        candidates = [(ident, slot) for ident, slot in self.snapshots.items() if ident not in self.held]
        remove = self.removed_by(self.policy, candidates)
        self.pending, anchor = self.waiting(at, candidates, remove)
        remove -= self.pending | anchor
        self.kept_for_copies = remove & (copied or set())
        remove -= self.kept_for_copies
        for ident in remove:
            del self.snapshots[ident]
        slot = self.current_slot(at)
        ident = slot_id(self.cluster, slot)
        if not self.managed or refused or ident in self.snapshots:
            return remove, None
        self.snapshots[ident] = slot
        self.recorded[ident] = self.policy.spec()
        return remove, ident

    @staticmethod
    def removed_by(policy: Policy, candidates: list[tuple[str, datetime]]) -> set[str]:
        return {ident for ident, _ in plan_retention(policy, candidates, key=lambda item: item[1]).remove}

    def waiting(
        self, at: datetime, candidates: list[tuple[str, datetime]], remove: set[str]
    ) -> tuple[set[str], set[str]]:
        """The policy-change grace (README, Changing a policy), written out: while the newest unbroken run of
        snapshots recording the current policy is younger than the grace (by creation time), what it would
        delete waits if taken under another policy or kept by one; the run's first snapshot is kept too."""
        spec = self.policy.spec()
        others = {self.recorded[ident] for ident in self.snapshots} - {spec}
        if not others:
            return set(), set()
        newest_first = sorted(self.snapshots, key=lambda ident: self.created[ident], reverse=True)
        run = []
        for ident in newest_first:
            if self.recorded[ident] != spec:
                break
            run.append(ident)
        if run and at >= self.created[run[-1]] + POLICY_CHANGE_GRACE:
            return set(), set()
        kept_by_others = {c for c, _ in candidates} - set.intersection(
            *(self.removed_by(parse_policy(other), candidates) for other in others)
        )
        pending = {ident for ident in remove if self.recorded[ident] != spec or ident in kept_by_others}
        return pending, {run[-1]} & (remove - pending) if run else set()


# cluster -> (tag value, its slots by hand)
FLEET: dict[str, tuple[str, Schedule]] = {
    "hourly-db": ("hourly", Schedule(1, time(3, 0))),
    "daily-db": ("daily", Schedule(24, time(3, 0))),
    "gfs-db": ("gfs", Schedule(24, time(3, 0))),
    "weekly-db": ("every=1w on=mon tz=Europe/Berlin keep-last=3", Schedule(24, time(3, 0), "Europe/Berlin", 0)),
    "berlin-db": (
        "every=1d at=02:30 tz=Europe/Berlin keep-daily=5 keep-weekly=2",
        Schedule(24, time(2, 30), "Europe/Berlin"),
    ),
    "ny-db": ("critical", Schedule(2, time(1, 0), "America/New_York")),
    "sunday-db": (  # both clock changes fall on a Sunday at 02:00-03:00 in Berlin: this slot is in them
        "every=1w on=sun at=02:30 tz=Europe/Berlin keep-last=2",
        Schedule(24, time(2, 30), "Europe/Berlin", 6),
    ),
    "mumbai-db": ("every=12h at=09:00 tz=Asia/Kolkata keep-daily=3", Schedule(12, time(9, 0), "Asia/Kolkata")),
    "untag-db": ("every=1h keep-last=3 keep-daily=4", Schedule(1, time(3, 0))),
    "gone-db": ("every=6h at=00:00 keep-within=2d", Schedule(6, time(0, 0))),
}


# ------------------------------------------------------------------------------------------- DR copies

SOURCE_REGION, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
DR_TAG = "snapshot-dr"
DR_MARKER = "snapshot-scheduler:dr-deployment"  # spelled out, as the tag contract
DR_TARGETS = {"dr-west": {"region": WEST, "kmsKey": "alias/snapshot-dr"}, "dr-eu": {"region": EU}}
# How long a copy takes once RDS begins it (a copy waits for the copies of its source asked for before it);
# never a whole number of hours, so no copy ends near a run
COPYING_FOR = {WEST: timedelta(hours=4, minutes=20), EU: timedelta(hours=2, minutes=50)}
COPY_LIMIT = 5  # copies in progress per destination region, anyone's

# cluster -> (DR tag, its words as a policy (every= defaults to 1d), its DR slots by hand, target regions)
DR_FLEET: dict[str, tuple[str, str, Schedule, tuple[str, ...]]] = {
    "daily-db": ("to=dr-west+dr-eu keep-daily=3", "every=1d keep-daily=3", Schedule(24, time(3, 0)), (EU, WEST)),
    # its own keep-last=3 would prune each day's copied snapshot while it is still being copied
    "untag-db": ("to=dr-west keep-last=2", "every=1d keep-last=2", Schedule(24, time(3, 0)), (WEST,)),
    "berlin-db": (  # encrypted: copied under the target's key
        "to=dr-west at=02:30 tz=Europe/Berlin keep-daily=4",
        "every=1d at=02:30 tz=Europe/Berlin keep-daily=4",
        Schedule(24, time(2, 30), "Europe/Berlin"),
        (WEST,),
    ),
}
ENCRYPTED = {"berlin-db"}


def copy_id(cluster: str, slot: datetime) -> str:
    """Our copy's identifier, by hand: the slot's identifier and the source region without its hyphens."""
    return f"{slot_id(cluster, slot)}-dr-useast1"


@dataclass
class Copy:
    """A copy as RDS shows it: `copying` until `ready`, `failed` from `failed` on. RDS begins it (`began`)
    once the copies of its source asked for before it have ended."""

    cluster: str
    slot: datetime
    source: str
    began: datetime
    ready: datetime
    failed: datetime | None = None

    def status(self, at: datetime) -> str:
        if self.failed is not None:
            return "failed"
        return "copying" if at < self.ready else "available"

    @property
    def ended(self) -> datetime:
        return self.ready if self.failed is None else max(self.began, self.failed)


@dataclass
class DrRun:
    """What one run should do about copies. The limit on copies in progress says how many start, most overdue
    first; of copies equally overdue at its edge (`tied`: region -> (how many start, which may)) any may
    start, so `settle` takes the run's choice among them."""

    due: dict[tuple[str, str], tuple[str, str]]  # (cluster, region) -> (copy, source)
    started: set[tuple[str, str]]
    deferred: set[tuple[str, str]]  # for the copy limit
    tied: dict[str, tuple[int, set[tuple[str, str]]]]
    deleted: set[tuple[str, str]]  # (region, copy)
    failed: set[tuple[str, str]]  # (cluster, region) of copies found failed
    copying: dict[str, set[str]]  # cluster -> its snapshots being copied

    def settle(self, chosen: set[tuple[str, str]]) -> None:
        for region, (count, candidates) in self.tied.items():
            assert len(candidates & chosen) == count, (region, count, candidates, chosen)
            self.started |= candidates & chosen
            self.deferred |= candidates - chosen
        self.tied = {}

    @property
    def copied(self) -> dict[str, set[str]]:
        """cluster -> its snapshots the own retention keeps: those being copied, and those a copy starts from."""
        copied = {cluster: set(sources) for cluster, sources in self.copying.items()}
        for cluster, region in self.started:
            copied.setdefault(cluster, set()).add(self.due[(cluster, region)][1])
        return copied


@dataclass
class DrModel:
    """What should exist in each DR region: our copies (region -> identifier -> Copy), and the copies someone
    else started into the west region. `tagged`: the clusters carrying a DR tag; `recorded`: the DR policy
    each cluster's copies record, which prunes them (also once the tag is gone)."""

    models: dict[str, Model]
    slots: dict[str, list[datetime]]
    tagged: set[str]
    recorded: dict[str, str]
    copies: dict[str, dict[str, Copy]] = field(default_factory=lambda: {EU: {}, WEST: {}})
    others: list[Copy] = field(default_factory=list)

    def slot(self, cluster: str, at: datetime) -> datetime:
        slots = self.slots[cluster]
        return slots[bisect.bisect_right(slots, at) - 1]

    def plan(self, at: datetime) -> DrRun:
        """The run at `at`: retention over each cluster's copies in each region (failed ones deleted), then the
        copies due, most overdue first, within the limit of copies in progress per region."""
        run = DrRun({}, set(), set(), {}, set(), set(), {})
        for region, copies in self.copies.items():
            for cluster in {copy.cluster for copy in copies.values()}:
                self.prune(run, region, cluster, at)
        for region in self.copies:
            self.start(run, region, at)
        for copies in self.copies.values():
            for copy in copies.values():
                if copy.status(at) == "copying":
                    run.copying.setdefault(copy.cluster, set()).add(copy.source)
        return run

    def prune(self, run: DrRun, region: str, cluster: str, at: datetime) -> None:
        """Failed copies go; the available ones by the recorded DR policy, never the newest."""
        mine = {ident: copy for ident, copy in self.copies[region].items() if copy.cluster == cluster}
        failed = {ident for ident, copy in mine.items() if copy.status(at) == "failed"}
        available = [(ident, copy.slot) for ident, copy in mine.items() if copy.status(at) == "available"]
        newest = max(available, key=lambda item: item[1])[0] if available else None
        remove = Model.removed_by(parse_policy(self.recorded[cluster]), available) - {newest}
        run.deleted |= {(region, ident) for ident in remove | failed}
        run.failed |= {(cluster, region)} if failed else set()

    def start(self, run: DrRun, region: str, at: datetime) -> None:
        """The DR slots without a copy in `region` (in any state) whose cluster has a snapshot taken in the slot:
        copied from the newest, most overdue first while fewer than five copies are in progress there."""
        waiting = []
        for cluster in self.tagged:
            slot = self.slot(cluster, at)
            sources = [(taken, ident) for ident, taken in self.models[cluster].snapshots.items() if slot <= taken <= at]
            if region not in DR_FLEET[cluster][3] or copy_id(cluster, slot) in self.copies[region] or not sources:
                continue
            mine = [
                c.slot for c in self.copies[region].values() if c.cluster == cluster and c.status(at) == "available"
            ]
            overdue = slot - max(mine) if mine else timedelta.max
            run.due[(cluster, region)] = (copy_id(cluster, slot), max(sources)[1])
            waiting.append((overdue, (cluster, region)))
        others = self.others if region == WEST else []
        in_progress = [c for c in (*self.copies[region].values(), *others) if c.status(at) == "copying"]
        room = max(0, COPY_LIMIT - len(in_progress))
        if room >= len(waiting):
            run.started |= {key for _, key in waiting}
            return
        edge = sorted((overdue for overdue, _ in waiting), reverse=True)[room]
        run.started |= {key for overdue, key in waiting if overdue > edge}
        run.deferred |= {key for overdue, key in waiting if overdue < edge}
        tied = {key for overdue, key in waiting if overdue == edge}
        run.tied[region] = (room - sum(overdue > edge for overdue, _ in waiting), tied)

    def apply(self, at: datetime, run: DrRun, order: list[tuple[str, str]]) -> None:
        """The run's deletes, then its copies in the order it asked for them (`order`: (cluster, region)),
        each begun by RDS once the copies of its source asked for before it have ended."""
        for region, ident in run.deleted:
            del self.copies[region][ident]
        for cluster, region in order:
            ident, source = run.due[(cluster, region)]
            earlier = [c.ended for copies in self.copies.values() for c in copies.values() if c.source == source]
            began = max([at, *earlier])
            slot = self.slot(cluster, at)
            self.copies[region][ident] = Copy(cluster, slot, source, began, began + COPYING_FOR[region])

    def fail(self, at: datetime, source: str) -> None:
        for copies in self.copies.values():
            for copy in copies.values():
                if copy.source == source and copy.status(at) == "copying":
                    copy.failed = at

    def statuses(self, region: str, at: datetime) -> dict[str, str]:
        return {ident: copy.status(at) for ident, copy in self.copies[region].items()}


@dataclass(frozen=True)
class Season:
    """A month of runs from `start` (00:00 UTC on a Monday), with the operator's doings and an outage in it."""

    start: datetime

    @property
    def runs(self) -> list[datetime]:
        every_hour = (self.start + n * HOUR for n in range(RUNS))
        return [at for at in every_hour if at not in self.outage]

    @property
    def outage(self) -> set[datetime]:
        """The scheduler missed three runs, the daily 03:00 UTC one among them."""
        return {self.start + 8 * DAY + h * HOUR for h in (2, 3, 4)}

    @property
    def hold_at(self) -> datetime:
        return self.start + 2 * DAY + 6 * HOUR

    @property
    def held(self) -> str:
        """A midday hourly snapshot: the daily counter never keeps it, the hourly one lets it go after a day."""
        return slot_id("hourly-db", self.start + DAY + 12 * HOUR)

    @property
    def released(self) -> str:
        """Held at the same time, and released later: the next run prunes it."""
        return slot_id("hourly-db", self.start + DAY + 13 * HOUR)

    @property
    def release_at(self) -> datetime:
        return self.start + 20 * DAY + 7 * HOUR

    @property
    def untag_at(self) -> datetime:
        return self.start + 10 * DAY + 12 * HOUR

    @property
    def retag_at(self) -> datetime:
        """gfs-db's tag changes from gfs to daily, after that day's snapshot."""
        return self.start + 12 * DAY + 11 * HOUR

    @property
    def crowded(self) -> datetime:
        """Half an hour before this run someone else starts four copies into the west region: with berlin-db's
        copy (started by this run or the next) they fill its five places for that day's other copies."""
        return self.start + 3 * DAY + 2 * HOUR

    @property
    def copy_fails(self) -> datetime:
        """Half an hour before this run berlin-db's copy in progress fails."""
        return self.start + 6 * DAY + 4 * HOUR

    @property
    def dr_untag_at(self) -> datetime:
        """untag-db loses its DR tag while that day's copy is in progress (its own tag goes off later)."""
        return self.start + 10 * DAY + 5 * HOUR

    @property
    def delete_at(self) -> datetime:
        return self.start + 21 * DAY + 9 * HOUR

    @property
    def maintenance(self) -> set[datetime]:
        """daily-db is backing up for 40 minutes from 03:00 UTC on Sundays: longer than a run may retry."""
        return {at for at in self.runs if at.weekday() == 6 and at.hour == 3}

    @property
    def hourly_busy(self) -> datetime:
        """hourly-db is backing up for 50 minutes from this run: longer than busyRetrySeconds, so its slot is
        missed (the next run is in the next hourly slot)."""
        return self.start + 5 * DAY + 10 * HOUR

    @property
    def stopped(self) -> tuple[datetime, datetime]:
        """berlin-db is stopped for two days (from the first run to the last one it misses)."""
        return self.start + 17 * DAY, self.start + 19 * DAY - HOUR


AUTUMN = Season(datetime(2026, 10, 12, tzinfo=UTC))  # Berlin falls back on Oct 25, New York on Nov 1
SPRING = Season(datetime(2026, 3, 2, tzinfo=UTC))  # New York jumps on Mar 8, Berlin on Mar 29


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


def build_fleet(fid: RdsFidelity, start: datetime) -> tuple[dict[str, Model], set[str]]:
    """The fleet, and the identifiers of every snapshot that is not ours to touch."""
    born = start - 90 * DAY
    models = {}
    for cluster, (tag, schedule) in FLEET.items():
        dr = {DR_TAG: DR_FLEET[cluster][0]} if cluster in DR_FLEET else {}
        tags = {TAG: tag, "team": "payments", **dr}
        fid.create_cluster(cluster, tags=tags, created=born, encrypted=cluster in ENCRYPTED)
        slots = schedule.slots(start - 9 * DAY, start + (RUNS + 24) * HOUR)
        models[cluster] = Model(cluster, parse_policy(tag, NAMED), schedule, slots=slots)
    fid.create_cluster("graph-db", engine="neptune", tags={TAG: "hourly"}, created=born)
    fid.create_cluster("plain-db", tags={"team": "search"}, created=born)

    # gfs-db has history from before this month: eleven dailies, the last three month ends, a year end
    gfs = models["gfs-db"]
    history = [start - n * DAY + 3 * HOUR for n in range(1, 12)]
    month = start.replace(day=1, hour=3)
    for _ in range(3):
        history.append(month - DAY)
        month = (month - DAY).replace(day=1)
    history.append(datetime(start.year - 1, 12, 31, 3, 0, tzinfo=UTC))
    for slot in set(history):
        ident = seed_ours(fid, "gfs-db", slot, GFS_SPEC)
        gfs.snapshots[ident], gfs.recorded[ident], gfs.created[ident] = slot, GFS_SPEC, slot

    # Not ours, whatever their tags say
    other = {MARKER: "other-deployment"}
    theirs = {
        fid.seed_snapshot("hourly-db", "hourly-db-before-upgrade", created=born),
        fid.seed_snapshot("daily-db", "daily-db-manual", created=start - 3 * DAY, tags={TAG: "daily"}),
        fid.seed_snapshot("plain-db", "plain-db-manual", created=start - 3 * DAY),
        fid.seed_snapshot(
            "gfs-db", "awsbackup:job-4f1c2d", created=start - 2 * DAY, tags={MARKER: DEPLOYMENT, TAG: "gfs"}
        ),
        fid.seed_snapshot(
            "daily-db",
            f"rds:daily-db-{start - DAY:%Y-%m-%d}-03-00",
            created=start - DAY,
            snapshot_type="automated",
            tags={MARKER: DEPLOYMENT},
        ),
    }
    for n in range(3):
        slot = start - (n + 1) * HOUR
        theirs.add(
            fid.seed_snapshot(
                "hourly-db",
                f"hourly-db-other-{slot:%Y%m%d-%H%M}",
                created=slot,
                tags={**other, POLICY: "every=1h keep-last=1", SLOT: slot.isoformat(), CLUSTER: "hourly-db"},
            )
        )
    theirs |= {s.id for s in fid.snapshots(snapshot_type="automated")}  # moto's, one per cluster
    return models, theirs


@pytest.mark.parametrize(
    "season", [pytest.param(AUTUMN, id="autumn"), pytest.param(SPRING, id="spring", marks=pytest.mark.slow)]
)
def test_a_month_of_hourly_runs_creates_each_due_slot_once_and_keeps_exactly_the_retained_set(season: Season) -> None:
    # Given the fleet on a layer whose snapshots take seven minutes
    from moto.kms.models import kms_backends  # noqa: PLC0415 - only once moto is active

    fresh_rds()
    kms_backends.reset()
    regions = Regions(SimClock(season.start - HOUR))
    # (and the RDS default quota of 100 manual snapshots, and 2% of the calls throttled at random)
    fid = regions.layer(
        SOURCE_REGION, bucket=TokenBucket(), snapshot_creating_for=CREATING_FOR, throttle_probability=0.02, seed=3
    )
    operator = rds_client(fid)
    # ... two DR regions, where copies take hours (and the west one has the DR key)
    west, eu = (regions.layer(region, bucket=TokenBucket(), copying_for=COPYING_FOR[region]) for region in (WEST, EU))
    west_operator = rds_client(west, region=WEST)
    rds_client(eu, region=EU)
    key = west.create_kms_key("alias/snapshot-dr")
    models, theirs = build_fleet(fid, season.start)
    horizon = (season.start - 9 * DAY, season.start + (RUNS + 24) * HOUR)
    dr_slots = {cluster: spec[2].slots(*horizon) for cluster, spec in DR_FLEET.items()}
    dr_model = DrModel(models, dr_slots, set(DR_FLEET), {cluster: spec[1] for cluster, spec in DR_FLEET.items()})
    kept_for_copies: dict[str, set[str]] = {}
    dr_runs: dict[datetime, DrRun] = {}
    crowd = [ident for ident in sorted(theirs) if ":" not in ident][:4]
    untouched = {ident: view for ident, view in everything(fid).items() if ident in theirs}
    ever: Counter[str] = Counter()
    late: dict[datetime, list[str]] = {}
    missed_ever: list[tuple[str, str, str]] = []
    pending_at: list[datetime] = []

    env = {"SNAPSHOT_NAMED_POLICIES": json.dumps(NAMED), "SNAPSHOT_DR_TARGETS": json.dumps(DR_TARGETS)}
    with scheduled_lambda(fid, env=env) as handler:
        for at in season.runs:
            # ... and what the operator did since the last run
            if at == season.hold_at:
                for snapshot in (season.held, season.released):
                    hold = [{"Key": HOLD, "Value": "true"}]
                    operator.add_tags_to_resource(ResourceName=arn_of(operator, snapshot), Tags=hold)
                    models["hourly-db"].held.add(snapshot)
            if at == season.release_at:
                operator.remove_tags_from_resource(ResourceName=arn_of(operator, season.released), TagKeys=[HOLD])
                models["hourly-db"].held.discard(season.released)
            if at == season.untag_at:
                # A deliberate stop (a removed tag would count out of policy: tests/integration/test_alarms.py)
                (cluster,) = operator.describe_db_clusters(DBClusterIdentifier="untag-db")["DBClusters"]
                off = [{"Key": TAG, "Value": "off"}]
                operator.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=off)
                models["untag-db"].managed = False
            if at == season.retag_at:
                # Someone changes gfs-db's tag to daily: its history waits for the grace, reported pending
                (cluster,) = operator.describe_db_clusters(DBClusterIdentifier="gfs-db")["DBClusters"]
                daily = [{"Key": TAG, "Value": "daily"}]
                operator.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=daily)
                models["gfs-db"].policy = parse_policy("daily")
            if at == season.delete_at:
                fid.delete_cluster("gone-db")
                models["gone-db"].managed = False
            if at == season.crowded:
                regions.clock.advance_to(at - 30 * MINUTE)
                dr_model.others = [
                    copy_by_others(operator, west_operator, source, at - 30 * MINUTE) for source in crowd
                ]
            if at == season.copy_fails:
                regions.clock.advance_to(at - 30 * MINUTE)
                (copy,) = [
                    c
                    for c in dr_model.copies[WEST].values()
                    if c.status(at - 30 * MINUTE) == "copying" and c.cluster == "berlin-db"
                ]
                regions.source_deleted(arn_of(operator, copy.source))  # RDS fails the copy (its source is not deleted)
                dr_model.fail(at - 30 * MINUTE, copy.source)
            if at == season.dr_untag_at:
                (cluster,) = operator.describe_db_clusters(DBClusterIdentifier="untag-db")["DBClusters"]
                operator.remove_tags_from_resource(ResourceName=cluster["DBClusterArn"], TagKeys=[DR_TAG])
                dr_model.tagged.discard("untag-db")
            busy = at in season.maintenance
            if busy:
                fid.make_busy("daily-db", until=at + 40 * MINUTE, status="backing-up")
            if at == season.hourly_busy:
                fid.make_busy("hourly-db", until=at + 50 * MINUTE, status="backing-up")
            stopped = season.stopped[0] <= at <= season.stopped[1]
            fid.set_status("berlin-db", "stopped" if stopped else None)
            busy_clusters = {"daily-db"} if busy else set()
            busy_clusters |= {"hourly-db"} if at == season.hourly_busy else set()
            expected_dr = dr_model.plan(at)
            manual_before = len(fid.snapshots())
            for fidelity in regions:
                fidelity.reset_counts()

            # When the scheduled run happens
            report = handler.run(at)

            # (what the models expect of it does not depend on the run, but which of copies equally overdue at
            # the copy limit's edge start: any may)
            expected_dr.settle({(e["cluster"], e["region"]) for e in report["dr"]["started"]})
            expected_deleted: set[str] = set()
            expected_created: dict[str, str] = {}
            expected_busy: set[str] = set()
            expected_missed: list[tuple[str, str, str]] = []
            for model in models.values():
                refused = model.cluster in busy_clusters or (model.cluster == "berlin-db" and stopped)
                copied = expected_dr.copied.get(model.cluster, set())
                removed, made = model.step(at, refused=refused, copied=copied)
                kept_for_copies.setdefault(model.cluster, set()).update(model.kept_for_copies)
                expected_deleted |= removed
                if made is not None:
                    expected_created[model.cluster] = made
                if model.cluster in busy_clusters and model.due(at):
                    expected_busy.add(model.cluster)
                    if model.last_run_of_slot(at):
                        expected_missed.append((model.cluster, model.current_slot(at).isoformat(), "busy"))

            # Then it created exactly the due slots and deleted exactly what retention no longer keeps
            assert created(report) == expected_created, at
            assert deleted(report) == expected_deleted, at
            assert report["failed"] == [], at
            # ... and of the snapshots carrying our marker, only AWS Backup's is not ours (every one we made is)
            assert [entry["snapshot"] for entry in report["foreign_marked"]] == ["awsbackup:job-4f1c2d"], at
            assert report["stats"]["throttles"] == fid.throttled.total(), at  # ridden out, and counted
            assert reasons(report, "deferred") == dict.fromkeys(expected_busy, "busy"), at
            # ... and counted each slot that ended without its snapshot once, in the slot's last run
            assert [(m["cluster"], m["slot"], m["reason"]) for m in report["missed"]] == expected_missed, at
            missed_ever += expected_missed
            due_but_stopped = stopped and slot_id("berlin-db", models["berlin-db"].current_slot(at)) not in ever
            stopped_on_purpose = {"untag-db": "off"} if at >= season.untag_at else {}
            expected_skipped = {"berlin-db": "stopped"} if due_but_stopped else {}
            assert reasons(report, "skipped") == expected_skipped | stopped_on_purpose, at
            ever.update(expected_created.values())
            # ... what a policy change would delete was reported pending instead
            assert {p["snapshot"] for p in report["pending"]} == {i for m in models.values() for i in m.pending}, at
            if report["pending"]:
                pending_at.append(at)
            # ... our snapshots that exist are exactly the model's (and RDS says when each was created)
            views = {s.id: s for s in fid.snapshots() if s.tags.get(MARKER) == DEPLOYMENT and ":" not in s.id}
            for cluster, ident in expected_created.items():
                models[cluster].created[ident] = views[ident].created
            ours = set(views)
            assert ours == {ident for model in models.values() for ident in model.snapshots}, at
            # ... with the minimum of API calls (a busy cluster's attempts aside)
            attempts = len(expected_created) + len(expected_busy) + report["stats"]["busy_retries"]
            # ... and one direct lookup of gone-db once deleted (its snapshots name a cluster the listing lacks)
            lookups = int(at >= season.delete_at)
            assert dict(fid.calls) == minimum_calls(manual_before, attempts, len(expected_deleted), lookups), at
            if report["stats"]["clusters_out_of_policy"]:
                late[at] = report["stats"]["clusters_out_of_policy"]

            # ... and of copies it started, deferred and deleted exactly what the DR model says
            started = check_dr_report(report["dr"], expected_dr, at)
            dr_model.apply(at, expected_dr, started)
            dr_runs[at] = expected_dr
            # ... the copies of ours in each DR region are exactly the model's, in the state it says
            for region, fidelity in ((WEST, west), (EU, eu)):
                copies = {s.id: s.status for s in fidelity.snapshots() if s.tags.get(DR_MARKER)}
                assert copies == dr_model.statuses(region, at), (at, region)
                # ... with the minimum of calls there: one sweep, the quota, the copies and the deletes
                copy_calls = sum(r == region for _, r in started)
                delete_calls = sum(r == region for r, _ in expected_dr.deleted)
                assert dict(fidelity.calls) == minimum_dr_calls(copy_calls, delete_calls), (at, region)

    # Then over the month each due slot got exactly one snapshot, across the clock changes
    assert max(ever.values()) == 1
    assert fid.snapshots("graph-db") == []
    PINNED[season](set(ever))
    # ... the outage's slots were caught up within their slot (daily) or lost, never back-filled (hourly)
    missed = sorted(season.outage)
    assert slot_id("daily-db", missed[1]) in ever
    assert not {slot_id("hourly-db", at) for at in missed} & set(ever)
    # ... the held snapshot survived, taking no place in the counters; the released one was pruned
    now = everything(fid)
    assert now[season.held].tags[HOLD] == "true"
    assert season.released not in now
    # ... the orphans keep what their recorded policy keeps, never fewer than one
    assert all(models[orphan].snapshots for orphan in ("untag-db", "gone-db"))
    # ... gfs-db's history, retagged daily, waited from the retag until a day after its first daily snapshot
    # (the next day's 03:00 slot, created when RDS says), then went in the first run after
    first_daily = slot_id("gfs-db", season.retag_at.replace(hour=3) + DAY)
    grace_ends = models["gfs-db"].created[first_daily] + POLICY_CHANGE_GRACE
    assert min(pending_at) == season.retag_at
    assert max(pending_at) < grace_ends <= max(pending_at) + HOUR
    assert all(slot >= season.start + 7 * DAY for slot in models["gfs-db"].snapshots.values())
    # ... nothing that is not ours was touched
    assert {ident: now.get(ident) for ident in untouched} == untouched
    # ... daily-db's Sunday slots were taken after its maintenance, by a later run of the same slot
    for sunday in season.maintenance:
        assert slot_id("daily-db", sunday) in ever
    # ... the one slot lost to a cluster busy for longer than a run retries was counted, once (the outage's
    # slots had no run to count them: HeartbeatMissing covers that)
    assert missed_ever == [("hourly-db", season.hourly_busy.isoformat(), "busy")]
    # ... and the recovery points were late only right after the outage, after hourly-db's missed slot and
    # when berlin-db started again
    assert set(late) <= {max(season.outage) + HOUR, season.hourly_busy + HOUR, season.stopped[1] + HOUR}, late

    # Then, of the DR copies: the 5-copy limit held back the crowded day's daily copies to the west (berlin-db's
    # copy, started first, made the fifth in progress), and the run after the others' copies ended started them
    crowded = {(cluster, WEST) for cluster in ("daily-db", "untag-db")}
    assert dr_runs[season.crowded + 2 * HOUR].deferred == dr_runs[season.crowded + 3 * HOUR].deferred == crowded
    assert crowded <= dr_runs[season.crowded + 4 * HOUR].started
    # ... the copy that failed was deleted by the next run and copied again by the one after
    assert {at: run.failed for at, run in dr_runs.items() if run.failed} == {season.copy_fails: {("berlin-db", WEST)}}
    assert ("berlin-db", WEST) in dr_runs[season.copy_fails + HOUR].started
    # ... the own retention kept untag-db's copied snapshot (its keep-last=3 prunes it within hours) for its copy
    assert len(kept_for_copies["untag-db"]) >= 9
    # ... untag-db's copies, orphaned while one was in progress, were pruned by their recorded keep-last=2 once
    # it was available, and two stay
    pruned = {at for at, run in dr_runs.items() if any(c.startswith("untag-db") for _, c in run.deleted)}
    assert max(pruned) == season.dr_untag_at + 4 * HOUR
    assert len([c for c in dr_model.copies[WEST].values() if c.cluster == "untag-db"]) == 2
    # ... berlin-db's copies are encrypted under the west region's key, the unencrypted clusters' have no key
    for copy in west.snapshots():
        if copy.tags.get(DR_MARKER):
            encrypted = copy.tags[CLUSTER] in ENCRYPTED
            assert (copy.encrypted, copy.kms_key_id) == ((True, key) if encrypted else (False, "")), copy.id
    # ... and the others' copies in the west region were never touched
    assert {f"{source}-copy" for source in crowd} <= {s.id for s in west.snapshots()}
    # ... berlin-db's DR slots followed Berlin's clock change (checked by hand against the identifiers)
    copied_ever = {ident for run in dr_runs.values() for ident, _ in run.due.values()}
    assert PINNED_COPIES[season] <= copied_ever


def copy_by_others(source_client: Any, west_client: Any, source: str, at: datetime) -> Copy:
    """Someone else copies a snapshot that is not ours into the west region (no tags of ours)."""
    west_client.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=arn_of(source_client, source),
        TargetDBClusterSnapshotIdentifier=f"{source}-copy",
        SourceRegion=SOURCE_REGION,
    )
    return Copy("", at, source, at, at + COPYING_FOR[WEST])


def arn_of(client: Any, snapshot: str) -> str:
    answer = client.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snapshot)
    return str(answer["DBClusterSnapshots"][0]["DBClusterSnapshotArn"])


def check_dr_report(dr: dict[str, Any], expected: DrRun, at: datetime) -> list[tuple[str, str]]:
    """The run report's `dr` section against the model; (cluster, region) of the copies started, in order."""
    started = {(e["cluster"], e["region"]): (e["snapshot"], e["source"]) for e in dr["started"]}
    assert started == {key: expected.due[key] for key in expected.started}, at
    deferred = {(e["cluster"], e["region"]): e["code"] for e in dr["deferred"]}
    assert deferred == dict.fromkeys(expected.deferred, "copy-limit"), at
    assert {(e["region"], e["snapshot"]) for e in dr["deleted"]} == expected.deleted, at
    failed = {(e["cluster"], e["region"], e["error"]) for e in dr["failed"]}
    assert failed == {(cluster, region, "CopyFailed") for cluster, region in expected.failed}, at
    assert (dr["skipped"], dr["stuck"], dr["errors"]) == ([], [], []), at
    return [(e["cluster"], e["region"]) for e in dr["started"]]


def minimum_dr_calls(copies: int, deletes: int) -> dict[str, int]:
    calls = {"DescribeDBClusterSnapshots": 1, "DescribeAccountAttributes": 1}
    if copies:
        calls["CopyDBClusterSnapshot"] = copies
    if deletes:
        calls["DeleteDBClusterSnapshot"] = deletes
    return calls


def minimum_calls(manual_snapshots: int, creates: int, deletes: int, lookups: int) -> dict[str, int]:
    calls = {
        "DescribeDBClusters": 1 + lookups,
        "DescribeDBClusterSnapshots": max(1, math.ceil(manual_snapshots / 100)),
        "DescribeAccountAttributes": 1,
    }
    if creates:
        calls["CreateDBClusterSnapshot"] = creates
    if deletes:
        calls["DeleteDBClusterSnapshot"] = deletes
    return calls


def on(ever: set[str], prefix: str) -> list[str]:
    return sorted(ident for ident in ever if ident.startswith(prefix))


def autumn_slots(ever: set[str]) -> None:
    """The autumn clock changes, checked by hand against the identifiers (slot times in UTC)."""
    # 02:30 Berlin: CEST (UTC+2) until Oct 25, when 02:30 happens twice (its first occurrence counts), CET after
    assert on(ever, "berlin-db-20261024") == ["berlin-db-20261024-0030"]
    assert on(ever, "berlin-db-20261025") == ["berlin-db-20261025-0030"]
    assert on(ever, "berlin-db-20261026") == ["berlin-db-20261026-0130"]
    # every 2 hours from 01:00 New York: EDT (UTC-4) until Nov 1, when 01:00 happens twice; EST (UTC-5) after
    assert on(ever, "ny-db-20261101")[:5] == [
        "ny-db-20261101-0100",
        "ny-db-20261101-0300",
        "ny-db-20261101-0500",
        "ny-db-20261101-0800",
        "ny-db-20261101-1000",
    ]
    # Sundays 02:30 Berlin: Oct 25 is the day 02:30 happens twice; the first occurrence counts
    assert on(ever, "sunday-db-202610")[-2:] == ["sunday-db-20261018-0030", "sunday-db-20261025-0030"]
    assert on(ever, "sunday-db-202611")[:1] == ["sunday-db-20261101-0130"]
    # 09:00 and 21:00 India (UTC+05:30, no clock change): between the hourly runs, taken by the next one
    assert on(ever, "mumbai-db-20261101") == ["mumbai-db-20261101-0330", "mumbai-db-20261101-1530"]
    # Mondays 03:00 Berlin: 01:00 UTC before Oct 25, 02:00 after; the first run catches up the week's slot
    assert on(ever, "weekly-db") == [
        "weekly-db-20261005-0100",
        "weekly-db-20261012-0100",
        "weekly-db-20261019-0100",
        "weekly-db-20261026-0200",
        "weekly-db-20261102-0200",
        "weekly-db-20261109-0200",
    ]


def spring_slots(ever: set[str]) -> None:
    """The spring clock changes, checked by hand against the identifiers (slot times in UTC)."""
    # 02:30 Berlin: CET (UTC+1) until Mar 29, when 02:30 does not exist and becomes 03:30 CEST; CEST after
    assert on(ever, "berlin-db-20260328") == ["berlin-db-20260328-0130"]
    assert on(ever, "berlin-db-20260329") == ["berlin-db-20260329-0130"]
    assert on(ever, "berlin-db-20260330") == ["berlin-db-20260330-0030"]
    # every 2 hours from 01:00 New York: 01:00 EST is 06:00 UTC on Mar 8, then 03:00 EDT is 07:00 UTC
    assert on(ever, "ny-db-20260308")[:6] == [
        "ny-db-20260308-0000",
        "ny-db-20260308-0200",
        "ny-db-20260308-0400",
        "ny-db-20260308-0600",
        "ny-db-20260308-0700",
        "ny-db-20260308-0900",
    ]
    # Sundays 02:30 Berlin: on Mar 29 02:30 does not exist; 03:30 CEST takes its place
    assert on(ever, "sunday-db-202603")[-3:] == [
        "sunday-db-20260315-0130",
        "sunday-db-20260322-0130",
        "sunday-db-20260329-0130",
    ]
    # Mondays 03:00 Berlin: 02:00 UTC until Mar 29, 01:00 after; the first run catches up the week's slot
    assert on(ever, "weekly-db") == [
        "weekly-db-20260223-0200",
        "weekly-db-20260302-0200",
        "weekly-db-20260309-0200",
        "weekly-db-20260316-0200",
        "weekly-db-20260323-0200",
        "weekly-db-20260330-0100",
    ]


PINNED = {AUTUMN: autumn_slots, SPRING: spring_slots}
# 02:30 Berlin in UTC, as berlin-db's own slots (its DR tag names the same time)
PINNED_COPIES = {
    AUTUMN: {f"berlin-db-{day}-dr-useast1" for day in ("20261024-0030", "20261025-0030", "20261026-0130")},
    SPRING: {f"berlin-db-{day}-dr-useast1" for day in ("20260328-0130", "20260329-0130", "20260330-0030")},
}
