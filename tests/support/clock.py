"""Clocks for the fidelity layer: simulated (a month of runs in seconds) or real (the benchmark).

Everything time-dependent in the layer (token bucket refill, latency, snapshot creation, "busy until",
botocore's retry back-off, the fake Lambda context) reads one clock, so a test controls time in one place.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (for rates and budgets)."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""


class SimClock:
    """Simulated time: `sleep` and `advance` move it forward instantly; nothing else does."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start, such as datetime(2026, 1, 1, tzinfo=UTC)")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.slept = 0.0  # total seconds passed through sleep(), for assertions

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds}s)")
        with self._lock:
            self._elapsed += seconds
            self.slept += seconds

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward (got {delta})")
        with self._lock:
            self._elapsed += delta.total_seconds()

    def advance_to(self, when: datetime) -> None:
        """Move to `when`; a time already passed leaves the clock where it is."""
        with self._lock:
            self._elapsed = max(self._elapsed, (when - self._start).total_seconds())


class RealClock:
    """Wall-clock time for the benchmark: time.monotonic and time.sleep."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
