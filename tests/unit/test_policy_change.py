"""policy_change.hold_back: which deletions a change of policy caused, and when the grace ends. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from snapshot_scheduler import tags
from snapshot_scheduler.dr import DR_RECORD, parse_dr_policy
from snapshot_scheduler.model import Snapshot
from snapshot_scheduler.policy import Policy, parse_policy
from snapshot_scheduler.policy_change import UNREADABLE, hold_back
from snapshot_scheduler.retention import plan_retention

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
GRACE = timedelta(hours=24)
LAST_3 = "every=1d at=03:00 tz=UTC keep-last=3"
LAST_1 = "every=1d at=03:00 tz=UTC keep-last=1"
MONTHLY = "every=1d at=03:00 tz=UTC keep-monthly=2"


def snap(day: int, recorded: str) -> Snapshot:
    created = T0 + day * DAY
    return Snapshot(f"db-{day}", "db", "", "available", "manual", created, {tags.POLICY: recorded})


def deletes_under(snapshots: list[Snapshot]) -> Callable[[Policy], set[str]]:
    def deletes(policy: Policy) -> set[str]:
        return {s.id for s in plan_retention(policy, snapshots, key=created).remove}

    return deletes


def created(snapshot: Snapshot) -> datetime:
    assert snapshot.created is not None
    return snapshot.created


def split(
    current: str, snapshots: list[Snapshot], at: datetime, grace_period: timedelta = GRACE
) -> tuple[set[str], set[str], str | None]:
    policy = parse_policy(current)
    delete = [s for s in snapshots if s.id in deletes_under(snapshots)(policy)]
    grace = hold_back(policy, snapshots, delete, at=at, grace=grace_period, deletes_under=deletes_under(snapshots))
    anchor = grace.anchor.id if grace.anchor else None
    return {s.id for s in grace.delete}, {p.snapshot.id for p in grace.pending}, anchor


def test_the_same_policy_rolling_forward_deletes_at_once() -> None:
    snapshots = [snap(day, LAST_1) for day in range(3)]
    assert split(LAST_1, snapshots, T0 + 2 * DAY) == ({"db-0", "db-1"}, set(), None)


def test_a_policy_spelled_differently_is_the_same_policy() -> None:
    snapshots = [snap(day, "every=1d keep-last=1") for day in range(3)]
    assert split(LAST_1, snapshots, T0 + 2 * DAY) == ({"db-0", "db-1"}, set(), None)


def test_a_change_waits_until_the_first_snapshot_under_it_has_stood_for_the_grace() -> None:
    snapshots = [snap(0, LAST_3), snap(1, LAST_3), snap(2, LAST_3), snap(3, LAST_1)]
    # the first keep-last=1 snapshot (day 3) marks the start; keep-last=3 keeps days 1-3, day 0 is its own roll
    assert split(LAST_1, snapshots, T0 + 3 * DAY) == (set(), {"db-0", "db-1", "db-2"}, None)
    assert split(LAST_1, snapshots, T0 + 4 * DAY - timedelta(seconds=1))[1] == {"db-0", "db-1", "db-2"}
    assert split(LAST_1, snapshots, T0 + 4 * DAY) == ({"db-0", "db-1", "db-2"}, set(), None)


def test_before_any_snapshot_under_the_new_policy_the_grace_has_not_begun() -> None:
    snapshots = [snap(day, LAST_3) for day in range(3)]
    policy = parse_policy(LAST_1)
    delete = [s for s in snapshots if s.id != "db-2"]
    grace = hold_back(policy, snapshots, delete, at=T0 + 30 * DAY, grace=GRACE, deletes_under=deletes_under(snapshots))
    assert grace.delete == ()
    assert {p.since for p in grace.pending} == {None}
    assert {p.deletable_after for p in grace.pending} == {T0 + 31 * DAY}  # at the earliest


def test_the_first_snapshot_under_the_new_policy_is_kept_while_the_grace_runs() -> None:
    # keep-last=1 would delete day 3 (its own first snapshot) at day 4: the grace would restart every day
    snapshots = [snap(0, MONTHLY), snap(3, LAST_1), snap(4, LAST_1)]
    assert split(LAST_1, snapshots, T0 + 4 * DAY, 2 * DAY) == (set(), {"db-0"}, "db-3")
    assert split(LAST_1, snapshots, T0 + 5 * DAY, 2 * DAY) == ({"db-0", "db-3"}, set(), None)


def test_a_snapshot_taken_under_another_policy_between_two_runs_of_the_current_one_is_not_deleted_early() -> None:
    # keep-last=1, then a revert to keep-last=3 for a day, then keep-last=1 again: the day-2 snapshot separates
    # the two runs; deleting it would make the grace count from day 1
    snapshots = [snap(1, LAST_1), snap(2, LAST_3), snap(3, LAST_1), snap(4, LAST_1)]
    now, pending, _ = split(LAST_1, snapshots, T0 + 4 * DAY, 2 * DAY)
    assert "db-2" in pending
    assert "db-2" not in now


def test_an_unreadable_recorded_policy_keeps_everything_through_the_grace() -> None:
    snapshots = [snap(0, "every=fortnight"), snap(1, LAST_1), snap(2, LAST_1)]
    policy = parse_policy(LAST_1)
    delete = [snapshots[0]]
    grace = hold_back(policy, snapshots, delete, at=T0 + 2 * DAY, grace=2 * DAY, deletes_under=deletes_under(snapshots))
    assert [(p.snapshot.id, p.kept_by) for p in grace.pending] == [("db-0", "every=fortnight")]
    missing = Snapshot("db-x", "db", "", "available", "manual", T0, {})
    grace = hold_back(
        policy,
        [missing, *snapshots[1:]],
        [missing],
        at=T0 + 2 * DAY,
        grace=2 * DAY,
        deletes_under=deletes_under(snapshots),
    )
    assert [p.kept_by for p in grace.pending] == [UNREADABLE]


def test_a_grace_of_zero_holds_nothing_back() -> None:
    snapshots = [snap(day, LAST_3) for day in range(3)]
    policy = parse_policy(LAST_1)
    grace = hold_back(
        policy, snapshots, snapshots[:2], at=T0 + 2 * DAY, grace=timedelta(0), deletes_under=deletes_under(snapshots)
    )
    assert grace.delete == tuple(snapshots[:2]) and grace.pending == ()


def dr_copy(day: int, recorded: str) -> Snapshot:
    created = T0 + day * DAY
    return Snapshot(f"copy-{day}", "db", "", "available", "manual", created, {tags.DR_POLICY: recorded})


def dr_split(current: str, copies: list[Snapshot], at: datetime) -> tuple[set[str], set[str]]:
    policy = parse_dr_policy(current).policy
    delete = [s for s in copies if s.id in deletes_under(copies)(policy)]
    grace = hold_back(policy, copies, delete, at=at, grace=GRACE, deletes_under=deletes_under(copies), record=DR_RECORD)
    return {s.id for s in grace.delete}, {p.snapshot.id for p in grace.pending}


def test_dr_copies_wait_for_a_change_of_their_keep_words_not_for_a_change_of_targets() -> None:
    # copies record their DR policy, to= included: a new target is no change of retention
    copies = [dr_copy(day, "to=dr-west every=1d at=03:00 tz=UTC keep-last=3") for day in range(4)]
    assert dr_split("to=dr-west+dr-eu keep-last=3", copies, T0 + 3 * DAY) == ({"copy-0"}, set())
    # fewer keep- words: what only the recorded DR policy keeps waits, kept by its spelled-out text
    assert dr_split("to=dr-west keep-last=1", copies, T0 + 3 * DAY) == (set(), {"copy-0", "copy-1", "copy-2"})
    grace = hold_back(
        parse_dr_policy("to=dr-west keep-last=1").policy,
        copies,
        copies[1:3],
        at=T0 + 3 * DAY,
        grace=GRACE,
        deletes_under=deletes_under(copies),
        record=DR_RECORD,
    )
    assert {p.kept_by for p in grace.pending} == {"to=dr-west every=1d at=03:00 tz=UTC keep-last=3"}
