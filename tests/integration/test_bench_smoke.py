"""The benchmark's code path at a tiny fleet with fast settings: every figure is produced, and the real
handler makes exactly the minimum calls. No wall-time assertion: machines are noisy (`make bench` judges)."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import main

FAST = ["--latency-ms", "0", "--bucket-rate", "10000", "--bucket-burst", "10000", "--pacer-rate", "1000"]


def test_the_benchmark_measures_a_tiny_fleet_and_the_handler_makes_the_minimum_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--fleets", "20", "--cold-runs", "1", *FAST, "--pacer-burst", "1000"])
    out = capsys.readouterr().out

    # 20 clusters x 10 snapshots: 1 cluster page, 2 snapshot pages, 1 quota read, 20 creates, 20 deletes.
    assert "| 20 | 1 / 1 | 2 / 2 | 1 / 1 | 20 / 20 | 20 / 20 | 0 | 44 / 44 | 1.00 | 0 | 0 |" in out
    wall = re.search(
        r"^\| 20 \| 44 \| [\d.]+ \| n/a \| n/a \(under burst\) \|.*\| 20 / 20 \| 0 \| 0 \| 0 \| as expected \|$",
        out,
        re.M,
    )
    assert wall, out
    memory = re.search(r"^\| 20 \| (\d+\.\d) \| (\d+\.\d) \| -?\d+\.\d \| off \(--tracemalloc\) \|$", out, re.M)
    assert memory and float(memory.group(1)) >= float(memory.group(2)) > 0, out
    assert re.search(r"^\| ratio \| \d+\.\d\dx \|", out, re.M), out
    assert "API calls / minimum, 20 clusters | 1.00 | 1.00 | yes" in out
    assert "Machine: " in out and "nproc " in out and "Python " in out
