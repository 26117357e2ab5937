"""The CPU seconds of a running process tree, by role, read from ``/proc`` (Linux).

``rda run --once`` is several processes: the run itself (its driver and sequencing), its landing
children (forked from it), the quality worker (GE's import and warm-up) and the GE jobs the
worker forks. On two cores the run is CPU-bound, so where its CPU goes is where its time goes:
the peers bench reports this beside the wall time. Sampled every ``PERIOD_S``: a process that
ends between two samples loses its last moments (at most a period each); the tree's exact total
is the run's ``wait4`` usage.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

PERIOD_S = 0.05
ROLES = ("run", "landing", "quality worker", "GE jobs")
_TICKS = os.sysconf("SC_CLK_TCK")


class TreeCpu:
    """Samples the tree under ``root`` in a thread from ``start`` to ``stop``."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._seen: dict[int, tuple[str, float]] = {}  # pid: (role, CPU seconds so far)
        self._peak_kb: dict[int, int] = {}  # pid: its peak resident set (VmHWM) so far
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_done, daemon=True)

    def start(self) -> TreeCpu:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """Stop sampling; CPU seconds by role (every role, rounded to 0.01 s)."""
        self._done.set()
        self._thread.join()
        totals: Counter[str] = Counter({role: 0.0 for role in ROLES})
        for role, seconds in self._seen.values():
            totals[role] += seconds
        return {role: round(totals[role], 2) for role in ROLES}

    def peak_rss_mb(self) -> float:
        """The largest peak resident set of any process of the tree, as each one's own
        ``VmHWM`` says: not ``wait4``'s ``ru_maxrss``, which for a process started from a large
        one counts the parent's resident set at the fork (Linux keeps the forked copy's
        high-water mark at ``exec``): ``rda run`` measured 732 MB started from ``rda bench``
        after the benchmarks before it, 466 MB started alone."""
        return round(max(self._peak_kb.values(), default=0) / 1024, 1)

    def _sample_until_done(self) -> None:
        while not self._done.wait(PERIOD_S):
            self._sample()

    def _sample(self) -> None:
        processes = _processes()
        parents = {pid: parent for pid, (parent, _) in processes.items()}
        for pid in _descendants(self.root, parents):
            if pid in processes:  # (the root, once it has ended)
                role = self._seen.get(pid, (None, 0.0))[0] or self._role(pid, parents)
                self._seen[pid] = (role, processes[pid][1])
                self._peak_kb[pid] = max(self._peak_kb.get(pid, 0), high_water_kib(pid))

    def _role(self, pid: int, parents: dict[int, int]) -> str:
        if pid == self.root:
            return "run"
        parent_role = self._seen.get(parents.get(pid, 0), ("", 0.0))[0]
        if b"streaming.quality_worker" in _command(pid):  # the worker, or a job forked from it
            return "GE jobs" if parent_role == "quality worker" else "quality worker"
        return "GE jobs" if parent_role in ("quality worker", "GE jobs") else "landing"


def _processes() -> dict[int, tuple[int, float]]:
    """pid: (parent pid, CPU seconds so far), of every process now: one read of its stat."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                cpu = (int(fields[11]) + int(fields[12])) / _TICKS
                found[int(entry.name)] = (int(fields[1]), cpu)
    return found


def _descendants(root: int, parents: dict[int, int]) -> list[int]:
    """``root`` and every process under it, parents before their children."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    order, stack = [], [root]
    while stack:
        pid = stack.pop()
        order.append(pid)
        stack.extend(sorted(children.get(pid, []), reverse=True))
    return order


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, ...), or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def high_water_kib(pid: int) -> int:
    """A process's peak RSS so far (``VmHWM``), 0 once it has exited (see
    ``TreeCpu.peak_rss_mb`` for why not ``ru_maxrss``)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
