"""The benchmark's figures as Markdown tables (pasted as-is into bench/README.md), and its targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.cold_start import ColdStart
from bench.core import RDS_BURST, RDS_RATE, FleetResult, Settings
from bench.fleet import KEEP

OPERATIONS = (
    "DescribeDBClusters",
    "DescribeDBClusterSnapshots",
    "DescribeAccountAttributes",
    "CreateDBClusterSnapshot",
    "DeleteDBClusterSnapshot",
)
CALL_RATIO_TARGET = 1.00
WALL_RATIO_TARGET = 1.2
WALL_TARGET_FROM = 1000  # clusters: the wall-time target applies to fleets this large
MEMORY_TARGET_MB = 256
COLD_RATIO_TARGET = 1.3


@dataclass(frozen=True)
class Check:
    what: str
    value: str
    target: str
    ok: bool


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}; nproc {cpus}; {model}; Python {platform.python_version()} ({platform.python_implementation()}); "
        f"{platform.system()} {platform.release()}; engine at {engine_revision()}"
    )


def engine_revision() -> str:
    """The commit measured, and whether lambda_src/ differed from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "lambda_src")
    return f"{commit}{' + uncommitted lambda_src changes' if dirty else ''}"


def setup(settings: Settings) -> str:
    return (
        f"RDS: the fidelity layer over moto (in-process, served on 127.0.0.1); token bucket {settings.bucket_burst} "
        f"burst at {settings.bucket_rate:g}/s (RDS: {RDS_BURST} at {RDS_RATE:g}/s; rate scaled x{settings.scale:g}); "
        f"fixed latency {settings.latency * 1000:g} ms per HTTP attempt. Handler: its own fresh process, "
        f"unpatched, pacer SNAPSHOT_API_RATE={settings.pacer_rate:g} SNAPSHOT_API_BURST={settings.pacer_burst} "
        f"(production defaults 10 and 200), standard-mode retries, real time."
    )


def _num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def calls_table(results: Sequence[FleetResult]) -> str:
    header = ["clusters", *OPERATIONS, "other", "total / minimum", "ratio", "throttled (retried)", "faults"]
    rows = []
    for r in results:
        other = sum(n for op, n in r.calls.items() if op not in OPERATIONS)
        rows.append(
            [
                f"{r.clusters:,}",
                *(f"{r.calls[op]:,} / {r.minimum[op]:,}" for op in OPERATIONS),
                f"{other:,}",
                f"{r.total_calls:,} / {sum(r.minimum.values()):,}",
                f"{r.call_ratio:.2f}",
                f"{sum(r.throttled.values()):,}",
                ", ".join(f"{code} {n}" for code, n in sorted(r.faults.items())) or "0",
            ]
        )
    return _table(header, rows)


def wall_table(results: Sequence[FleetResult]) -> str:
    header = [
        "clusters",
        "calls",
        "wall s",
        "bucket limit s",
        "ratio",
        "pacer floor",
        "serial-latency floor",
        "ms per call",
        "discovery s",
        "creates+deletes per s",
        "created / deleted",
        "failed",
        "deferred",
        "throttles surfaced",
        "end state",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                f"{r.clusters:,}",
                f"{r.total_calls:,}",
                f"{r.wall:.1f}",
                _num(r.limit, 1),
                _num(r.wall_ratio, 2, "x") if r.limit is not None else "n/a (under burst)",
                _num(r.pacer_floor, 2, "x"),
                _num(r.serial_floor, 2, "x"),
                f"{r.wall / r.total_calls * 1000:.1f}",
                _num(r.discovery_seconds, 1),
                _num(r.acting_rate, 0),
                f"{r.figures['created']:,} / {r.figures['deleted']:,}",
                str(r.failed),
                str(r.figures["deferred_count"]),
                str(r.surfaced_throttles),
                "as expected" if not r.problems else f"{len(r.problems)} clusters wrong",
            ]
        )
    return _table(header, rows)


def memory_table(results: Sequence[FleetResult]) -> str:
    header = ["clusters", "peak RSS MB (VmHWM, judged)", "RSS before the call MB", "growth MB", "tracemalloc peak MB"]
    rows = [
        [
            f"{r.clusters:,}",
            f"{r.peak_rss_mb:.1f}",
            f"{r.rss_before_mb:.1f}",
            f"{r.peak_rss_mb - r.rss_before_mb:.1f}",
            _num(r.tracemalloc_mb, 1) if r.tracemalloc_mb is not None else "off (--tracemalloc)",
        ]
        for r in results
    ]
    return _table(header, rows)


def cold_table(cold: ColdStart) -> str:
    rows = [
        [
            "import handler module + runtime() (settings, pacer, client)",
            f"{cold.handler_median * 1000:.0f}",
            f"{len(cold.handler)}",
            " ".join(f"{s * 1000:.0f}" for s in cold.handler),
        ],
        [
            "import boto3 + boto3.client('rds')",
            f"{cold.boto3_median * 1000:.0f}",
            f"{len(cold.boto3)}",
            " ".join(f"{s * 1000:.0f}" for s in cold.boto3),
        ],
        ["ratio", f"{cold.ratio:.2f}x", "", ""],
    ]
    return _table(["fresh process", "median ms", "runs", "each ms"], rows)


def checks(results: Sequence[FleetResult], cold: ColdStart | None) -> list[Check]:
    found = []
    for r in results:
        n = f"{r.clusters:,} clusters"
        found.append(
            Check(
                f"API calls / minimum, {n}",
                f"{r.call_ratio:.2f}",
                f"{CALL_RATIO_TARGET:.2f}",
                r.total_calls == sum(r.minimum.values()),
            )
        )
        found.append(
            Check(
                f"failed, deferred, throttles surfaced, {n}",
                f"{r.failed}, {r.figures['deferred_count']}, {r.surfaced_throttles}",
                "0, 0, 0",
                r.failed == 0 and r.figures["deferred_count"] == 0 and r.surfaced_throttles == 0,
            )
        )
        found.append(
            Check(
                f"end state (today's + {KEEP} kept per cluster), {n}",
                f"{len(r.problems)} wrong",
                "0 wrong",
                not r.problems,
            )
        )
        if r.clusters >= WALL_TARGET_FROM and not r.settings.tracemalloc:
            ratio = r.wall_ratio
            found.append(
                Check(
                    f"wall / bucket limit, {n}",
                    _num(ratio, 2, "x"),
                    f"<= {WALL_RATIO_TARGET}x",
                    ratio is not None and ratio <= WALL_RATIO_TARGET,
                )
            )
        found.append(
            Check(
                f"peak RSS of the handler process, {n}",
                f"{r.peak_rss_mb:.0f} MB",
                f"< {MEMORY_TARGET_MB} MB",
                r.peak_rss_mb < MEMORY_TARGET_MB,
            )
        )
    if cold is not None:
        found.append(
            Check(
                "cold start, handler / bare boto3 RDS client",
                f"{cold.ratio:.2f}x",
                f"<= {COLD_RATIO_TARGET}x",
                cold.ratio <= COLD_RATIO_TARGET,
            )
        )
    return found


def checks_table(found: Sequence[Check]) -> str:
    return _table(
        ["target", "measured", "target value", "met"],
        [[c.what, c.value, c.target, "yes" if c.ok else "**MISSED**"] for c in found],
    )
