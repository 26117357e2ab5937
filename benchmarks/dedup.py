"""Cross-batch duplicate detection: the natural-key index against re-reading the history.

A 50k-row batch of radio KPIs (10k with ``--quick``) is checked for repeated natural keys
against a dataset history of 10, 100 and 1000 published batches of 10k rows each (2k with
``--quick``). Both answers are computed in this run on the same files and must be equal:

* baseline: ``sinks.dedup.find_duplicates``, which re-reads every earlier Parquet file;
* index: ``sinks.dedup.find_batch_duplicates``, which reads the batch's own files and looks
  their keys up in the catalog's natural-key index (``sinks/key_index.py``).

Rows are the simulator's fleet as the pipeline publishes them (row checks, quality, privacy),
tiled forward in time batch after batch; the new batch resends 1 % of the latest batch's rows
and repeats 0.2 % of its own. Also reported: recording a batch's keys, and building the index
of an existing data directory from its catalog (the upgrade path), per history size.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.decode import raw_batch
from benchmarks.timing import best_seconds
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from simulator.fleet import generate
from sinks import key_index
from sinks.catalog import Catalog
from sinks.dedup import find_batch_duplicates, find_duplicates, record_batch_keys
from sinks.layout import DataLayout
from sinks.parquet import write_parquet

DATASET = "radio_kpi.v1"
HISTORIES = (10, 100, 1000)
CHUNKS_PER_BATCH = 4  # the new batch's files, one per partition as the driver lands them


def run(quick: bool = False) -> dict:
    batch_rows, history_rows = (10_000, 2_000) if quick else (50_000, 10_000)
    with tempfile.TemporaryDirectory(prefix="rda-bench-dedup-") as directory:
        layout = DataLayout(Path(directory))
        template = _fleet_rows(layout, history_rows)
        with Catalog(layout) as catalog:
            cases = _cases(layout, catalog, template, batch_rows)
    largest = cases[-1]
    summary = (
        f"{batch_rows:,}-row batch vs "
        + ", ".join(f"{c['history_batches']} batches: {c['ratio']}x" for c in cases)
        + f" faster than re-reading; index lookup {cases[0]['index_s']} s at "
        f"{cases[0]['history_batches']} batches, {largest['index_s']} s at "
        f"{largest['history_batches']} ({largest['history_rows']:,} rows)"
    )
    return {
        "name": "dedup",
        "goal": "index lookup independent of history length; >= 10x re-reading at 1000 batches",
        "batch_rows": batch_rows,
        "history_batch_rows": template.num_rows,
        "cases": cases,
        "summary": summary,
    }


def _cases(layout: DataLayout, catalog: Catalog, template: pa.Table, batch_rows: int) -> list:
    cases, history = [], []
    for size in HISTORIES:
        while len(history) < size:  # published before the index existed: catalog files only
            batch_id = len(history) + 1
            history.append(_land(layout, catalog, template, batch_id))
        started = time.perf_counter()
        built = key_index.ensure_index(catalog, DATASET)
        build_s = time.perf_counter() - started
        case = _measure(
            layout, catalog, size + 1, _new_batch(layout, template, size + 1, batch_rows)
        )
        # One resent row from the first batch widens the key range the index scan may skip.
        old_repeat = _new_batch(layout, template, size + 1, batch_rows, oldest=True)
        case["index_s_old_repeat"] = _measure(layout, catalog, size + 1, old_repeat)["index_s"]
        case |= {"history_batches": size, "history_rows": size * template.num_rows}
        cases.append(case | {"index_built_batches": built, "index_build_s": round(build_s, 3)})
        key_index.forget_batch(catalog, size + 1)  # the next size's history continues from here
    return cases


def _measure(layout: DataLayout, catalog: Catalog, batch_id: int, new: list[str]) -> dict:
    """Both answers for the batch's files (equal, or the benchmark fails) and their times."""
    prior = [f["path"] for f in catalog.dataset_files(DATASET)]
    expected = find_duplicates(layout, DATASET, prior, new)
    found = find_batch_duplicates(catalog, DATASET, batch_id, new)
    if found != expected:
        raise AssertionError(f"the index and the re-read disagree after {len(prior)} files")
    reread_s = best_seconds(lambda: find_duplicates(layout, DATASET, prior, new), 3)
    index_s = best_seconds(lambda: find_batch_duplicates(catalog, DATASET, batch_id, new))
    record_s = best_seconds(lambda: record_batch_keys(catalog, DATASET, batch_id, new), 3)
    return {
        "duplicates": len(found),
        "reread_s": round(reread_s, 4),
        "index_s": round(index_s, 4),
        "ratio": round(reread_s / index_s, 1),
        "record_keys_s": round(record_s, 4),
    }


def _fleet_rows(layout: DataLayout, rows: int) -> pa.Table:
    """About ``rows`` published radio KPI rows: 40 nodes reporting once a second."""
    messages = generate(40, max(1, rows // 40), 1.0, 1_764_000_000_000, 5)
    raw = raw_batch([m.value for m in messages], "rda.node.v1")
    result = Protection(str(layout.private))(raw, standardize(raw, adapter_for("rda.node.v1")))
    return pa.Table.from_batches([result.published[DATASET]]).slice(0, rows)


def _shifted(template: pa.Table, step: int, offset: int) -> pa.Table:
    """The template moved ``step`` spans forward in time and to offsets from ``offset``."""
    times = template.column("event_time")
    span = pc.max(times).as_py() - pc.min(times).as_py() + dt.timedelta(seconds=1)
    shift = pa.scalar(span * step, pa.duration("us"))
    table = template
    for name in ("event_time", "ingest_time"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(name), pc.add(table[name], shift))
    offsets = pa.array(range(offset, offset + table.num_rows), pa.int64())
    index = table.schema.get_field_index("source_offset")
    return table.set_column(index, table.schema.field("source_offset"), offsets)


def _write(layout: DataLayout, name: str, table: pa.Table) -> str:
    path = layout.data_file(DATASET, name)
    write_parquet(table.combine_chunks().to_batches()[0], path)
    return layout.relative(path)


def _land(layout: DataLayout, catalog: Catalog, template: pa.Table, batch_id: int) -> str:
    rows = template.num_rows
    path = _write(layout, f"history-{batch_id:05d}", _shifted(template, batch_id, batch_id * rows))
    file = {"path": path, "dataset": DATASET, "sha256": "", "rows": rows, "topic": "bench"}
    file |= {"leaf_start": (batch_id - 1) * rows, "partition": 0, "start": batch_id * rows}
    catalog.register_files(batch_id, [{**file, "end": (batch_id + 1) * rows}])
    return path


def _new_batch(
    layout: DataLayout, template: pa.Table, batch_id: int, rows: int, oldest: bool = False
) -> list[str]:
    """The batch after the history: new rows, 1 % resent from the latest batch (one of them
    from the first batch if ``oldest``), 0.2 % repeated within the batch."""
    tiles = [_shifted(template, batch_id + i, 0) for i in range(-(-rows // template.num_rows))]
    resent = _shifted(template, batch_id - 1, 0).slice(0, rows // 100)
    if oldest:
        resent = pa.concat_tables([_shifted(template, 1, 0).slice(0, 1), resent.slice(1)])
    fresh = pa.concat_tables(tiles).slice(0, rows - len(resent) - rows // 500)
    repeated = fresh.slice(0, rows // 500)
    table = pa.concat_tables([resent, fresh, repeated])
    offsets = pa.array(range(batch_id * 10**7, batch_id * 10**7 + table.num_rows), pa.int64())
    table = table.set_column(
        table.schema.get_field_index("source_offset"), table.schema.field("source_offset"), offsets
    )
    size = -(-table.num_rows // CHUNKS_PER_BATCH)
    return [
        _write(layout, f"new-{batch_id:05d}-{i}", table.slice(i * size, size))
        for i in range(CHUNKS_PER_BATCH)
    ]
