"""Timing helpers: best-of-N wall time, so a noisy neighbour inflates neither side of a ratio."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(work: Callable[[], object], repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs of ``work``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def best_pair_seconds(
    first: Callable[[], object], second: Callable[[], object], repeat: int = 7
) -> tuple[float, float]:
    """Best-of-``repeat`` of two workloads run in turns, so a burst of load hits both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for side, work in enumerate((first, second)):
            started = time.perf_counter()
            work()
            best[side] = min(best[side], time.perf_counter() - started)
    return best[0], best[1]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")
