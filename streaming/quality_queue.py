"""The queue of anchored checkpoints awaiting Great Expectations, and one job's work.

Anchoring a checkpoint enqueues it (``enqueue``: one small JSON file per checkpoint under
``private/quality-queue/``; a batch redone after its anchor enqueues its checkpoints again,
``streaming/commit.py``). A job (``attest``) runs the dataset's GE suite on exactly the files the
checkpoint added, writes the report beside the checkpoint's other quality files and signs an
attestation binding the report's SHA-256 to the manifest's (``proofs/quality_attestation.py``),
then deletes the job. Until then the checkpoint's report is
*pending*: the manifest already names where report and attestation will be. Every step is
idempotent (GE's report is deterministic, Ed25519 signatures are too), so a job redone after a
crash writes the same bytes; a job is removed only after its attestation is on disk. Who takes
the jobs, and when: ``streaming/quality_worker.py``.

GE's report depends on the files alone, and they are written before their checkpoint: the
event-time step writes them, then the commit builds the shards' trees and the checkpoint, and
anchors it, on one core. A run with a worker of its own queues the files *ahead*
(``validate_ahead``: ``private/quality-queue/ahead/``) as soon as they are written; the worker
validates them meanwhile on the other core and keeps the report beside (``run_ahead``). The
checkpoint's job then finds the report of exactly its files (their paths and SHA-256s, in
order) and signs it (``attest``) rather than validating again. Nothing is attested before its
checkpoint is anchored, and what a kept report says is what GE says of those bytes, so the
attestation is the one a job validating them itself writes. Only a report kept by this process
(or a child it forked: the worker's validations ahead and its jobs) is signed; an earlier
process's may be another GE's or suite's. A kept report no job came for (the run stopped before
the anchor) is removed by the dataset's next job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

from proofs import quality_attestation
from proofs.signing import publisher_key
from schemas.published import published_schema_for_dataset
from sinks.layout import DataLayout

log = logging.getLogger("rda.quality")
# Which process's GE and suites a kept report is from: the one that imported this module, and
# the children it forks with it. A report kept under another is validated again by its job.
KEEPER = f"{os.getpid()}.{time.time_ns()}"


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


def ahead_dir(layout: DataLayout) -> Path:
    return queue_dir(layout) / "ahead"


def files_digest(files: list[dict[str, Any]]) -> str:
    """Names the rows a validation judged: its files' paths and SHA-256s, in order."""
    named = "".join(f"{f['path']}\n{f['sha256']}\n" for f in files)
    return hashlib.sha256(named.encode()).hexdigest()[:32]


def validate_ahead(layout: DataLayout, dataset: str, files: list[dict[str, Any]]) -> None:
    """Queue GE's validation of the ``files`` (path from the work root, sha256) a dataset's
    checkpoint is about to add, for the worker to do before the checkpoint's job comes."""
    name = f"{dataset}.{files_digest(files)}"
    if (ahead_dir(layout) / f"{name}.report").exists():  # a batch redone identically
        return
    job = {"dataset": dataset, "files": [{"path": f["path"], "sha256": f["sha256"]} for f in files]}
    _write_atomically(ahead_dir(layout) / f"{name}.json", _json_bytes(job))


def pending_ahead(layout: DataLayout) -> list[Path]:
    """Files queued ahead, oldest first."""
    return sorted(ahead_dir(layout).glob("*.json"), key=_age)


def run_ahead(layout: DataLayout, job_file: Path, docs: bool = False) -> None:
    """Validate files queued ahead and keep GE's report (and whether Data Docs were built with
    it) for their checkpoint's job; then remove the ahead job."""
    from sinks.quality_report import validate_new_rows
    from validators.expectations import report_bytes

    job = json.loads(job_file.read_bytes())
    dataset = job["dataset"]
    schema = published_schema_for_dataset(dataset)
    validation = validate_new_rows(layout, schema, job["files"], docs_dir(layout, dataset, docs))
    kept = {"docs": docs, "seconds": validation.seconds, "keeper": KEEPER}
    kept["report"] = report_bytes(validation.report).decode()
    _write_atomically(job_file.with_suffix(".report"), _json_bytes(kept))
    job_file.unlink(missing_ok=True)


def validated_ahead(layout: DataLayout, job: dict[str, Any], docs: bool) -> dict | None:
    """The report this process kept for exactly a job's files, if there is one (with Data
    Docs, if they are wanted); else None."""
    kept = ahead_dir(layout) / f"{job['dataset']}.{files_digest(job['files'])}.report"
    try:
        found = json.loads(kept.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("keeper") != KEEPER:
        return None
    return found if found.get("docs") or not docs else None


def forget_ahead(job_file: Path, job: dict[str, Any]) -> None:
    """Once a dataset's checkpoint is attested, or set aside: the report kept for its files,
    and whatever was queued ahead for the dataset before its job was (a batch that stopped
    before its anchor; a later batch's files are queued after this job)."""
    ahead, dataset, queued = job_file.parent / "ahead", job["dataset"], _age(job_file)
    (ahead / f"{dataset}.{files_digest(job['files'])}.report").unlink(missing_ok=True)
    for path in ahead.glob(f"{dataset}.*"):  # a crash's partial files too
        if _age(path) <= queued:
            path.unlink(missing_ok=True)


def forget_earlier_ahead(layout: DataLayout, started_ns: int) -> None:
    """What was queued or kept ahead before a worker started (``started_ns``, ``time.time_ns``):
    an earlier process's, whose kept reports it would not sign (``KEEPER``) and whose files
    belong to a batch redone since. What the run queued since is its own: a worker takes the
    queue after its warm-up (GE's import, at nice 19 while the run lands), often after the
    run's first batch queued its files, which a clearing of all it found there threw away. (A
    file's time is the kernel's coarse clock, a few ms behind: at worst a file queued within ms
    of the start is forgotten, and validated by its job.)"""
    for path in ahead_dir(layout).glob("*"):
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile
            if path.stat().st_mtime_ns < started_ns:
                path.unlink(missing_ok=True)


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone meanwhile
        return 0.0


def pending(layout: DataLayout) -> list[Path]:
    """Queued jobs, oldest checkpoint first."""
    jobs = queue_dir(layout).glob("*.json")
    return sorted(jobs, key=lambda p: (p.name.rsplit(".", 2)[-2], p.name))


class QueueLock:
    """Who takes a queue's jobs: the one process holding an exclusive ``flock`` on
    ``private/quality-queue/.worker.lock`` (the jobs it forks share it). Without it, ``rda
    quality`` beside a run with a worker of its own took the same jobs: both validated one, and
    the second to remove it died and set it aside."""

    def __init__(self, layout: DataLayout) -> None:
        self.path = queue_dir(layout) / ".worker.lock"
        self._handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock if no other process holds it; whether this one does now. Only the
        lock file is made, in the queue folder: with no queue folder yet (nothing was ever
        queued, or it cannot be: a data directory that is not one) there is nothing to take,
        and False."""
        if self._handle is None:
            try:
                handle = self.path.open("a+b")
            except OSError:
                return False
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # the lock goes with the last descriptor of it
            self._handle = None


def failed_jobs(layout: DataLayout) -> list[Path]:
    """Jobs set aside (``set_aside``), with their reasons."""
    return sorted((queue_dir(layout) / "failed").glob("*.json"))


def attestations(layout: DataLayout) -> list[Path]:
    """Every checkpoint's signed GE attestation in the work directory, all datasets."""
    return sorted(layout.published.glob(f"*/{quality_attestation.ATTESTATIONS}"))


def attest(layout: DataLayout, job_file: Path, docs: bool = False) -> dict[str, Any]:
    """Validate one queued checkpoint, write its report and attestation, remove the job.

    ``docs``: also rebuild the dataset's Data Docs in the same GE run.
    """
    from sinks.quality_report import check_committed, mark_docs_built, validate_new_rows
    from validators.expectations import report_bytes

    job = json.loads(job_file.read_bytes())
    dataset, size = job["dataset"], job["tree_size"]
    schema = published_schema_for_dataset(dataset)
    kept = validated_ahead(layout, job, docs)
    if kept is not None:  # still the bytes it judged, as a validation here would check
        check_committed(layout, job["files"])
        report, seconds = kept["report"].encode(), kept["seconds"]
    else:
        docs_at = docs_dir(layout, dataset, docs)
        validation = validate_new_rows(layout, schema, job["files"], docs_at)
        report, seconds = report_bytes(validation.report), validation.seconds
    if docs:
        mark_docs_built(layout, schema)
    dataset_dir = layout.dataset_dir(dataset)
    _write_atomically(dataset_dir / quality_attestation.report_name(size), report)
    claim = quality_attestation.statement(
        dataset=dataset,
        tree_size=size,
        manifest_sha256=job["manifest_sha256"],
        files=[{**f, "path": layout.in_dataset(dataset, f["path"])} for f in job["files"]],
        report=report,
        expectations=expectations_summary(json.loads(report)),
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
    forget_ahead(job_file, job)
    job_file.unlink(missing_ok=True)
    log.info(
        "attested GE report of %s at tree size %d (%.2f s%s)",
        dataset,
        size,
        seconds,
        ", validated ahead" if kept is not None else "",
        extra={"event": "quality_attested", "dataset": dataset, "tree_size": size},
    )
    return {"dataset": dataset, "tree_size": size, "seconds": seconds, "ahead": kept is not None}


def docs_dir(layout: DataLayout, dataset: str, docs: bool) -> Path | None:
    """Where a job's validation builds the dataset's Data Docs (None: it builds none)."""
    return layout.quality_dir(dataset) / "docs" if docs else None


def requeue(job: Path, data: bytes) -> None:
    """Put a job that was done back in the queue (its bytes as they were): to redo it."""
    _write_atomically(job, data)


def dataset_of(job: Path) -> str:
    return job.name.rsplit(".", 2)[0]


def set_aside(job: Path, error: Exception) -> None:
    """Move a job that failed to ``failed/``, with the reason, for an operator to look at."""
    log.error("GE report of %s failed: %s", job.name, error, extra={"event": "quality_failed"})
    failed = job.parent / "failed" / job.name
    failed.parent.mkdir(exist_ok=True)
    data = job.read_bytes()
    try:
        queued: Any = json.loads(data)
    except ValueError:  # a job cut short (a crash before its bytes reached the disk): kept
        queued = {"unreadable": data[:4096].decode("utf-8", "replace"), "bytes": len(data)}
    record = {"job": queued, "error": f"{type(error).__name__}: {error}"}
    _write_atomically(failed, _json_bytes(record))
    with contextlib.suppress(KeyError, TypeError):  # not a job's JSON: nothing kept ahead
        forget_ahead(job, queued)
    job.unlink()


def expectations_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluated": report["statistics"]["evaluated_expectations"],
        "successful": report["statistics"]["successful_expectations"],
        "success": report["success"],
    }


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
