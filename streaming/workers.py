"""Who is working on a data directory, and whether a batch's owner is still alive.

Every journaled batch names the worker that planned it. When that worker is gone (killed,
crashed, its machine lost) another worker adopts the batch and redoes it from the journaled plan;
while it lives, nobody else touches the batch's files. A worker is

- dead on this machine as soon as its process is gone (same pid *and* same start time, so a
  recycled pid is not mistaken for it; a process killed but not yet reaped by its parent, a
  zombie, is dead), and
- alive, here or elsewhere, while it keeps rewriting its heartbeat object, ``workers/<worker>``
  in the data directory's store (a file, or an S3 object whose modification time is the beat),
  which a background thread does every few seconds: a worker silent for ``lease_s`` is presumed
  dead (a process of this machine without a heartbeat file lives while it runs and is not
  stopped: one that keeps none, or one whose file another host pruned after two leases).

A worker's host is the machine's name, or ``RDA_WORKER_HOST`` (two workers on one machine that
must behave as on two, e.g. each with its own local state). ``RDA_WORKER_LEASE_S`` shortens the
lease (tests).

The heartbeat files of dead workers are removed by the next worker that starts and by
``rda status`` (``prune_dead``): a file there names a worker that may still be running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # imported when used: `this_worker` stays a light import (no pyarrow threads)
    from sinks.storage import Store

log = logging.getLogger("rda.run")
LEASE_S = float(os.environ.get("RDA_WORKER_LEASE_S", "60"))  # silent this long elsewhere: dead
Workers = Union["Store", Path]  # the data directory's store, or a folder of heartbeat files


_DEAD_STATES = ("Z", "X", "x")  # zombie, dead: killed, waiting for its parent to reap it
_STOPPED_STATES = ("T", "t")  # stopped (SIGSTOP) or traced


def _process_state(pid: int) -> tuple[str, str] | None:
    """The process's state letter and start time in clock ticks since boot (fields 3 and 22 of
    /proc/PID/stat), or None if no process runs under ``pid`` (none at all, or only a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in _DEAD_STATES else (fields[0], fields[19])


def _start_ticks(pid: int) -> str | None:
    state = _process_state(pid)
    return None if state is None else state[1]


def host_name() -> str:
    return os.environ.get("RDA_WORKER_HOST") or socket.gethostname()


def this_worker() -> str:
    """This process's worker id: ``host/pid/start-ticks``."""
    pid = os.getpid()
    return f"{host_name()}/{pid}/{_start_ticks(pid) or '0'}"


def _place(workers: Workers) -> tuple[Store, str]:
    """The store and prefix of the heartbeat objects."""
    from sinks.storage import Store

    if isinstance(workers, Store):
        return workers, "workers"
    return Store.open(workers), ""


def _object(prefix: str, worker: str) -> str:
    name = worker.replace("/", "_")
    return f"{prefix}/{name}" if prefix else name


def is_alive(worker: str | None, workers: Workers, lease_s: float | None = None) -> bool:
    """Whether ``worker`` (an id from ``this_worker``; None for an unowned batch) still runs.

    On this machine, a process that is gone is dead at once; one that runs is alive while its
    heartbeat is fresh, as elsewhere: a stopped or hung worker (SIGSTOP, a frozen container)
    would otherwise hold its batch, and its partitions, for as long as it stays so. A process
    of this machine with no heartbeat at all (one driving batches without ``rda run``'s
    heartbeat) is alive while it runs."""
    if not worker:
        return False
    here = worker.partition("/")[0] == host_name()
    state = _state_here(worker) if here else None
    if here and state is None:
        return False
    store, prefix = _place(workers)
    try:
        beat = store.mtime(_object(prefix, worker))
    except OSError:
        return False
    if beat is None:  # none kept, or pruned by another host after two silent leases
        return here and state not in _STOPPED_STATES
    return time.time() - beat < (LEASE_S if lease_s is None else lease_s)


def _state_here(worker: str) -> str | None:
    """The state letter of the process of ``worker``, a worker of this machine; None if it is
    gone (or its pid now names another process)."""
    _, _, rest = worker.partition("/")
    pid_text, _, ticks = rest.partition("/")
    if not pid_text.isdigit():
        return None
    state = _process_state(int(pid_text))
    return state[0] if state is not None and state[1] == ticks else None


def _runs_here(worker: str) -> bool:
    """Whether the process of ``worker``, a worker of this machine, runs (not a zombie)."""
    return _state_here(worker) is not None


def running_workers(workers: Workers) -> list[str]:
    """The ids of workers with a heartbeat (running, or killed before they could clean up)."""
    store, prefix = _place(workers)
    found = []
    for name in store.list(prefix):
        with contextlib.suppress(OSError, ValueError):  # removed meanwhile by a pruning worker
            found.append(store.read_bytes(name).decode().strip())
    return sorted(w for w in found if w)


def prune_dead(workers: Workers, lease_s: float | None = None) -> list[str]:
    """Remove the heartbeats of workers that are gone; the ids removed.

    A worker of this host is gone when its process is; one elsewhere, when its heartbeat has
    been silent for two leases (one lease makes it dead for adoption; the second is slack for
    clocks).
    """
    lease = LEASE_S if lease_s is None else lease_s
    store, prefix = _place(workers)
    removed = []
    for worker in running_workers(workers):
        here = worker.partition("/")[0] == host_name()
        # Here only when its process is gone: the file of a stopped one is its beat to come.
        if _runs_here(worker) if here else is_alive(worker, workers, 2 * lease):
            continue
        store.delete(_object(prefix, worker))
        removed.append(worker)
    return removed


class Heartbeat:
    """Rewrite this worker's heartbeat every ``lease_s / 6`` seconds until stopped."""

    def __init__(self, workers: Workers, worker: str, lease_s: float | None = None) -> None:
        self.worker, self.workers = worker, workers
        self.store, prefix = _place(workers)
        self.name = _object(prefix, worker)
        self.period = (LEASE_S if lease_s is None else lease_s) / 6
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    @property
    def path(self) -> Path:
        """The heartbeat file, for a local store."""
        assert self.store.local is not None
        return self.store.local / self.name

    def __enter__(self) -> Heartbeat:
        prune_dead(self.workers)
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.store.delete(self.name)

    def _write(self) -> None:
        self.store.write_bytes(self.name, (self.worker + "\n").encode())  # its time: the beat

    def _beat(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self._write()
            except Exception as error:  # retried next period: a dead thread would leave this
                log.warning("heartbeat of %s not written: %s", self.worker, error)  # worker dead
