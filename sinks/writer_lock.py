"""One writer at a time: the catalog and the dataset logs are written under an exclusive lock.

Several ``rda run`` processes may share a data directory (one consumer group, one dataset). They
land their chunks in parallel — that is where the work is — but the journal, the duplicate check
against what is already published, the Merkle-log appends, the manifests and the anchor happen
under this lock, one batch at a time: the *sequencer* step of a transparency log. So two workers
never append to the same log at once, and every checkpoint is a well-defined prefix of the log.

The lock is ``flock(2)`` on ``writer.lock`` in the data directory: the kernel releases it when its
holder dies, even by ``kill -9``, so a crashed worker never blocks the others. (Across machines
the data directory must be on a file system with working ``flock``, e.g. NFSv4 or CephFS.)
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sinks.catalog import Catalog
from sinks.layout import DataLayout

DEFAULT_WAIT_S = 900.0  # another worker may be redoing a crashed batch under the lock


class WriterBusy(TimeoutError):
    """Another process held the writer lock for longer than we were willing to wait."""


@contextmanager
def writer_lock(layout: DataLayout, wait_s: float = DEFAULT_WAIT_S) -> Iterator[None]:
    """Hold the data directory's writer lock; wait up to ``wait_s`` seconds for it."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.writer_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WriterBusy(
                        f"another process has held {layout.writer_lock} for {wait_s:.0f} s"
                    ) from None
                time.sleep(pause)  # polled, so a signal handler still runs promptly
                pause = min(pause * 2, 0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def writing_catalog(layout: DataLayout, wait_s: float = DEFAULT_WAIT_S) -> Iterator[Catalog]:
    """The catalog, opened for writing while holding the writer lock (and closed before it)."""
    with writer_lock(layout, wait_s), Catalog(layout) as catalog:
        yield catalog
