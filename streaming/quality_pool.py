"""Great Expectations' jobs taken from the queue: one at a time in this process (``drain``),
or each in a child forked from a warm process (``Pool``), up to a few at once.

A dataset's checkpoints always go one at a time, oldest first, as its Data Docs site is theirs
to share; between datasets, the largest job first. A job that fails, or whose child dies, is set
aside with its reason. Only the process holding the queue's lock (``QueueLock``) takes jobs.
A run's own worker also validates files queued ahead of their checkpoint (``ahead``), on a
core the run leaves idle while it commits, when no job of their dataset is queued or running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from infra.process_ends import await_an_end, open_pidfd
from schemas.published import published_schema_for_dataset
from sinks.layout import DataLayout
from streaming.quality_queue import (
    QueueLock,
    ahead_dir,
    attest,
    dataset_of,
    docs_dir,
    pending,
    pending_ahead,
    queue_dir,
    requeue,
    run_ahead,
    set_aside,
    validated_ahead,
)

log = logging.getLogger("rda.quality")


def drain(
    layout: DataLayout,
    stop: threading.Event | None = None,
    final: bool = True,
    parallel: int = 1,
) -> int:
    """Attest queued checkpoints until the queue is empty (or ``stop`` is set); how many.

    Data Docs are rebuilt when due and, with ``final``, for each dataset's last queued job.
    ``parallel`` > 1: up to that many checkpoints of different datasets at once, each in a
    child forked from this (warmed-up) process (``Pool``); one dataset's checkpoints always go
    one at a time, oldest first, as its Data Docs site is theirs to share.
    """
    lock = QueueLock(layout)
    if not lock.acquire():  # no queue at all, or another worker's
        if pending(layout):
            log.info("another quality worker takes the queue under %s", layout.root)
        return 0
    try:
        if parallel > 1:
            return Pool(layout, parallel, final).drain(stop)
        done = 0
        while not (stop is not None and stop.is_set()):
            jobs = pending(layout)
            if not jobs:
                break
            (job,) = _next_jobs(layout, jobs, busy=set(), count=1)
            _attest_or_set_aside(layout, job, _docs_with(layout, job, jobs, final))
            done += 1
        return done
    finally:
        lock.release()


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


class Pool:
    """Checkpoints validated in forked children, up to ``size`` at once; a new one starts as
    soon as a child ends."""

    def __init__(self, layout: DataLayout, size: int, final: bool, ahead: bool = False) -> None:
        """``ahead``: validate files queued ahead of their checkpoint too (a run's worker)."""
        self.layout, self.size, self.final, self.ahead = layout, size, final, ahead
        self.running: dict[int, tuple[Path, bool]] = {}  # pid: (job, docs built with it)
        self._pidfds: dict[int, int | None] = {}  # pid: what wakes ``await_an_end`` as it ends
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

    def await_an_end(self, timeout_s: float) -> None:
        """Return as a running child ends, or after ``timeout_s``."""
        await_an_end(self._pidfds.values(), timeout_s)

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
        if len(self.running) >= self.size:  # asked every few ms: no listing for nothing
            return
        jobs = pending(self.layout)
        busy = {dataset_of(job) for job, _ in self.running.values()}
        if self.final and self._redo_for_docs(jobs, busy):
            jobs = pending(self.layout)
        for job in _next_jobs(self.layout, jobs, busy, self.size - len(self.running)):
            kept = _kept_ahead(self.layout, job)
            # Docs built with the report kept ahead count as built: the run's final docs need
            # not be built again.
            built = kept is not None and bool(kept.get("docs"))
            docs = _docs_with(self.layout, job, jobs, self.final) or built
            self._start(job, docs, signs_kept=kept is not None and (built or not docs))
        if self.ahead and not self.final and len(self.running) < self.size:
            # (once the run is over, what is still queued ahead is a batch's no job came for)
            self._start_ahead(busy | {dataset_of(job) for job in jobs})

    def _start_ahead(self, waiting: set[str]) -> None:
        """Files queued ahead of datasets with no job running or queued (a queued job goes
        first: it is an older checkpoint, or these files' own), as jobs are taken: the oldest of
        each dataset, the largest first."""
        from sinks.quality_report import docs_due

        free = self.size - len(self.running)
        for job in _next_jobs(self.layout, pending_ahead(self.layout), waiting, free):
            dataset = dataset_of(job)
            waiting.add(dataset)
            docs = docs_due(self.layout, dataset)
            self._prepare(dataset, docs)
            pid = self._fork(lambda job=job, docs=docs: _run_ahead(self.layout, job, docs))
            self.running[pid] = job, docs

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

    def _start(self, job: Path, docs: bool, signs_kept: bool = False) -> None:
        """``signs_kept``: the job will sign a report kept ahead, and needs no GE context."""
        dataset = dataset_of(job)
        if not signs_kept:
            self._prepare(dataset, docs)
        if docs:
            self._undocumented.pop(dataset, None)
        else:
            with contextlib.suppress(OSError):  # gone: the child sets it aside, saying why
                self._undocumented[dataset] = job, job.read_bytes()
        pid = self._fork(lambda: _attest_or_set_aside(self.layout, job, docs))
        self.running[pid] = job, docs

    def _prepare(self, dataset: str, docs: bool) -> None:
        """GE's context and suite of a dataset, made here once it recurs (a stream's), not in
        every child forked for it."""
        from validators.expectations import prepare

        if (dataset, docs) in self._started:
            try:
                prepare(published_schema_for_dataset(dataset), docs_dir(self.layout, dataset, docs))
            except Exception as error:  # each child makes its own, and says what fails
                log.debug("GE's checkpoint for %s not made ahead: %s", dataset, error)
        self._started.add((dataset, docs))

    def _fork(self, work: Callable[[], None]) -> int:
        """``work()`` in a child forked from this warm process; the child's pid."""
        from streaming.isolation import die_with_parent, fork_frozen

        parent = os.getpid()
        pid = fork_frozen()
        if pid == 0:  # pragma: no cover - the child: measured by its effects
            die_with_parent(parent)
            code = 1  # the job could not even be set aside: the parent does it
            try:
                work()
                code = 0
            finally:
                os._exit(code)  # no atexit handlers, no joining of the parent's inherited state
        self._pidfds[pid] = open_pidfd(pid)
        return pid

    def _reap(self, pid: int, status: int) -> int:
        """A child ended (1: one of the pool's): one that died sets its job aside (it would
        kill the next child too); Data Docs it built are due again in ``DOCS_EVERY_S``."""
        from sinks.quality_report import mark_docs_built
        from streaming.isolation import WorkerCrashed

        if pid not in self.running:
            return 0
        if (pidfd := self._pidfds.pop(pid, None)) is not None:
            os.close(pidfd)
        job, docs = self.running.pop(pid)
        if job.parent == ahead_dir(self.layout):  # files validated ahead, not a job
            if status != 0:  # the checkpoint's job validates the files itself, and says why
                log.info("GE's validation ahead of %s ended with status %d", job.name, status)
                job.unlink(missing_ok=True)
            elif docs:
                mark_docs_built(self.layout, published_schema_for_dataset(dataset_of(job)))
            return 1
        if status != 0 and job.exists():
            set_aside(job, WorkerCrashed.from_status(f"GE validation of {job.name}", status))
        elif docs:
            mark_docs_built(self.layout, published_schema_for_dataset(dataset_of(job)))
        return 1


def _run_ahead(layout: DataLayout, job: Path, docs: bool) -> None:
    try:
        run_ahead(layout, job, docs)
    except Exception as error:  # the checkpoint's job validates them itself, and says why
        log.warning("GE's validation ahead of %s failed: %s", job.name, error)
        job.unlink(missing_ok=True)
        raise  # the child exits 1: no Data Docs were built


def _kept_ahead(layout: DataLayout, job: Path) -> dict | None:
    """The report this process kept ahead for exactly the files of a queued job, if any (with
    or without Data Docs: its ``docs`` says)."""
    try:
        return validated_ahead(layout, json.loads(job.read_bytes()), docs=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _weight(layout: DataLayout, job: Path) -> int:
    """The bytes of Parquet a job validates (0 if it cannot tell): GE's time follows the rows."""
    try:
        files = json.loads(job.read_bytes())["files"]
        return sum((layout.root / f["path"]).stat().st_size for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return 0
