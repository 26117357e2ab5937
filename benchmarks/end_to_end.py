"""End-to-end pipeline rows/s against a plain kafka-python consume loop over the same topic.

One broker, one topic of a 206,120-record backlog (issue 18 asks for >= 200k), all measured in
this run (best of several: a busy neighbour inflates one run): the baseline consumes every record
with a bare ``KafkaConsumer`` loop in its own process (``peer_apps/raw_loop.py``); the pipeline
takes the whole backlog in one micro-batch (read, decode, check, land Parquet, hash into the
Merkle log, write the manifest, anchor on the in-process EVM). "Sustained" drains the same
backlog in eight bounded micro-batches, as ``rda run`` does under a backlog, so it pays every
batch's fixed cost (plan, catalog, manifests, one anchor per dataset) eight times. Both run the
loop ``rda run`` runs, with its landing child (``drain``): their ratio is the batch size's alone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.timing import file_create_us, rate, raw_loop_seconds
from infra.broker import start_broker, stop_broker
from simulator.fleet import generate
from simulator.producer import produce

if TYPE_CHECKING:
    from streaming.batch import BatchSummary

# Rounds of one big batch then eight bounded ones, alternated; each side's best is taken. On this
# shared host one round's ratio moved from 0.55 to 0.79 within an hour (issue 18's figure is
# 0.7): two rounds taken one side after the other let one noisy minute decide it.
ROUNDS = 3


def _raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds for a bare kafka-python consume loop, in its own process, to read ``expected``
    records."""
    return raw_loop_seconds("kafka-python", bootstrap, topic, "", expected)


def drain(
    bootstrap: str, topic: str, group: str, data_dir: Path, per_batch: int
) -> tuple[list[BatchSummary], float]:
    """The loop `rda run` runs over a backlog, a bounded batch at a time, with its kept lander
    (as `rda run` lands its batches): each batch's summary, and the loop's seconds with the
    lander's closing (the chain opened and the lander forked before)."""
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_process

    config = RunConfig(bootstrap, topic, group, data_dir, max_batch_records=per_batch)
    chain, source = open_chain("embedded", None, None), open_source(bootstrap)
    worker = Worker(lander=landing_process())
    worker.lander.start()  # as `rda run`: forked first, with no Kafka client in this process
    summaries, started = [], time.perf_counter()
    try:
        while (summary := run_batch(config, source, chain.anchor, worker=worker)) is not None:
            summaries.append(summary)
    finally:
        if worker.lander is not None:
            worker.lander.close()
    return summaries, time.perf_counter() - started


def _drained(bootstrap: str, data_dir: Path, n: int, per_batch: int) -> tuple[float, int]:
    """Seconds and batches for the loop `rda run` runs to take the backlog in batches of at most
    ``per_batch`` (a fresh group and data directory each time)."""
    summaries, seconds = drain(bootstrap, "bench", f"drain-{data_dir.name}", data_dir, per_batch)
    assert sum(s.read for s in summaries) == n
    return seconds, len(summaries)


def run(quick: bool = False) -> dict:
    """One big batch, then the same backlog as sustained micro-batches of bounded size."""
    nodes = 100 if quick else 800
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-"))
    broker = start_broker(workdir)
    try:
        produced = produce(broker.bootstrap, "bench", generate(nodes, 120, 1, 1_764_000_000_000, 5))
        n = produced.messages
        create_us = file_create_us(workdir)  # the disk as the drains find it
        # Best of several on both sides: a busy neighbour on a shared machine inflates one run.
        baseline_s = min(_raw_consume(broker.bootstrap, "bench", n) for _ in range(3))
        per_batch = max(n // 8, 1)
        ones, eights = [], []
        for i in range(ROUNDS):  # alternated: a noisy minute weighs on both sides alike
            ones.append(_drained(broker.bootstrap, workdir / f"one-{i}", n, n))
            eights.append(_drained(broker.bootstrap, workdir / f"sustained-{i}", n, per_batch))
        (pipeline_s, _), (sustained_s, batches) = min(ones), min(eights)
    finally:
        stop_broker(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    ratio, sustained = baseline_s / pipeline_s, baseline_s / sustained_s
    return {
        "name": "end_to_end",
        "records": n,
        "raw_consume_rows_per_s": round(rate(n, baseline_s)),
        "pipeline_rows_per_s": round(rate(n, pipeline_s)),
        "ratio": round(ratio, 3),
        "sustained_batches": batches,
        "sustained_rows_per_s": round(rate(n, sustained_s)),
        "sustained_ratio": round(sustained, 3),
        # Issue 18's figure (goal >= 0.7): the backlog's rows/s in eight batches over one batch.
        "sustained_vs_one": round(pipeline_s / sustained_s, 3),
        # Each round's own ratio, for how far the noise moved it.
        "sustained_vs_one_by_round": [
            round(one / eight, 3) for (one, _), (eight, _) in zip(ones, eights, strict=True)
        ],
        "file_create_us": create_us,
        "summary": f"pipeline {rate(n, pipeline_s):,.0f} rows/s = {ratio:.2f}x a raw "
        f"kafka-python consume loop ({rate(n, baseline_s):,.0f} rows/s), {n} records; "
        f"sustained in {batches} batches of <= {per_batch}: {rate(n, sustained_s):,.0f} rows/s "
        f"= {sustained:.2f}x ({pipeline_s / sustained_s:.2f}x one batch), 1 process; "
        f"creating a file took {create_us:.0f} µs of CPU on this disk",
    }
