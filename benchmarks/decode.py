"""Decode + standardize rows/s per adapter, against the bare parse of the same messages; and
what the guard (bounded parsing, ``schemas/adapters/bounds.py``) costs on clean input, against
the same adapter unguarded in the same run.

The bare parse is ``json.loads`` per message for the JSON formats and Python's ``csv`` module
per message for CSV exports: what any consumer of these messages would pay at the least. M-Lab
NDT7 results are measured on results of every server generation (``simulator/ndt7.py``).

Both sides run in this process on the same bytes, alternately and best-of-N, so the ratio holds
on a noisy machine. "Standardize" is the adapter's decode plus the schema's row checks and the
final cast: everything between Kafka bytes and a publishable Arrow batch.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable

import pyarrow as pa

from benchmarks.timing import best_pair_seconds, best_seconds, rate
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.adapters.bounds import out_of_bounds
from schemas.records import RAW_RECORD_SCHEMA
from simulator import ndt7
from simulator.fleet import BYTE_DEFECTS, generate


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
    "mlab.ndt7": (_parse, "json.loads"),
}


def bench_messages(wire_format: str, nodes: int, bad: float, seed: int = 3) -> list[bytes]:
    """The benchmark's input: the fleet's messages in ``wire_format``; for M-Lab NDT7, results
    of every server generation (5–40 KB each, as M-Lab archives them), ``bad`` of them broken
    as the simulator breaks messages."""
    if wire_format != ndt7.WIRE_FORMAT:
        generated = generate(nodes, 60, 1, 1_764_000_000_000, seed, bad, wire_format)
        return [m.value for m in generated]
    rng = random.Random(seed)
    values = [m.value for m in ndt7.messages(nodes * 2, 1_764_000_000_000, seed)]
    for i, value in enumerate(values):
        if rng.random() < bad:
            values[i] = {
                "truncated_json": value[: len(value) // 2],
                "empty_message": b"",
                "invalid_utf8": value[:-2] + b"\xff\xfe",
            }[rng.choice(BYTE_DEFECTS)]
    return values


def run(quick: bool = False) -> dict:
    nodes = 100 if quick else 400
    results = []
    for label, bad in (("clean", 0.0), ("10% defects", 0.1)):
        for wire_format, (parse, baseline) in BASELINES.items():
            messages = bench_messages(wire_format, nodes, bad)
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
    guard = [_guard_cost(wire_format, nodes) for wire_format in BASELINES]
    summary = "; ".join(
        f"{r['adapter']} {r['input']}: {r['standardize_rows_per_s']:,} rows/s = "
        f"{r['ratio']}x {r['baseline']} ({r['baseline_rows_per_s']:,}/s)"
        for r in results
    )
    summary += "; guard on clean input: " + "; ".join(
        f"{g['adapter']} {g['guarded_rows_per_s']:,} rows/s guarded vs "
        f"{g['unguarded_rows_per_s']:,} unguarded (bounds alone {g['bounds_share']:.1%} of "
        f"decoding)"
        for g in guard
    )
    return {
        "name": "decode_standardize",
        "goal": ">= 0.5x the bare parse (json.loads, or csv.reader for CSV); the guard costs "
        "<= 10% of decode throughput on clean input",
        "results": results,
        "guard": guard,
        "summary": summary,
    }


def _guard_cost(wire_format: str, nodes: int) -> dict:
    """Standardize with the guarded adapter and with the bare one, in turns, on clean input."""
    batch = raw_batch(bench_messages(wire_format, nodes, 0.0), wire_format)
    guarded = adapter_for(wire_format)
    bare = guarded.adapter
    guarded_s, bare_s = best_pair_seconds(
        lambda: standardize(batch, guarded), lambda: standardize(batch, bare)
    )
    bounds_s = best_seconds(lambda: out_of_bounds(batch.column("value"), guarded.nested), 7)
    return {
        "adapter": wire_format,
        "messages": batch.num_rows,
        "guarded_rows_per_s": round(rate(batch.num_rows, guarded_s)),
        "unguarded_rows_per_s": round(rate(batch.num_rows, bare_s)),
        "guard_cost": round(1 - bare_s / guarded_s, 3),  # share of throughput lost
        "bounds_share": round(bounds_s / bare_s, 3),  # the bounds alone, per decode time
    }
