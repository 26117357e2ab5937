"""Decode + standardize rows/s per adapter, against the bare parse of the same messages.

The bare parse is ``json.loads`` per message for the JSON formats and Python's ``csv`` module
per message for CSV exports: what any consumer of these messages would pay at the least.

Both sides run in this process on the same bytes, alternately and best-of-N, so the ratio holds
on a noisy machine. "Standardize" is the adapter's decode plus the schema's row checks and the
final cast: everything between Kafka bytes and a publishable Arrow batch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pyarrow as pa

from benchmarks.timing import best_seconds, rate
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.records import RAW_RECORD_SCHEMA
from simulator.fleet import generate


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


def _parse_csv(message: bytes) -> object:
    """The CSV baseline: the csv module over the decoded export, bad messages included."""
    try:
        return list(csv.reader(io.StringIO(message.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None


def _each(parse: Callable[[bytes], object], messages: list[bytes]) -> None:
    """Parse every message and drop the result, as the adapters do: keeping millions of parsed
    objects alive would bill the baseline for garbage-collector passes, flattering the ratio."""
    for message in messages:
        parse(message)


# adapter -> (its bare parse, the name of that baseline)
BASELINES: dict[str, tuple[Callable[[bytes], object], str]] = {
    "rda.node.v1": (_parse, "json.loads"),
    "gnmi.json": (_parse, "json.loads"),
    "ems.csv": (_parse_csv, "csv.reader"),
    "ripe.atlas.result": (_parse, "json.loads"),
}


def run(quick: bool = False) -> dict:
    nodes = 100 if quick else 400
    results = []
    for label, bad in (("clean", 0.0), ("10% defects", 0.1)):
        for wire_format, (parse, baseline) in BASELINES.items():
            generated = generate(nodes, 60, 1, 1_764_000_000_000, 3, bad, wire_format)
            messages = [m.value for m in generated]
            adapter = adapter_for(wire_format)
            batch = raw_batch(messages, wire_format)
            parse_s = best_seconds(lambda ms=messages, p=parse: _each(p, ms))
            std_s = best_seconds(lambda b=batch, a=adapter: standardize(b, a))
            results.append(
                {
                    "adapter": wire_format,
                    "input": label,
                    "messages": len(messages),
                    "baseline": baseline,
                    "baseline_rows_per_s": round(rate(len(messages), parse_s)),
                    "standardize_rows_per_s": round(rate(len(messages), std_s)),
                    "ratio": round(parse_s / std_s, 3),
                }
            )
    summary = "; ".join(
        f"{r['adapter']} {r['input']}: {r['standardize_rows_per_s']:,} rows/s = "
        f"{r['ratio']}x {r['baseline']} ({r['baseline_rows_per_s']:,}/s)"
        for r in results
    )
    return {
        "name": "decode_standardize",
        "goal": ">= 0.5x the bare parse (json.loads, or csv.reader for CSV)",
        "results": results,
        "summary": summary,
    }
