"""`make bench`: the real handler at fleet scale against the fidelity layer; exits 1 if a target is missed.

python -m bench                    fleets of 100, 1,000 and 3,000 clusters, DR fleets of 1,000 and 3,000, cold start
python -m bench --quick            100 clusters only
python -m bench --fleets 100,1000  the fleets given, and the DR fleets (--dr-fleets, 0 for none)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from bench import cold_start, report
from bench.core import ROOT, FleetResult, Settings, handler_env, measure_fleet

FLEETS = (100, 1000, 3000)
DR_FLEETS = (1000, 3000)
DR_EVERY = 10  # one cluster in ten is DR-tagged


def parse(argv: list[str]) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 clusters only")
    parser.add_argument(
        "--fleets", type=_sizes_or_none, default=FLEETS, help="comma-separated fleet sizes (100,1000,3000; 0 for none)"
    )
    parser.add_argument(
        "--dr-fleets",
        type=_sizes_or_none,
        default=DR_FLEETS,
        help="DR fleet sizes (1000,3000; 0 for none): one cluster in --dr-every is DR-tagged to a second region",
    )
    parser.add_argument("--dr-every", type=int, default=DR_EVERY, help="DR-tag every n-th cluster of a DR fleet (10)")
    parser.add_argument("--latency-ms", type=float, default=defaults.latency * 1000, help="per-call latency (20)")
    parser.add_argument("--bucket-rate", type=float, default=defaults.bucket_rate, help="RDS bucket refill/s (120)")
    parser.add_argument("--bucket-burst", type=int, default=defaults.bucket_burst, help="RDS bucket burst (300)")
    parser.add_argument("--pacer-rate", type=float, default=defaults.pacer_rate, help="SNAPSHOT_API_RATE (110)")
    parser.add_argument("--pacer-burst", type=int, default=defaults.pacer_burst, help="SNAPSHOT_API_BURST (280)")
    parser.add_argument(
        "--cpu-share",
        type=float,
        help="also run each fleet with the handler under a CPU quota of this many cores (a CPU cgroup), and "
        "compare with the projection: at 512 MB Lambda gives 512/1769 = 0.29",
    )
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per cold-start side (7)")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report tracemalloc's peak (slows the handler's allocations: wall time is then not judged)",
    )
    args = parser.parse_args(argv)
    if args.cold_runs < 1:
        parser.error("--cold-runs must be at least 1")
    if args.dr_every < 1:
        parser.error(f"--dr-every is a whole number from 1 (every cluster), not {args.dr_every}")
    if args.cpu_share is not None and not 0.01 <= args.cpu_share <= 1:
        parser.error(f"--cpu-share is a fraction of one core from 0.01 to 1, not {args.cpu_share:g}")
    if args.quick:
        args.fleets, args.dr_fleets = (100,), ()
    return args


def _fleets(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected sizes such as 100,1000 ({error})") from error
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("expected one or more positive fleet sizes such as 100,1000")
    return sizes


def _sizes_or_none(text: str) -> tuple[int, ...]:
    return () if text.strip() == "0" else _fleets(text)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    settings = replace(
        Settings(),
        latency=args.latency_ms / 1000,
        bucket_rate=args.bucket_rate,
        bucket_burst=args.bucket_burst,
        pacer_rate=args.pacer_rate,
        pacer_burst=args.pacer_burst,
        tracemalloc=args.tracemalloc,
    )
    print(f"# snapshot-scheduler benchmark\n\nMachine: {report.machine()}\n\n{report.setup(settings)}\n", flush=True)
    results: list[FleetResult] = []
    quotaed: list[FleetResult] = []
    runs = [(clusters, settings) for clusters in args.fleets]
    runs += [(clusters, replace(settings, dr_every=args.dr_every)) for clusters in args.dr_fleets]
    for clusters, fleet_settings in runs:
        results.append(_measure(clusters, fleet_settings))
        if args.cpu_share is not None:
            quotaed.append(_measure(clusters, replace(fleet_settings, cpu_share=args.cpu_share)))
    print("... cold start", file=sys.stderr, flush=True)
    cold = cold_start.measure(args.cold_runs, handler_env("http://127.0.0.1:9", settings), ROOT)
    found = report.checks(results, cold)
    print("## API calls by operation (made / minimum)\n")
    print(report.calls_table(results) + "\n")
    if any(r.dr_minimum for r in results):
        print("## The DR fleets' calls in the DR region (made / minimum), and what the run did there\n")
        print(report.dr_table(results) + "\n")
    print("## Wall time against the token bucket's limit, (calls - burst) / rate\n")
    print(report.wall_table(results) + "\n")
    print("## CPU time of the handler process, by phase\n")
    print(report.cpu_table(results) + "\n")
    print("## Projected on Lambda (production rate and latency, CPU at the memory's share)\n")
    print(report.projection_notes() + "\n")
    print(report.projection_table(results) + "\n")
    if quotaed:
        print("## The projection checked: the handler under a CPU quota\n")
        print(report.quota_table(results, quotaed) + "\n")
    print("## Memory of the handler process\n")
    print(report.memory_table(results) + "\n")
    print("## Cold start\n")
    print(report.cold_table(cold) + "\n")
    print("## Targets\n")
    print(report.checks_table(found) + "\n")
    missed = [check for check in found if not check.ok]
    print(f"{len(missed)} of {len(found)} targets missed." if missed else f"All {len(found)} targets met.")
    return 1 if missed else 0


def _measure(clusters: int, settings: Settings) -> FleetResult:
    started = time.perf_counter()
    quota = "" if settings.cpu_share is None else f" under a CPU quota of {settings.cpu_share:g}"
    dr = f" (DR: one in {settings.dr_every})" if settings.dr_every else ""
    print(f"... {clusters:,} clusters{dr}: seeding and running the handler{quota}", file=sys.stderr, flush=True)
    result = measure_fleet(clusters, settings)
    print(
        f"... {clusters:,} clusters done in {time.perf_counter() - started:.0f}s "
        f"(seeding {result.seed_seconds:.1f}s, handler {result.wall:.1f}s, "
        f"quiet run {result.quiet['wall_seconds']:.1f}s)",
        file=sys.stderr,
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
