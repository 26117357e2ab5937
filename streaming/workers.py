"""Who is working on a data directory, and whether a batch's owner is still alive.

Every journaled batch names the worker that planned it. When that worker is gone (killed,
crashed, its machine lost) another worker adopts the batch and redoes it from the journaled plan;
while it lives, nobody else touches the batch's files. A worker is

- alive on this machine while its process is (same pid *and* same start time, so a recycled pid
  is not mistaken for it; a process killed but not yet reaped by its parent, a zombie, is dead),
  and
- alive elsewhere while it keeps touching its heartbeat file under ``<data>/workers/``, which a
  background thread does every few seconds: a worker silent for ``lease_s`` is presumed dead.

The heartbeat files of dead workers are removed by the next worker that starts and by
``rda status`` (``prune_dead``): a file there names a worker that may still be running.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

LEASE_S = 60.0  # a worker on another machine silent this long is presumed dead


_DEAD_STATES = ("Z", "X", "x")  # zombie, dead: killed, waiting for its parent to reap it


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None
    if no process runs under ``pid`` (none at all, or only a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in _DEAD_STATES else fields[19]


def this_worker() -> str:
    """This process's worker id: ``host/pid/start-ticks``."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '0'}"


def is_alive(worker: str | None, workers_dir: Path, lease_s: float = LEASE_S) -> bool:
    """Whether ``worker`` (an id from ``this_worker``; None for an unowned batch) still runs."""
    if not worker:
        return False
    host, _, rest = worker.partition("/")
    pid_text, _, ticks = rest.partition("/")
    if host == socket.gethostname():
        return pid_text.isdigit() and _start_ticks(int(pid_text)) == ticks
    try:
        silent = time.time() - (workers_dir / _file_name(worker)).stat().st_mtime
    except OSError:
        return False
    return silent < lease_s


def _file_name(worker: str) -> str:
    return worker.replace("/", "_")


def running_workers(workers_dir: Path) -> list[str]:
    """The ids of workers with a heartbeat file (running, or killed before they could clean up)."""
    if not workers_dir.exists():
        return []
    found = []
    for path in workers_dir.iterdir():
        with contextlib.suppress(OSError):  # removed meanwhile by a pruning worker
            if path.is_file():
                found.append(path.read_text().strip())
    return sorted(w for w in found if w)


def prune_dead(workers_dir: Path, lease_s: float = LEASE_S) -> list[str]:
    """Remove the heartbeat files of workers that are gone; the ids removed.

    A worker of this host is gone when its process is; one elsewhere, when its file has been
    silent for two leases (one lease makes it dead for adoption; the second is slack for clocks).
    """
    removed = []
    for worker in running_workers(workers_dir):
        host = worker.partition("/")[0]
        here = host == socket.gethostname()
        if is_alive(worker, workers_dir, lease_s if here else 2 * lease_s):
            continue
        with contextlib.suppress(OSError):
            (workers_dir / _file_name(worker)).unlink()
            removed.append(worker)
    return removed


class Heartbeat:
    """Touch this worker's heartbeat file every ``lease_s / 6`` seconds until stopped."""

    def __init__(self, workers_dir: Path, worker: str, lease_s: float = LEASE_S) -> None:
        self.worker = worker
        self.path = workers_dir / _file_name(worker)
        self.period = lease_s / 6
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prune_dead(self.path.parent)
        self.path.write_text(self.worker + "\n")  # its name; the mtime is the heartbeat
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _beat(self) -> None:
        while not self._stop.wait(self.period):
            with contextlib.suppress(OSError):
                self.path.touch()
