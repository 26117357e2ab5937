"""``rda bench --only aging``: what a batch costs as the stream grows old.

A stream at a 1 s trigger runs 3,600 batches an hour; the other figures here are taken over a
few dozen. This one drains a backlog in many small batches (``rda run``'s loop, its kept
lander) and compares the sequencing of the last batches with that of the first ones: the
baseline is the same process, younger. It also weighs what the stream published: the data's
Parquet against its manifests (each batch writes a signed shard manifest per shard it grows —
chained, listing the files the batch adds, since version 3; version 2 listed every file of the
shard so far, and their bytes grew with the square of the batch count). And what a buyer's
query costs over what it published: a count through the market's sandbox (``rda query``'s
path) over the stream's files of its largest dataset, against the same rows in one file (the
baseline, in the same run): a small batch publishes a few small files, and every query opens
each of them.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.end_to_end import drain
from infra.broker import start_broker, stop_broker
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from sinks.parquet import read_parquet

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
        query = _buyer_query(workdir / "data", workdir / "one-file")
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
        **query,
        "summary": f"sequencing a {PER_BATCH}-record batch: {early * 1000:.0f} ms in the second "
        f"tenth of {len(seconds)} batches, {late * 1000:.0f} ms in the last "
        f"({late / early:.2f}x); published {weights['data'] / 1e6:.1f} MB of Parquet and "
        f"{weights['manifests'] / 1e6:.1f} MB of manifests ({growth:.1f}x); a buyer's count "
        f"over {query['query_dataset']}'s {query['query_files']} files: "
        f"{query['query_ms']:.0f} ms as the market reads them once compacted "
        f"({query['query_views_to_compact']} views, at most {query['query_first_ms']:.0f} ms for "
        f"a view's first query), {query['query_published_ms']:.0f} ms over the files as "
        f"published, {query['query_one_file_ms']:.1f} ms over its rows in one file "
        f"({query['query_ratio']:.1f}x and {query['query_published_ratio']:.1f}x)",
    }


def _buyer_query(data_dir: Path, scratch: Path) -> dict:
    """A buyer's ``count(*)`` through the market's sandbox over the largest dataset: as the
    market reads it (runs of small files from compacted copies, made a bounded number at each
    new view: ``market/compaction.py``), over the files as published, and over the same rows
    in one Parquet file (the baseline). ms: a view's first query (the sandbox makes its
    database) and warm (best of 3)."""
    from market.assets import load_assets

    asset = max(load_assets(data_dir).values(), key=lambda a: len(a.files))
    scratch.mkdir(parents=True, exist_ok=True)
    one_file = scratch / "rows.parquet"
    rows = pa.concat_tables([read_parquet(f) for f in asset.files], promote_options="default")
    pq.write_table(rows, one_file)
    in_one_file = dataclasses.replace(asset, files=(one_file,), leaf_starts=(0,), file_ids=())
    published = dataclasses.replace(asset, file_ids=())  # no compacted copies
    figures = {}
    for name, over in (("query_one_file", in_one_file), ("query_published", published)):
        figures[f"{name}_first_ms"], figures[f"{name}_ms"], _ = _count(over)
    views, first = 0, []
    while True:  # a new view (a new checkpoint, at a 1 s trigger) until every run is compacted
        views += 1
        first_ms, warm_ms, pending = _count(asset)
        first.append(first_ms)
        if not pending or views == 50:
            break
    figures.update(query_views_to_compact=views, query_first_ms=round(max(first), 1))
    figures["query_ms"] = warm_ms
    return {
        "query_dataset": asset.dataset,
        "query_files": len(asset.files),
        "query_rows": rows.num_rows,
        **figures,
        "query_ratio": round(figures["query_ms"] / figures["query_one_file_ms"], 1),
        "query_published_ratio": round(
            figures["query_published_ms"] / figures["query_one_file_ms"], 1
        ),
    }


def _count(asset: Any) -> tuple[float, float, bool]:
    """A new sandbox's first ``count(*)`` over ``asset`` and its best warm one (ms), and
    whether its view left runs to compact."""
    from market.execution import QueryJob, execute
    from market.sandbox import Limits, Sandbox, asset_parts

    sandbox = Sandbox(Limits(timeout_s=60.0))
    sql = f"SELECT count(*) AS n FROM {asset.view}"
    try:
        timings = []
        for _ in range(4):
            started = time.perf_counter()
            assert execute(QueryJob(sql, (asset,)), sandbox).row_count == 1
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        sandbox.close()
    pending = bool(asset.file_ids) and asset_parts(asset, budget=0).pending
    return round(timings[0], 1), round(min(timings[1:]), 1), pending


def _published_bytes(data_dir: Path) -> dict[str, int]:
    published = DataLayout(data_dir).published
    sizes = {"data": 0, "manifests": 0}
    for path in published.rglob("*"):
        if path.name.endswith(".parquet"):
            sizes["data"] += path.stat().st_size
        elif path.name.endswith(".manifest.json"):
            sizes["manifests"] += path.stat().st_size
    return sizes
