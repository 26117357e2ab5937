"""Great Expectations off the critical path: a queue of anchored checkpoints and a worker process.

Committing a checkpoint enqueues it (``enqueue``: one small JSON file per checkpoint under
``private/quality-queue/``) and moves on to the anchor. A separate process (``QualityWorker``,
``python -m streaming.quality_worker DATA_DIR``) takes the queue oldest first: it runs the
dataset's GE suite on exactly the files the checkpoint added, writes the report beside the
checkpoint's other quality files and signs an attestation binding the report's SHA-256 to the
manifest's (``proofs/quality_attestation.py``), then deletes the job. Until then the checkpoint's
report is *pending*: the manifest already names where report and attestation will be.

Every step is idempotent (GE's report is deterministic, Ed25519 signatures are too), so a job
redone after a crash writes the same bytes; a job is removed only after its attestation is on
disk. The parent talks to the worker through its stdin: ``stop`` — finish the current job and
exit (the rest waits for the next start); ``finish`` — do the whole queue, then exit (``rda run
--once``, the demo). End of input (the parent is gone, even killed) means ``stop``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from proofs import quality_attestation
from proofs.signing import publisher_key
from schemas.published import published_schema_for_dataset
from sinks.layout import DataLayout
from streaming.isolation import PARENT_ENDS

log = logging.getLogger("rda.quality")
POLL_S = 0.5
# Validated once, empty, when the worker starts: GE's imports and its first validation cost
# ~2 s, paid while the first batch lands rather than after its anchor (the costs are GE's own,
# shared by every suite; any dataset will do).
WARM_UP_DATASET = "radio_kpi.v1"
NICENESS = 10
# At the end of a run (`rda run --once`, the demo), checkpoints of different datasets are
# validated at once, each in a child forked from the warmed worker: a batch queues one per
# dataset, and both cores are free then (three datasets: 2.2-3.4 s one at a time, 1.7-2.1 s).
PARALLEL_JOBS = 2


def queue_dir(layout: DataLayout) -> Path:
    return layout.private / "quality-queue"


def enqueue(
    layout: DataLayout,
    checkpoint: dict[str, Any],
    files: list[dict[str, Any]],
    store: str | None = None,
) -> None:
    """Queue GE's validation of the ``files`` (path from the work root, sha256) a checkpoint
    added; nothing to do if the checkpoint is attested already (a redone commit). ``store``:
    the data directory the report and attestation are published to, when it is not the work
    directory itself (an ``s3://`` one)."""
    dataset, size = checkpoint["dataset"], checkpoint["tree_size"]
    dataset_dir = layout.dataset_dir(dataset)
    if (dataset_dir / quality_attestation.attestation_name(size)).exists():
        return
    job = {
        "dataset": dataset,
        "tree_size": size,
        "manifest_sha256": checkpoint["manifest_sha256"],
        "files": [{"path": f["path"], "sha256": f["sha256"]} for f in files],
        "store": store,
    }
    _write_atomically(queue_dir(layout) / f"{dataset}.{size:012d}.json", _json_bytes(job))


def pending(layout: DataLayout) -> list[Path]:
    """Queued jobs, oldest checkpoint first."""
    jobs = queue_dir(layout).glob("*.json")
    return sorted(jobs, key=lambda p: (p.name.rsplit(".", 2)[-2], p.name))


def attest(layout: DataLayout, job_file: Path, docs: bool = False) -> dict[str, Any]:
    """Validate one queued checkpoint, write its report and attestation, remove the job.

    ``docs``: also rebuild the dataset's Data Docs in the same GE run.
    """
    from sinks.quality_report import mark_docs_built, validate_new_rows
    from validators.expectations import report_bytes

    job = json.loads(job_file.read_bytes())
    dataset, size = job["dataset"], job["tree_size"]
    schema = published_schema_for_dataset(dataset)
    docs_dir = layout.quality_dir(dataset) / "docs" if docs else None
    validation = validate_new_rows(layout, schema, job["files"], docs_dir)
    if docs:
        mark_docs_built(layout, schema)
    report = report_bytes(validation.report)
    dataset_dir = layout.dataset_dir(dataset)
    _write_atomically(dataset_dir / quality_attestation.report_name(size), report)
    claim = quality_attestation.statement(
        dataset=dataset,
        tree_size=size,
        manifest_sha256=job["manifest_sha256"],
        files=[{**f, "path": layout.in_dataset(dataset, f["path"])} for f in job["files"]],
        report=report,
        expectations=expectations_summary(validation.report),
    )
    document = quality_attestation.sign(publisher_key(layout.root), claim)
    attestation = dataset_dir / quality_attestation.attestation_name(size)
    _write_atomically(attestation, _json_bytes(document))
    if job.get("store"):  # published where buyers and auditors read
        from sinks.storage import Store

        shared = Store.open(job["store"])
        names = quality_attestation.report_name(size), quality_attestation.attestation_name(size)
        for name in names:
            shared.put_file(dataset_dir / name, f"published/{dataset}/{name}")
    job_file.unlink(missing_ok=True)
    log.info(
        "attested GE report of %s at tree size %d (%.2f s)",
        dataset,
        size,
        validation.seconds,
        extra={"event": "quality_attested", "dataset": dataset, "tree_size": size},
    )
    return {"dataset": dataset, "tree_size": size, "seconds": validation.seconds}


def drain(
    layout: DataLayout,
    stop: threading.Event | _Either | None = None,
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
        if _dataset_of(job) not in busy:
            oldest.setdefault(_dataset_of(job), job)
    return sorted(oldest.values(), key=lambda job: -_weight(layout, job))[:count]


def _dataset_of(job: Path) -> str:
    return job.name.rsplit(".", 2)[0]


def _docs_with(layout: DataLayout, job: Path, jobs: list[Path], final: bool) -> bool:
    """Rebuild the dataset's Data Docs with this job: when due, or at the end of a final drain."""
    from sinks.quality_report import docs_due

    dataset = _dataset_of(job)
    last_of_dataset = sum(_dataset_of(j) == dataset for j in jobs) == 1
    return docs_due(layout, dataset) or (final and last_of_dataset)


def _attest_or_set_aside(layout: DataLayout, job: Path, docs: bool) -> None:
    try:
        attest(layout, job, docs=docs)
    except Exception as error:  # one bad job must not stop the others: set it aside
        _set_aside(job, error)


class _Pool:
    """Checkpoints validated in forked children, up to ``size`` at once; a new one starts as
    soon as a child ends."""

    def __init__(self, layout: DataLayout, size: int, final: bool) -> None:
        self.layout, self.size, self.final = layout, size, final
        self.running: dict[int, tuple[Path, bool]] = {}  # pid: (job, docs built with it)

    def drain(self, stop: threading.Event | _Either | None) -> int:
        done = 0
        while True:
            if not (stop is not None and stop.is_set()):
                self._start_more()
            if not self.running:
                return done
            done += self._reap(*os.wait())

    def _start_more(self) -> None:
        jobs = pending(self.layout)
        busy = {_dataset_of(job) for job, _ in self.running.values()}
        for job in _next_jobs(self.layout, jobs, busy, self.size - len(self.running)):
            self._start(job, _docs_with(self.layout, job, jobs, self.final))

    def _start(self, job: Path, docs: bool) -> None:
        from streaming.isolation import die_with_parent, fork_frozen

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
            _set_aside(job, WorkerCrashed.from_status(f"GE validation of {job.name}", status))
        elif docs:
            mark_docs_built(self.layout, published_schema_for_dataset(_dataset_of(job)))
        return 1


def _weight(layout: DataLayout, job: Path) -> int:
    """The bytes of Parquet a job validates (0 if it cannot tell): GE's time follows the rows."""
    try:
        files = json.loads(job.read_bytes())["files"]
        return sum((layout.root / f["path"]).stat().st_size for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _set_aside(job: Path, error: Exception) -> None:
    """Move a job that failed to ``failed/``, with the reason, for an operator to look at."""
    log.error("GE report of %s failed: %s", job.name, error, extra={"event": "quality_failed"})
    failed = job.parent / "failed" / job.name
    failed.parent.mkdir(exist_ok=True)
    record = {"job": json.loads(job.read_bytes()), "error": f"{type(error).__name__}: {error}"}
    _write_atomically(failed, _json_bytes(record))
    job.unlink()


def expectations_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluated": report["statistics"]["evaluated_expectations"],
        "successful": report["statistics"]["successful_expectations"],
        "success": report["success"],
    }


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
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streaming.quality_worker", str(self.layout.root)],
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

    def stop(self, drain_queue: bool, timeout_s: float = 900.0) -> None:
        """Stop the worker: after the whole queue (``drain_queue``) or after its current job."""
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


def main(argv: list[str] | None = None) -> int:
    """The worker process: drain, wait for more, until told to stop or orphaned."""
    args = sys.argv[1:] if argv is None else argv
    layout = DataLayout(Path(args[0]))
    stop, finish = threading.Event(), threading.Event()
    threading.Thread(target=_listen, args=(stop, finish), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Off the critical path, so behind it for the CPU: the run's batches (and their latency to
    # the anchor) go first when every core is busy.
    os.nice(NICENESS)
    if not pending(layout):
        warm_up()
    while not stop.is_set():
        if finish.is_set():  # the run is over: its cores are free for GE
            drain(layout, stop, parallel=PARALLEL_JOBS)  # the last docs, and anything since
            break
        # While the run goes on, one job at a time, leaving it a core (between jobs, a finish
        # switches to the pool).
        if not drain(layout, _Either(stop, finish), final=False):
            finish.wait(POLL_S)
    return 0


class _Either:
    """Set when any of its events is (``drain``'s ``stop``)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


def warm_up() -> None:
    """GE's one-time costs, paid before the first job: an empty table validated, with Data Docs
    built in a scratch directory (their templates are then compiled for every later build)."""
    import tempfile

    from validators.expectations import validate

    schema = published_schema_for_dataset(WARM_UP_DATASET)
    with tempfile.TemporaryDirectory(prefix="rda-ge-warm-up-") as scratch:
        validate(schema, schema.arrow_schema().empty_table(), Path(scratch))


def _listen(stop: threading.Event, finish: threading.Event) -> None:
    """The parent's word on stdin; its end (the parent is gone) means stop."""
    for line in sys.stdin:
        if line.strip() == "finish":
            finish.set()
            return
        if line.strip() == "stop":
            break
    stop.set()


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


if __name__ == "__main__":
    code = main()
    # The parent waits for this exit: skip the interpreter's last full collection over GE's
    # and pandas' objects (as ``cli.main.entry`` does).
    gc.freeze()
    raise SystemExit(code)
