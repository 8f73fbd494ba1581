"""Slots: the instants a policy asks for a snapshot. Pure: time enters as an argument.

Slots are wall-clock times in the policy's zone: `at` plus multiples of `every` within each local day
(for `1w`, on the policy's weekday). Across daylight-saving changes each wall-clock slot happens exactly
once: a time the spring jump skips is shifted by the jump (02:30 in a 02:00->03:00 jump becomes 03:30),
and a time the autumn fall-back repeats counts at its first occurrence. So no slot vanishes and none is taken twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from snapshot_scheduler.policy import WEEKDAYS, Every, Policy


def current_slot(policy: Policy, at: datetime) -> datetime:
    """The latest slot at or before `at` (aware), in UTC."""
    now = to_utc(at)
    local_day = now.astimezone(policy.zone).date()
    lookback = 8 if policy.every is Every.W1 else 2  # 2: a zone may skip a whole calendar day
    for offset in range(lookback + 1):
        earlier = [slot for slot in slots_on(policy, local_day - timedelta(days=offset)) if slot <= now]
        if earlier:
            return earlier[-1]
    raise AssertionError(f"no slot within {lookback} days before {now}: {policy.spec()}")  # pragma: no cover


def next_slot(policy: Policy, at: datetime) -> datetime:
    """The first slot strictly after `at` (aware), in UTC."""
    now = to_utc(at)
    local_day = now.astimezone(policy.zone).date()
    for offset in range(9):
        later = [slot for slot in slots_on(policy, local_day + timedelta(days=offset)) if slot > now]
        if later:
            return later[0]
    raise AssertionError(f"no slot within 8 days after {now}: {policy.spec()}")  # pragma: no cover


def slots_on(policy: Policy, day: date) -> list[datetime]:
    """The slots of one local day, in UTC, ascending and without duplicates."""
    if policy.every is Every.W1 and day.weekday() != WEEKDAYS.index(policy.on):
        return []
    hour, minute = policy.anchor
    step = min(policy.every.value, 24)
    first_hour = hour % step
    zone = policy.zone
    instants = {
        # fold=0: a skipped wall time takes the offset before the jump, so it is shifted by the jump;
        # a repeated one means its first occurrence.
        datetime.combine(day, time(h, minute), tzinfo=zone).astimezone(UTC)
        for h in range(first_hour, 24, step)
    }
    return sorted(instants)


def to_utc(at: datetime) -> datetime:
    """`at` in UTC; a naive datetime is refused: a time without a zone is no point in time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"time {at.isoformat()} has no time zone; expected an aware datetime")
    return at.astimezone(UTC)
