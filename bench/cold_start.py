"""Cold start: import the handler module and build its runtime (settings, pacer, RDS client), against
importing boto3 and building a bare RDS client, each timed inside a fresh interpreter.

Both sides read byte code, as Lambda does from the bundle (infra/bundling.py compiles it): the probes
share a private byte-code cache that the discarded first pair fills, whatever PYTHONDONTWRITEBYTECODE
says here (without it the handler's own modules were compiled at every probe: 1.40x instead of 1.22x).

    python -m bench.cold_start handler|boto3     (one probe: prints the seconds it took, as JSON)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODES = ("handler", "boto3")


def probe(mode: str) -> float:
    started = time.perf_counter()
    if mode == "handler":
        from snapshot_scheduler.handlers import backup  # noqa: PLC0415 - the import is what is measured

        backup.runtime()
    elif mode == "boto3":
        import boto3  # noqa: PLC0415

        boto3.client("rds")
    else:
        raise ValueError(f"mode is one of {MODES}, not {mode!r}")
    return time.perf_counter() - started


@dataclass(frozen=True)
class ColdStart:
    handler: list[float]
    boto3: list[float]

    @property
    def handler_median(self) -> float:
        return statistics.median(self.handler)

    @property
    def boto3_median(self) -> float:
        return statistics.median(self.boto3)

    @property
    def ratio(self) -> float:
        return self.handler_median / self.boto3_median


def measure(runs: int, env: Mapping[str, str], cwd: Path) -> ColdStart:
    """`runs` fresh processes of each, interleaved, after one discarded pair (byte-code cache, disk)."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        with_cache = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPYCACHEPREFIX": cache}
        for index in range(runs + 1):
            order = MODES if index % 2 == 0 else MODES[::-1]
            for mode in order:
                seconds = _spawn(mode, with_cache, cwd)
                if index:
                    times[mode].append(seconds)
    return ColdStart(handler=times["handler"], boto3=times["boto3"])


def _spawn(mode: str, env: Mapping[str, str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", mode],
        check=False,
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe {mode!r} failed:\n{done.stderr[-3000:]}")
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


if __name__ == "__main__":
    print(json.dumps({"mode": sys.argv[1], "seconds": probe(sys.argv[1])}))
