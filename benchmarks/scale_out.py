"""Sustained records/s of 1, 2 and 4 ``rda run --join-group`` processes against a raw consume loop.

One broker, one four-partition topic, one anvil node, all in this run. The baseline is a bare
kafka-python loop consuming the whole backlog once (best of three). Each pipeline case starts
N real worker processes in one consumer group on a fresh data directory and lets them drain the
same backlog in bounded micro-batches; its rate is the backlog over the journal's window, from
the first batch of the backlog planned to its last batch done. Start-up is not counted: each
worker first drains a small warm-up topic with records in every partition (importing Great
Expectations, building its suites, the datasets' first Data Docs), as a long-running ``rda run``
has long done. The ratio that
matters is per process: the pipeline rate / N against the raw rate, and the speed-up of N
processes over one. Each case also reports the median seconds per batch step (plan, land,
sequence — within it dedup, event_time, publish, anchor — and offsets), from the workers' JSON
log lines, and the sequencing step's median share of a batch's time (without Great
Expectations' validation of the new rows, ``ge``, which runs within it since event time).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.end_to_end import _raw_consume
from benchmarks.timing import rate
from infra.broker import start_broker, stop_broker
from infra.chain import ChainConfig, connect, start_anvil
from infra.tools import free_port
from simulator.fleet import generate
from simulator.producer import produce

TOPIC = "bench-scale"
WARM_UP = "bench-warm-up"


def _drain(bootstrap: str, rpc_url: str, registry: str, workdir: Path, workers: int, n: int):
    """(seconds from first plan to last done, batches) for ``workers`` processes."""
    data = workdir / f"data-{workers}"
    args = [
        sys.executable, "-m", "cli.main", "run", "--join-group", "--topic", WARM_UP,
        "--topic", TOPIC, "--log-format", "json",
        "--bootstrap", bootstrap, "--group", f"bench-{workers}", "--data-dir", str(data),
        "--chain", "rpc", "--rpc-url", rpc_url, "--registry", registry,
        "--max-batch-records", str(max(n // 4, 1)), "--interval", "0.5",
    ]  # fmt: skip
    env = {**os.environ, "RDA_STATE_DIR": str(workdir / "state")}
    logs = [(workdir / f"worker-{workers}-{i}.log").open("wb") for i in range(workers)]
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
    processes = [subprocess.Popen(args, stderr=log, env=env, **quiet) for log in logs]
    try:
        deadline = time.monotonic() + 900
        while (window := _window(data, n)) is None:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"{workers} workers did not drain the backlog; see {workdir}")
            time.sleep(1)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)
        for log in logs:
            log.close()
    return (*window, *_median_steps(workdir.glob(f"worker-{workers}-*.log")))


def _median_steps(logs) -> tuple[dict[str, float], float | None]:
    """Median seconds per step over the backlog's batches, and the median share of a batch's
    seconds spent in its sequencing step, from the workers' JSON log lines."""
    import json
    import statistics

    steps: dict[str, list[float]] = {}
    shares = []
    for log in logs:
        for line in log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") == "batch" and event.get("topic") == TOPIC:
                for step, seconds in event.get("steps_seconds", {}).items():
                    steps.setdefault(step, []).append(seconds)
                took = event.get("steps_seconds", {})
                if "sequence" in took and event["seconds"]:  # GE is validation, not sequencing
                    shares.append((took["sequence"] - took.get("ge", 0.0)) / event["seconds"])
    share = round(statistics.median(shares), 3) if shares else None
    return {step: round(statistics.median(values), 3) for step, values in steps.items()}, share


def _window(data: Path, n: int) -> tuple[float, int] | None:
    """Once every record is in a done batch: (seconds first plan → last done, batches)."""
    import datetime as dt

    from sinks.storage import Store
    from streaming.journal import BatchJournal

    if not data.exists():
        return None
    entries = BatchJournal(Store.open(data), read_only=True).entries(TOPIC)
    covered = sum(r["end"] - r["start"] for e in entries for r in e["plan"]["ranges"])
    if covered != n or not all(e["state"] == "done" for e in entries):
        return None
    first = min(dt.datetime.fromisoformat(e["created_at"]) for e in entries)
    last = max(dt.datetime.fromisoformat(e["updated_at"]) for e in entries)
    return (last - first).total_seconds(), len(entries)


def _warm_up_every_partition(bootstrap: str) -> None:
    """Give every partition of the warm-up topic records, so each of 4 workers warms up: with
    one partition left empty, its worker began the backlog while the others still warmed up,
    and the window counted their start-up (4 nodes' keys missed partition 1)."""
    from pipelines.kafka_source import open_source

    produce(bootstrap, WARM_UP, generate(8, 10, 1, 1_764_000_000_000, 12))
    source = open_source(bootstrap)
    try:
        ends = source.high_watermarks(WARM_UP)  # every partition's
    finally:
        source.close()
    if not all(ends.values()):
        raise RuntimeError(f"the warm-up topic left a partition empty: {ends}")


def run(quick: bool = False) -> dict:
    from proofs.anchor import AnchorRegistry

    nodes = 60 if quick else 820  # ~204,000 records
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-scale-"))
    broker = start_broker(workdir / "broker")
    anvil = start_anvil(free_port(), workdir / "anvil")
    try:
        messages = generate(nodes, 120, 1, 1_764_000_000_000, 11)
        n = produce(broker.bootstrap, TOPIC, messages).messages
        _warm_up_every_partition(broker.bootstrap)
        raw_s = min(_raw_consume(broker.bootstrap, TOPIC, n) for _ in range(3))
        raw = rate(n, raw_s)
        cases = {}
        for workers in (1, 2, 4):
            registry = AnchorRegistry.deploy(connect(ChainConfig("anvil", port=anvil.port)))
            seconds, batches, steps, share = _drain(
                broker.bootstrap, anvil.rpc_url, registry.address, workdir, workers, n
            )
            per_process = rate(n, seconds) / workers
            cases[workers] = {
                "rows_per_s": round(rate(n, seconds)),
                "batches": batches,
                "per_process_ratio": round(per_process / raw, 3),
                "median_step_seconds": steps,
                "sequence_share": share,
            }
    finally:
        anvil.stop()
        stop_broker(workdir / "broker")
        shutil.rmtree(workdir, ignore_errors=True)
    one = cases[1]
    speedups = {w: round(c["rows_per_s"] / one["rows_per_s"], 3) for w, c in cases.items()}
    described = "; ".join(
        f"{w} process{'es' if w > 1 else ''} {c['rows_per_s']:,} rows/s = {speedups[w]:.2f}x one, "
        f"{c['per_process_ratio']:.2f}x raw per process, sequencing {c['sequence_share']} of a "
        f"batch, median s per step {c['median_step_seconds']}"
        for w, c in cases.items()
    )
    return {
        "name": "scale_out",
        "records": n,
        "raw_consume_rows_per_s": round(raw),
        "one_process": one,
        "two_processes": cases[2],
        "four_processes": cases[4],
        "speedup_2_over_1": speedups[2],
        "speedup_4_over_1": speedups[4],
        "summary": f"{n} records, raw kafka-python loop {raw:,.0f} rows/s; {described}",
    }
