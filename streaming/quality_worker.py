"""Great Expectations off the critical path: the worker process that takes the quality queue.

The queue and what one job does: ``streaming/quality_queue.py``. A separate process
(``QualityWorker``, ``python -m streaming.quality_worker DATA_DIR``) takes the queue oldest first,
each job in a child forked from it once GE is warm (``streaming/quality_pool.py``), while it
holds the queue's lock (another worker has it: it waits). The parent talks to the worker
through its stdin: ``stop`` — finish the current job and exit (the rest waits for the next
start); ``finish`` — do the whole queue, then exit (``rda run --once``, the demo). End of input
(the parent is gone, even killed) means ``stop``.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from infra.process_ends import wait_for_end
from infra.process_exit import exit_now
from sinks.layout import DataLayout
from streaming import quality_launch
from streaming.isolation import PARENT_ENDS
from streaming.quality_pool import Pool, drain
from streaming.quality_queue import QueueLock, forget_earlier_ahead, pending

if TYPE_CHECKING:
    from streaming.config import RunSettings

log = logging.getLogger("rda.quality")
# How often an idle worker looks for queued jobs. A batch queues its checkpoints right after
# their anchor, and the run then goes on for ~0.2-0.3 s (its offsets, the next round's look)
# with a core idle: a job taken within that time starts there rather than after it. At 0.5 s
# the worker mostly saw them only when `rda run --once` said finish (medians 6.31 -> 5.91 and
# 6.55 -> 6.37 s, two sets of 8 alternated pairs). A look is a listing of the queue folder.
POLL_S = 0.05
# How often the queue and the run's word are looked at while jobs run (a job's end wakes the
# worker at once where it has pidfds: ``infra/process_ends.py``).
CHILD_POLL_S = 0.02
# The worker's CPU priority, and its jobs' (forked from it): the lowest. It warms up while the
# run lands and sequences its first batch on both cores; at nice 10 it still took ~10 % of a
# core from them (CFS weights 110 against 1,024), at 19 ~1.5 % (15), and it is warm when the
# first job comes all the same (GE's import takes the core the run's own imports leave idle).
# `rda run --once`, 221,567 records: medians 6.24 -> 5.85 and 6.20 -> 5.85 s against nice 10,
# every pair of two sets of 8 alternated pairs faster.
NICENESS = 19
# Checkpoints of different datasets are validated at once, each in a child forked from the
# warmed worker: a batch queues one per dataset. Three at once share the 2 cores and end
# together at about their total over two, where two at once left the third to run after the
# smaller (`rda run --once`, 221,567 records: medians 6.41 -> 6.21 and 6.52 -> 6.31 s, two sets
# of 8 alternated pairs). At nice 19 they take the cores the run leaves, so they do so while it
# goes on too, not only once it has finished: the batch's other jobs no longer wait for the
# run's last look (medians 7.45 -> 6.83 and 6.84 -> 6.60 s on a busy machine, 13 of 16 pairs
# faster; the stream's event-to-anchor p95 1.23 against 1.24 s).
PARALLEL_JOBS = 3
# The warm-up's scratch folder while it exists: an exit before its end removes it too, as best
# it can (GE may be writing there); a worker ``rda run`` let go is sure to leave none (the run
# removes it once the worker has exited: ``quality_launch.let_go``).
_scratch: list[str] = []


class QualityWorker:
    """The child process that drains the queue while ``rda run`` goes on with the next batch."""

    def __init__(self, data_dir: Path | str, work_dir: Path | None = None) -> None:
        """``work_dir``: where the batches are landed and the queue is (default: the data
        directory, when it is local)."""
        if work_dir is None:
            from streaming.store import workspace

            work_dir = workspace(data_dir).work.root
        self.layout = DataLayout(Path(work_dir))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the worker now, before anything is queued: it warms GE up while the first
        batch lands, then takes jobs as they come."""
        if self.process is None or self.process.poll() is not None:
            self._close_input(b"")  # of one that died
            root = str(self.layout.root)  # relative to the working directory they share
            # Started ahead by `rda run`, if it was: told where on its input, a line.
            self.process = quality_launch.take()
            if self.process is not None and ("\n" in root or not self._said(f"{root}\n")):
                quality_launch.let_go(self.process)  # it exits, never told (or had just exited)
                self.process = None
            if self.process is None:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "streaming.quality_worker", root],
                    stdin=subprocess.PIPE,
                )
            assert self.process.stdin is not None
            PARENT_ENDS.add(self.process.stdin.fileno())  # its end of input is this process's

    def nudge(self) -> None:
        """Make sure a worker is running when jobs are queued (started, or restarted if it died)."""
        if self.process is not None and self.process.poll() is None:
            return
        if pending(self.layout):
            self.start()

    def finish(self) -> None:
        """Tell a running worker to do the whole queue, then exit; without waiting for it
        (``stop(drain_queue=True)`` waits)."""
        if self.process is not None and self.process.poll() is None:
            self._close_input(b"finish\n")

    def stop(self, drain_queue: bool, timeout_s: float | None = 900.0) -> None:
        """Stop the worker: after the whole queue (``drain_queue``) or after its current job;
        killed if it takes longer than ``timeout_s`` (None: as long as it takes)."""
        if self.process is None or self.process.poll() is not None:
            self._close_input(b"")
            if drain_queue:
                drain(self.layout)  # it died or never started: finish here
            return
        self._close_input(b"finish\n" if drain_queue else b"stop\n")
        try:
            wait_for_end(self.process, timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.returncode != 0:
            log.warning(
                "the quality worker exited with %s; %d reports still queued",
                self.process.returncode,
                len(pending(self.layout)),
            )

    def _said(self, line: str) -> bool:
        """Say ``line`` to the running worker; whether it could be said."""
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()
        except OSError:
            return False
        return True

    def _close_input(self, word: bytes) -> None:
        """Say ``word`` to the worker, if any, and close its input (once)."""
        if self.process is None or self.process.stdin is None or self.process.stdin.closed:
            return
        PARENT_ENDS.discard(self.process.stdin.fileno())
        try:
            self.process.stdin.write(word)
            self.process.stdin.close()
        except BrokenPipeError:  # it has just exited
            pass


class QueueOnly:
    """``rda run --quality queue``: checkpoints are queued as ever, and left for ``rda quality``
    (or a later run with a worker) to validate; no GE in this run's processes."""

    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout

    def start(self) -> None:
        quality_launch.dismiss()  # a worker started ahead of the settings: not needed

    def nudge(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def stop(self, drain_queue: bool, timeout_s: float | None = 900.0) -> None:
        pass


def for_run(settings: RunSettings, work_dir: Path) -> QualityWorker | QueueOnly:
    """The run's GE: a worker beside it, or none with ``--quality queue`` (``rda quality``)."""
    if settings.quality == "queue":
        return QueueOnly(DataLayout(work_dir))
    return QualityWorker(settings.data_dir, work_dir)


def main(argv: list[str] | None = None) -> int:
    """The worker process: drain, wait for more, until told to stop or orphaned. Without a
    directory in ``argv``, it is the first line of its input (``streaming/quality_launch.py``)."""
    started_ns = time.time_ns()  # what was queued ahead before is an earlier process's
    args = sys.argv[1:] if argv is None else argv
    told: list[Path] = [Path(arg) for arg in args[:1]]
    stop, finish = threading.Event(), threading.Event()
    threading.Thread(target=_listen, args=(stop, finish, told), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Off the critical path, so behind it for the CPU: the run's batches (and their latency to
    # the anchor) go first when every core is busy.
    os.nice(NICENESS)
    # Even with jobs already queued (a restart after a crash): every job runs in a child forked
    # from this process, and a child forked cold imports GE itself (~2 s, each of them).
    warm_up()
    while not told:  # said long before the warm-up ends; the input's end exits at once
        time.sleep(CHILD_POLL_S)
    layout = DataLayout(told[0])
    # Jobs are taken only with the queue's lock, held from the first look that gets it until
    # this process ends (a reference kept: collected, it would be released). Another worker
    # has it (`rda quality` beside this run): this one waits, and told to end, leaves them.
    lock, waiting, cleared = QueueLock(layout), False, False
    # Each job in a child forked from this warm process, up to PARALLEL_JOBS at once (one
    # taken in this process made the others wait for its end: ~+0.5 s for one `rda run --once`
    # in five). Once the run is over (`finish`), each dataset's last job builds its Data Docs.
    # Files the run queued ahead of their checkpoint are validated too, while it commits them.
    pool = Pool(layout, size=PARALLEL_JOBS, final=False, ahead=True)
    while True:
        if finish.is_set():  # and then the last docs, with each dataset's last job
            pool.final = True
        holds = lock.acquire()
        if holds and not cleared:  # an earlier process's, perhaps of another suite
            forget_earlier_ahead(layout, started_ns)
            cleared = True
        if holds and not stop.is_set():
            pool.start_more()
        elif not holds and not waiting and pending(layout):
            waiting = True
            log.info("another quality worker takes the queue under %s; waiting", layout.root)
        if pool.running:
            if not pool.reap_ended():
                pool.await_an_end(CHILD_POLL_S)
        elif stop.is_set() or finish.is_set():
            return 0
        else:
            finish.wait(POLL_S)


def warm_up() -> None:
    """GE's one-time costs, paid before the first job, while the first batch lands rather than
    after its anchor: GE's import, then ``WARM_UP_SCHEMA``'s suite run on an empty table, with
    Data Docs built in a scratch directory (their templates are then compiled for every later
    build)."""
    import tempfile

    from validators.expectations import WARM_UP_SCHEMA, validate

    # What a job imports on its first use (Parquet's reader, Ed25519's signing): ~0.05 s, paid
    # here once rather than in each child forked for a job.
    import_for_jobs()
    empty = WARM_UP_SCHEMA.arrow_schema().empty_table()
    given = os.environ.pop(quality_launch.WARM_UP_DIR_ENV, None)  # started ahead by the run
    scratch = given or tempfile.mkdtemp(prefix=quality_launch.WARM_UP_PREFIX)
    _scratch.append(scratch)
    try:
        validate(WARM_UP_SCHEMA, empty, Path(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _scratch.remove(scratch)


def import_for_jobs() -> None:
    """Import the modules a job imports on its first use, which the warm-up's own validation
    does not (``tests/test_quality_worker.py``: a job's child imports nothing)."""
    import pyarrow.dataset  # noqa: F401 - pyarrow.parquet's read_table imports it on first use
    from cryptography.hazmat.primitives import serialization  # noqa: F401
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401

    import sinks.quality_report  # noqa: F401


def _listen(stop: threading.Event, finish: threading.Event, told: list[Path]) -> None:
    """The parent's word on stdin; its end (the parent is gone) means stop. ``told`` empty: the
    first line is the directory to work in, and an end before it exits the process now."""
    for line in sys.stdin:
        if not told:
            told.append(Path(line.removesuffix("\n")))  # a name may end in spaces
        elif line.strip() == "finish":
            finish.set()
            return
        elif line.strip() == "stop":
            break
    if not told:  # never told where: nothing was done, nothing to flush
        for folder in list(_scratch):  # but the warm-up's, which its `with` cannot remove now
            shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)
    stop.set()


if __name__ == "__main__":
    from infra.gc_tuning import collect_less_often

    collect_less_often()  # before GE's import, in the warm-up
    code = main()
    # The parent waits for this exit: skip the interpreter's teardown of GE's and pandas'
    # objects, on pages shared with the GE jobs it forked (as ``cli.main.entry`` does).
    gc.freeze()
    exit_now(code)
