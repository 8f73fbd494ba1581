"""RDS calls of the act phase, a few in flight at once: one call takes 100-200 ms, so one at a time would leave
most of the rate the pacer allows unused. The pacer of each region, not the worker count, sets the rate."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

ACT_WORKERS = 4  # RDS calls in flight at once

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(work: Callable[[T], R], items: list[T], *, parallel: bool = True) -> list[R]:
    """`work` over `items`, results in order; ACT_WORKERS at a time when `parallel`."""
    if not parallel or len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=ACT_WORKERS) as pool:
        return list(pool.map(work, items))
