"""One invocation of the real Lambda handler in this fresh process; its figures go to a JSON file.

    python -m bench.handler_process <scheduled time ISO 8601> <budget seconds> <result.json> [--tracemalloc] [--dry-run]

The parent sets the function's environment (SNAPSHOT_*, POWERTOOLS_*) and AWS_ENDPOINT_URL pointing at
the benchmark's RDS endpoint; nothing of the engine is patched. The handler's logs and EMF blob go to
this process's stdout, as in Lambda. Measured: the invocation's wall time (it builds the runtime, as a
cold container does); this process's resident memory before the call and its peak (VmHWM: the peak of
this process image only; ru_maxrss would not do, as Linux carries the parent's peak across fork and
exec); with --tracemalloc, tracemalloc's peak from just before the call (it slows every allocation, so
the benchmark does not judge wall time in that mode). CPU time (user + system, every thread of this
process) by phase: the phase boundaries are read by wrappers around `service.plan_run` (decide: its first
call) and the handler's `publish` (report), which call the originals unchanged.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
PHASES = ("discover", "decide", "act", "report")


class PhaseClock:
    """Process CPU time at each phase's start: discover (the call's start: runtime, sweeps), decide
    (plan_run), act (creates and deletes), report (EMF and the answer)."""

    def __init__(self) -> None:
        self.starts: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        self.starts.setdefault(phase, time.process_time())

    def around(self, function: F, before: str, after: str | None = None) -> F:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.mark(before)
            result = function(*args, **kwargs)
            if after is not None:
                self.mark(after)
            return result

        return wrapper  # type: ignore[return-value]

    def seconds(self, end: float) -> dict[str, float]:
        bounds = [self.starts[phase] for phase in PHASES if phase in self.starts] + [end]
        if len(bounds) != len(PHASES) + 1:
            raise RuntimeError(f"the handler passed only the phases {list(self.starts)}; expected {PHASES}")
        return {phase: bounds[i + 1] - bounds[i] for i, phase in enumerate(PHASES)}


class LambdaContext:
    """The context fields the handler and Powertools read; time left counts down in real time."""

    function_name = "snapshot-scheduler-backup"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:snapshot-scheduler-backup"
    log_group_name = "/aws/lambda/snapshot-scheduler-backup"
    log_stream_name = "bench"

    def __init__(self, budget: float) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + budget

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    scheduled, budget, out = argv[0], float(argv[1]), Path(argv[2])
    trace = "--tracemalloc" in argv[3:]
    event: dict[str, Any] = {"time": scheduled, **({"dry_run": True} if "--dry-run" in argv[3:] else {})}
    from snapshot_scheduler import service  # noqa: PLC0415 - imported here, outside the measurement
    from snapshot_scheduler.handlers import backup  # noqa: PLC0415

    clock = PhaseClock()
    service.plan_run = clock.around(service.plan_run, "decide", "act")  # type: ignore[attr-defined]
    backup.publish = clock.around(backup.publish, "report")  # type: ignore[attr-defined]
    context = LambdaContext(budget)
    rss_before = _status_kib("VmRSS")
    if trace:
        tracemalloc.start()
    times_before = os.times()
    started = time.perf_counter()
    clock.mark("discover")
    answer: dict[str, Any] = backup.lambda_handler(event, context)
    cpu_end = time.process_time()
    wall = time.perf_counter() - started
    times_after = os.times()
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    tracemalloc.stop()
    figures = {
        "wall_seconds": wall,
        "cpu_seconds": clock.seconds(cpu_end),
        "cpu_user_seconds": times_after.user - times_before.user,
        "cpu_system_seconds": times_after.system - times_before.system,
        "tracemalloc_peak_bytes": peak,
        "rss_before_bytes": rss_before * 1024,
        "peak_rss_bytes": _status_kib("VmHWM") * 1024,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
        "created": len(answer["created"]),
        "deleted": len(answer["deleted"]),
        "deferred": answer["deferred"][:5],
        "deferred_count": len(answer["deferred"]),
        "skipped_count": len(answer["skipped"]),
        "failed": answer["failed"][:5],
        "failed_count": len(answer["failed"]),
        "stats": answer["stats"],
        "dr": _dr_counts(answer.get("dr")),
    }
    out.write_text(json.dumps(figures))
    return 0


def _dr_counts(dr: dict[str, Any] | None) -> dict[str, Any] | None:
    """How many copies the run started, deleted, deferred (by reason), failed and skipped; DR tag errors."""
    if dr is None:
        return None
    counts: dict[str, Any] = {kind: len(dr[kind]) for kind in ("started", "deleted", "deferred", "failed", "skipped")}
    counts["errors"] = len(dr["errors"])
    counts["deferred_codes"] = sorted({entry.get("code", "") for entry in dr["deferred"]})
    return counts


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (the benchmark needs Linux)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
