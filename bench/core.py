"""Measure one fleet: seed it behind the layer, serve the layer on 127.0.0.1, run the handler once in a
fresh process, then read the layer's counts and check what the run left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import fleet as fleet_mod
from bench.endpoint import Timeline, serve
from tests.support.fidelity import RdsFidelity, RealClock, Regions, TokenBucket
from tests.support.harness import DEFAULT_ENV, REGION, moto_rds, rds_client

ROOT = Path(__file__).resolve().parent.parent
RDS_RATE, RDS_BURST = 12.0, 300  # RDS's own bucket per account and region (rds-facts.md)
DESCRIBES = ("DescribeDBClusters", "DescribeDBClusterSnapshots", "DescribeAccountAttributes")
MUTATIONS = ("CreateDBClusterSnapshot", "DeleteDBClusterSnapshot", "CopyDBClusterSnapshot")
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
FLEET_QUOTA = 10_000_000  # manual snapshot quota raised (adjustable in Service Quotas) to hold the fleet


@dataclass(frozen=True)
class Settings:
    """How RDS is emulated and how the handler is configured. Times are scaled by `scale` from RDS's."""

    latency: float = 0.020  # seconds added to every HTTP attempt by the layer
    bucket_burst: int = 300
    bucket_rate: float = 120.0
    pacer_rate: float = 110.0  # SNAPSHOT_API_RATE given to the handler
    pacer_burst: int = 280  # SNAPSHOT_API_BURST
    tracemalloc: bool = False  # on: the run also reports tracemalloc's peak, and runs slower for it
    budget: float = 900.0  # the Lambda's time budget, seconds
    cpu_share: float | None = None  # set: the handler runs under a CPU quota of this many cores
    dr_every: int = 0  # set: a DR fleet, every n-th cluster DR-tagged (bench/fleet.py)

    @property
    def scale(self) -> float:
        return self.bucket_rate / RDS_RATE


@dataclass
class FleetResult:
    clusters: int
    settings: Settings
    calls: Counter[str]  # in every region
    minimum: Counter[str]
    throttled: Counter[str]
    faults: Counter[str]
    retry_sleep: float
    seed_seconds: float
    figures: dict[str, Any]
    timeline: Timeline
    listed: int  # manual snapshots the sweep lists
    # A dry run right after, standing for the hourly runs between slots: it reads and decides, makes no
    # change (the one deletion per cluster retention now finds, as today's snapshot came after the sweep,
    # is reported, not made: in production the next run makes it).
    quiet: dict[str, Any]
    quiet_calls: Counter[str]
    problems: list[str] = field(default_factory=list)
    label: str = ""  # the fleet as the tables name it
    quiet_minimum: int = 0  # the quiet run's describes
    dr_calls: Counter[str] = field(default_factory=Counter)  # the DR region's share of `calls`
    dr_minimum: Counter[str] = field(default_factory=Counter)
    dr_quiet_calls: Counter[str] = field(default_factory=Counter)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def call_ratio(self) -> float:
        return self.total_calls / sum(self.minimum.values())

    @property
    def wall(self) -> float:
        return float(self.figures["wall_seconds"])

    def _floor(self, burst: float, rate: float) -> float | None:
        """(calls - burst) / rate in each region (each has its own bucket and pacer), added up: the run acts
        in its own region first, then in the DR region. None while every region is within its burst."""
        regions = (self.total_calls - sum(self.dr_calls.values()), sum(self.dr_calls.values()))
        excess = [calls - burst for calls in regions if calls > burst]
        return sum(excess) / rate if excess else None

    @property
    def limit(self) -> float | None:
        """The token bucket's own floor for this many calls: (calls - burst) / rate, once past the burst."""
        return self._floor(self.settings.bucket_burst, self.settings.bucket_rate)

    @property
    def wall_ratio(self) -> float | None:
        return None if self.limit is None else self.wall / self.limit

    @property
    def pacer_limit(self) -> float | None:
        """The handler's own pacer's floor for this many calls: (calls - its burst) / its rate."""
        return self._floor(self.settings.pacer_burst, self.settings.pacer_rate)

    @property
    def pacer_ratio(self) -> float | None:
        return None if self.pacer_limit is None else self.wall / self.pacer_limit

    @property
    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system, all threads) of the handler process by phase."""
        return dict(self.figures["cpu_seconds"])

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    @property
    def quiet_cpu_total(self) -> float:
        return float(sum(self.quiet["cpu_seconds"].values()))

    @property
    def chain_pages(self) -> int:
        """Pages of the longest describe chain: the sweeps run side by side, each one page after another."""
        own = self.minimum["DescribeDBClusterSnapshots"] - self.dr_minimum["DescribeDBClusterSnapshots"]
        return max(self.minimum["DescribeDBClusters"], own, self.dr_minimum["DescribeDBClusterSnapshots"])

    @property
    def pacer_floor(self) -> float | None:
        """The least wall time the handler's own pacer allows, as a ratio to the bucket's limit."""
        return None if self.limit is None or self.pacer_limit is None else self.pacer_limit / self.limit

    @property
    def serial_floor(self) -> float | None:
        """The least wall time of calls made one after another (calls x latency), as a ratio to the limit."""
        return None if self.limit is None else self.total_calls * self.settings.latency / self.limit

    @property
    def discovery_seconds(self) -> float | None:
        """From the first request to the first create or delete: the describe sweeps and the planning."""
        reads, writes = self.timeline.span(DESCRIBES), self.timeline.span(MUTATIONS)
        return None if reads is None or writes is None else writes[0] - reads[0]

    @property
    def acting_rate(self) -> float | None:
        """Creates and deletes per second, from the first to the last of them."""
        span = self.timeline.span(MUTATIONS)
        count = sum(self.calls[op] + self.throttled[op] for op in MUTATIONS)
        return None if span is None or span[1] <= span[0] else (count - 1) / (span[1] - span[0])

    @property
    def failed(self) -> int:
        return int(self.figures["failed_count"])

    @property
    def surfaced_throttles(self) -> int:
        return sum(1 for item in self.figures["failed"] if item.get("error") in THROTTLING_CODES)

    @property
    def peak_rss_mb(self) -> float:
        return float(self.figures["peak_rss_bytes"]) / 2**20

    @property
    def rss_before_mb(self) -> float:
        return float(self.figures["rss_before_bytes"]) / 2**20

    @property
    def tracemalloc_mb(self) -> float | None:
        peak = self.figures.get("tracemalloc_peak_bytes")
        return None if peak is None else float(peak) / 2**20


def handler_env(endpoint: str, settings: Settings) -> dict[str, str]:
    """The function's environment (the stack's defaults, our deployment, the pacer, the DR target of a DR
    fleet) and where RDS is."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAPSHOT_", "POWERTOOLS_", "MOTO_"))}
    targets = {fleet_mod.DR_TARGET: {"region": fleet_mod.DR_REGION}} if settings.dr_every else {}
    return {
        **keep,
        **DEFAULT_ENV,
        "SNAPSHOT_DEPLOYMENT": fleet_mod.DEPLOYMENT,
        "SNAPSHOT_POLICY_TAG_KEY": fleet_mod.POLICY_TAG_KEY,
        "SNAPSHOT_API_RATE": f"{settings.pacer_rate:g}",
        "SNAPSHOT_API_BURST": str(settings.pacer_burst),
        "SNAPSHOT_DR_TARGETS": json.dumps(targets),
        "SNAPSHOT_DR_TAG_KEY": fleet_mod.DR_TAG_KEY,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lambda_src"), str(ROOT)]),
    }


def measure_fleet(clusters: int, settings: Settings) -> FleetResult:
    at = fleet_mod.scheduled_time()
    fleet = fleet_mod.Fleet(clusters, at, dr_every=settings.dr_every)
    with moto_rds():
        regions = Regions(RealClock())
        layers = [
            regions.layer(
                region,
                quota=FLEET_QUOTA,
                bucket=TokenBucket(burst=settings.bucket_burst, rate=settings.bucket_rate),
                latency=settings.latency,
            )
            for region in (REGION, *([fleet_mod.DR_REGION] if fleet.dr_ids() else []))
        ]
        fidelity, dr = layers[0], (layers[1] if len(layers) > 1 else None)
        clients = [rds_client(layer, region=layer.region or REGION) for layer in layers]
        started = time.perf_counter()
        fleet_mod.seed(fidelity, fleet, dr)
        seed_seconds = time.perf_counter() - started
        for layer in layers:
            layer.reset_counts()
        scheduled = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        with serve(*clients) as endpoint:
            figures = _run_handler(endpoint.url, settings, scheduled, cpu_share=settings.cpu_share)
        calls, throttled, faults = (_added(getattr(layer, kind) for layer in layers) for kind in KINDS)
        dr_calls = Counter(dr.calls) if dr is not None else Counter()
        retry_sleep = sum(layer.retry_sleep for layer in layers)
        problems = _checked(fidelity, dr, fleet)
        for layer in layers:
            layer.reset_counts()
        with serve(*clients) as quiet_endpoint:
            quiet = _run_handler(quiet_endpoint.url, settings, scheduled, cpu_share=settings.cpu_share, dry_run=True)
        quiet_calls = _added(layer.calls for layer in layers)
        problems += [f"after the quiet run: {problem}" for problem in _checked(fidelity, dr, fleet)]
        return FleetResult(
            clusters=clusters,
            settings=settings,
            calls=calls,
            minimum=fleet.minimum_calls() + fleet.dr_minimum_calls(),
            throttled=throttled,
            faults=faults,
            retry_sleep=retry_sleep,
            seed_seconds=seed_seconds,
            figures=figures,
            timeline=endpoint.timeline,
            listed=clusters * fleet.per_cluster + len(fleet.dr_ids()) * fleet_mod.DR_COPIES,
            quiet=quiet,
            quiet_calls=quiet_calls,
            problems=problems,
            label=fleet.label,
            quiet_minimum=fleet.quiet_minimum_calls(),
            dr_calls=dr_calls,
            dr_minimum=fleet.dr_minimum_calls(),
            dr_quiet_calls=Counter(dr.calls) if dr is not None else Counter(),
        )


KINDS = ("calls", "throttled", "faults")  # the layers' counters


def _added(counters: Iterable[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return total


def _checked(fidelity: RdsFidelity, dr: RdsFidelity | None, fleet: fleet_mod.Fleet) -> list[str]:
    return fleet_mod.check(fidelity, fleet) + (fleet_mod.check_dr(fidelity, dr, fleet) if dr is not None else [])


def _run_handler(
    endpoint: str, settings: Settings, scheduled: str, *, cpu_share: float | None = None, dry_run: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out, log = Path(tmp) / "figures.json", Path(tmp) / "handler.log"
        command = [sys.executable, "-m", "bench.handler_process", scheduled, str(settings.budget), str(out)]
        if settings.tracemalloc:
            command.append("--tracemalloc")
        if dry_run:
            command.append("--dry-run")
        with log.open("wb") as sink, cpu_quota(cpu_share) as join:
            done = subprocess.run(
                command,
                check=False,
                cwd=ROOT,
                env=handler_env(endpoint, settings),
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=join,
            )
        if done.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the handler process exited with status {done.returncode}:\n{tail}")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures


CGROUP_V2, CGROUP_V1_CPU = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
QUOTA_PERIOD_US = 100_000  # the kernel's default CFS period


@contextmanager
def cpu_quota(share: float | None) -> Iterator[Callable[[], None] | None]:
    """A CPU cgroup of its own, limited to `share` cores by the CFS quota (cgroup v2 `cpu.max`, or v1
    `cpu.cfs_quota_us`): what Lambda does to a function below 1,769 MB. Yields what the child runs before
    exec to join it (None when `share` is None); the cgroup is removed afterwards."""
    if share is None:
        yield None
        return
    quota = max(1000, round(share * QUOTA_PERIOD_US))
    if (CGROUP_V2 / "cgroup.controllers").exists():
        group = CGROUP_V2 / f"snapshot-scheduler-bench-{os.getpid()}"
        limits = {"cpu.max": f"{quota} {QUOTA_PERIOD_US}"}
    elif CGROUP_V1_CPU.is_dir():
        group = CGROUP_V1_CPU / f"snapshot-scheduler-bench-{os.getpid()}"
        limits = {"cpu.cfs_period_us": str(QUOTA_PERIOD_US), "cpu.cfs_quota_us": str(quota)}
    else:
        raise RuntimeError("--cpu-share needs a writable CPU cgroup (v2 cpu.max or v1 cpu.cfs_quota_us)")
    group.mkdir()
    try:
        for name, value in limits.items():
            (group / name).write_text(value)

        def join() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        yield join
    finally:
        _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    """rmdir only (a cgroup's files cannot be unlinked); its one process has exited, or is about to."""
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    print(f"could not remove the cgroup {group}: remove it with rmdir", file=sys.stderr)
