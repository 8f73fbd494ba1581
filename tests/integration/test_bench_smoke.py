"""The benchmark's code path at a tiny fleet with fast settings: every figure is produced, and the real
handler makes exactly the minimum calls. No wall-time assertion: machines are noisy (`make bench` judges)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bench.__main__ import main

FAST = ["--latency-ms", "0", "--bucket-rate", "10000", "--bucket-burst", "10000", "--pacer-rate", "1000"]


def test_the_benchmark_measures_a_tiny_fleet_and_the_handler_makes_the_minimum_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--fleets", "20", "--dr-fleets", "20", "--dr-every", "4", "--cold-runs", "1", *FAST, "--pacer-burst", "1000"])
    out = capsys.readouterr().out

    # 20 clusters x 10 snapshots: 1 cluster page, 2 snapshot pages, 1 quota read, 20 creates, 20 deletes.
    assert "| 20 | 1 / 1 | 2 / 2 | 1 / 1 | 20 / 20 | 20 / 20 | 0 / 0 | 0 | 44 / 44 | 1.00 | 0 | 0 |" in out
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
    # CPU by phase for the run and for the quiet (dry) run after it, which makes only the describes.
    cpu = re.search(r"^\| 20 \| all due \| 44 \|(?: \d+\.\d\d \|){4} (\d+\.\d\d) \(", out, re.M)
    assert cpu and float(cpu.group(1)) > 0, out
    assert re.search(r"^\| 20 \| quiet \| 4 \|(?: \d+\.\d\d \|){4} \d+\.\d\d \(", out, re.M), out
    assert "quiet (dry) run: calls, created, failed, 20 clusters | 4, 0, 0 | 4, 0, 0 | yes" in out
    for memory in ("256", "**512**", "1,024", "1,769"):  # the projection at each memory size, the default in bold
        assert re.search(rf"^\| 20 \| {re.escape(memory)} \| \d\.\d\d \|", out, re.M), out
    assert "Machine: " in out and "nproc " in out and "Python " in out

    # The DR fleet: 5 of the 20 clusters copy to us-west-2, which holds 4 copies of each; in the DR region one
    # sweep page, one quota read, a delete per cluster (keep 3) and the 5 copies RDS lets run at once.
    assert "| 20 + DR 5 | 1 / 1 | 3 / 3 | 2 / 2 | 20 / 20 | 25 / 25 | 5 / 5 | 0 | 56 / 56 | 1.00 | 0 | 0 |" in out
    assert "| 20 + DR 5 | us-west-2 | 1 / 1 | 1 / 1 | 0 / 0 | 5 / 5 | 5 / 5 | 12 / 12 | 2 | 5 / 5 / 0 |" in out
    assert "API calls / minimum, 20 + DR 5 clusters | 1.00 | 1.00 | yes" in out
    assert "tag errors, 20 + DR 5 clusters | 5, 5, 0, 0, 0, 0 | 5, 5, 0, 0, 0, 0 | yes" in out
    assert re.search(r"^\| end state .*us-west-2.*, 20 \+ DR 5 clusters \| 0 wrong \| 0 wrong \| yes \|$", out, re.M), (
        out
    )
    assert "quiet (dry) run: calls, created, failed, 20 + DR 5 clusters | 6, 0, 0 | 6, 0, 0 | yes" in out


def _cpu_cgroup_writable() -> bool:
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")):
        probe = root / f"snapshot-scheduler-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        probe.rmdir()
        return True
    return False


@pytest.mark.skipif(not _cpu_cgroup_writable(), reason="no writable CPU cgroup here")
def test_under_a_cpu_quota_the_run_takes_about_its_cpu_time_over_the_share(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(
        ["--fleets", "20", "--dr-fleets", "0", "--cold-runs", "1", *FAST, "--pacer-burst", "1000", "--cpu-share", "0.5"]
    )
    out = capsys.readouterr().out

    rows = re.findall(r"^\| 20 \| (all due|quiet) \| 0\.5 \|(?: [\d.]+ \|){5} (\d+\.\d\d) \|$", out, re.M)
    assert [run for run, _ in rows] == ["all due", "quiet"], out
    assert all(float(ratio) > 0 for _, ratio in rows), out
