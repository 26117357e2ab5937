"""Two hosts, simulated honestly: two ``rda run --join-group`` workers that share only the
broker, the chain (anvil) and an S3 object store (a real ``s3rver``), each with its own host
name, its own local state (``RDA_STATE_DIR``) and its own work directory. One is killed with
SIGKILL while it lands a batch; the other takes its partitions through the group, adopts its
batch once its heartbeat lease has run out, and the data directory on S3 ends up holding
exactly the produced records, every checkpoint anchored once — which an auditor, working in a
third directory, verifies from the store alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import assert_exactly_once, run_args, start_run, wait_for
from test_scale_out import SHORT_SESSIONS, everything_done, journal, owner_pid

from infra.object_store import ACCESS_KEY, REGION, SECRET_KEY, start_object_store, stop_object_store
from market.assets import load_assets
from sinks.storage import readable_copy
from streaming.status import latest_checkpoints

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(600)]
LEASE_S = "3"  # a silent host is dead after 3 s (60 s by default)


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A running s3rver, and this process's S3 client pointed at it: ``{env}``."""
    infra = tmp_path / "s3"
    server = start_object_store(infra, infra / "objects")
    env = {
        "RDA_S3_ENDPOINT": server.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        yield env
    finally:
        stop_object_store(infra)


def host(tmp_path: Path, name: str, args: list[str], s3: dict) -> subprocess.Popen:
    """A worker on its own "host": its name, its state and work directories, nothing else."""
    home = tmp_path / name
    home.mkdir()
    env = {**s3, "RDA_WORKER_HOST": name, "RDA_WORKER_LEASE_S": LEASE_S}
    flags = [*args, "--join-group", "--kafka-timeout", "10", "--work-dir", str(home / "work")]
    flags += SHORT_SESSIONS
    flags += ["--max-batch-records", "100"]  # fewer, larger batches: S3 adds a cost per batch
    return start_run(*flags, state=home / "state", log=tmp_path / f"{name}.log", env=env)


def test_a_host_killed_mid_batch_leaves_its_partitions_and_batch_to_the_other(
    broker, topic, tmp_path, publish, anvil, registry, s3
):
    data = "s3://rda/two-hosts"
    produced = publish(broker, topic, nodes=8, duration_s=20).messages
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    workers = [host(tmp_path, name, args, s3) for name in ("host-a", "host-b")]
    try:
        busy: dict = {}  # a batch being landed -> its worker

        def a_host_is_mid_batch() -> bool:
            for entry in journal(data):
                if entry["state"] == "planned" and entry["owner"].startswith("host-a/"):
                    busy[entry["batch_id"]] = entry
                    return True
            return False

        wait_for(a_host_is_mid_batch, 180, "host-a landing a batch", interval=0.02)
        workers[0].kill()  # kill -9 while its batch is planned and being landed
        workers[0].wait(timeout=30)
        [(batch_id, _entry)] = busy.items()
        wait_for(lambda: everything_done(broker.bootstrap, topic, data), 300, "all batches")
    finally:
        stop(workers, tmp_path)

    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)
    [adopted] = [e for e in journal(data) if e["batch_id"] == batch_id]
    assert adopted["state"] == "done" and adopted["owner"].startswith("host-b/")
    assert owner_pid(adopted) == workers[1].pid
    # Nothing of either host's own directories is needed to read the data: only the store.
    assert not list((tmp_path / "host-a" / "work").glob("published/*/checkpoints/*"))
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    verified = subprocess.run(
        [sys.executable, "-m", "cli.main", "verify", "--json", "--data-dir", data,
         "--rpc-url", anvil.rpc_url, "--registry", registry.address],
        capture_output=True, text=True, timeout=300, cwd=auditor,
        env={**os.environ, "RDA_STATE_DIR": str(auditor / "state")},
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr[-3000:]
    report = json.loads(verified.stdout)
    latest = latest_checkpoints_of(data)
    assert {v["dataset"] for v in report["datasets"]} == set(latest)
    assert all(v["verdict"] == "VERIFIED" for v in report["datasets"]), report
    # A buyer reads the same store: its datasets, at the anchored checkpoints, every file there.
    assets = load_assets(readable_copy(data))
    assert {d: a.checkpoint.tree_size for d, a in assets.items()} == {
        d: c["tree_size"] for d, c in latest.items()
    }
    assert all(path.is_file() for a in assets.values() for path in a.files)


def stop(workers: list[subprocess.Popen], tmp_path: Path) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker, name in zip(workers, ("host-a", "host-b"), strict=True):
        worker.communicate(timeout=120)
        log = (tmp_path / f"{name}.log").read_text()
        assert worker.returncode in (0, -signal.SIGKILL), log[-3000:]


def latest_checkpoints_of(data: str) -> dict:
    from sinks.storage import Store

    return latest_checkpoints(Store.open(data))
