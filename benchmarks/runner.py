"""``rda bench``: every benchmark, each reporting a ratio against a baseline from the same run."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

from benchmarks import (
    aging,
    data_assets,
    decode,
    dedup,
    device_signatures,
    end_to_end,
    event_time,
    journal,
    market,
    market_fairness,
    peers,
    proofs,
    quality,
    scale_out,
    streaming,
    verify,
)

BENCHMARKS: dict[str, Callable[[bool], dict]] = {
    "decode_standardize": decode.run,
    "end_to_end": end_to_end.run,
    "peers": peers.run,
    "streaming": streaming.run,
    "aging": aging.run,
    "journal": journal.run,
    "event_time": event_time.run,
    "scale_out": scale_out.run,
    "dedup": dedup.run,
    "market_query": market.run,
    "market_fairness": market_fairness.run,
    "proofs": proofs.run,
    "verify": verify.run,
    "quality_privacy": quality.run,
    "data_assets": data_assets.run,
    "device_signatures": device_signatures.run,
}


def run_benchmarks(
    only: list[str] | None = None, quick: bool = False, progress: Callable[[str], None] = print
) -> dict:
    unknown = set(only or ()) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}")
    results = []
    for name, bench in BENCHMARKS.items():
        if only and name not in only:
            continue
        progress(f"running {name}…")
        results.append(bench(quick))
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    return {"machine": machine, "quick": quick, "benchmarks": results}
