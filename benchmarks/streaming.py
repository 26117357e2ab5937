"""``rda run`` as a stream: event-to-anchor latency at a steady rate, peak RSS under a backlog.

Latency: a fleet produces in real time (event time = send time) while the driver loop runs with
a 1 s trigger; a record's latency is from its event time to the moment its batch's checkpoints
are anchored and offsets committed. Memory: a real ``rda run --once`` process drains the same
backlog with small and with large batches; its peak RSS shows what ``--max-batch-records``
(backpressure) bounds. The ratio compares the small-batch peak with the large-batch one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.fleet_process import FleetProcess
from benchmarks.process_cpu import high_water_kib
from infra.broker import start_broker, stop_broker
from simulator.fleet import generate
from simulator.producer import ensure_topic, produce
from sinks.layout import DataLayout

TRIGGER_S = 1.0


def run(quick: bool = False) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-stream-"))
    broker = start_broker(workdir)
    try:
        latency = _latency(broker.bootstrap, workdir, seconds=10 if quick else 30)
        memory = _peak_rss(broker.bootstrap, workdir, nodes=100 if quick else 400)
    finally:
        stop_broker(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "name": "streaming",
        **latency,
        **memory,
        "ratio": memory["peak_rss_ratio_small_to_large_batches"],
        "summary": f"event-to-anchor p50 {latency['latency_p50_s']:.2f} s, "
        f"p95 {latency['latency_p95_s']:.2f} s (after the first batch: p50 "
        f"{latency['steady_latency_p50_s']:.2f} s, p95 {latency['steady_latency_p95_s']:.2f} s) "
        f"at {latency['produce_rate_per_s']:,.0f} "
        f"records/s ({TRIGGER_S:.0f} s trigger); peak RSS {memory['peak_rss_mb_small_batches']}"
        f" MB with batches of {memory['small_batch']} vs {memory['peak_rss_mb_large_batches']}"
        f" MB with {memory['large_batch']} over a {memory['backlog']}-record backlog "
        f"({memory['peak_rss_mb_idle']} MB with nothing to read); median step seconds "
        + ", ".join(f"{k} {v}" for k, v in latency["steps_median_s"].items())
        + f"; GE reports at the stream's end: {latency['quality_reports_attested']} attested, "
        f"{latency['quality_reports_pending']} still queued",
    }


def _latency(bootstrap: str, workdir: Path, seconds: float, rate_goal: bool = True) -> dict:
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_process
    from streaming.quality_queue import pending
    from streaming.quality_worker import QualityWorker

    # The pipeline is up before the stream starts, as a deployed `rda run` is: its chain open,
    # its lander forked, GE's worker started, the topic there. (Started after the producer, the
    # first batch held every record sent while the bench opened the chain: ~1.5-2.5 s of them.)
    ensure_topic(bootstrap, "steady", 4)
    config = RunConfig(bootstrap, "steady", "steady", workdir / "steady")
    source, chain = open_source(bootstrap), open_chain("embedded", None, None)
    done_at: dict[int, float] = {}
    took: dict[int, float] = {}  # batch: seconds from its start to its anchor and commit
    steps: dict[str, list[float]] = {}
    quality = QualityWorker(config.data_dir)  # GE beside the loop, as in `rda run`
    quality.start()
    worker = Worker(lander=landing_process())  # as `rda run` lands: forked at its start
    worker.lander.start()

    fleet = FleetProcess(bootstrap, "steady", 235 if rate_goal else 50, seconds)
    while True:
        started = time.monotonic()
        summary = run_batch(config, source, chain.anchor, worker=worker)
        if summary is not None:
            done_at[summary.batch_id] = time.time()
            took[summary.batch_id] = time.monotonic() - started
            for step, spent in summary.steps.items():
                steps.setdefault(step, []).append(spent)
            quality.nudge()
        elif not fleet.is_alive():
            break
        time.sleep(max(0.0, TRIGGER_S - (time.monotonic() - started)))
    # Whether GE kept up with the stream: its reports done, and still queued, as it ends.
    attested = len(list(config.data_dir.glob("published/*/quality/*.attestation.json")))
    queued = len(pending(quality.layout))
    quality.stop(drain_queue=False)
    if worker.lander is not None:
        worker.lander.close()
    produced_messages, produced_seconds = fleet.result()
    by_batch = latencies_by_batch(workdir / "steady", done_at)
    latencies = [seconds for batch in by_batch.values() for seconds in batch]
    q = statistics.quantiles(latencies, n=20)
    # Steady state: without the first batch, which pays the first landing and the catalog's
    # creation.
    first = min(done_at, key=done_at.get)
    steady = statistics.quantiles(
        [seconds for b, batch in by_batch.items() if b != first for seconds in batch], n=20
    )
    # A batch's own time, apart from the wait for its trigger: the fleet's nodes report on the
    # same half-second ticks, so where those fall in the trigger's second (set by when the
    # stream and the loop happened to start) moves every record's latency by up to 0.5 s from
    # run to run; this does not move with it.
    own = statistics.quantiles([s for b, s in took.items() if b != first], n=20)
    return {
        "produce_rate_per_s": round(produced_messages / produced_seconds),
        "latency_records": len(latencies),
        "latency_batches": len(done_at),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(q[18], 3),
        "steady_latency_p50_s": round(steady[9], 3),
        "steady_latency_p95_s": round(steady[18], 3),
        "batch_time_p50_s": round(own[9], 3),
        "batch_time_p95_s": round(own[18], 3),
        "steps_median_s": {k: round(statistics.median(v), 3) for k, v in sorted(steps.items())},
        "quality_reports_attested": attested,
        "quality_reports_pending": queued,
    }


def row_latencies(
    data_dir: Path, done_at: dict[int, float], skip: tuple[str, ...] = ()
) -> list[float]:
    """Per published row (of datasets not in ``skip``): its batch's completion time minus its
    event (Kafka) timestamp."""
    by_batch = latencies_by_batch(data_dir, done_at, skip)
    return [seconds for batch in by_batch.values() for seconds in batch]


def latencies_by_batch(
    data_dir: Path, done_at: dict[int, float], skip: tuple[str, ...] = ()
) -> dict[int, list[float]]:
    """``row_latencies``, by the batch that published each row."""
    layout = DataLayout(data_dir)
    db = duckdb.connect(str(layout.catalog), read_only=True)
    try:
        files = db.execute("SELECT path, batch_id, dataset FROM files").fetchall()
    finally:
        db.close()
    latencies: dict[int, list[float]] = {}
    for path, batch_id, dataset in files:
        if dataset in skip:
            continue
        ingest = pq.read_table(layout.root / path, columns=["ingest_time"]).column("ingest_time")
        seconds = pc.divide(pc.cast(pc.cast(ingest, "timestamp[us]"), "int64"), 1e6)
        done = done_at[batch_id]
        latencies.setdefault(batch_id, []).extend(done - t for t in seconds.to_pylist())
    return latencies


def _peak_rss(bootstrap: str, workdir: Path, nodes: int) -> dict:
    backlog = produce(bootstrap, "backlog", generate(nodes, 120, 1, 1_764_000_000_000, 5))
    small, large = max(backlog.messages // 16, 1), backlog.messages
    peaks = {}
    # "idle": the same process with nothing to read (its group starts at the end): the floor.
    produce(bootstrap, "empty", [])
    for label, size in (("idle", small), ("small", small), ("large", large)):
        topic = "empty" if label == "idle" else "backlog"
        command = [
            sys.executable, "-m", "cli.main", "run", "--once", "--bootstrap", bootstrap,
            "--topic", topic, "--group", f"rss-{label}", "--chain", "embedded",
            "--data-dir", str(workdir / f"rss-{label}"), "--max-batch-records", str(size),
            "--max-chunk-records", str(min(size, 50_000)), "--json",
        ]  # fmt: skip
        env = {**os.environ, "RDA_STATE_DIR": str(workdir / "state")}
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        peak_kib = 0
        while process.poll() is None:  # VmHWM only grows; the last reading is the peak
            peak_kib = max(peak_kib, high_water_kib(process.pid))
            time.sleep(0.05)
        if process.returncode != 0:
            raise RuntimeError(f"rda run --once exited with {process.returncode}")
        peaks[label] = peak_kib / 1024
    return {
        "backlog": backlog.messages,
        "small_batch": small,
        "large_batch": large,
        "peak_rss_mb_idle": round(peaks["idle"]),
        "peak_rss_mb_small_batches": round(peaks["small"]),
        "peak_rss_mb_large_batches": round(peaks["large"]),
        "peak_rss_ratio_small_to_large_batches": round(peaks["small"] / peaks["large"], 3),
    }
