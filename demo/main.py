"""The demo's steps: start moto_server, play the month, print the report, write demo-out/, stop the server."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from demo import report
from demo.server import ServerError, moto_server
from demo.simulate import simulate

OUT_DIR = Path("demo-out")  # git-ignored


def main() -> int:
    started = time.monotonic()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        # moto's own snapshot limit counts automated snapshots too; the fidelity layer's quota is RDS's.
        with moto_server(OUT_DIR / "moto_server.log", env={"MOTO_RDS_SNAPSHOT_LIMIT": "10000000"}) as endpoint:
            _say(f"moto_server started on {endpoint}; running a month of hourly runs ...")
            try:
                results = simulate(endpoint, progress)
            finally:
                if progress is not None:
                    progress.clear()
        _say("moto_server stopped.")
    except ServerError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; moto_server stopped.", file=sys.stderr)
        return 130
    text = report.render(results)
    files = report.write_files(results, text, OUT_DIR)
    print(text)
    print()
    print(report.rule("Files"))
    print(f"Written to {OUT_DIR}/ (git-ignored): " + ", ".join(path.name for path in files))
    print(f"  {OUT_DIR}/timeline.html draws every snapshot taken and kept; open it in a browser.")
    print(f"  {OUT_DIR}/runs.jsonl holds each run's report, metrics.jsonl the EMF blobs, logs.jsonl the log lines.")
    print(f"Demo finished in {time.monotonic() - started:.1f}s; moto_server is stopped, no process is left running.")
    return 0


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


class _Progress:
    """A self-rewriting line on the terminal (stderr) while the month runs."""

    def __init__(self) -> None:
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total
        if percent != self._shown:
            self._shown = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r  runs {done:4d}/{total}  [{bar:<25}] {percent:3d}%")
            sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
