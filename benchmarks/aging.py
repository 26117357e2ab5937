"""``rda bench --only aging``: what a batch costs as the stream grows old.

A stream at a 1 s trigger runs 3,600 batches an hour; the other figures here are taken over a
few dozen. This one drains a backlog in many small batches (``rda run``'s loop, its kept
lander) and compares the sequencing of the last batches with that of the first ones: the
baseline is the same process, younger. It also weighs what the stream published: the data's
Parquet against its manifests (each batch writes a signed shard manifest per shard it grows —
chained, listing the files the batch adds, since version 3; version 2 listed every file of the
shard so far, and their bytes grew with the square of the batch count).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.end_to_end import drain
from infra.broker import start_broker, stop_broker
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout

PER_BATCH = 200  # records: a ~1 s trigger's worth for a small fleet


def run(quick: bool = False) -> dict:
    nodes = 40 if quick else 400  # ~10,000 / ~100,000 records: ~50 / ~500 batches
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-aging-"))
    broker = start_broker(workdir)
    try:
        produced = produce(broker.bootstrap, "aging", generate(nodes, 120, 1, 1_764_000_000_000, 5))
        summaries, _ = drain(broker.bootstrap, "aging", "aging", workdir / "data", PER_BATCH)
        seconds = [s.steps["sequence"] for s in summaries]
        weights = _published_bytes(workdir / "data")
    finally:
        stop_broker(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    tenth = max(len(seconds) // 10, 1)
    early = statistics.median(seconds[tenth : 2 * tenth])  # the first tenth warms up
    late = statistics.median(seconds[-tenth:])
    growth = weights["manifests"] / weights["data"]
    return {
        "name": "aging",
        "records": produced.messages,
        "batches": len(seconds),
        "early_sequence_ms": round(early * 1000, 1),
        "late_sequence_ms": round(late * 1000, 1),
        "ratio": round(late / early, 3),
        "data_mb": round(weights["data"] / 1e6, 2),
        "manifests_mb": round(weights["manifests"] / 1e6, 2),
        "manifests_to_data": round(growth, 2),
        "summary": f"sequencing a {PER_BATCH}-record batch: {early * 1000:.0f} ms in the second "
        f"tenth of {len(seconds)} batches, {late * 1000:.0f} ms in the last "
        f"({late / early:.2f}x); published {weights['data'] / 1e6:.1f} MB of Parquet and "
        f"{weights['manifests'] / 1e6:.1f} MB of manifests ({growth:.1f}x)",
    }


def _published_bytes(data_dir: Path) -> dict[str, int]:
    published = DataLayout(data_dir).published
    sizes = {"data": 0, "manifests": 0}
    for path in published.rglob("*"):
        if path.name.endswith(".parquet"):
            sizes["data"] += path.stat().st_size
        elif path.name.endswith(".manifest.json"):
            sizes["manifests"] += path.stat().st_size
    return sizes
