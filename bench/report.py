"""The benchmark's figures as Markdown tables (pasted as-is into bench/README.md), and its targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cold_start import ColdStart
from bench.core import RDS_BURST, RDS_RATE, FleetResult, Settings
from bench.fleet import DR_COPIES, DR_KEEP, DR_REGION, KEEP
from infra.config import API_BURST, API_RATE, DEFAULTS, MEMORY_MB, SCHEDULE

OPERATIONS = (
    "DescribeDBClusters",
    "DescribeDBClusterSnapshots",
    "DescribeAccountAttributes",
    "CreateDBClusterSnapshot",
    "DeleteDBClusterSnapshot",
    "CopyDBClusterSnapshot",
)
CALL_RATIO_TARGET = 1.00
WALL_RATIO_TARGET = 1.1  # against the handler's own pacer's limit
WALL_TARGET_FROM = 1000  # clusters: the wall-time and CPU targets apply to fleets this large
MEMORY_TARGET_MB = 256
COLD_RATIO_TARGET = 1.3
CPU_MARGIN_TARGET = 0.5  # CPU time at the default memory's share / the API-bound time

# Lambda: CPU in proportion to memory, one vCPU at 1,769 MB (AWS Lambda developer guide, "memory").
FULL_VCPU_MB = 1769
MEMORY_SIZES = (256, 512, 1024, 1769)
DEFAULT_MEMORY_MB = int(DEFAULTS[MEMORY_MB])
PRODUCTION_RATE, PRODUCTION_BURST = float(DEFAULTS[API_RATE]), int(DEFAULTS[API_BURST])
# arm64 (the stack's architecture), us-east-1, first 7.5 billion GB-s a month; requests $0.20 per million.
# aws.amazon.com/lambda/pricing as quoted 2024-2026, unchanged since arm64 launched (September 2021).
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000
PRICE_DATE = "2026-05"
RUNS_PER_DAY = 24  # the default schedule


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
                r.label,
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
        "pacer limit s",
        "wall / pacer limit",
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
                r.label,
                f"{r.total_calls:,}",
                f"{r.wall:.1f}",
                _num(r.limit, 1),
                _num(r.wall_ratio, 2, "x") if r.limit is not None else "n/a (under burst)",
                _num(r.pacer_limit, 1),
                _num(r.pacer_ratio, 2, "x"),
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
            r.label,
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
        n = f"{r.label} clusters"
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
        dr = r.figures.get("dr")
        if dr is not None:
            found.append(_dr_check(r, dr, n))
        found.append(
            Check(
                f"end state (today's + {KEEP} kept per cluster{DR_END_STATE if dr is not None else ''}), {n}",
                f"{len(r.problems)} wrong",
                "0 wrong",
                not r.problems,
            )
        )
        judged = not r.settings.tracemalloc and r.settings.cpu_share is None and not r.settings.dr_every
        if r.clusters >= WALL_TARGET_FROM and judged:
            ratio = r.pacer_ratio
            found.append(
                Check(
                    f"wall / the pacer's own limit, {n}",
                    _num(ratio, 2, "x"),
                    f"<= {WALL_RATIO_TARGET}x",
                    ratio is not None and ratio <= WALL_RATIO_TARGET,
                )
            )
        if r.clusters >= WALL_TARGET_FROM:
            busy = project(r, DEFAULT_MEMORY_MB)
            found.append(
                Check(
                    f"Lambda at {DEFAULT_MEMORY_MB} MB: CPU time at the share / API-bound time, {n}",
                    f"{busy.cpu_ratio:.2f}",
                    f"<= {CPU_MARGIN_TARGET}",
                    busy.cpu_ratio <= CPU_MARGIN_TARGET,
                )
            )
        quiet_describes = r.quiet_minimum
        found.append(
            Check(
                f"quiet (dry) run: calls, created, failed, {n}",
                f"{sum(r.quiet_calls.values()):,}, {r.quiet['created']}, {r.quiet['failed_count']}",
                f"{quiet_describes:,}, 0, 0",
                sum(r.quiet_calls.values()) == quiet_describes and r.quiet["created"] == r.quiet["failed_count"] == 0,
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


DR_END_STATE = f"; in {DR_REGION} the {DR_KEEP} newest of {DR_COPIES} copies and the copies started"


def _dr_check(r: FleetResult, dr: dict[str, Any], n: str) -> Check:
    """Every DR cluster is due a copy: as many start as RDS allows at once, the rest wait for the limit."""
    started = int(r.dr_minimum["CopyDBClusterSnapshot"])
    deferred = r.dr_minimum["DeleteDBClusterSnapshot"] // (DR_COPIES - DR_KEEP) - started
    expected = (started, r.dr_minimum["DeleteDBClusterSnapshot"], deferred, 0, 0, 0)
    measured = tuple(int(dr[kind]) for kind in ("started", "deleted", "deferred", "failed", "skipped", "errors"))
    codes = dr["deferred_codes"] if deferred else []
    return Check(
        f"DR copies started, deleted, deferred (copy-limit), failed, skipped, tag errors, {n}",
        ", ".join(str(v) for v in measured),
        ", ".join(str(v) for v in expected),
        measured == expected and codes == (["copy-limit"] if deferred else []),
    )


def dr_table(results: Sequence[FleetResult]) -> str:
    """The DR region's share of each DR fleet's calls, and what the run did there."""
    header = [
        "fleet",
        "region",
        *OPERATIONS[1:],
        "total / minimum",
        "quiet run calls",
        "copies started / deleted / deferred",
    ]
    rows = []
    for r in results:
        dr = r.figures.get("dr")
        if not r.dr_minimum or dr is None:
            continue
        rows.append(
            [
                r.label,
                DR_REGION,
                *(f"{r.dr_calls[op]:,} / {r.dr_minimum[op]:,}" for op in OPERATIONS[1:]),
                f"{sum(r.dr_calls.values()):,} / {sum(r.dr_minimum.values()):,}",
                f"{sum(r.dr_quiet_calls.values()):,}",
                f"{dr['started']} / {dr['deleted']} / {dr['deferred']}",
            ]
        )
    return _table(header, rows)


def checks_table(found: Sequence[Check]) -> str:
    return _table(
        ["target", "measured", "target value", "met"],
        [[c.what, c.value, c.target, "yes" if c.ok else "**MISSED**"] for c in found],
    )


def cpu_table(results: Sequence[FleetResult]) -> str:
    header = [
        "clusters",
        "run",
        "calls",
        "CPU s: discover",
        "decide",
        "act",
        "report",
        "total (user + sys)",
        "wall s",
        "CPU / wall",
        "CPU ms per API call",
        "discover CPU µs per snapshot listed",
    ]
    rows = []
    for r in results:
        for run, figures, calls in (
            ("all due", r.figures, r.total_calls),
            ("quiet", r.quiet, sum(r.quiet_calls.values())),
        ):
            cpu = figures["cpu_seconds"]
            total = sum(cpu.values())
            rows.append(
                [
                    r.label,
                    run,
                    f"{calls:,}",
                    *(f"{cpu[phase]:.2f}" for phase in ("discover", "decide", "act", "report")),
                    f"{total:.2f} ({figures['cpu_user_seconds']:.2f} + {figures['cpu_system_seconds']:.2f})",
                    f"{figures['wall_seconds']:.1f}",
                    f"{total / figures['wall_seconds']:.2f}",
                    f"{total / calls * 1000:.2f}",
                    f"{cpu['discover'] / r.listed * 1e6:.0f}",
                ]
            )
    return _table(header, rows)


@dataclass(frozen=True)
class Projection:
    """One run on Lambda at `memory_mb`: the larger of its API-bound time and its CPU time at the share."""

    memory_mb: int
    api_seconds: float
    cpu_seconds: float  # at full speed, as measured here

    @property
    def share(self) -> float:
        return min(1.0, self.memory_mb / FULL_VCPU_MB)

    @property
    def cpu_at_share(self) -> float:
        return self.cpu_seconds / self.share

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_at_share / self.api_seconds if self.api_seconds else float("inf")

    @property
    def seconds(self) -> float:
        return max(self.api_seconds, self.cpu_at_share)

    @property
    def gb_seconds(self) -> float:
        return self.memory_mb / 1024 * self.seconds

    @property
    def cost(self) -> float:
        return self.gb_seconds * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST


def api_bound(calls: Sequence[int], chain_pages: int, settings: Settings) -> float:
    """Production seconds no CPU can shorten: RDS's bucket (12/s after 300), the stack's pacer (10/s after
    200), each region's (`calls` per region) one after the other as the run acts, and the longest describe
    chain at the benchmark's latency in production time (x scale)."""
    bucket = sum(max(0, n - RDS_BURST) for n in calls) / RDS_RATE
    pacer = sum(max(0, n - PRODUCTION_BURST) for n in calls) / PRODUCTION_RATE
    chain = chain_pages * settings.latency * settings.scale
    return max(bucket, pacer, chain)


def project(r: FleetResult, memory_mb: int, *, quiet: bool = False) -> Projection:
    if quiet:
        dr = sum(r.dr_quiet_calls.values())
        calls = (sum(r.quiet_calls.values()) - dr, dr)
        return Projection(memory_mb, api_bound(calls, r.chain_pages, r.settings), r.quiet_cpu_total)
    dr = sum(r.dr_calls.values())
    return Projection(memory_mb, api_bound((r.total_calls - dr, dr), r.chain_pages, r.settings), r.cpu_total)


def projection_table(results: Sequence[FleetResult]) -> str:
    header = [
        "clusters",
        "memory MB",
        "CPU share",
        "all due: API-bound s",
        "CPU s at the share",
        "CPU / API",
        "bound by",
        "projected s",
        "GB-s",
        "$ per run",
        "quiet: projected s",
        "bound by",
        "$ per run",
        f"$ per month ({RUNS_PER_DAY} runs a day: 1 all due + {RUNS_PER_DAY - 1} quiet)",
    ]
    rows = []
    for r in results:
        for memory in MEMORY_SIZES:
            busy, quiet = project(r, memory), project(r, memory, quiet=True)
            month = 30 * (busy.cost + (RUNS_PER_DAY - 1) * quiet.cost)
            rows.append(
                [
                    r.label,
                    f"**{memory:,}**" if memory == DEFAULT_MEMORY_MB else f"{memory:,}",
                    f"{busy.share:.2f}",
                    f"{busy.api_seconds:.0f}",
                    f"{busy.cpu_at_share:.0f}",
                    f"{busy.cpu_ratio:.2f}",
                    "CPU" if busy.cpu_ratio > 1 else "API",
                    f"{busy.seconds:.0f}",
                    f"{busy.gb_seconds:.0f}",
                    f"{busy.cost:.4f}",
                    f"{quiet.seconds:.0f}",
                    "CPU" if quiet.cpu_ratio > 1 else "API",
                    f"{quiet.cost:.5f}",
                    f"{month:.2f}",
                ]
            )
    return _table(header, rows)


def projection_notes() -> str:
    return (
        f"Lambda arm64 at ${PRICE_PER_GB_SECOND} per GB-s and $0.20 per million requests (us-east-1, prices of "
        f"{PRICE_DATE}; free tier ignored); CPU share = memory / {FULL_VCPU_MB:,} MB; API-bound = the largest of "
        f"RDS's bucket ({RDS_BURST} at {RDS_RATE:g}/s), the stack's pacer ({PRODUCTION_BURST} at "
        f"{PRODUCTION_RATE:g}/s) and the longest describe chain at the benchmark's latency in production time; "
        f"default memory in bold (infra `{MEMORY_MB}`), default schedule `{DEFAULTS[SCHEDULE]}`."
    )


def quota_table(free: Sequence[FleetResult], quotaed: Sequence[FleetResult]) -> str:
    """The projection checked: the same fleet run again under a CPU quota, against max(the free run's wall,
    the free run's CPU / share), as the Lambda projection computes it."""
    header = [
        "clusters",
        "run",
        "CPU share",
        "free run: wall s",
        "CPU s",
        "projected s",
        "under the quota: wall s",
        "CPU s",
        "wall / projected",
    ]
    rows = []
    for f, q in zip(free, quotaed, strict=True):
        share = q.settings.cpu_share
        assert share is not None
        for run, free_figures, quota_figures in (("all due", f.figures, q.figures), ("quiet", f.quiet, q.quiet)):
            free_cpu = sum(free_figures["cpu_seconds"].values())
            projected = max(free_figures["wall_seconds"], free_cpu / share)
            rows.append(
                [
                    q.label,
                    run,
                    f"{share:g}",
                    f"{free_figures['wall_seconds']:.1f}",
                    f"{free_cpu:.2f}",
                    f"{projected:.1f}",
                    f"{quota_figures['wall_seconds']:.1f}",
                    f"{sum(quota_figures['cpu_seconds'].values()):.2f}",
                    f"{quota_figures['wall_seconds'] / projected:.2f}",
                ]
            )
    return _table(header, rows)
