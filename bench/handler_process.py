"""One invocation of the real Lambda handler in this fresh process; its figures go to a JSON file.

    python -m bench.handler_process <scheduled time ISO 8601> <budget seconds> <result.json> [--tracemalloc]

The parent sets the function's environment (SNAPSHOT_*, POWERTOOLS_*) and AWS_ENDPOINT_URL pointing at
the benchmark's RDS endpoint; nothing of the engine is patched. The handler's logs and EMF blob go to
this process's stdout, as in Lambda. Measured: the invocation's wall time (it builds the runtime, as a
cold container does); this process's resident memory before the call and its peak (VmHWM: the peak of
this process image only; ru_maxrss would not do, as Linux carries the parent's peak across fork and
exec); with --tracemalloc, tracemalloc's peak from just before the call (it slows every allocation, so
the benchmark does not judge wall time in that mode).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any


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
    from snapshot_scheduler.handlers import backup  # noqa: PLC0415 - imported here, outside the measurement

    context = LambdaContext(budget)
    rss_before = _status_kib("VmRSS")
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    answer: dict[str, Any] = backup.lambda_handler({"time": scheduled}, context)
    wall = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    tracemalloc.stop()
    figures = {
        "wall_seconds": wall,
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
    }
    out.write_text(json.dumps(figures))
    return 0


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (the benchmark needs Linux)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
