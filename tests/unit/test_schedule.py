"""Slots: the latest slot at or before a time, the next one after it, in UTC, in any zone, across DST.

Slot lists from `slots_on` are checked against properties that do not depend on how they are computed
(one per local day, wall-clock time, spacing, how many per month); `current_slot` and `next_slot` are then
checked against a brute-force search over those lists, for every hourly run of a month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from snapshot_scheduler.policy import Policy, parse_policy
from snapshot_scheduler.schedule import current_slot, next_slot, slots_on

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def policy(text: str) -> Policy:
    return parse_policy(text + " keep-last=1")


def slots_between(p: Policy, start: datetime, end: datetime) -> list[datetime]:
    """Every slot in [start, end], from the local days that cover it."""
    zone = p.zone
    day = start.astimezone(zone).date() - DAY
    found: set[datetime] = set()
    while day <= end.astimezone(zone).date() + DAY:
        found.update(slots_on(p, day))
        day += DAY
    return sorted(s for s in found if start <= s <= end)


def hourly_runs(start: datetime, end: datetime, minute: int = 5) -> list[datetime]:
    runs, t = [], start.replace(minute=minute, second=0, microsecond=0)
    while t <= end:
        runs.append(t)
        t += HOUR
    return runs


# --- the basics, in UTC -------------------------------------------------------------------------------------


def test_daily_slot_is_the_latest_anchor_at_or_before_the_time() -> None:
    p = policy("every=1d at=03:00")

    assert current_slot(p, utc("2026-03-10 03:00:00")) == utc("2026-03-10 03:00")
    assert current_slot(p, utc("2026-03-10 03:00:01")) == utc("2026-03-10 03:00")
    assert current_slot(p, utc("2026-03-10 02:59:59")) == utc("2026-03-09 03:00")
    assert current_slot(p, utc("2026-03-10 23:59:59")) == utc("2026-03-10 03:00")


def test_next_slot_is_strictly_after_the_time() -> None:
    p = policy("every=1d at=03:00")

    assert next_slot(p, utc("2026-03-10 03:00")) == utc("2026-03-11 03:00")
    assert next_slot(p, utc("2026-03-10 02:59:59")) == utc("2026-03-10 03:00")


@pytest.mark.parametrize("every", [1, 2, 3, 4, 6, 8, 12])
def test_hour_intervals_step_from_the_anchor_through_the_day(every: int) -> None:
    p = policy(f"every={every}h at=01:20")

    slots = slots_on(p, date(2026, 3, 10))

    assert len(slots) == 24 // every
    assert all(s.minute == 20 for s in slots)
    assert all(s.hour % every == 1 % every for s in slots)
    assert all(b - a == timedelta(hours=every) for a, b in pairwise(slots))
    assert utc("2026-03-10 01:20") in slots


@pytest.mark.parametrize("every", [1, 2, 3, 4, 6, 8, 12])
def test_current_and_next_slot_bracket_every_time_for_each_interval(every: int) -> None:
    p = policy(f"every={every}h at=05:15")
    for t in hourly_runs(utc("2026-03-09 00:00"), utc("2026-03-12 00:00"), minute=17):
        slot, upcoming = current_slot(p, t), next_slot(p, t)

        assert slot <= t < upcoming
        assert upcoming - slot == timedelta(hours=every)
        assert slot.minute == 15
        assert (slot.hour - 5) % every == 0


def test_anchor_sets_the_phase_of_a_6h_policy() -> None:
    p = policy("every=6h at=05:15")

    assert [s.strftime("%H:%M") for s in slots_on(p, date(2026, 3, 10))] == ["05:15", "11:15", "17:15", "23:15"]


def test_anchor_later_than_the_interval_still_starts_the_day_at_its_phase() -> None:
    p = policy("every=8h at=22:00")

    assert [s.hour for s in slots_on(p, date(2026, 3, 10))] == [6, 14, 22]


# --- weekly -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "weekday"), [("mon", 0), ("wed", 2), ("sat", 5), ("sun", 6)])
def test_weekly_slot_is_the_latest_chosen_weekday_at_the_anchor(day: str, weekday: int) -> None:
    p = policy(f"every=1w on={day} at=04:00")
    for t in hourly_runs(utc("2026-03-01 00:00"), utc("2026-03-22 00:00")):
        slot, upcoming = current_slot(p, t), next_slot(p, t)

        assert slot.weekday() == weekday
        assert (slot.hour, slot.minute) == (4, 0)
        assert slot <= t < slot + 7 * DAY
        assert upcoming == slot + 7 * DAY


def test_weekly_default_day_is_sunday() -> None:
    assert current_slot(policy("every=1w at=03:00"), utc("2026-03-11 12:00")) == utc("2026-03-08 03:00")


def test_weekly_slot_on_its_own_day_before_the_anchor_is_last_week() -> None:
    p = policy("every=1w on=tue at=04:00")

    assert current_slot(p, utc("2026-03-10 03:59")) == utc("2026-03-03 04:00")
    assert current_slot(p, utc("2026-03-10 04:00")) == utc("2026-03-10 04:00")


def test_weekly_day_is_the_local_day_not_the_utc_day() -> None:
    # Monday 01:00 in Tokyo is Sunday 16:00 UTC.
    p = policy("every=1w on=mon at=01:00 tz=Asia/Tokyo")

    assert current_slot(p, utc("2026-03-10 00:00")) == utc("2026-03-08 16:00")


# --- zones --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "winter", "summer"),
    [
        ("Europe/Berlin", "2026-01-15 02:00", "2026-07-15 01:00"),
        ("America/New_York", "2026-01-15 08:00", "2026-07-15 07:00"),
        ("Australia/Sydney", "2026-01-14 16:00", "2026-07-14 17:00"),
        ("Asia/Kolkata", "2026-01-14 21:30", "2026-07-14 21:30"),
    ],
)
def test_daily_slot_is_the_anchor_in_the_policys_zone(tz: str, winter: str, summer: str) -> None:
    p = policy(f"every=1d at=03:00 tz={tz}")

    assert current_slot(p, utc(winter) + timedelta(minutes=1)) == utc(winter)
    assert current_slot(p, utc(summer) + timedelta(minutes=1)) == utc(summer)
    assert current_slot(p, utc(summer)).astimezone(ZoneInfo(tz)).strftime("%H:%M") == "03:00"


def test_slots_are_returned_in_utc() -> None:
    slot = current_slot(policy("every=1d at=03:00 tz=Europe/Berlin"), utc("2026-01-15 12:00"))

    assert slot.utcoffset() == timedelta(0)


def test_time_given_in_another_zone_means_the_same_instant() -> None:
    p = policy("every=1h at=00:00 tz=Europe/Berlin")
    instant = utc("2026-03-10 10:30")

    assert current_slot(p, instant.astimezone(ZoneInfo("Asia/Tokyo"))) == current_slot(p, instant)


@pytest.mark.parametrize("fn", [current_slot, next_slot])
def test_naive_time_is_rejected(fn: object) -> None:
    with pytest.raises(ValueError, match="time zone"):
        fn(policy("every=1d"), datetime(2026, 3, 10, 3, 0))  # type: ignore[operator]


# --- daylight saving: single days ---------------------------------------------------------------------------

# 2026: Berlin jumps 02:00 CET -> 03:00 CEST on 29 March (01:00 UTC) and falls back 03:00 -> 02:00 on
# 25 October (01:00 UTC); New York jumps 02:00 EST -> 03:00 EDT on 8 March (07:00 UTC) and falls back
# 02:00 -> 01:00 on 1 November (06:00 UTC).
SPRING = [
    ("Europe/Berlin", date(2026, 3, 29), utc("2026-03-29 01:00")),
    ("America/New_York", date(2026, 3, 8), utc("2026-03-08 07:00")),
]
FALL = [("Europe/Berlin", date(2026, 10, 25), "02:30"), ("America/New_York", date(2026, 11, 1), "01:30")]


@pytest.mark.parametrize(("tz", "day", "jump"), SPRING)
def test_spring_forward_skipped_time_maps_just_after_the_jump(tz: str, day: date, jump: datetime) -> None:
    # Given a daily slot at 02:30, a wall time that does not exist on the day of the jump
    p = policy(f"every=1d at=02:30 tz={tz}")

    # Then that day still has exactly one slot, after the jump and within the hour it skipped
    (slot,) = slots_on(p, day)
    assert jump <= slot < jump + HOUR
    assert slot.astimezone(ZoneInfo(tz)).hour == 3
    # and a run an hour after the jump takes it
    assert current_slot(p, jump + HOUR) == slot


@pytest.mark.parametrize(("tz", "day", "jump"), SPRING)
def test_spring_forward_no_daily_slot_vanishes_in_the_week_around_it(tz: str, day: date, jump: datetime) -> None:
    for anchor in ("00:30", "01:30", "02:00", "02:30", "02:59", "03:00", "03:30"):
        p = policy(f"every=1d at={anchor} tz={tz}")
        slots = [slots_on(p, day + offset * DAY) for offset in range(-3, 4)]

        assert all(len(one) == 1 for one in slots), anchor
        gaps = [b[0] - a[0] for a, b in pairwise(slots)]
        assert all(timedelta(hours=22) <= gap <= timedelta(hours=26) for gap in gaps), anchor


@pytest.mark.parametrize(("tz", "day", "wall"), FALL)
def test_fall_back_repeated_time_is_one_slot_not_two(tz: str, day: date, wall: str) -> None:
    # Given a daily slot at a wall time that happens twice on the day the clocks go back
    p = policy(f"every=1d at={wall} tz={tz}")

    # Then there is one slot, and both occurrences of that wall time pick it (no second snapshot)
    (slot,) = slots_on(p, day)
    first = slot
    second = slot + HOUR
    assert second.astimezone(ZoneInfo(tz)).strftime("%H:%M") == wall
    assert current_slot(p, first) == current_slot(p, second) == slot


@pytest.mark.parametrize(("tz", "day", "wall"), FALL)
def test_fall_back_hourly_policy_takes_each_wall_clock_hour_once(tz: str, day: date, wall: str) -> None:
    p = policy(f"every=1h at=00:00 tz={tz}")
    zone = ZoneInfo(tz)

    slots = slots_on(p, day)
    walls = [s.astimezone(zone).strftime("%H:%M") for s in slots]

    assert len(slots) == 24
    assert len(set(walls)) == 24
    assert len(set(slots)) == 24


@pytest.mark.parametrize(("tz", "day", "jump"), SPRING)
def test_spring_forward_hourly_policy_has_a_slot_in_every_real_hour(tz: str, day: date, jump: datetime) -> None:
    p = policy(f"every=1h at=00:30 tz={tz}")

    slots = slots_between(p, jump - 6 * HOUR, jump + 6 * HOUR)

    assert all(b - a == HOUR for a, b in pairwise(slots))
    assert len(slots) == 12


# --- daylight saving: a month of hourly runs ----------------------------------------------------------------

MONTHS = [
    pytest.param("Europe/Berlin", "2026-03-01", "2026-04-01", 0, id="berlin-spring"),
    pytest.param("Europe/Berlin", "2026-10-01", "2026-11-01", 1, id="berlin-fall"),
    pytest.param("America/New_York", "2026-03-01", "2026-04-01", 0, id="new-york-spring"),
    pytest.param("America/New_York", "2026-10-15", "2026-11-15", 1, id="new-york-fall"),
]


@pytest.mark.parametrize(("tz", "start", "end", "repeated_hours"), MONTHS)
@pytest.mark.parametrize("minute", [0, 30])
def test_a_month_of_hourly_runs_takes_every_hourly_slot_once(
    tz: str, start: str, end: str, repeated_hours: int, minute: int
) -> None:
    # Given an hourly policy in a zone with DST, and a run at :45 past every UTC hour of a month
    p = policy(f"every=1h at=00:{minute:02d} tz={tz}")
    begin, finish = utc(start + " 00:00"), utc(end + " 00:00")
    runs = hourly_runs(begin, finish, minute=45)
    slots = slots_between(p, begin - 2 * HOUR, finish + 2 * HOUR)

    # Then the slots are one per real hour, but for the wall-clock hour the fall-back repeats
    hours = (finish - begin) // HOUR
    assert len([s for s in slots if begin <= s < finish]) == hours - repeated_hours
    gaps = [b - a for a, b in pairwise(slots)]
    assert gaps.count(2 * HOUR) == repeated_hours
    assert all(gap in (HOUR, 2 * HOUR) for gap in gaps)

    chosen = []
    for run in runs:
        slot = current_slot(p, run)
        # the latest slot at or before the run (brute force over the month's slots)
        assert slot == max(s for s in slots if s <= run)
        assert next_slot(p, run) == min(s for s in slots if s > run)
        chosen.append(slot)

    # every slot of the month is chosen by some run, and a run repeats its predecessor's slot only in
    # the real hour that replays a wall-clock hour already taken
    assert set(slots_between(p, runs[0] - HOUR, runs[-1])) == set(chosen)
    collapses = [b for a, b in pairwise(runs) if current_slot(p, a) == current_slot(p, b)]
    assert len(collapses) == repeated_hours
    for run in collapses:
        local_now = run.astimezone(p.zone)
        local_before = (run - HOUR).astimezone(p.zone)
        assert local_now.hour == local_before.hour  # the same wall-clock hour, twice


@pytest.mark.parametrize(("tz", "start", "end", "repeated_hours"), MONTHS)
@pytest.mark.parametrize("anchor", ["00:00", "01:30", "02:00", "02:30", "03:00", "23:30"])
def test_a_month_of_hourly_runs_takes_one_daily_slot_per_local_day(
    tz: str, start: str, end: str, repeated_hours: int, anchor: str
) -> None:
    del repeated_hours
    p = policy(f"every=1d at={anchor} tz={tz}")
    runs = hourly_runs(utc(start + " 00:00"), utc(end + " 00:00"), minute=0)

    chosen = sorted({current_slot(p, run) for run in runs})
    local_days = [slot.astimezone(p.zone).date() for slot in chosen]

    assert len(local_days) == len(set(local_days))  # never two slots in one local day
    days = (local_days[-1] - local_days[0]).days + 1
    assert len(chosen) == days  # and none missing
    for slot in chosen:
        local = slot.astimezone(p.zone)
        hours, minutes = (int(x) for x in anchor.split(":"))
        skipped = local.replace(tzinfo=None) != datetime.combine(local.date(), datetime.min.time()).replace(
            hour=hours, minute=minutes
        )
        if skipped:  # only on the day the wall time does not exist: just after the jump
            assert local.date() in {date(2026, 3, 29), date(2026, 3, 8)}
            assert local.hour == 3


@pytest.mark.parametrize(("tz", "start", "end", "repeated_hours"), MONTHS)
def test_a_month_of_runs_every_2h_policy_never_has_two_slots_in_one_real_hour(
    tz: str, start: str, end: str, repeated_hours: int
) -> None:
    del repeated_hours
    p = policy(f"every=2h at=01:00 tz={tz}")
    slots = slots_between(p, utc(start + " 00:00"), utc(end + " 00:00"))

    gaps = [b - a for a, b in pairwise(slots)]
    assert all(HOUR <= gap <= 3 * HOUR for gap in gaps)
    assert sum(1 for gap in gaps if gap != 2 * HOUR) <= 2


# --- other zones with odd transitions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "year"),
    [
        ("Europe/Berlin", 2026),
        ("America/New_York", 2026),
        ("Australia/Lord_Howe", 2026),  # 30-minute DST shift
        ("America/Santiago", 2026),  # midnight does not exist on the spring day
        ("Asia/Kolkata", 2026),  # no DST, half-hour offset
    ],
)
def test_every_local_day_of_a_year_has_exactly_one_daily_slot(tz: str, year: int) -> None:
    for anchor in ("00:00", "00:30", "01:30", "02:00", "02:15", "02:30", "03:00", "12:00", "23:59"):
        p = policy(f"every=1d at={anchor} tz={tz}")
        day, seen = date(year, 1, 1), []
        while day.year == year:
            slots = slots_on(p, day)
            assert len(slots) == 1, (anchor, day)
            seen.append(slots[0])
            day += DAY
        assert seen == sorted(seen)
        assert len(set(seen)) == len(seen), anchor


def test_a_skipped_calendar_day_does_not_lose_the_previous_slot() -> None:
    # Apia went from 29 December 2011 23:59 (-10:00) to 31 December 00:00 (+14:00)
    p = policy("every=1d at=23:00 tz=Pacific/Apia")
    previous = utc("2011-12-30 09:00")  # 29 December 23:00 local

    assert current_slot(p, utc("2011-12-30 10:30")) == previous
    assert current_slot(p, utc("2011-12-31 08:30")) == previous
