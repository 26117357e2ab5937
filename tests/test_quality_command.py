"""``rda run --quality queue`` leaves GE's jobs queued; ``rda quality`` validates them.

Every anchored checkpoint still gets its GE report and signed attestation, in a process of its
own rather than beside the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from child_processes import spawn
from run_helpers import checkpoint_keys, wait_for
from test_cli import rda

from cli.main import _quality_left_queued, main
from proofs import quality_attestation
from sinks.layout import DataLayout
from streaming import quality_launch
from streaming.keys import publisher_key
from streaming.quality_pool import drain
from streaming.quality_queue import (
    QueueLock,
    ahead_dir,
    attestations,
    failed_jobs,
    pending,
    queue_dir,
)
from streaming.quality_worker import QualityWorker

pytestmark = pytest.mark.slow  # `rda quality` and GE's worker processes


@pytest.fixture(scope="module")
def queued(broker, tmp_path_factory) -> Path:
    """A data directory whose checkpoints `rda run --quality queue` anchored and left queued."""
    from simulator.fleet import generate
    from simulator.producer import produce

    root = tmp_path_factory.mktemp("queued")
    topic = "quality-queued"
    produce(broker.bootstrap, topic, list(generate(3, 8, 1, 1_764_000_000_000, 3)))
    result = rda(
        "run", "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"g-{topic}",
        "--data-dir", str(root / "data"), "--chain", "embedded", "--max-batch-records", "12",
        "--once", "--quality", "queue", "--json", state=root / "state",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root / "data"


@pytest.fixture
def data(queued, tmp_path) -> Path:
    copied = tmp_path / "data"
    shutil.copytree(queued, copied)
    return copied


def checkpoints(data: Path) -> set[tuple[str, int]]:
    return checkpoint_keys(DataLayout(data).published.glob("*/checkpoints/*.manifest.json"))


def queued_jobs(data: Path) -> set[tuple[str, int]]:
    """(dataset, tree size) of each queued job (``DATASET.SIZE.json``)."""
    names = [job.name.rsplit(".", 2) for job in pending(DataLayout(data))]
    return {(dataset, int(size)) for dataset, size, _ in names}


def test_a_run_told_to_leave_quality_queued_anchors_every_checkpoint_and_validates_none(queued):
    assert len(checkpoints(queued)) > 3  # several batches, several datasets
    assert queued_jobs(queued) == checkpoints(queued)
    assert attestations(DataLayout(queued)) == []
    assert not list(DataLayout(queued).published.glob("*/quality"))
    assert not ahead_dir(DataLayout(queued)).exists()  # no worker of its own to validate ahead


def test_rda_quality_attests_every_queued_checkpoint_and_empties_the_queue(data, tmp_path):
    result = rda("quality", "--data-dir", str(data), "--json", state=tmp_path / "state")
    assert result.returncode == 0, result.stderr
    expected = checkpoints(data)
    assert json.loads(result.stdout) == {"attested": len(expected), "failed": 0, "pending": 0}
    layout = DataLayout(data)
    assert pending(layout) == []
    key_id = publisher_key(data).key_id
    for dataset, size in expected:
        folder = layout.dataset_dir(dataset)
        document = json.loads((folder / quality_attestation.attestation_name(size)).read_bytes())
        report = (folder / quality_attestation.report_name(size)).read_bytes()
        manifest = (folder / "checkpoints" / f"{size:012d}.manifest.json").read_bytes()
        claim = document["statement"]
        assert claim["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
        assert claim["report_sha256"] == hashlib.sha256(report).hexdigest()
        assert document["signature"]["key_id"] == key_id
    for dataset in {dataset for dataset, _ in expected}:  # each one's last checkpoint's docs
        assert (layout.quality_dir(dataset) / "docs" / "index.html").exists()


def test_rda_quality_watching_takes_what_is_queued_while_it_runs_until_sigterm(data, tmp_path):
    layout = DataLayout(data)
    held = tmp_path / "held"
    shutil.move(queue_dir(layout), held)
    queue_dir(layout).mkdir()
    process = spawn(
        [sys.executable, "-m", "cli.main", "quality", "--data-dir", str(data), "--watch",
         "--interval", "0.2", "--json"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    try:
        jobs = sorted(held.glob("*.json"))[:2]
        for job in jobs:  # queued as a run queues them: whole files, renamed into place
            job.rename(queue_dir(layout) / job.name)
        wait_for(lambda: len(attestations(layout)) == len(jobs), 240, "both attestations")
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert json.loads(stdout) == {"attested": 2, "failed": 0, "pending": 0}


def test_a_checkpoint_whose_file_changed_since_its_anchor_is_set_aside_and_exits_1(data, tmp_path):
    """GE must judge the rows the attestation names by hash, or the attestation lies."""
    layout = DataLayout(data)
    job, *others = pending(layout)
    for other in others:
        other.unlink()
    changed = data / json.loads(job.read_bytes())["files"][0]["path"]
    pq.write_table(pq.read_table(changed).slice(1), changed)  # a row fewer, still Parquet
    result = rda("quality", "--data-dir", str(data), "--json", state=tmp_path / "state")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"attested": 0, "failed": 1, "pending": 0}
    (failed,) = failed_jobs(layout)
    assert failed.name == job.name
    reason = json.loads(failed.read_bytes())["error"]
    assert reason.startswith("ChangedSinceAnchored: ") and "SHA-256 is not the anchored" in reason
    assert attestations(layout) == []


def test_a_job_cut_short_is_set_aside_and_the_dataset_s_other_checkpoints_are_attested(
    data, tmp_path
):
    # Its set-aside parsed it again and raised: the worker died at every start, and the
    # dataset's later reports never came.
    layout = DataLayout(data)
    job, *others = pending(layout)
    job.write_bytes(b'{"files": [')
    result = rda("quality", "--data-dir", str(data), "--json", state=tmp_path / "state")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"attested": len(others), "failed": 1, "pending": 0}
    (failed,) = failed_jobs(layout)
    record = json.loads(failed.read_bytes())
    assert record["job"] == {"unreadable": '{"files": [', "bytes": 11}
    assert record["error"].startswith("JSONDecodeError: ")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data-dir", "s3://bucket/data"], "give the run's --work-dir"),
        (["--data-dir", "/nonexistent/data"], "data directory /nonexistent/data does not exist"),
        (["--watch", "--interval", "0"], "--interval must be a positive number of seconds, not 0"),
    ],
)
def test_rda_quality_without_a_queue_to_read_is_one_clear_error(arguments, message, capsys):
    assert main(["quality", *arguments]) == 2
    assert message in capsys.readouterr().err.replace("\n", "")


@pytest.mark.parametrize(
    ("arguments", "environ", "left_queued"),
    [
        (["run", "--quality", "queue"], {}, True),
        (["run", "--quality=queue"], {}, True),
        (["run", "--quality", "queue", "--quality", "worker"], {}, False),  # the last one wins
        (["run"], {"RDA_QUALITY": "queue"}, True),
        (["run", "--quality", "worker"], {"RDA_QUALITY": "queue"}, False),  # a flag wins
        (["run"], {}, False),
    ],
)
def test_rda_run_starts_no_ge_worker_ahead_when_told_to_leave_quality_queued(
    arguments, environ, left_queued, monkeypatch
):
    monkeypatch.delenv("RDA_QUALITY", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _quality_left_queued(arguments) is left_queued


def test_a_ge_worker_started_ahead_and_dismissed_exits_at_once():
    """One a config file's ``quality = "queue"`` turns away, once the settings are read."""
    quality_launch.prestart()
    started = quality_launch._started
    quality_launch.dismiss()
    assert started is not None and started.returncode == 0
    assert quality_launch.take() is None


def test_a_worker_started_while_another_holds_the_queue_takes_none_of_its_jobs(data):
    """``rda quality`` beside a run that has a worker of its own: one of them takes the jobs,
    the other waits (and, told to finish first, leaves them to the one that has them)."""
    layout = DataLayout(data)
    queued = pending(layout)
    holder = QueueLock(layout)
    assert holder.acquire()
    try:
        assert drain(layout) == 0  # in this process too: another lock, the same file
        worker = QualityWorker(data)
        worker.start()
        worker.stop(drain_queue=True, timeout_s=120)
        assert worker.process is not None and worker.process.returncode == 0
        assert pending(layout) == queued and attestations(layout) == []
    finally:
        holder.release()
    assert drain(layout) == len(queued)
    assert len(attestations(layout)) == len(queued)


def test_a_running_worker_holds_the_queue_for_its_whole_life(data, tmp_path):
    """Idle between jobs too: a worker started later waits however long this one lives."""
    layout = DataLayout(data)
    held = tmp_path / "held"
    shutil.move(queue_dir(layout), held)
    queue_dir(layout).mkdir()

    def someone_holds_it() -> bool:
        probe = QueueLock(layout)
        free = probe.acquire()
        probe.release()
        return not free

    worker = QualityWorker(data)
    worker.start()
    try:
        wait_for(someone_holds_it, 120, "the worker to take the queue")
        time.sleep(1.5)  # idle, past its polls of the queue
        assert someone_holds_it()
        jobs = sorted(held.glob("*.json"))
        for job in jobs:
            job.rename(queue_dir(layout) / job.name)
        assert drain(layout) == 0  # not this process's to take
    finally:
        worker.stop(drain_queue=True, timeout_s=300)
    assert len(attestations(layout)) == len(jobs) and pending(layout) == []
    assert not someone_holds_it()


def test_rda_status_counts_the_reports_pending_and_set_aside(data, broker, tmp_path):
    layout = DataLayout(data)
    first, *rest = pending(layout)
    (queue_dir(layout) / "failed").mkdir()
    first.rename(queue_dir(layout) / "failed" / first.name)  # where a failed job is set aside
    status = ("status", "--data-dir", str(data), "--bootstrap", broker.bootstrap,
              "--topic", "quality-queued", "--group", "g-quality-queued")  # fmt: skip
    as_json = rda(*status, "--json", state=tmp_path / "state")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["quality"] == {
        "reports_pending": len(rest),
        "reports_failed": 1,
    }
    as_text = rda(*status, state=tmp_path / "state")
    assert f"GE reports: {len(rest)} pending" in " ".join(as_text.stdout.split())
    assert "1 set aside as failed" in " ".join(as_text.stdout.split())
