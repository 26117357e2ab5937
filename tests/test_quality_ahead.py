"""Great Expectations ahead of the checkpoint: a run's worker validates the files a checkpoint
will add while the run commits and anchors them, and the checkpoint's job signs that report.

What is attested must not change: the same report and attestation bytes as a job validating the
files itself, only for exactly those files, and nothing left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from quality_support import RADIO
from run_helpers import wait_for
from test_cli import rda

from sinks import quality_report
from sinks.layout import DataLayout
from streaming.quality_pool import Pool, drain
from streaming.quality_queue import (
    QueueLock,
    ahead_dir,
    attest,
    attestations,
    dataset_of,
    failed_jobs,
    pending,
    pending_ahead,
    queue_dir,
    run_ahead,
    validate_ahead,
)
from streaming.quality_worker import QualityWorker
from validators import expectations

pytestmark = pytest.mark.slow  # GE


def job_of(path: Path) -> dict:
    return json.loads(path.read_bytes())


def written(root: Path) -> dict[str, bytes]:
    """Every report and attestation, by path."""
    files = (root / "published").glob("*/quality/*.json")
    return {f.relative_to(root).as_posix(): f.read_bytes() for f in files}


def queue_ahead(layout: DataLayout, job: Path, files: list[dict] | None = None) -> Path:
    """Queue a job's files (or ``files``) ahead, as the run does before the anchor."""
    content = job_of(job)
    validate_ahead(layout, content["dataset"], files or content["files"])
    (queued,) = [p for p in pending_ahead(layout) if dataset_of(p) == content["dataset"]]
    return queued


def queued_after(job: Path) -> None:
    """The checkpoint's job comes after its files were queued ahead, as in a run."""
    later = time.time() + 1
    os.utime(job, (later, later))


def test_a_checkpoint_validated_ahead_is_attested_with_the_bytes_of_a_job_validating_itself(
    copy_of, tmp_path, monkeypatch
):
    data_dir, _, _ = copy_of
    itself = tmp_path / "itself"
    shutil.copytree(data_dir, itself)
    layout = DataLayout(data_dir)
    jobs = pending(layout)
    for job in jobs:
        run_ahead(layout, queue_ahead(layout, job))
        queued_after(job)
    assert drain(DataLayout(itself)) == len(jobs)
    monkeypatch.setattr(quality_report, "validate_new_rows", None)  # not called again
    assert [attest(layout, job)["ahead"] for job in jobs] == [True] * len(jobs)
    assert written(data_dir) == written(itself) and len(written(data_dir)) == 2 * len(jobs)
    assert list(ahead_dir(layout).iterdir()) == []  # every kept report taken, then removed


def test_a_report_kept_for_other_files_is_not_used_and_goes_with_the_checkpoint(copy_of):
    """A batch that stopped before its anchor and was landed again otherwise: its checkpoint's
    files are not the ones validated ahead."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    job = next(j for j in pending(layout) if dataset_of(j) == RADIO)
    files = job_of(job)["files"]
    assert len(files) > 1
    run_ahead(layout, queue_ahead(layout, job, files[:-1]))
    cut_short = ahead_dir(layout) / f"{RADIO}.{'1' * 32}.report.partial"  # a crash's
    cut_short.write_text("{")
    queued_after(job)
    assert attest(layout, job)["ahead"] is False
    assert list(ahead_dir(layout).iterdir()) == []


def test_a_report_another_process_kept_is_not_signed_its_job_validates_the_files(copy_of):
    """An earlier run's worker may have had another GE, or other expectations: what it kept
    is not this process's verdict (``KEEPER``), whatever its files."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    job = next(j for j in pending(layout) if dataset_of(j) == RADIO)
    run_ahead(layout, queue_ahead(layout, job))
    (kept,) = ahead_dir(layout).glob("*.report")
    kept.write_text(json.dumps({**json.loads(kept.read_text()), "keeper": "4242.1"}))
    queued_after(job)
    assert attest(layout, job)["ahead"] is False
    assert list(ahead_dir(layout).iterdir()) == []


def test_a_report_kept_without_data_docs_is_not_used_by_a_job_that_builds_them(copy_of):
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    job = next(j for j in pending(layout) if dataset_of(j) == RADIO)
    run_ahead(layout, queue_ahead(layout, job), docs=False)
    queued_after(job)
    assert attest(layout, job, docs=True)["ahead"] is False
    assert (layout.quality_dir(RADIO) / "docs" / "index.html").exists()


def test_the_worker_s_pool_validates_files_ahead_in_children_and_the_jobs_sign_their_reports(
    copy_of, monkeypatch
):
    """Files queued ahead are validated, in children, only by a pool told to, while the run
    goes on, and only while no job of their dataset is queued (it goes first, and takes them
    out); the other jobs, once queued, sign the kept reports: GE does not run for them again (a
    child that ran it would set its job aside)."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    jobs = {job: job.read_bytes() for job in pending(layout)}
    for job in jobs:
        validate_ahead(layout, dataset_of(job), job_of(job)["files"])
        job.unlink()
    not_told = Pool(layout, 3, final=True)
    not_told.start_more()
    assert not not_told.running
    radio = next(job for job in jobs if dataset_of(job) == RADIO)
    radio.write_bytes(jobs.pop(radio))
    queued_after(radio)
    pool = Pool(layout, 3, final=False, ahead=True)  # the run goes on
    pool.start_more()
    started = {job.parent.name: job for job, _ in pool.running.values()}
    assert started[queue_dir(layout).name] == radio  # its job, not its files ahead
    assert {dataset_of(job) for job, _ in pool.running.values()} == {
        dataset_of(job) for job in [radio, *jobs]
    }
    wait_for(lambda: (pool.reap_ended(), not pool.running)[1], 120, "the validations ahead")
    assert pending_ahead(layout) == [] and len(attestations(layout)) == 1
    assert len(list(ahead_dir(layout).glob("*.report"))) == len(jobs)
    monkeypatch.setattr(quality_report, "validate_new_rows", None)  # not called again
    made: list[tuple] = []  # nor GE's context made for them in the worker
    monkeypatch.setattr(expectations, "prepare", lambda *args: made.append(args))
    for job, data in jobs.items():
        job.write_bytes(data)  # queued after their files were validated ahead
    pool.final = True  # the run is over
    assert pool.drain(None) == len(jobs)
    assert failed_jobs(layout) == [] and len(attestations(layout)) == len(jobs) + 1
    assert list(ahead_dir(layout).iterdir()) == [] and made == []
    for dataset in {dataset_of(job) for job in jobs}:  # built ahead, counted as built
        assert (layout.quality_dir(dataset) / "docs" / "index.html").exists()


def test_files_queued_ahead_start_as_jobs_do_the_largest_first(copy_of):
    """With fewer children free than datasets, the largest files go first: the others run
    beside them or after, rather than the largest alone at the end."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    sizes = {}
    for job in pending(layout):
        files = job_of(job)["files"]
        validate_ahead(layout, dataset_of(job), files)
        sizes[dataset_of(job)] = sum((layout.root / f["path"]).stat().st_size for f in files)
        job.unlink()
    pool = Pool(layout, 1, final=False, ahead=True)
    pool.start_more()
    ((job, _),) = pool.running.values()
    assert dataset_of(job) == max(sizes, key=sizes.get) == RADIO
    wait_for(lambda: (pool.reap_ended(), not pool.running)[1], 120, "the validation ahead")


def worker_holds_the_queue(layout: DataLayout) -> bool:
    lock = QueueLock(layout)
    free = lock.acquire()
    lock.release()
    return not free


def test_the_worker_process_forgets_what_was_kept_ahead_before_it_and_validates_the_rest(
    copy_of,
):
    """What an earlier process kept ahead may be another suite's: a worker starting forgets it.
    Files the run queues while the worker warms up (GE's import takes seconds, the run's first
    batch may queue its files before) are the run's own: validated, not forgotten."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    jobs = {job: job_of(job) for job in pending(layout)}
    for job in jobs:
        job.unlink()
    ahead_dir(layout).mkdir()
    earlier = ahead_dir(layout) / f"{RADIO}.{'0' * 32}.report"
    earlier.write_text('{"docs": true, "report": "{}", "seconds": 0}')
    worker = QualityWorker(data_dir)
    worker.start()
    try:
        assert worker.process is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        niced = lambda: os.getpriority(os.PRIO_PROCESS, worker.process.pid) > ours  # noqa: E731
        wait_for(niced, 60, "the worker to start (it lowers its priority first)")
        for job, content in jobs.items():
            validate_ahead(layout, dataset_of(job), content["files"])
        assert not worker_holds_the_queue(layout)  # still warming up: queued before its look
        kept = lambda: list(ahead_dir(layout).glob("*.report"))  # noqa: E731
        wait_for(lambda: len(kept()) == len(jobs), 120, "the worker to validate files ahead")
        assert not earlier.exists()
    finally:
        worker.stop(drain_queue=False, timeout_s=60)
    assert pending_ahead(layout) == [] and attestations(layout) == []  # none before its job


def test_a_file_changed_after_its_validation_ahead_sets_its_checkpoint_aside(copy_of):
    """The kept report judged the bytes named: signed only while they still are."""
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    job = next(j for j in pending(layout) if dataset_of(j) == RADIO)
    run_ahead(layout, queue_ahead(layout, job), docs=True)  # as the job builds them
    queued_after(job)
    changed = layout.root / job_of(job)["files"][0]["path"]
    changed.write_bytes(changed.read_bytes() + b"\0")
    drain(layout)
    (failed,) = failed_jobs(layout)
    assert failed.name == job.name
    assert "ChangedSinceAnchored" in json.loads(failed.read_bytes())["error"]
    attested = {a.relative_to(layout.published).parts[0] for a in attestations(layout)}
    assert RADIO not in attested and attested  # the other datasets' are signed
    assert list(ahead_dir(layout).glob(f"{RADIO}.*")) == []  # set aside, its report forgotten


def test_a_run_with_its_worker_leaves_every_checkpoint_attested_and_nothing_queued_ahead(
    broker, tmp_path
):
    from simulator.fleet import generate
    from simulator.producer import produce

    topic = "quality-ahead"
    produce(broker.bootstrap, topic, list(generate(3, 20, 1, 1_764_000_000_000, 3)))
    data = tmp_path / "data"
    result = rda(
        "run", "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"g-{topic}",
        "--data-dir", str(data), "--chain", "embedded", "--max-batch-records", "40",
        "--once", "--json", state=tmp_path / "state",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    layout = DataLayout(data)
    manifests = list(layout.published.glob("*/checkpoints/*.manifest.json"))
    assert len(manifests) > 3  # several batches, several datasets
    assert len(attestations(layout)) == len(manifests)
    assert pending(layout) == [] and failed_jobs(layout) == []
    assert list(ahead_dir(layout).iterdir()) == []
