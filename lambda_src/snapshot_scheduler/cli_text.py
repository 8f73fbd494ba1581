"""Text for people and JSON for machines: the small helpers every CLI view uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from snapshot_scheduler.model import Quota


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip() for line in lines]
    rule = [*widths[:-1], max(len(headers[-1]), min(widths[-1], 40))]  # a long last column needs no long rule
    out.insert(1, "  ".join("-" * width for width in rule))
    return "\n".join(out)


def render_pairs(rows: Sequence[tuple[str, str]], indent: str = "  ") -> str:
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{indent}{key.ljust(width)}  {value}" for key, value in rows)


def when(moment: datetime | None, tz: str | None = None) -> str:
    if moment is None:
        return "-"
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if tz is not None and tz.upper() != "UTC":
        text += " = " + moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")
    return text


def age_text(age: timedelta) -> str:
    """A duration for people: 3d 4h, 2h 5m, 7m."""
    minutes = int(age.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def quota_text(quota: Quota) -> str:
    return f"{quota.used}/{quota.max} used ({quota.utilization:.0f}%)"


def quota_dict(quota: Quota | None) -> dict[str, Any] | None:
    if quota is None:
        return None
    return {"used": quota.used, "max": quota.max, "utilization": round(quota.utilization, 1)}


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
