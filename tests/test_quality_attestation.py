"""Great Expectations after the anchor: a checkpoint's report, attested and verified.

A batch anchors its checkpoints without running GE; the quality worker then validates exactly
the files each checkpoint added and signs an attestation binding the report to the manifest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_helpers import wait_for

from pipelines.kafka_source import open_source
from proofs import quality_attestation
from proofs.signing import publisher_key
from proofs.verdict import NOT_VERIFIED, VERIFIED
from proofs.verify import verify_dataset
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.quality_queue import dataset_of, pending, queue_dir
from streaming.quality_worker import QualityWorker, drain
from validators.expectations import report_bytes, validate

START_MS = 1_764_000_000_000
RADIO = "radio_kpi.v1"


@pytest.fixture(scope="module")
def anchored(broker, tmp_path_factory):
    """One anchored batch of a small fleet whose GE reports have not run yet."""
    data_dir = tmp_path_factory.mktemp("attest") / "data"
    topic = "attest-telemetry"
    produce(broker.bootstrap, topic, list(generate(6, 30, 1, START_MS, 5)))
    chain = open_chain("embedded", None, None)
    config = RunConfig(broker.bootstrap, topic, "attest-group", data_dir)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor, lambda _m: None)
    return data_dir, summary, chain


@pytest.fixture
def copy_of(anchored, tmp_path):
    """A private copy of the anchored data directory (tests below change it)."""
    data_dir, summary, chain = anchored
    copied = tmp_path / "data"
    shutil.copytree(data_dir, copied)
    return copied, summary, chain


def _radio(summary) -> dict:
    (checkpoint,) = [c for c in summary.checkpoints if c["dataset"] == RADIO]
    return checkpoint


def _verify(data_dir, chain):
    return verify_dataset(data_dir / "published" / RADIO, trust=chain.trust_root(data_dir))


def test_the_anchored_manifest_names_the_report_to_come_and_no_hash(anchored):
    data_dir, summary, _ = anchored
    checkpoint = _radio(summary)
    quality = json.loads((data_dir / checkpoint["manifest_path"]).read_text())["quality"]
    size = checkpoint["tree_size"]
    assert quality["report_path"] == f"quality/{size:012d}.validation.json"
    assert quality["attestation_path"] == f"quality/{size:012d}.attestation.json"
    assert "report_sha256" not in quality and "expectations" not in quality
    assert not (data_dir / "published" / RADIO / quality["report_path"]).exists()
    queued = [p.name for p in pending(DataLayout(data_dir))]
    assert f"{RADIO}.{size:012d}.json" in queued


def test_before_its_report_a_checkpoint_verifies_and_says_the_report_is_pending(anchored):
    data_dir, _, chain = anchored
    verdict = _verify(data_dir, chain)
    assert verdict.status == VERIFIED
    (manifest,) = [c for c in verdict.checks if c.name == "manifest"]
    assert manifest.detail.endswith("GE report pending (it runs after the anchor)")
    assert "quality" not in [c.name for c in verdict.checks]


def test_the_worker_writes_the_report_of_exactly_the_added_rows_and_signs_it(copy_of):
    data_dir, summary, chain = copy_of
    layout = DataLayout(data_dir)
    assert drain(layout) == len(summary.checkpoints)
    assert pending(layout) == []
    checkpoint = _radio(summary)
    dataset_dir = layout.dataset_dir(RADIO)
    size = checkpoint["tree_size"]
    report = (dataset_dir / quality_attestation.report_name(size)).read_bytes()
    document = json.loads((dataset_dir / quality_attestation.attestation_name(size)).read_bytes())
    claim = document["statement"]
    assert claim["manifest_sha256"] == checkpoint["manifest_sha256"]
    assert claim["report_sha256"] == hashlib.sha256(report).hexdigest()
    assert json.loads(report)["rows_validated"] == size
    assert document["signature"]["key_id"] == publisher_key(data_dir).key_id
    assert (dataset_dir / "quality" / "docs" / "index.html").exists()
    verdict = _verify(data_dir, chain)
    assert verdict.status == VERIFIED
    assert [c.ok for c in verdict.checks if c.name == "quality"] == [True]


def test_the_report_is_what_great_expectations_says_of_those_rows_and_a_redo_is_identical(
    copy_of,
):
    data_dir, summary, _ = copy_of
    layout = DataLayout(data_dir)
    size = _radio(summary)["tree_size"]
    job = layout.private / "quality-queue" / f"{RADIO}.{size:012d}.json"
    saved = job.read_bytes()
    drain(layout)
    dataset_dir = layout.dataset_dir(RADIO)
    files = [dataset_dir / quality_attestation.report_name(size)]
    files.append(dataset_dir / quality_attestation.attestation_name(size))
    first = [f.read_bytes() for f in files]
    job.write_bytes(saved)  # as if the worker had died before removing the job
    drain(layout)
    assert [f.read_bytes() for f in files] == first
    import pyarrow.parquet as pq

    from schemas.published import published_schema_for_dataset

    attested = json.loads(first[1])["statement"]["files"]
    rows = pq.read_table([dataset_dir / f["path"] for f in attested])
    expected, _ = validate(published_schema_for_dataset(RADIO), rows)
    assert report_bytes(expected) == first[0]


def test_a_changed_report_is_refused(copy_of):
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    report = (
        data_dir
        / "published"
        / RADIO
        / quality_attestation.report_name(_radio(summary)["tree_size"])
    )
    report.write_bytes(report.read_bytes().replace(b'"success": true', b'"success": false', 1))
    verdict = _verify(data_dir, chain)
    assert verdict.status == NOT_VERIFIED
    assert verdict.first_failure.name == "quality"
    assert verdict.first_failure.detail.endswith("SHA-256 differs")


def test_an_attestation_signed_by_another_key_is_refused(copy_of, tmp_path):
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    path = (
        data_dir
        / "published"
        / RADIO
        / quality_attestation.attestation_name(_radio(summary)["tree_size"])
    )
    document = json.loads(path.read_bytes())
    forged = quality_attestation.sign(publisher_key(tmp_path / "other"), document["statement"])
    path.write_text(json.dumps(forged))
    verdict = _verify(data_dir, chain)
    assert verdict.first_failure.name == "quality"
    assert "not by the manifests' publisher" in verdict.first_failure.detail


def test_the_worker_process_drains_the_queue_when_asked_to_finish(copy_of):
    data_dir, _, _ = copy_of
    worker = QualityWorker(data_dir)
    worker.nudge()
    assert worker.process is not None
    worker.stop(drain_queue=True, timeout_s=300)
    assert worker.process.returncode == 0
    assert pending(DataLayout(data_dir)) == []


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


def test_a_job_running_when_the_run_finishes_does_not_hold_back_the_others(copy_of, tmp_path):
    """While the run goes on, one job at a time; once it finishes, the others start beside the
    one still running (they used to wait for its end)."""
    data_dir, _, _ = copy_of
    jobs = pending(DataLayout(data_dir))
    others = [job.name for job in jobs if not job.name.startswith(RADIO)]
    assert len(jobs) == 3 and len(others) == 2  # the largest, radio_kpi, is taken first
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = _gated_worker(gates, data_dir, held=RADIO)
    try:
        (radio,) = [job.name for job in jobs if job.name.startswith(RADIO)]
        wait_for((gates / f"{radio}.started").exists, 120, f"{radio} to start")
        time.sleep(0.5)  # the run goes on: radio's job holds the one slot
        assert not any((gates / f"{name}.started").exists() for name in others)
        worker.stdin.write(b"finish\n")
        worker.stdin.flush()
        for name in others:
            wait_for((gates / f"{name}.started").exists, 120, f"{name} to start")
        assert not (gates / "release").exists()  # radio's job is still running
        (gates / "release").touch()
        assert worker.wait(timeout=300) == 0
    finally:
        worker.kill()
        worker.wait()
        worker.stdin.close()
    assert pending(DataLayout(data_dir)) == []
    assert not (queue_dir(DataLayout(data_dir)) / "failed").exists()


def test_a_worker_started_with_a_backlog_forks_its_jobs_from_a_warm_process(copy_of, tmp_path):
    """A restart after a crash finds jobs queued: each child still finds GE imported (a child
    forked cold imported it itself, ~2 s for every one of them)."""
    data_dir, _, _ = copy_of
    jobs = [job.name for job in pending(DataLayout(data_dir))]
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = _gated_worker(gates, data_dir, held="none")
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
    assert pending(DataLayout(data_dir)) == []


def _gated_worker(gates: Path, data_dir: Path, held: str) -> subprocess.Popen:
    """The worker process with its jobs gated (``tests/quality_gate.py``)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("quality_gate.py")), str(gates),
         str(data_dir), held],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip


@pytest.fixture
def two_batches(broker, tmp_path):
    """Two anchored batches of a small fleet, whose GE reports have not run yet."""
    data_dir, topic = tmp_path / "two", "attest-two-batches"
    config = RunConfig(broker.bootstrap, topic, "attest-two-group", data_dir)
    chain = open_chain("embedded", None, None)
    for start_ms in (START_MS, START_MS + 60_000):
        produce(broker.bootstrap, topic, list(generate(6, 30, 1, start_ms, 5)))
        run_batch(config, open_source(broker.bootstrap), chain.anchor, lambda _m: None)
    return data_dir


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
    from streaming import quality_worker

    data_dir, _, _ = copy_of
    layout = DataLayout(data_dir)
    queued = pending(layout)
    attest = quality_worker.attest

    def dies_on_radio(layout, job, docs=False):
        if job.name.startswith(RADIO):
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfault in a native library would
        return attest(layout, job, docs)

    monkeypatch.setattr(quality_worker, "attest", dies_on_radio)
    assert drain(layout, parallel=2) == len(queued)
    (failed,) = (queue_dir(layout) / "failed").glob("*.json")
    assert failed.name.startswith(RADIO)
    assert "killed by SIGKILL" in json.loads(failed.read_text())["error"]
    assert pending(layout) == []


# -- the attestation alone -----------------------------------------------------------------------

_KEY = None


def _key():
    global _KEY
    if _KEY is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from proofs.signing import PublisherKey

        _KEY = PublisherKey(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    return _KEY


def _claim(report: bytes) -> dict:
    summary = json.loads(report)
    return quality_attestation.statement(
        dataset="d.v1",
        tree_size=12,
        manifest_sha256="ab" * 32,
        files=[{"path": "data/b1.parquet", "sha256": "cd" * 32}],
        report=report,
        expectations={
            "evaluated": summary["statistics"]["evaluated_expectations"],
            "successful": summary["statistics"]["successful_expectations"],
            "success": summary["success"],
        },
    )


def _check(document, report: bytes) -> str | None:
    return quality_attestation.check(
        document,
        dataset="d.v1",
        tree_size=12,
        manifest_sha256="ab" * 32,
        added_files={"data/b1.parquet": "cd" * 32},
        report=report,
        trusted_key_id=_key().key_id,
    )


def _report(evaluated: int, successful: int) -> bytes:
    statistics = {"evaluated_expectations": evaluated, "successful_expectations": successful}
    return json.dumps({"statistics": statistics, "success": evaluated == successful}).encode()


@given(evaluated=st.integers(0, 99), failed=st.integers(0, 99))
def test_a_signed_statement_verifies(evaluated, failed):
    report = _report(evaluated, max(0, evaluated - failed))
    assert _check(quality_attestation.sign(_key(), _claim(report)), report) is None


_CHANGES = {
    "dataset": "e.v1",
    "tree_size": 13,
    "manifest_sha256": "ac" * 32,
    "files": [{"path": "data/b2.parquet", "sha256": "cd" * 32}],
    "report_path": "quality/x.json",
    "report_sha256": "00" * 32,
    "expectations": {"evaluated": 3, "successful": 2, "success": False},
}


@given(field=st.sampled_from(sorted(_CHANGES)), resign=st.booleans())
def test_any_changed_field_is_refused_signed_again_or_not(field, resign):
    report = _report(3, 3)
    changed = quality_attestation.sign(_key(), _claim(report))
    changed["statement"][field] = copy.deepcopy(_CHANGES[field])
    if resign:  # the publisher's own key, signing what is not so
        changed = quality_attestation.sign(_key(), changed["statement"])
    assert _check(changed, report) is not None
