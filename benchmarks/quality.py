"""Validation and anonymization rows/s per core, against a plain ``pyarrow.compute`` pass.

On one core (Arrow's thread pool set to 1) and on the same canonical batches — radio KPIs and
subscriber sessions from the simulator — three stages are timed best-of-N:

* the vectorized checks: the schema's row checks plus the quality checks (``validators/``);
* anonymization: pseudonyms, truncation, coarsening, k-anonymity (``pipelines/anonymize.py``);
* Great Expectations' own run of the generated suite (reported apart: it is not a hot path).

The baseline is one plain ``pyarrow.compute`` pass over the same batch: the min/max of every
column (strings included) — the least any per-column validation must do.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.decode import raw_batch
from benchmarks.timing import best_seconds, rate
from pipelines.anonymize import PseudonymKey, anonymize
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.published import DEFAULT_PRIVACY, published_schema
from schemas.registry import schema_for_dataset
from simulator.fleet import generate
from validators.expectations import validate
from validators.quality import check_quality
from validators.rowchecks import check_rows

GOAL_ROWS_PER_S = 500_000


def _baseline(rows: pa.RecordBatch) -> None:
    for column in rows.columns:  # every value touched once: strings compared, numbers summed
        pc.min_max(column)


def _checks(schema, rows: pa.RecordBatch) -> None:
    check_rows(schema, rows)
    check_quality(schema, rows)


def canonical_batches(nodes: int, duration_s: float) -> dict[str, pa.RecordBatch]:
    messages = generate(nodes, duration_s, 1, 1_764_000_000_000, 11, sessions=True)
    batch = raw_batch([m.value for m in messages], "rda.node.v1")
    return standardize(batch, adapter_for("rda.node.v1")).published


def _measure(dataset: str, rows: pa.RecordBatch, key: PseudonymKey) -> dict:
    """Rows/s of the row checks, anonymization and GE on one dataset, beside the baseline."""
    schema = schema_for_dataset(dataset)
    flags = pa.nulls(rows.num_rows, pa.string())
    base_s = best_seconds(lambda: _baseline(rows))
    check_s = best_seconds(lambda: _checks(schema, rows))
    anon_s = best_seconds(lambda: anonymize(schema, rows, flags, key, DEFAULT_PRIVACY))
    published = anonymize(schema, rows, flags, key, DEFAULT_PRIVACY).rows
    table = pa.Table.from_batches([published])
    with tempfile.TemporaryDirectory() as docs:
        validate(published_schema(schema), table, Path(docs))  # warm-up: import, suite
        ge_s = min(validate(published_schema(schema), table, Path(docs))[1] for _ in range(2))
    n = rows.num_rows
    return {
        "dataset": dataset,
        "rows": n,
        "baseline_rows_per_s": round(rate(n, base_s)),
        "checks_rows_per_s": round(rate(n, check_s)),
        "checks_ratio": round(base_s / check_s, 3),
        "anonymize_rows_per_s": round(rate(n, anon_s)),
        "anonymize_ratio": round(base_s / anon_s, 3),
        "checks_and_anonymize_rows_per_s": round(rate(n, check_s + anon_s)),
        "great_expectations_rows_per_s": round(rate(n, ge_s)),
        "great_expectations_seconds": round(ge_s, 3),
    }


def run(quick: bool = False) -> dict:
    nodes, duration = (60, 120) if quick else (200, 300)
    batches = canonical_batches(nodes, duration)
    key = PseudonymKey(bytes(32))
    threads = pa.cpu_count()
    pa.set_cpu_count(1)  # per core
    try:
        results = [
            _measure(dataset, batches[dataset], key)
            for dataset in ("radio_kpi.v1", "subscriber_session.v1")
        ]
    finally:
        pa.set_cpu_count(threads)
    summary = "; ".join(
        f"{r['dataset']} ({r['rows']:,} rows): checks {r['checks_rows_per_s']:,}/s "
        f"({r['checks_ratio']}x baseline {r['baseline_rows_per_s']:,}/s), anonymize "
        f"{r['anonymize_rows_per_s']:,}/s ({r['anonymize_ratio']}x), GE "
        f"{r['great_expectations_rows_per_s']:,}/s ({r['great_expectations_seconds']} s)"
        for r in results
    )
    return {
        "name": "quality_privacy",
        "goal": f">= {GOAL_ROWS_PER_S:,} rows/s/core for the vectorized checks",
        "goal_met": all(r["checks_rows_per_s"] >= GOAL_ROWS_PER_S for r in results),
        "results": results,
        "summary": summary,
    }
