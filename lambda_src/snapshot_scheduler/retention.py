"""plan_retention: restic `forget` semantics over any items with a timestamp. Pure: no I/O, no clock.

Newest first. Each `keep-<period>` counter keeps an item whose bucket (hour, day, ISO week, month, year
in the policy's zone) differs from the last one it kept, and, while it still has counts left, also the
oldest item. `keep-within*` count back from the newest item, not from now, with calendar months and
years, so history stays intact when backups stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import MINYEAR, UTC, date, datetime, timedelta, tzinfo
from typing import Any, Generic, TypeVar, cast

from snapshot_scheduler.policy import ALL, Duration, Policy
from snapshot_scheduler.schedule import to_utc

T = TypeVar("T")

Bucketer = Callable[[datetime, int], int]


def _hour(t: datetime, _: int) -> int:
    return ((t.year * 100 + t.month) * 100 + t.day) * 100 + t.hour


def _day(t: datetime, _: int) -> int:
    return (t.year * 100 + t.month) * 100 + t.day


def _week(t: datetime, _: int) -> int:
    year, week, _weekday = t.isocalendar()
    return year * 100 + week


def _month(t: datetime, _: int) -> int:
    return t.year * 100 + t.month


def _year(t: datetime, _: int) -> int:
    return t.year


def _always(_: datetime, position: int) -> int:
    return position


_COUNTERS: tuple[tuple[str, Bucketer, str], ...] = (
    ("last", _always, "last snapshot"),
    ("hourly", _hour, "hourly snapshot"),
    ("daily", _day, "daily snapshot"),
    ("weekly", _week, "weekly snapshot"),
    ("monthly", _month, "monthly snapshot"),
    ("yearly", _year, "yearly snapshot"),
)
_WITHIN: tuple[tuple[str, Bucketer, str], ...] = (
    ("within_hourly", _hour, "hourly within"),
    ("within_daily", _day, "daily within"),
    ("within_weekly", _week, "weekly within"),
    ("within_monthly", _month, "monthly within"),
    ("within_yearly", _year, "yearly within"),
)


@dataclass(frozen=True)
class Decision(Generic[T]):
    item: T
    time: datetime
    reasons: tuple[str, ...]

    @property
    def kept(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class RetentionPlan(Generic[T]):
    """Every item, newest first, with why it is kept (no reasons: removed)."""

    decisions: tuple[Decision[T], ...]

    @property
    def keep(self) -> list[T]:
        return [d.item for d in self.decisions if d.kept]

    @property
    def remove(self) -> list[T]:
        return [d.item for d in self.decisions if not d.kept]


def _identity(item: Any) -> datetime:
    return cast(datetime, item)


def plan_retention(policy: Policy, items: Sequence[T], key: Callable[[T], datetime] = _identity) -> RetentionPlan[T]:
    """Which items the policy keeps and why; `key` gives each item's aware timestamp."""
    zone = policy.zone
    ordered = sorted(((to_utc(key(item)), item) for item in items), key=lambda pair: pair[0], reverse=True)
    retention = policy.retention
    if not ordered:
        return RetentionPlan(())
    if retention.empty:
        return RetentionPlan(tuple(Decision(item, t, ("no retention policy",)) for t, item in ordered))

    counts = {name: getattr(retention, name) for name, _, _ in _COUNTERS}
    last_bucket: dict[str, int | None] = {name: None for name, _, _ in (*_COUNTERS, *_WITHIN)}
    newest = ordered[0][0]
    oldest_position = len(ordered) - 1
    decisions = []
    for position, (t, item) in enumerate(ordered):
        local = t.astimezone(zone)
        reasons = []
        if retention.within is not None and t > _before(newest, retention.within, zone):
            reasons.append(f"within {retention.within.text}")
        for name, bucket_of, reason in _COUNTERS:
            count = counts[name]
            if count is None or count == 0:
                continue
            bucket = bucket_of(local, position)
            if bucket != last_bucket[name] or position == oldest_position:
                reasons.append(reason if bucket != last_bucket[name] else f"oldest {reason}")
                last_bucket[name] = bucket
                if count != ALL:
                    counts[name] = count - 1
        for name, bucket_of, reason in _WITHIN:
            within: Duration | None = getattr(retention, name)
            if within is None or t <= _before(newest, within, zone):
                continue
            bucket = bucket_of(local, position)
            if bucket != last_bucket[name] or position == oldest_position:
                label = f"{reason} {within.text}"
                reasons.append(label if bucket != last_bucket[name] else f"oldest {label}")
                last_bucket[name] = bucket
        decisions.append(Decision(item, t, tuple(reasons)))
    return RetentionPlan(tuple(decisions))


def _before(newest: datetime, within: Duration, zone: tzinfo) -> datetime:
    """`newest` minus a calendar duration, normalising like Go's time.AddDate (Mar 31 - 1m = Mar 3)."""
    local = newest.astimezone(zone)
    months = local.year * 12 + (local.month - 1) - within.years * 12 - within.months
    if months < 12 * MINYEAR:  # reaches before the calendar begins: everything is within
        return datetime.min.replace(tzinfo=UTC)
    try:
        first = date(months // 12, months % 12 + 1, 1)
        day = first + timedelta(days=local.day - 1 - within.days)
        wall = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=zone)
        return wall.astimezone(UTC) - timedelta(hours=within.hours)
    except OverflowError:  # days or hours reaching before the calendar begins
        return datetime.min.replace(tzinfo=UTC)
