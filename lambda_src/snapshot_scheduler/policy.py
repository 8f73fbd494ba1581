"""Policy tag value -> Policy: presets, named policies and the inline `key=value` grammar.

Pure: no I/O, no clock. Every error names the bad word and what is allowed, because operators read
these messages in logs and in the run report and must be able to fix the tag from them alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from enum import Enum
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from snapshot_scheduler import tags
from snapshot_scheduler.errors import SnapshotSchedulerError

ALL = -1  # a keep-* count of `all`

PRESETS: Mapping[str, str] = {
    "hourly": "every=1h keep-hourly=24 keep-daily=7",
    "daily": "every=1d keep-daily=7",
    "gfs": "every=1d keep-daily=7 keep-weekly=4 keep-monthly=12 keep-yearly=7",
}
OFF = "off"

# A named policy's name: one word a tag value can hold.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*\Z")
# [0-9], not \d: \d also matches other scripts' digits, which int() then refuses or misreads.
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")
_DURATION = re.compile(r"^(?:([0-9]+)y)?(?:([0-9]+)m)?(?:([0-9]+)d)?(?:([0-9]+)h)?\Z")
_COUNT = re.compile(r"^[0-9]+\Z")
_MAX_COUNT = 100_000
_MAX_TAG_VALUE = 256


class PolicyError(SnapshotSchedulerError):
    """A policy tag value that cannot be used; the message says what is wrong and what is allowed."""


class Every(Enum):
    """How often a snapshot is taken; the value is the interval in hours."""

    H1 = 1
    H2 = 2
    H3 = 3
    H4 = 4
    H6 = 6
    H8 = 8
    H12 = 12
    D1 = 24
    W1 = 168

    @property
    def text(self) -> str:
        return {24: "1d", 168: "1w"}.get(self.value, f"{self.value}h")

    @property
    def interval(self) -> timedelta:
        return timedelta(hours=self.value)


_EVERY = {every.text: every for every in Every}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Duration:
    """A calendar duration as restic counts it: years and months by the calendar, days, then hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @property
    def text(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{n}{unit}" for n, unit in parts if n) or "0h"


@dataclass(frozen=True)
class Retention:
    """restic `forget` options. Counts are None (unset), a positive number, or ALL."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: Duration | None = None
    within_hourly: Duration | None = None
    within_daily: Duration | None = None
    within_weekly: Duration | None = None
    within_monthly: Duration | None = None
    within_yearly: Duration | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def words(self) -> list[str]:
        """The canonical `keep-*` words, in a fixed order."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            key = "keep-" + f.name.replace("_", "-")
            if isinstance(value, Duration):
                out.append(f"{key}={value.text}")
            else:
                out.append(f"{key}={'all' if value == ALL else value}")
        return out


@dataclass(frozen=True)
class Policy:
    every: Every
    at: str
    on: str
    tz: str
    retention: Retention
    name: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def anchor(self) -> tuple[int, int]:
        hours, minutes = self.at.split(":")
        return int(hours), int(minutes)

    def spec(self) -> str:
        """The canonical inline text: recorded on every snapshot so orphans can be pruned by it later."""
        on = [f"on={self.on}"] if self.every is Every.W1 else []
        return " ".join([f"every={self.every.text}", f"at={self.at}", *on, f"tz={self.tz}", *self.retention.words()])

    def describe(self) -> str:
        """The policy in words, for `policy check`, `plan` and the demo."""
        return f"{describe_schedule(self)}; {describe_retention(self.retention)}"


def parse_policy(text: str, named: Mapping[str, str] | None = None, *, at: str = "03:00", tz: str = "UTC") -> Policy:
    """Parse a policy tag value. `off` is not a policy: callers check `is_off` first.

    `named` are the deployment's policies (they override presets); `at` and `tz` are its defaults.
    """
    return _parse_policy(text, tuple(sorted((named or {}).items())), at, tz)


# A run parses the same few texts once per cluster and once per snapshot (the policy each records); a
# Policy is immutable, so one parse serves them all. Errors are not cached: they are raised every time.
@lru_cache(maxsize=1024)
def _parse_policy(text: str, named_items: tuple[tuple[str, str], ...], at: str, tz: str) -> Policy:
    named = dict(named_items)
    value = text.strip()
    if len(value) > _MAX_TAG_VALUE:
        raise PolicyError(f"policy is {len(value)} characters long; a tag value holds at most {_MAX_TAG_VALUE}")
    bad = sorted({c for c in value if not (tags.is_text(c) or c.isspace())})  # any white space separates words
    if bad:
        raise PolicyError(
            f"policy {value!r} contains {' '.join(repr(c) for c in bad)}; a tag value may hold only "
            f"{tags.TEXT_RULE} (separate words with spaces, as in every=1d keep-daily=7)"
        )
    if not value:
        raise PolicyError(f"policy is empty; {_WHAT_IS_ALLOWED}")
    if "=" not in value and " " not in value:
        policy = _parse_name(value, named or {}, at=at, tz=tz)
    else:
        policy = _parse_words(value, at=at, tz=tz)
    spec = policy.spec()
    if len(spec) > _MAX_TAG_VALUE:
        # The canonical text is recorded on every snapshot; a policy that cannot be recorded cannot be used.
        raise PolicyError(
            f"policy {value!r} spelled out is {len(spec)} characters ({spec!r}); "
            f"a tag value holds at most {_MAX_TAG_VALUE}: use fewer keep-* words"
        )
    return policy


def check_name(name: str) -> None:
    """A named policy's name must be something a tag value can select: one word, no `=`."""
    if not _NAME.match(name) or is_off(name):
        raise PolicyError(
            f"policy name {name!r} cannot be selected by a tag; allowed: a letter, then letters, digits, _ . -"
            f" (and not {OFF!r})"
        )


def is_off(text: str | None) -> bool:
    return text is None or text.strip().lower() == OFF


_WHAT_IS_ALLOWED = (
    "use a preset (hourly, daily, gfs), a policy named in the deployment's configuration, "
    "or key=value words such as every=1d at=03:00 keep-daily=7"
)


def _parse_name(name: str, named: Mapping[str, str], *, at: str, tz: str) -> Policy:
    """Names match whatever their case; the deployment's names win over presets. A named policy's text
    is inline words or a preset's name (never another named policy: no chains to follow or loop)."""
    same = sorted(key for key in named if key.lower() == name.lower())
    if len(same) > 1:
        raise PolicyError(
            f"policy name {name!r} is ambiguous: the deployment's named policies {' and '.join(map(repr, same))} "
            "differ only in letter case; rename one of them"
        )
    folded = {key.lower(): spec for key, spec in named.items()}
    spec = folded.get(name.lower(), PRESETS.get(name.lower()))
    if spec is None:
        known = ", ".join(sorted({*PRESETS, *named}))
        raise PolicyError(
            f"unknown policy name {name!r}; known names: {known}; or write key=value words "
            "such as every=1d keep-daily=7"
        )
    try:
        policy = parse_policy(spec, at=at, tz=tz) if name.lower() in folded else _parse_words(spec, at=at, tz=tz)
    except PolicyError as error:
        raise PolicyError(f"policy {name!r} ({spec!r}) is invalid: {error}") from error
    return Policy(policy.every, policy.at, policy.on, policy.tz, policy.retention, name=name)


_KEEP_COUNTS = {f"keep-{n}": n for n in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
_KEEP_WITHIN = {
    "keep-within": "within",
    **{f"keep-within-{n}": f"within_{n}" for n in ("hourly", "daily", "weekly", "monthly", "yearly")},
}
_KEYS = ("every", "at", "on", "tz", *_KEEP_COUNTS, *_KEEP_WITHIN)


def parse_schedule(text: str, *, at: str, tz: str) -> Policy:
    """Only the when of a policy (every, at, on, tz words), keeping nothing: which slots a DR tag shares with
    an account that keeps by its own policy."""
    return _parse_words(text, at=at, tz=tz, keeps=False)


def _parse_words(text: str, *, at: str, tz: str, keeps: bool = True) -> Policy:
    words: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        key = key.lower()
        if not sep or not value:
            raise PolicyError(f"{word!r} is not a key=value word; {_WHAT_IS_ALLOWED}")
        if key not in _KEYS:
            raise PolicyError(f"unknown word {word!r}; allowed keys: {', '.join(_KEYS)}")
        if key in words:
            raise PolicyError(f"{key!r} is given twice ({key}={words[key]} and {word}); give each key once")
        words[key] = value
    every = _parse_every(words.pop("every", "1d"))
    on = words.pop("on", None)
    if on is not None and every is not Every.W1:
        raise PolicyError(f"on={on} needs every=1w (this policy says every={every.text})")
    if on is not None and on.lower() not in WEEKDAYS:
        raise PolicyError(f"on={on} is not a weekday; allowed: {', '.join(WEEKDAYS)}")
    at_value = words.pop("at", at)
    parse_clock(at_value)
    zone = parse_zone(words.pop("tz", tz)).key
    retention = _parse_retention(words)
    if retention.empty and keeps:
        raise PolicyError(
            f"policy {text!r} keeps nothing: add at least one of keep-last, keep-hourly, keep-daily, "
            "keep-weekly, keep-monthly, keep-yearly, keep-within or keep-within-*"
        )
    return Policy(every=every, at=at_value, on=(on or "sun").lower(), tz=zone, retention=retention)


def _parse_every(value: str) -> Every:
    every = _EVERY.get(value.lower())
    if every is None:
        raise PolicyError(f"every={value} is not an interval; allowed: {' '.join(_EVERY)}")
    return every


def _parse_retention(words: Mapping[str, str]) -> Retention:
    values: dict[str, object] = {}
    for key, value in words.items():
        if key in _KEEP_COUNTS:
            values[_KEEP_COUNTS[key]] = _parse_count(key, value)
        else:
            values[_KEEP_WITHIN[key]] = parse_duration(value, key=key)
    return Retention(**values)  # type: ignore[arg-type]


def _parse_count(key: str, value: str) -> int:
    if value.lower() == "all":
        return ALL
    if not _COUNT.match(value) or not 1 <= int(value) <= _MAX_COUNT:
        raise PolicyError(f"{key}={value} is not a count; allowed: a whole number from 1 to {_MAX_COUNT}, or all")
    return int(value)


def parse_duration(value: str, *, key: str = "keep-within") -> Duration:
    match = _DURATION.match(value.lower())
    if not value or match is None:
        raise PolicyError(
            f"{key}={value} is not a duration; allowed: numbers with units y m d h in that order, such as 7d or 1y2m"
        )
    years, months, days, hours = (int(g) if g else 0 for g in match.groups())
    duration = Duration(years, months, days, hours)
    if duration == Duration():
        raise PolicyError(f"{key}={value} is zero; give a duration longer than zero, such as 7d")
    return duration


def parse_clock(value: str) -> tuple[int, int]:
    match = _CLOCK.match(value)
    if match is None:
        raise PolicyError(f"at={value} is not a time of day; allowed: HH:MM from 00:00 to 23:59, such as 03:00")
    return int(match.group(1)), int(match.group(2))


ZONE_RULE = "UTC or an Area/City zone of the IANA time zone database, such as Europe/Berlin"


def parse_zone(value: str) -> ZoneInfo:
    """UTC (any case) or a zone the bundled tzdata package lists, so the answer is the same on every host:
    the engine's Lambda, an operator's laptop and the machine that runs `cdk synth`."""
    if value.upper() == "UTC":
        return ZoneInfo("UTC")
    if "/" in value and value in zone_names():
        return ZoneInfo(value)
    raise PolicyError(f"tz={value} is not a time zone{zone_hint(value)}; allowed: {ZONE_RULE}")


@cache
def zone_names() -> frozenset[str]:
    """The zones of the tzdata package (a pinned dependency of the function and of the CDK app)."""
    listing = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listing.split())


def zone_hint(value: str) -> str:
    """Why a zone-like value is not a zone we take, when that is not obvious; else empty."""
    names = zone_names()
    spelled = sorted(name for name in names if name.lower() == value.lower() and "/" in name)
    if spelled:
        return f" (zone names are case-sensitive: did you mean {spelled[0]}?)"
    group = sorted(name for name in names if value and name.startswith(value.rstrip("/") + "/"))
    if group:
        shown = ", ".join(group[:3]) + (", ..." if len(group) > 3 else "")
        return f" ({value.rstrip('/')} is a group of {len(group)} zones: {shown}; name one of them)"
    if value in names:
        return " (a legacy alias: name the zone as UTC or Area/City)"
    return ""


def describe_schedule(policy: Policy) -> str:
    zone = policy.tz
    if policy.every is Every.W1:
        return f"a snapshot every {_DAY_NAMES[policy.on]} at {policy.at} {zone}"
    if policy.every is Every.D1:
        return f"a snapshot every day at {policy.at} {zone}"
    hours = policy.every.value
    unit = "hour" if hours == 1 else f"{hours} hours"
    return f"a snapshot every {unit} (anchored at {policy.at} {zone})"


_DAY_NAMES = dict(
    zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)
_COUNT_NOUNS = {
    "last": ("the last {n} snapshots", "all snapshots"),
    "hourly": ("the last snapshot of each of {n} hours", "the last snapshot of every hour"),
    "daily": ("the last snapshot of each of {n} days", "the last snapshot of every day"),
    "weekly": ("the last snapshot of each of {n} ISO weeks", "the last snapshot of every ISO week"),
    "monthly": ("the last snapshot of each of {n} months", "the last snapshot of every month"),
    "yearly": ("the last snapshot of each of {n} years", "the last snapshot of every year"),
}


def describe_retention(retention: Retention) -> str:
    parts = []
    for key, (some, every) in _COUNT_NOUNS.items():
        count = getattr(retention, key)
        if count is not None:
            parts.append(every if count == ALL else some.format(n=count))
    if retention.within is not None:
        parts.append(f"every snapshot within {retention.within.text} of the newest")
    for period in ("hourly", "daily", "weekly", "monthly", "yearly"):
        within = getattr(retention, f"within_{period}")
        if within is not None:
            parts.append(f"one {period} snapshot within {within.text} of the newest")
    return "keeps " + ", ".join(parts) + " (never fewer than one)"
