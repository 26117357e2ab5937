"""The quality worker: which checkpoints it validates when, and in which process.

It validates each job in a child forked from a warm process, jobs of different datasets at
once; a dataset's Data Docs end up showing its last checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from quality_support import RADIO, gated_worker
from run_helpers import wait_for

from infra.processes import alive
from sinks.layout import DataLayout
from streaming import quality_launch
from streaming.quality_pool import drain
from streaming.quality_queue import dataset_of, pending, queue_dir
from streaming.quality_worker import QualityWorker

pytestmark = pytest.mark.slow  # GE's worker processes


def test_the_worker_process_drains_the_queue_when_asked_to_finish(copy_of):
    data_dir, _, _ = copy_of
    worker = QualityWorker(data_dir)
    worker.nudge()
    assert worker.process is not None
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process.returncode == 0
    assert pending(DataLayout(data_dir)) == []


def test_a_worker_told_to_finish_drains_the_queue_and_exits_without_being_waited_for(copy_of):
    """``rda run --once`` says so as soon as its loop ends, then closes its landing children
    while GE works; its ``stop`` then only waits."""
    data_dir, _, _ = copy_of
    worker = QualityWorker(data_dir)
    worker.start()
    worker.finish()
    assert worker.process is not None
    worker.process.wait(timeout=300)  # by itself
    assert worker.process.returncode == 0 and pending(DataLayout(data_dir)) == []
    worker.stop(drain_queue=True)  # nothing left to say or do


def test_a_worker_started_before_its_directory_is_known_is_taken_and_told_it(copy_of):
    """``rda run`` starts it before parsing its command line (``quality_launch.prestart``)."""
    data_dir, _, _ = copy_of
    quality_launch.prestart()
    started = quality_launch._started
    worker = QualityWorker(data_dir)
    worker.start()
    assert worker.process is started and quality_launch.take() is None  # taken, once
    worker.stop(drain_queue=True, timeout_s=300)
    assert started is not None and started.returncode == 0
    assert pending(DataLayout(data_dir)) == []


def test_a_worker_started_ahead_is_not_told_a_directory_it_could_not_read_in_one_line(tmp_path):
    """Its directory comes as a line: one with a newline in its name goes on a new worker's
    command line instead, and the one started ahead exits, never told."""
    data_dir = tmp_path / "two\nlines"
    quality_launch.prestart()
    ahead = quality_launch._started
    worker = QualityWorker(data_dir, data_dir)
    worker.start()
    try:
        assert ahead is not None and worker.process is not ahead
        assert ahead.wait(timeout=60) == 0
        assert worker.process is not None and worker.process.args[-1] == str(data_dir)
    finally:
        worker.stop(drain_queue=False)


def test_a_worker_started_ahead_is_told_a_directory_named_as_a_word_of_its_own(copy_of):
    """The first line is the directory, whatever it says: not the word "stop", nor a name
    shorn of its trailing space."""
    copied, _, _ = copy_of
    data_dir = copied.parent / "stop "
    copied.rename(data_dir)
    layout = DataLayout(data_dir)
    assert len(pending(layout)) == 3
    quality_launch.prestart()
    worker = QualityWorker(data_dir, data_dir)
    worker.start()
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process is not None and worker.process.returncode == 0
    assert pending(layout) == [] and not (queue_dir(layout) / "failed").exists()


def test_a_worker_started_ahead_and_never_told_where_exits_with_its_parent():
    script = "from streaming import quality_launch; quality_launch.prestart(); "
    script += "print(quality_launch._started.pid)"
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    orphan = int(parent.stdout)
    wait_for(lambda: not alive(orphan), timeout=30, what="the orphaned worker's exit")


def test_a_worker_started_before_anything_is_queued_takes_what_is_queued_later(copy_of):
    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    jobs = {job.name: job.read_bytes() for job in pending(layout)}
    for job in pending(layout):
        job.unlink()
    worker = QualityWorker(data_dir)
    worker.start()  # warms GE up with nothing to do yet
    for name, data in jobs.items():  # checkpoints committed meanwhile
        (queue_dir(layout) / name).write_bytes(data)
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process is not None and worker.process.returncode == 0
    assert jobs and pending(layout) == []
    assert not (queue_dir(layout) / "failed").exists()  # attested, not set aside


def test_jobs_of_different_datasets_run_at_once_while_the_run_goes_on(copy_of, tmp_path):
    """A batch queues one job per dataset: the others start beside the largest (held here)
    before the run says it has finished; they used to wait for its end, or for the finish."""
    data_dir, _, _ = copy_of
    jobs = pending(DataLayout(data_dir))
    others = [job.name for job in jobs if not job.name.startswith(RADIO)]
    assert len(jobs) == 3 and len(others) == 2  # the largest, radio_kpi, is taken first
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = gated_worker(gates, data_dir, held=RADIO)
    try:
        (radio,) = [job.name for job in jobs if job.name.startswith(RADIO)]
        wait_for((gates / f"{radio}.started").exists, 120, f"{radio} to start")
        for name in others:  # no finish said yet
            wait_for((gates / f"{name}.imported").exists, 120, f"{name} to be done")
        assert not (gates / "release").exists()  # radio's job is still running
        (gates / "release").touch()
        worker.stdin.write(b"finish\n")
        worker.stdin.flush()
        assert worker.wait(timeout=300) == 0
    finally:
        worker.kill()
        worker.wait()
        worker.stdin.close()
    assert pending(DataLayout(data_dir)) == []
    assert not (queue_dir(DataLayout(data_dir)) / "failed").exists()


def test_a_worker_started_with_a_backlog_forks_its_jobs_from_a_warm_process(copy_of, tmp_path):
    """A restart after a crash finds jobs queued: each child still finds GE imported (a child
    forked cold imported it itself, ~2 s for every one of them), and every module a job uses
    (Parquet's reader, Ed25519's signing: imported in each child, ~0.05 s)."""
    data_dir, _, _ = copy_of
    jobs = [job.name for job in pending(DataLayout(data_dir))]
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = gated_worker(gates, data_dir, held="none")
    try:
        worker.stdin.write(b"finish\n")
        worker.stdin.flush()
        assert worker.wait(timeout=300) == 0
    finally:
        worker.kill()
        worker.wait()
        worker.stdin.close()
    started = {name: json.loads((gates / f"{name}.started").read_text()) for name in jobs}
    assert len(started) == 3 and all(job["warm"] for job in started.values())
    assert {name: json.loads((gates / f"{name}.imported").read_text()) for name in jobs} == {
        name: [] for name in jobs
    }
    assert pending(DataLayout(data_dir)) == []


def test_a_finished_run_leaves_data_docs_of_every_datasets_last_checkpoint(two_batches):
    """A dataset's last job, done while the run went on without docs (built minutes ago),
    is redone with them when the run finishes: the same attestation, docs of that checkpoint."""
    layout = DataLayout(two_batches)
    jobs = pending(layout)
    twice = {
        dataset_of(job) for job in jobs if sum(dataset_of(j) == dataset_of(job) for j in jobs) == 2
    }
    assert RADIO in twice
    worker = QualityWorker(two_batches)
    worker.start()
    wait_for(lambda: not pending(layout), 240, "the jobs to be done while the run goes on")
    done = {f: f.read_bytes() for f in two_batches.glob("published/*/quality/*.json")}
    before_finish = time.time()
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process is not None and worker.process.returncode == 0
    for dataset in twice:
        index = layout.quality_dir(dataset) / "docs" / "index.html"
        assert index.stat().st_mtime > before_finish, dataset
    assert {f: f.read_bytes() for f in two_batches.glob("published/*/quality/*.json")} == done
    assert pending(layout) == [] and not (queue_dir(layout) / "failed").exists()


def test_checkpoints_validated_at_once_in_children_are_attested_as_one_at_a_time(
    anchored, tmp_path
):
    data_dir = anchored[0]
    one, many = tmp_path / "one", tmp_path / "many"
    shutil.copytree(data_dir, one)
    shutil.copytree(data_dir, many)
    queued = len(pending(DataLayout(one)))
    assert queued >= 2  # a batch queues one checkpoint per dataset
    assert drain(DataLayout(one)) == drain(DataLayout(many), parallel=2) == queued

    def written(root) -> dict:
        files = (root / "published").glob("*/quality/*.json")
        return {f.relative_to(root).as_posix(): f.read_bytes() for f in files}

    assert written(one) == written(many) and len(written(one)) == 2 * queued
    assert pending(DataLayout(many)) == []


def test_a_child_that_dies_validating_sets_its_checkpoint_aside_and_the_others_go_on(
    copy_of, monkeypatch
):
    from streaming import quality_pool

    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    queued = pending(layout)
    attest = quality_pool.attest

    def dies_on_radio(layout, job, docs=False):
        if job.name.startswith(RADIO):
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfault in a native library would
        return attest(layout, job, docs)

    monkeypatch.setattr(quality_pool, "attest", dies_on_radio)
    assert drain(layout, parallel=2) == len(queued)
    (failed,) = (queue_dir(layout) / "failed").glob("*.json")
    assert failed.name.startswith(RADIO)
    assert "killed by SIGKILL" in json.loads(failed.read_text())["error"]
    assert pending(layout) == []


def test_the_worker_runs_at_the_lowest_cpu_priority():
    """Behind the run's batches when every core is busy: at nice 10 it still took ~10 % of a
    core from the first batch's landing (``NICENESS``). Its jobs, forked from it, inherit it."""
    quality_launch.prestart()
    started = quality_launch._started
    assert started is not None
    try:
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, started.pid) == 19, 60, "nice 19")
    finally:
        quality_launch.dismiss()


def test_a_worker_let_go_during_its_warm_up_leaves_no_scratch_folder(tmp_path, monkeypatch):
    """Dismissed (``rda run --quality queue`` from a config file) before it is told where to
    work, it exits at once, from its input's thread, while GE writes its warm-up's Data Docs;
    the run removes the folder once it has exited (removed by the worker's thread, a file GE
    wrote meanwhile left it behind in one CI run)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    quality_launch.prestart()
    [folder] = tmp_path.glob(f"{quality_launch.WARM_UP_PREFIX}*")  # made by the run
    wait_for(lambda: any(folder.rglob("*")), 240, "GE writing in the warm-up's folder", 0.005)
    quality_launch.dismiss()
    assert list(tmp_path.iterdir()) == []


def test_a_worker_told_where_removes_its_warm_up_folder_itself(copy_of, tmp_path, monkeypatch):
    data_dir, _, _ = copy_of
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    quality_launch.prestart()
    worker = QualityWorker(data_dir)
    worker.start()
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process is not None and worker.process.returncode == 0
    assert list(scratch_root.iterdir()) == []
