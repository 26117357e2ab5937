"""Decode + standardize rows/s per adapter, against ``json.loads`` alone on the same messages.

Both sides run in this process on the same bytes, alternately and best-of-N, so the ratio holds
on a noisy machine. "Standardize" is the adapter's decode plus the schema's row checks and the
final cast: everything between Kafka bytes and a publishable Arrow batch.
"""

from __future__ import annotations

import json

import pyarrow as pa

from benchmarks.timing import best_seconds, rate
from infra.fleet import generate
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.records import RAW_RECORD_SCHEMA


def raw_batch(values: list[bytes], wire_format: str) -> pa.RecordBatch:
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["bench"] * n,
            "partition": [0] * n,
            "offset": list(range(n)),
            "timestamp_ms": [1_764_000_000_000] * n,
            "key": [b"k"] * n,
            "value": values,
            "format": [wire_format] * n,
        },
        schema=RAW_RECORD_SCHEMA,
    )


def _parse(message: bytes) -> object:
    """The baseline: ``json.loads`` alone, with bad messages costing what their failure costs."""
    try:
        return json.loads(message)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def run(quick: bool = False) -> dict:
    nodes = 100 if quick else 400
    results = []
    for label, bad in (("clean", 0.0), ("10% defects", 0.1)):
        messages = [m.value for m in generate(nodes, 60, 1, 1_764_000_000_000, 3, bad)]
        for wire_format in ("rda.node.v1",):
            adapter = adapter_for(wire_format)
            batch = raw_batch(messages, wire_format)
            parse_s = best_seconds(lambda ms=messages: [_parse(m) for m in ms])
            std_s = best_seconds(lambda b=batch, a=adapter: standardize(b, a))
            results.append(
                {
                    "adapter": wire_format,
                    "input": label,
                    "messages": len(messages),
                    "json_loads_rows_per_s": round(rate(len(messages), parse_s)),
                    "standardize_rows_per_s": round(rate(len(messages), std_s)),
                    "ratio": round(parse_s / std_s, 3),
                }
            )
    summary = "; ".join(
        f"{r['adapter']} {r['input']}: {r['standardize_rows_per_s']:,} rows/s = "
        f"{r['ratio']}x json.loads ({r['json_loads_rows_per_s']:,}/s)"
        for r in results
    )
    return {
        "name": "decode_standardize",
        "goal": ">= 0.5x json.loads",
        "results": results,
        "summary": summary,
    }
