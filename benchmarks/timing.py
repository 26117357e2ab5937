"""Timing helpers: best-of-N wall time, so a noisy neighbour inflates neither side of a ratio."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def percentile(values: list[float], pct: int) -> float:
    """The ``pct``-th percentile of ``values`` (nearest rank, from below)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * pct // 100)]


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


def file_create_us(folder: Path, files: int = 200) -> float:
    """Median CPU microseconds to create a small file in a new subfolder of ``folder``.

    Not a figure of the project's: a reading of the disk it runs on, beside the figures a batch
    of ~90 new files shapes. ext4 without a journal (these machines' root file system) skips
    every inode freed in the last ~30 s when it makes one, so the same creation cost 20-40 µs on
    a quiet disk and up to ~1.1 ms after many deletions (measured here minutes apart)."""
    target = Path(tempfile.mkdtemp(prefix="create-probe-", dir=folder))
    costs = []
    for index in range(files):
        started = time.process_time()
        (target / f"{index}.bin").write_bytes(b"x" * 100)
        costs.append(time.process_time() - started)
    shutil.rmtree(target, ignore_errors=True)
    return round(statistics.median(costs) * 1e6, 1)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def raw_loop_seconds(client: str, bootstrap: str, topic: str, group: str, count: int) -> float:
    """Seconds for a bare ``client`` consume loop (``peer_apps/raw_loop.py``), in its own
    process, to read ``count`` records of ``topic``: a baseline measured here would pay the
    garbage collector's passes over everything the bench imported (221,567 records:
    confluent-kafka's 2.2 against 1.3 s, kafka-python's 1.8-1.95 against 1.65 s)."""
    app = Path(__file__).parent / "peer_apps" / "raw_loop.py"
    result = subprocess.run(
        [sys.executable, str(app), client, bootstrap, topic, group, str(count)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the raw {client} loop failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)["seconds"]
