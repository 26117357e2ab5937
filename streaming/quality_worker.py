"""Great Expectations off the critical path: the worker process that takes the quality queue.

The queue and what one job does: ``streaming/quality_queue.py``. A separate process
(``QualityWorker``, ``python -m streaming.quality_worker DATA_DIR``) takes the queue oldest first,
each job in a child forked from it once GE is warm (``_Pool``). The parent talks to the worker
through its stdin: ``stop`` — finish the current job and exit (the rest waits for the next
start); ``finish`` — do the whole queue, then exit (``rda run --once``, the demo). End of input
(the parent is gone, even killed) means ``stop``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from infra.process_exit import exit_now
from schemas.published import published_schema_for_dataset
from sinks.layout import DataLayout
from streaming import quality_launch
from streaming.isolation import PARENT_ENDS
from streaming.quality_queue import (
    attest,
    dataset_of,
    docs_dir,
    pending,
    queue_dir,
    requeue,
    set_aside,
)

log = logging.getLogger("rda.quality")
POLL_S = 0.5
CHILD_POLL_S = 0.02  # how often a running job's end, or the run's, is looked for
# Validated once, empty, when the worker starts: GE's imports and its first validation cost
# ~2 s, paid while the first batch lands rather than after its anchor (the costs are GE's own,
# shared by every suite; any dataset will do).
WARM_UP_DATASET = "radio_kpi.v1"
NICENESS = 10
# At the end of a run (`rda run --once`, the demo), checkpoints of different datasets are
# validated at once, each in a child forked from the warmed worker: a batch queues one per
# dataset, and both cores are free then (three datasets: 2.2-3.4 s one at a time, 1.7-2.1 s).
PARALLEL_JOBS = 2


def drain(
    layout: DataLayout,
    stop: threading.Event | None = None,
    final: bool = True,
    parallel: int = 1,
) -> int:
    """Attest queued checkpoints until the queue is empty (or ``stop`` is set); how many.

    Data Docs are rebuilt when due and, with ``final``, for each dataset's last queued job.
    ``parallel`` > 1: up to that many checkpoints of different datasets at once, each in a
    child forked from this (warmed-up) process (``_Pool``); one dataset's checkpoints always go
    one at a time, oldest first, as its Data Docs site is theirs to share.
    """
    if parallel > 1:
        return _Pool(layout, parallel, final).drain(stop)
    done = 0
    while not (stop is not None and stop.is_set()):
        jobs = pending(layout)
        if not jobs:
            break
        (job,) = _next_jobs(layout, jobs, busy=set(), count=1)
        _attest_or_set_aside(layout, job, _docs_with(layout, job, jobs, final))
        done += 1
    return done


def _next_jobs(layout: DataLayout, jobs: list[Path], busy: set[str], count: int) -> list[Path]:
    """Up to ``count`` jobs to start: the oldest of each dataset not ``busy``, the largest
    first (it sets how long the others run beside it, or wait after it)."""
    oldest: dict[str, Path] = {}
    for job in jobs:
        if dataset_of(job) not in busy:
            oldest.setdefault(dataset_of(job), job)
    return sorted(oldest.values(), key=lambda job: -_weight(layout, job))[:count]


def _docs_with(layout: DataLayout, job: Path, jobs: list[Path], final: bool) -> bool:
    """Rebuild the dataset's Data Docs with this job: when due, or at the end of a final drain."""
    from sinks.quality_report import docs_due

    dataset = dataset_of(job)
    last_of_dataset = sum(dataset_of(j) == dataset for j in jobs) == 1
    return docs_due(layout, dataset) or (final and last_of_dataset)


def _attest_or_set_aside(layout: DataLayout, job: Path, docs: bool) -> None:
    try:
        attest(layout, job, docs=docs)
    except Exception as error:  # one bad job must not stop the others: set it aside
        set_aside(job, error)


class _Pool:
    """Checkpoints validated in forked children, up to ``size`` at once; a new one starts as
    soon as a child ends."""

    def __init__(self, layout: DataLayout, size: int, final: bool) -> None:
        self.layout, self.size, self.final = layout, size, final
        self.running: dict[int, tuple[Path, bool]] = {}  # pid: (job, docs built with it)
        self._started: set[tuple[str, bool]] = set()  # (dataset, with docs) of started jobs
        # Per dataset, its latest job when it was started without Data Docs (they were built
        # less than DOCS_EVERY_S ago): its name and bytes, to redo it with them when final.
        self._undocumented: dict[str, tuple[Path, bytes]] = {}

    def drain(self, stop: threading.Event | None) -> int:
        done = 0
        while True:
            if not (stop is not None and stop.is_set()):
                self.start_more()
            if not self.running:
                return done
            done += self._reap(*os.wait())

    def reap_ended(self) -> int:
        """Collect the children that have ended, without waiting; how many were the pool's."""
        done = 0
        while self.running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            done += self._reap(pid, status)
        return done

    def start_more(self) -> None:
        if len(self.running) >= self.size:  # looked at every CHILD_POLL_S: no listing for nothing
            return
        jobs = pending(self.layout)
        busy = {dataset_of(job) for job, _ in self.running.values()}
        if self.final and self._redo_for_docs(jobs, busy):
            jobs = pending(self.layout)
        for job in _next_jobs(self.layout, jobs, busy, self.size - len(self.running)):
            self._start(job, _docs_with(self.layout, job, jobs, self.final))

    def _redo_for_docs(self, jobs: list[Path], busy: set[str]) -> int:
        """Queued again: each dataset's last job that ran without Data Docs while the run went
        on (built less than DOCS_EVERY_S before), so that the run ends with every dataset's
        docs showing its last checkpoint. Redone, a job writes the same report and attestation.
        """
        queued = {dataset_of(job) for job in jobs}
        redone = 0
        for dataset, (job, data) in list(self._undocumented.items()):
            if dataset in busy or dataset in queued:
                continue  # its last job is still to come, or to end
            del self._undocumented[dataset]
            if not (queue_dir(self.layout) / "failed" / job.name).exists():  # not set aside
                requeue(job, data)
                redone += 1
        return redone

    def _start(self, job: Path, docs: bool) -> None:
        from streaming.isolation import die_with_parent, fork_frozen
        from validators.expectations import prepare

        dataset = dataset_of(job)
        if (dataset, docs) in self._started:  # a stream's: made once here, not in every child
            try:
                prepare(published_schema_for_dataset(dataset), docs_dir(self.layout, dataset, docs))
            except Exception as error:  # each child makes its own, and says what fails
                log.debug("GE's checkpoint for %s not made ahead: %s", dataset, error)
        self._started.add((dataset, docs))
        if docs:
            self._undocumented.pop(dataset, None)
        else:
            with contextlib.suppress(OSError):  # gone: the child sets it aside, saying why
                self._undocumented[dataset] = job, job.read_bytes()
        parent = os.getpid()
        pid = fork_frozen()
        if pid == 0:  # pragma: no cover - the child: measured by its effects
            die_with_parent(parent)
            code = 1  # the job could not even be set aside: the parent does it
            try:
                _attest_or_set_aside(self.layout, job, docs)
                code = 0
            finally:
                os._exit(code)  # no atexit handlers, no joining of the parent's inherited state
        self.running[pid] = job, docs

    def _reap(self, pid: int, status: int) -> int:
        """A child ended (1: one of the pool's): one that died sets its job aside (it would
        kill the next child too); Data Docs it built are due again in ``DOCS_EVERY_S``."""
        from sinks.quality_report import mark_docs_built
        from streaming.isolation import WorkerCrashed

        if pid not in self.running:
            return 0
        job, docs = self.running.pop(pid)
        if status != 0 and job.exists():
            set_aside(job, WorkerCrashed.from_status(f"GE validation of {job.name}", status))
        elif docs:
            mark_docs_built(self.layout, published_schema_for_dataset(dataset_of(job)))
        return 1


def _weight(layout: DataLayout, job: Path) -> int:
    """The bytes of Parquet a job validates (0 if it cannot tell): GE's time follows the rows."""
    try:
        files = json.loads(job.read_bytes())["files"]
        return sum((layout.root / f["path"]).stat().st_size for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


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
                self._close_input(b"")  # it exits, never told (or it had just exited)
                self.process.wait()
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
            self.process.wait(timeout=timeout_s)
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


def main(argv: list[str] | None = None) -> int:
    """The worker process: drain, wait for more, until told to stop or orphaned. Without a
    directory in ``argv``, it is the first line of its input (``streaming/quality_launch.py``)."""
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
    # Each job in a child forked from this warm process: one at a time while the run goes on,
    # leaving it a core; once it is over (`finish`), its cores are free for GE: up to
    # PARALLEL_JOBS, at once, beside a job still running (one taken in this process made the
    # others wait for its end: ~+0.5 s for one `rda run --once` in five, when a poll found the
    # queue between the batch's commit and the `finish`).
    pool = _Pool(layout, size=1, final=False)
    while True:
        if finish.is_set():  # and then the last docs, with each dataset's last job
            pool.size, pool.final = PARALLEL_JOBS, True
        if not stop.is_set():
            pool.start_more()
        if pool.running:
            if not pool.reap_ended():
                time.sleep(CHILD_POLL_S)
        elif stop.is_set() or finish.is_set():
            return 0
        else:
            finish.wait(POLL_S)


def warm_up() -> None:
    """GE's one-time costs, paid before the first job: an empty table validated, with Data Docs
    built in a scratch directory (their templates are then compiled for every later build)."""
    import tempfile

    from validators.expectations import validate

    schema = published_schema_for_dataset(WARM_UP_DATASET)
    with tempfile.TemporaryDirectory(prefix="rda-ge-warm-up-") as scratch:
        validate(schema, schema.arrow_schema().empty_table(), Path(scratch))


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
    if not told:
        os._exit(0)  # never told where: nothing was done, nothing to flush
    stop.set()


if __name__ == "__main__":
    code = main()
    # The parent waits for this exit: skip the interpreter's teardown of GE's and pandas'
    # objects, on pages shared with the GE jobs it forked (as ``cli.main.entry`` does).
    gc.freeze()
    exit_now(code)
