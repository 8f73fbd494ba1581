"""Retention is restic's `forget`: checked against restic's own expected results, then its documented rules.

The golden cases below are restic's test data: the snapshot times of `TestApplyPolicy`
(internal/restic/snapshot_policy_test.go, now internal/data/) and, for each policy, the snapshots its golden
file `testdata/policy_keep_snapshots_<n>` keeps, newest first, with restic's reasons ("matches"). Only
golden files written since restic keeps the oldest snapshot while counts remain (0.17) are used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from _pytest.mark import ParameterSet
from snapshot_scheduler.policy import Policy, parse_policy
from snapshot_scheduler.retention import plan_retention


@dataclass(frozen=True)
class Snap:
    """An item to retain: only its time matters; `n` tells equal times apart."""

    n: int
    time: datetime


def at(text: str) -> datetime:
    """restic's test times: "2006-01-02 15:04:05", optionally with fractional seconds, in UTC."""
    day, clock = text.split()
    whole, _, fraction = clock.partition(".")
    stamp = datetime.fromisoformat(f"{day}T{whole}").replace(tzinfo=UTC)
    return stamp + timedelta(microseconds=int((fraction or "0").ljust(6, "0")))


def show(t: datetime) -> str:
    text = t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return text + (f".{t.microsecond // 100000}" if t.microsecond else "")


# restic's TestApplyPolicy snapshot times, in its order (duplicates included: they are distinct snapshots).
RESTIC_TIMES = """
2014-09-01 10:20:30  2014-09-02 10:20:30  2014-09-05 10:20:30  2014-09-06 10:20:30  2014-09-08 10:20:30
2014-09-09 10:20:30  2014-09-10 10:20:30  2014-09-11 10:20:30  2014-09-20 10:20:30  2014-09-22 10:20:30
2014-08-08 10:20:30  2014-08-10 10:20:30  2014-08-12 10:20:30  2014-08-13 10:20:30  2014-08-13 10:20:30.1
2014-08-15 10:20:30  2014-08-18 10:20:30  2014-08-20 10:20:30  2014-08-21 10:20:30  2014-08-22 10:20:30
2014-10-01 10:20:30  2014-10-02 10:20:30  2014-10-05 10:20:30  2014-10-06 10:20:30  2014-10-08 10:20:30
2014-10-09 10:20:30  2014-10-10 10:20:30  2014-10-11 10:20:30  2014-10-20 10:20:30  2014-10-22 10:20:30
2014-11-08 10:20:30  2014-11-10 10:20:30  2014-11-12 10:20:30  2014-11-13 10:20:30  2014-11-13 10:20:30.1
2014-11-15 10:20:30  2014-11-18 10:20:30  2014-11-20 10:20:30  2014-11-21 10:20:30  2014-11-22 10:20:30
2015-09-01 10:20:30  2015-09-02 10:20:30  2015-09-05 10:20:30  2015-09-06 10:20:30  2015-09-08 10:20:30
2015-09-09 10:20:30  2015-09-10 10:20:30  2015-09-11 10:20:30  2015-09-20 10:20:30  2015-09-22 10:20:30
2015-08-08 10:20:30  2015-08-10 10:20:30  2015-08-12 10:20:30  2015-08-13 10:20:30  2015-08-13 10:20:30.1
2015-08-15 10:20:30  2015-08-18 10:20:30  2015-08-20 10:20:30  2015-08-21 10:20:30  2015-08-22 10:20:30
2015-10-01 10:20:30  2015-10-02 10:20:30  2015-10-05 10:20:30  2015-10-06 10:20:30  2015-10-08 10:20:30
2015-10-09 10:20:30  2015-10-10 10:20:30  2015-10-11 10:20:30  2015-10-20 10:20:30  2015-10-22 10:20:30
2015-10-22 10:20:30  2015-10-22 10:20:30  2015-10-22 10:20:30  2015-10-22 10:20:30
2015-11-08 10:20:30  2015-11-10 10:20:30  2015-11-12 10:20:30  2015-11-13 10:20:30  2015-11-13 10:20:30.1
2015-11-15 10:20:30  2015-11-18 10:20:30  2015-11-20 10:20:30  2015-11-21 10:20:30  2015-11-22 10:20:30
2016-01-01 01:02:03  2016-01-01 01:03:03  2016-01-01 07:08:03  2016-01-03 07:02:03  2016-01-04 10:23:03
2016-01-04 11:23:03  2016-01-04 12:23:03  2016-01-04 12:24:03  2016-01-04 12:28:03  2016-01-04 12:30:03
2016-01-04 16:23:03  2016-01-05 09:02:03  2016-01-06 08:02:03  2016-01-07 10:02:03  2016-01-08 20:02:03
2016-01-09 21:02:03  2016-01-12 21:02:03  2016-01-12 21:08:03  2016-01-18 12:02:03
"""


def restic_snapshots() -> list[Snap]:
    stamps = [f"{day} {clock}" for day, clock in zip(*[iter(RESTIC_TIMES.split())] * 2, strict=True)]
    return [Snap(n, at(stamp)) for n, stamp in enumerate(stamps)]


ALL_2016 = """
2016-01-18 12:02:03 | 2016-01-12 21:08:03 | 2016-01-12 21:02:03 | 2016-01-09 21:02:03 | 2016-01-08 20:02:03
2016-01-07 10:02:03 | 2016-01-06 08:02:03 | 2016-01-05 09:02:03 | 2016-01-04 16:23:03 | 2016-01-04 12:30:03
2016-01-04 12:28:03 | 2016-01-04 12:24:03 | 2016-01-04 12:23:03 | 2016-01-04 11:23:03 | 2016-01-04 10:23:03
2016-01-03 07:02:03 | 2016-01-01 07:08:03 | 2016-01-01 01:03:03 | 2016-01-01 01:02:03
"""


def same_reason(times: str, reason: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(stamp.strip(), (reason,)) for stamp in times.replace("\n", "|").split("|") if stamp.strip()]


def reasons(table: str) -> list[tuple[str, tuple[str, ...]]]:
    """Lines of `time  reason, reason`."""
    rows = []
    for line in table.strip().splitlines():
        stamp, _, matches = line.strip().partition("  ")
        rows.append((stamp.strip(), tuple(m.strip() for m in matches.split(","))))
    return rows


# (restic golden file number, our policy text, what restic keeps: (time, matches) newest first)
GOLDEN = [
    (
        1,
        "keep-last=10",
        same_reason(
            "2016-01-18 12:02:03 | 2016-01-12 21:08:03 | 2016-01-12 21:02:03 | 2016-01-09 21:02:03 | "
            "2016-01-08 20:02:03 | 2016-01-07 10:02:03 | 2016-01-06 08:02:03 | 2016-01-05 09:02:03 | "
            "2016-01-04 16:23:03 | 2016-01-04 12:30:03",
            "last snapshot",
        ),
    ),
    (
        5,
        "keep-hourly=20",
        same_reason(
            "2016-01-18 12:02:03 | 2016-01-12 21:08:03 | 2016-01-09 21:02:03 | 2016-01-08 20:02:03 | "
            "2016-01-07 10:02:03 | 2016-01-06 08:02:03 | 2016-01-05 09:02:03 | 2016-01-04 16:23:03 | "
            "2016-01-04 12:30:03 | 2016-01-04 11:23:03 | 2016-01-04 10:23:03 | 2016-01-03 07:02:03 | "
            "2016-01-01 07:08:03 | 2016-01-01 01:03:03 | 2015-11-22 10:20:30 | 2015-11-21 10:20:30 | "
            "2015-11-20 10:20:30 | 2015-11-18 10:20:30 | 2015-11-15 10:20:30 | 2015-11-13 10:20:30.1",
            "hourly snapshot",
        ),
    ),
    (
        10,
        "keep-last=2 keep-daily=10",
        reasons("""
            2016-01-18 12:02:03  last snapshot, daily snapshot
            2016-01-12 21:08:03  last snapshot, daily snapshot
            2016-01-09 21:02:03  daily snapshot
            2016-01-08 20:02:03  daily snapshot
            2016-01-07 10:02:03  daily snapshot
            2016-01-06 08:02:03  daily snapshot
            2016-01-05 09:02:03  daily snapshot
            2016-01-04 16:23:03  daily snapshot
            2016-01-03 07:02:03  daily snapshot
            2016-01-01 07:08:03  daily snapshot
        """),
    ),
    (
        12,
        "keep-weekly=4",
        same_reason(
            "2016-01-18 12:02:03 | 2016-01-12 21:08:03 | 2016-01-09 21:02:03 | 2016-01-03 07:02:03",
            "weekly snapshot",
        ),
    ),
    (
        13,
        "keep-daily=3 keep-weekly=4",
        reasons("""
            2016-01-18 12:02:03  daily snapshot, weekly snapshot
            2016-01-12 21:08:03  daily snapshot, weekly snapshot
            2016-01-09 21:02:03  daily snapshot, weekly snapshot
            2016-01-03 07:02:03  weekly snapshot
        """),
    ),
    (
        14,
        "keep-monthly=6",
        same_reason(
            "2016-01-18 12:02:03 | 2015-11-22 10:20:30 | 2015-10-22 10:20:30 | 2015-09-22 10:20:30 | "
            "2015-08-22 10:20:30 | 2014-11-22 10:20:30",
            "monthly snapshot",
        ),
    ),
    (
        15,
        "keep-daily=2 keep-weekly=2 keep-monthly=6",
        reasons("""
            2016-01-18 12:02:03  daily snapshot, weekly snapshot, monthly snapshot
            2016-01-12 21:08:03  daily snapshot, weekly snapshot
            2015-11-22 10:20:30  monthly snapshot
            2015-10-22 10:20:30  monthly snapshot
            2015-09-22 10:20:30  monthly snapshot
            2015-08-22 10:20:30  monthly snapshot
            2014-11-22 10:20:30  monthly snapshot
        """),
    ),
    (
        16,
        "keep-yearly=10",
        reasons("""
            2016-01-18 12:02:03  yearly snapshot
            2015-11-22 10:20:30  yearly snapshot
            2014-11-22 10:20:30  yearly snapshot
            2014-08-08 10:20:30  oldest yearly snapshot
        """),
    ),
    (24, "keep-within=1m", same_reason(ALL_2016, "within 1m")),
    (25, "keep-within=1m14d", same_reason(ALL_2016, "within 1m14d")),
    (
        27,
        "keep-within=13d23h",
        same_reason(
            "2016-01-18 12:02:03 | 2016-01-12 21:08:03 | 2016-01-12 21:02:03 | 2016-01-09 21:02:03 | "
            "2016-01-08 20:02:03 | 2016-01-07 10:02:03 | 2016-01-06 08:02:03 | 2016-01-05 09:02:03 | "
            "2016-01-04 16:23:03",
            "within 13d23h",
        ),
    ),
    (
        28,
        "keep-within=2m2h",
        same_reason(
            ALL_2016 + "| 2015-11-22 10:20:30 | 2015-11-21 10:20:30 | 2015-11-20 10:20:30 | 2015-11-18 10:20:30",
            "within 2m2h",
        ),
    ),
    (
        33,
        "keep-within-monthly=1y2m3d3h",
        same_reason(
            "2016-01-18 12:02:03 | 2015-11-22 10:20:30 | 2015-10-22 10:20:30 | 2015-09-22 10:20:30 | "
            "2015-08-22 10:20:30 | 2014-11-22 10:20:30",
            "monthly within 1y2m3d3h",
        ),
    ),
    (
        34,
        "keep-within-yearly=1y2m3d3h",
        same_reason("2016-01-18 12:02:03 | 2015-11-22 10:20:30 | 2014-11-22 10:20:30", "yearly within 1y2m3d3h"),
    ),
    (
        35,
        "keep-within=1h keep-within-hourly=1d keep-within-daily=7d keep-within-weekly=1m keep-within-monthly=1y "
        "keep-within-yearly=9999y",
        reasons("""
            2016-01-18 12:02:03  within 1h, hourly within 1d, daily within 7d, weekly within 1m, monthly within 1y, yearly within 9999y
            2016-01-12 21:08:03  daily within 7d, weekly within 1m
            2016-01-09 21:02:03  weekly within 1m
            2016-01-03 07:02:03  weekly within 1m
            2015-11-22 10:20:30  monthly within 1y, yearly within 9999y
            2015-10-22 10:20:30  monthly within 1y
            2015-09-22 10:20:30  monthly within 1y
            2015-08-22 10:20:30  monthly within 1y
            2014-11-22 10:20:30  yearly within 9999y
            2014-08-08 10:20:30  oldest yearly within 9999y
        """),  # noqa: E501
    ),
    (
        39,
        "keep-daily=3 keep-weekly=2 keep-monthly=all keep-yearly=all",
        reasons("""
            2016-01-18 12:02:03  daily snapshot, weekly snapshot, monthly snapshot, yearly snapshot
            2016-01-12 21:08:03  daily snapshot, weekly snapshot
            2016-01-09 21:02:03  daily snapshot
            2015-11-22 10:20:30  monthly snapshot, yearly snapshot
            2015-10-22 10:20:30  monthly snapshot
            2015-09-22 10:20:30  monthly snapshot
            2015-08-22 10:20:30  monthly snapshot
            2014-11-22 10:20:30  monthly snapshot, yearly snapshot
            2014-10-22 10:20:30  monthly snapshot
            2014-09-22 10:20:30  monthly snapshot
            2014-08-22 10:20:30  monthly snapshot
            2014-08-08 10:20:30  oldest monthly snapshot, oldest yearly snapshot
        """),
    ),
]


def golden_params() -> list[ParameterSet]:
    return [
        pytest.param(text, expected, id=f"restic-{number}-{text.replace(' ', '_')}")
        for number, text, expected in GOLDEN
    ]


def plan_restic(text: str) -> tuple[list[Snap], list[Snap], dict[int, tuple[str, ...]]]:
    items = restic_snapshots()
    plan = plan_retention(parse_policy(text), items, key=lambda s: s.time)
    why = {d.item.n: d.reasons for d in plan.decisions}
    return plan.keep, plan.remove, why


@pytest.mark.parametrize(("text", "expected"), golden_params())
def test_keeps_what_restic_keeps(text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    keep, remove, why = plan_restic(text)

    assert [show(s.time) for s in keep] == [stamp for stamp, _ in expected]
    assert len(keep) + len(remove) == len(restic_snapshots())
    assert all(why[s.n] == () for s in remove)


@pytest.mark.parametrize(("text", "expected"), golden_params())
def test_gives_restics_reasons_word_for_word(text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    keep, _, why = plan_restic(text)

    assert [(show(s.time), why[s.n]) for s in keep] == expected


def test_keep_last_all_keeps_every_snapshot() -> None:
    keep, remove, why = plan_restic("keep-last=all")

    assert len(keep) == len(restic_snapshots()) and remove == []
    assert set(why.values()) == {("last snapshot",)}


def test_keep_hourly_all_keeps_the_newest_of_every_hour_like_restic() -> None:
    # restic golden file 38 ({Hourly: -1}): every snapshot but the older ones sharing an hour.
    _, remove, _ = plan_restic("keep-hourly=all")

    assert sorted(show(s.time) for s in remove) == sorted(
        [
            "2014-08-13 10:20:30",
            "2014-11-13 10:20:30",
            "2015-08-13 10:20:30",
            "2015-11-13 10:20:30",
            *["2015-10-22 10:20:30"] * 4,
            "2016-01-01 01:02:03",
            "2016-01-04 12:23:03",
            "2016-01-04 12:24:03",
            "2016-01-04 12:28:03",
            "2016-01-12 21:02:03",
        ]
    )


# --- restic's documented examples ("Removing snapshots according to a policy") ------------------------------


def test_doc_example_twelve_sundays_keep_daily_4_keeps_the_last_four() -> None:
    sundays = [datetime(2019, 9, 1, 11, tzinfo=UTC) + timedelta(weeks=w) for w in range(12)]

    plan = plan_retention(parse_policy("keep-daily=4"), sundays)

    assert plan.keep == sundays[-4:][::-1]
    assert sorted(plan.remove) == sundays[:8]
    assert {d.reasons for d in plan.decisions if d.kept} == {("daily snapshot",)}


def test_doc_example_a_century_of_daily_backups_with_gfs_counts() -> None:
    # "one backup every day for 100 years ... keep-daily 7 keep-weekly 5 keep-monthly 12 keep-yearly 75 would
    # keep the most recent 7 daily snapshots and 4 last-day-of-the-week ones ... 12 or 11 last-day-of-the-month
    # ... 75 or 74 last-day-of-the-year snapshots"
    # (ending on a Sunday, so that the seven dailies hold exactly one end of a week, as the text assumes)
    first, last = datetime(1925, 12, 29, 5, tzinfo=UTC), datetime(2025, 12, 28, 5, tzinfo=UTC)
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    assert last.isoweekday() == 7

    plan = plan_retention(parse_policy("keep-daily=7 keep-weekly=5 keep-monthly=12 keep-yearly=75"), days)

    kept = [d for d in plan.decisions if d.kept]
    daily, weekly, monthly, yearly = (
        [d for d in kept if f"{kind} snapshot" in d.reasons] for kind in ("daily", "weekly", "monthly", "yearly")
    )
    assert (len(daily), len(weekly), len(monthly), len(yearly)) == (7, 5, 12, 75)
    new_weekly = [d for d in weekly if d not in daily]
    new_monthly = [d for d in monthly if d not in daily + weekly]
    new_yearly = [d for d in yearly if d not in daily + weekly + monthly]
    assert len(new_weekly) == 4
    # "12 or 11" monthly ones: here 10, as 28 December is a daily and Sunday 30 November also a weekly one
    assert len(new_monthly) == 10
    # "75 or 74" yearly ones: 74, as 2025's is the newest daily
    assert len(new_yearly) == 74
    assert len(kept) == 7 + 4 + 10 + 74


# --- the rules, one at a time -------------------------------------------------------------------------------


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def kept_times(policy: Policy, times: list[datetime]) -> list[datetime]:
    return plan_retention(policy, times).keep


def test_oldest_snapshot_is_kept_while_a_counter_has_counts_left() -> None:
    times = [utc("2026-03-01 00:00"), utc("2026-03-01 12:00"), utc("2026-03-02 12:00")]

    assert kept_times(parse_policy("keep-daily=7"), times) == times[::-1]
    assert kept_times(parse_policy("keep-daily=2"), times) == [times[2], times[1]]


def test_a_snapshot_kept_only_as_the_oldest_says_so() -> None:
    # restic's documentation: "the oldest snapshot is kept additionally and marked as oldest in the output"
    # (Monday 2 March starts ISO week 10; both 1 March snapshots are in week 9, on one day)
    times = [utc("2026-03-01 00:00"), utc("2026-03-01 12:00"), utc("2026-03-02 12:00")]

    plan = plan_retention(parse_policy("keep-daily=7 keep-within-weekly=30d"), times)

    assert [d.reasons for d in plan.decisions] == [
        ("daily snapshot", "weekly within 30d"),
        ("daily snapshot", "weekly within 30d"),
        ("oldest daily snapshot", "oldest weekly within 30d"),
    ]


def test_oldest_snapshot_within_a_within_bucket_is_kept_too() -> None:
    times = [utc("2026-03-01 00:00"), utc("2026-03-01 12:00"), utc("2026-03-02 12:00")]

    assert kept_times(parse_policy("keep-within-daily=30d"), times) == times[::-1]


def test_a_counter_counts_buckets_that_have_snapshots_not_calendar_periods() -> None:
    # backups stopped for months: keep-daily=3 still keeps three snapshots, however old
    times = [utc("2025-01-01 03:00"), utc("2025-01-02 03:00"), utc("2025-01-03 03:00"), utc("2025-06-30 03:00")]

    assert kept_times(parse_policy("keep-daily=3"), times) == times[:0:-1]


def test_keep_within_counts_back_from_the_newest_snapshot_not_from_now() -> None:
    # Given snapshots that stopped a year before any "now"
    times = [utc("2020-05-01 03:00") + timedelta(days=d) for d in range(30)]

    # Then keep-within=7d keeps the last week of that history
    assert kept_times(parse_policy("keep-within=7d"), times) == times[:-8:-1]


@pytest.mark.parametrize(
    ("newest", "duration", "boundary"),
    [
        # Go's time.AddDate normalises: 31 March minus a month is "31 February", which is 3 March
        ("2026-03-31 12:00", "1m", "2026-03-03 12:00"),
        ("2024-03-31 12:00", "1m", "2024-03-02 12:00"),  # leap year: "31 February" is 2 March
        ("2024-02-29 06:00", "1y", "2023-03-01 06:00"),  # "29 February 2023" is 1 March
        ("2026-05-31 00:00", "3m", "2026-03-03 00:00"),  # "31 February" again
        ("2026-01-15 00:00", "1m", "2025-12-15 00:00"),  # across a year
        ("2026-03-01 00:00", "1d", "2026-02-28 00:00"),
        ("2026-03-10 05:00", "1d6h", "2026-03-08 23:00"),  # hours after the calendar part
        ("2026-03-31 12:00", "1y1m1d1h", "2025-03-02 11:00"),
    ],
)
def test_keep_within_uses_calendar_months_and_years_like_go_adddate(newest: str, duration: str, boundary: str) -> None:
    edge = utc(boundary)
    times = [utc(newest), edge + timedelta(seconds=1), edge, edge - timedelta(seconds=1)]

    # Then everything after the boundary is within; the boundary itself is not (restic: strictly After)
    assert kept_times(parse_policy(f"keep-within={duration}"), times) == times[:2]


def test_keep_within_counts_calendar_days_in_the_policys_zone_across_dst() -> None:
    # Newest at 12:00 CEST on the day Berlin springs forward; one calendar day back is 12:00 CET, 23 hours.
    newest = utc("2026-03-29 10:00")
    inside, outside = utc("2026-03-28 11:00") + timedelta(minutes=1), utc("2026-03-28 10:30")

    kept = kept_times(parse_policy("keep-within=1d tz=Europe/Berlin"), [newest, inside, outside])

    assert kept == [newest, inside]


@pytest.mark.parametrize(
    "duration",
    [
        "9999y",
        "3000y",
        "2100y",
        "2025y3m9d3h",
        "99999999y",
        "800000d",
        "99999999h",
    ],
)
def test_huge_keep_within_keeps_everything(duration: str) -> None:
    times = [utc("2026-03-10 03:00"), utc("1999-01-01 00:00"), utc("1970-01-01 00:00")]

    assert kept_times(parse_policy(f"keep-within={duration}"), times) == times


def test_daily_buckets_are_days_in_the_policys_zone() -> None:
    # Given four snapshots; in UTC the last three share 10 January, in Tokyo (+9) the last two share 11 January
    a, b, c, d = (utc(t) for t in ("2026-01-09 12:00", "2026-01-10 14:00", "2026-01-10 16:00", "2026-01-10 20:00"))

    assert kept_times(parse_policy("keep-daily=2 tz=UTC"), [a, b, c, d]) == [d, a]
    assert kept_times(parse_policy("keep-daily=2 tz=Asia/Tokyo"), [a, b, c, d]) == [d, b]


def test_hourly_buckets_follow_a_half_hour_offset_zone() -> None:
    # 10:20 and 10:50 UTC are 15:50 and 16:20 in Kolkata (+5:30): one UTC hour, two local hours
    early, late = utc("2026-01-10 10:20"), utc("2026-01-10 10:50")

    assert kept_times(parse_policy("keep-hourly=1 tz=UTC"), [early, late]) == [late]
    assert kept_times(parse_policy("keep-hourly=2 tz=UTC"), [early, late]) == [late, early]  # oldest rule
    assert kept_times(parse_policy("keep-hourly=1 keep-last=1 tz=Asia/Kolkata"), [early, late]) == [late]
    plan = plan_retention(parse_policy("keep-hourly=all tz=Asia/Kolkata"), [early, late, utc("2026-01-10 09:00")])
    assert [d.reasons for d in plan.decisions] == [("hourly snapshot",)] * 3


def test_weekly_buckets_are_iso_weeks_across_the_year_boundary() -> None:
    # Monday 29 December 2025 and Friday 2 January 2026 are both ISO week 2026-W01; Sunday 3 January 2027
    # is 2026-W53 and Monday 4 January 2027 is 2027-W01.
    times = [
        utc("2025-12-28 12:00"),  # 2025-W52
        utc("2025-12-29 12:00"),  # 2026-W01
        utc("2026-01-02 12:00"),  # 2026-W01
        utc("2026-12-31 12:00"),  # 2026-W53
        utc("2027-01-03 12:00"),  # 2026-W53
        utc("2027-01-04 12:00"),  # 2027-W01
    ]

    kept = kept_times(parse_policy("keep-weekly=3"), times)

    assert kept == [times[5], times[4], times[2]]


def test_weekly_buckets_start_on_monday_in_the_policys_zone() -> None:
    # Sunday 23:30 UTC is already Monday in Berlin: a new week there, the same week in UTC
    sunday, monday = utc("2026-03-08 12:00"), utc("2026-03-08 23:30")

    assert kept_times(parse_policy("keep-weekly=1 tz=UTC"), [sunday, monday]) == [monday]
    assert kept_times(parse_policy("keep-weekly=1 keep-last=1 tz=Europe/Berlin"), [sunday, monday]) == [monday]
    both = plan_retention(parse_policy("keep-weekly=all tz=Europe/Berlin"), [sunday, monday])
    assert [d.reasons for d in both.decisions] == [("weekly snapshot",), ("weekly snapshot",)]


def test_monthly_and_yearly_buckets_are_calendar_months_and_years_in_the_zone() -> None:
    # 31 December 23:30 UTC is 1 January in Berlin
    dec, new_year = utc("2025-12-31 12:00"), utc("2025-12-31 23:30")
    policy = parse_policy("keep-yearly=all tz=Europe/Berlin")

    plan = plan_retention(policy, [dec, new_year])

    assert [d.reasons for d in plan.decisions] == [("yearly snapshot",), ("yearly snapshot",)]
    assert kept_times(parse_policy("keep-monthly=1 keep-last=1 tz=UTC"), [dec, new_year]) == [new_year]


@pytest.mark.parametrize("period", ["hourly", "daily", "weekly", "monthly", "yearly"])
def test_all_keeps_the_newest_of_every_period(period: str) -> None:
    times = [utc("2020-01-01 00:00") + timedelta(hours=7 * h) for h in range(3000)]

    plan = plan_retention(parse_policy(f"keep-{period}=all"), times)

    kept, bucket = set(plan.keep), dict[object, datetime]()
    for t in sorted(times, reverse=True):
        key = {
            "hourly": (t.date(), t.hour),
            "daily": t.date(),
            "weekly": t.isocalendar()[:2],
            "monthly": (t.year, t.month),
            "yearly": t.year,
        }[period]
        bucket.setdefault(key, t)
    assert kept == set(bucket.values()) | {min(times)}


def test_counters_are_independent_and_or_ed() -> None:
    times = [utc("2026-03-01 03:00") + timedelta(days=d) for d in range(60)]

    plan = plan_retention(parse_policy("keep-last=3 keep-weekly=2"), times)
    by_reason = {t: d.reasons for d in plan.decisions if d.kept for t in [d.time]}

    assert len(plan.keep) == 3 + 1  # the 3 newest, one of which is also this week's; plus last week's
    assert by_reason[times[-1]] == ("last snapshot", "weekly snapshot")


# --- the plan itself ----------------------------------------------------------------------------------------


def test_every_item_is_either_kept_or_removed_once_and_they_are_the_given_objects() -> None:
    items = restic_snapshots()
    random.Random(1).shuffle(items)

    plan = plan_retention(parse_policy("gfs"), items, key=lambda s: s.time)

    assert sorted(s.n for s in plan.keep + plan.remove) == list(range(len(items)))
    ids = {id(s) for s in items}
    assert all(id(s) in ids for s in plan.keep + plan.remove)


def test_decisions_are_newest_first_and_equal_times_keep_their_given_order() -> None:
    same = utc("2026-03-10 03:00")
    items = [Snap(0, same), Snap(1, utc("2026-03-11 03:00")), Snap(2, same), Snap(3, same)]

    plan = plan_retention(parse_policy("keep-last=2"), items, key=lambda s: s.time)

    assert [d.item.n for d in plan.decisions] == [1, 0, 2, 3]
    assert [s.n for s in plan.keep] == [1, 0]


def test_result_does_not_depend_on_the_input_order() -> None:
    items = restic_snapshots()
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    policy = parse_policy("keep-daily=7 keep-weekly=4 keep-monthly=12")

    one = plan_retention(policy, items, key=lambda s: s.time)
    other = plan_retention(policy, shuffled, key=lambda s: s.time)

    assert [show(s.time) for s in one.keep] == [show(s.time) for s in other.keep]


def test_key_reads_the_time_from_any_item() -> None:
    items: list[dict[str, datetime]] = [{"at": utc("2026-03-10 03:00")}, {"at": utc("2026-03-09 03:00")}]

    plan = plan_retention(parse_policy("keep-last=1"), items, key=lambda x: x["at"])

    assert plan.keep == [items[0]] and plan.remove == [items[1]]


def test_times_in_other_zones_are_compared_as_instants() -> None:
    tokyo = utc("2026-03-10 03:00").astimezone(ZoneInfo("Asia/Tokyo"))
    later = utc("2026-03-10 03:30")

    assert plan_retention(parse_policy("keep-last=1"), [tokyo, later]).keep == [later]


def test_empty_list_gives_an_empty_plan() -> None:
    plan = plan_retention(parse_policy("daily"), list[datetime]())

    assert plan.keep == [] and plan.remove == []


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="time zone"):
        plan_retention(parse_policy("daily"), [datetime(2026, 3, 10, 3, 0)])
