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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import fleet as fleet_mod
from bench.endpoint import Timeline, serve
from tests.support.fidelity import RdsFidelity, RealClock, TokenBucket
from tests.support.harness import DEFAULT_ENV, REGION, moto_rds, rds_client

ROOT = Path(__file__).resolve().parent.parent
RDS_RATE, RDS_BURST = 12.0, 300  # RDS's own bucket per account and region (rds-facts.md)
DESCRIBES = ("DescribeDBClusters", "DescribeDBClusterSnapshots", "DescribeAccountAttributes")
MUTATIONS = ("CreateDBClusterSnapshot", "DeleteDBClusterSnapshot")
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

    @property
    def scale(self) -> float:
        return self.bucket_rate / RDS_RATE


@dataclass
class FleetResult:
    clusters: int
    settings: Settings
    calls: Counter[str]
    minimum: Counter[str]
    throttled: Counter[str]
    faults: Counter[str]
    retry_sleep: float
    seed_seconds: float
    figures: dict[str, Any]
    timeline: Timeline
    problems: list[str] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def call_ratio(self) -> float:
        return self.total_calls / sum(self.minimum.values())

    @property
    def wall(self) -> float:
        return float(self.figures["wall_seconds"])

    @property
    def limit(self) -> float | None:
        """The token bucket's own floor for this many calls: (calls - burst) / rate, once past the burst."""
        excess = self.total_calls - self.settings.bucket_burst
        return excess / self.settings.bucket_rate if excess > 0 else None

    @property
    def wall_ratio(self) -> float | None:
        return None if self.limit is None else self.wall / self.limit

    @property
    def pacer_floor(self) -> float | None:
        """The least wall time the handler's own pacer allows, as a ratio to the bucket's limit."""
        if self.limit is None:
            return None
        return max(0, self.total_calls - self.settings.pacer_burst) / self.settings.pacer_rate / self.limit

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
    """The function's environment (the stack's defaults, our deployment, the pacer) and where RDS is."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAPSHOT_", "POWERTOOLS_", "MOTO_"))}
    return {
        **keep,
        **DEFAULT_ENV,
        "SNAPSHOT_DEPLOYMENT": fleet_mod.DEPLOYMENT,
        "SNAPSHOT_POLICY_TAG_KEY": fleet_mod.POLICY_TAG_KEY,
        "SNAPSHOT_API_RATE": f"{settings.pacer_rate:g}",
        "SNAPSHOT_API_BURST": str(settings.pacer_burst),
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
    fleet = fleet_mod.Fleet(clusters, at)
    with moto_rds():
        fidelity = RdsFidelity(
            clock=RealClock(),
            quota=FLEET_QUOTA,
            bucket=TokenBucket(burst=settings.bucket_burst, rate=settings.bucket_rate),
            latency=settings.latency,
        )
        client = rds_client(fidelity)
        started = time.perf_counter()
        fleet_mod.seed(fidelity, fleet)
        seed_seconds = time.perf_counter() - started
        fidelity.reset_counts()
        with serve(client) as endpoint:
            figures = _run_handler(endpoint.url, settings, at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        problems = fleet_mod.check(fidelity, fleet)
        return FleetResult(
            clusters=clusters,
            settings=settings,
            calls=Counter(fidelity.calls),
            minimum=fleet.minimum_calls(),
            throttled=Counter(fidelity.throttled),
            faults=Counter(fidelity.faults),
            retry_sleep=fidelity.retry_sleep,
            seed_seconds=seed_seconds,
            figures=figures,
            timeline=endpoint.timeline,
            problems=problems,
        )


def _run_handler(endpoint: str, settings: Settings, scheduled: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out, log = Path(tmp) / "figures.json", Path(tmp) / "handler.log"
        command = [sys.executable, "-m", "bench.handler_process", scheduled, str(settings.budget), str(out)]
        if settings.tracemalloc:
            command.append("--tracemalloc")
        with log.open("wb") as sink:
            done = subprocess.run(
                command,
                check=False,
                cwd=ROOT,
                env=handler_env(endpoint, settings),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        if done.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the handler process exited with status {done.returncode}:\n{tail}")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures
