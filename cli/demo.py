"""``rda demo``: a simulated fleet through the whole system, on embedded defaults.

Starts a local broker (and anvil if asked), publishes the fleet's telemetry in waves, runs one
micro-batch per wave (so the dataset log grows through several anchored checkpoints), verifies
the latest checkpoint against the chain, stops what it started, and summarizes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.chain import ChainContext, open_chain
from cli.driver import RunConfig, run_batch
from cli.output import stage, step
from infra.broker import start_broker, stop_broker
from infra.chain import start_anvil
from infra.fleet import generate
from infra.producer import produce
from infra.state import state_dir
from infra.tools import free_port
from pipelines.kafka_source import KafkaPythonSource
from proofs.verify import verify_dataset
from sinks.layout import DataLayout


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    nodes: int = 40
    duration_s: float = 300.0
    rate_hz: float = 1.0
    seed: int = 7
    bad_fraction: float = 0.02
    waves: int = 2
    chain: str = "embedded"
    topic: str = "node-telemetry"
    quiet: bool = False
    sessions: bool = True  # subscriber sessions, published under the privacy policy
    quality_fraction: float = 0.01  # reports with a quality defect (see infra/quality_defects)


def run_demo(options: DemoOptions) -> dict[str, Any]:
    started = time.monotonic()
    shutil.rmtree(options.data_dir, ignore_errors=True)
    runtime = state_dir() / "demo"
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(parents=True)
    anvil = None
    with stage("starting a Kafka-protocol broker on 127.0.0.1", options.quiet):
        broker = start_broker(runtime)
    try:
        with stage(
            f"connecting to the {options.chain} chain and deploying AnchorRegistry", options.quiet
        ):
            if options.chain == "anvil":
                anvil = start_anvil(free_port(), runtime)
            chain = open_chain(options.chain, anvil.rpc_url if anvil else None, None)
        summary = _waves(options, broker.bootstrap, chain)
        with stage(
            "verifying every row against the manifest and the on-chain anchor", options.quiet
        ):
            verdicts = _verify_all(options.data_dir, chain)
    finally:
        if anvil is not None:
            anvil.stop()
        stop_broker(runtime)
    summary["verified"] = all(v["verified"] for v in verdicts)
    summary["verdicts"] = verdicts
    summary["chain"] = chain.describe()
    summary["wall_seconds"] = round(time.monotonic() - started, 2)
    return summary


def _waves(options: DemoOptions, bootstrap: str, chain: ChainContext) -> dict[str, Any]:
    start_ms = (int(time.time()) // 60) * 60_000 - int(options.duration_s * 1000)
    messages = list(
        generate(
            options.nodes,
            options.duration_s,
            options.rate_hz,
            start_ms,
            options.seed,
            options.bad_fraction,
            sessions=options.sessions,
            quality_fraction=options.quality_fraction,
        )
    )
    config = RunConfig(bootstrap, options.topic, "rda-demo", options.data_dir)
    source = KafkaPythonSource(bootstrap)
    totals = {
        "records_produced": 0,
        "records_read": 0,
        "records_published": 0,
        "records_quarantined": 0,
        "records_suppressed": 0,
    }
    reasons: dict[str, int] = {}
    flags: dict[str, int] = {}
    checkpoints: list[dict] = []
    size = -(-len(messages) // options.waves)
    for wave in range(options.waves):
        part = messages[wave * size : (wave + 1) * size]
        with stage(
            f"wave {wave + 1}/{options.waves}: {options.nodes} nodes publish {len(part)} reports",
            options.quiet,
        ):
            produced = produce(bootstrap, options.topic, part)
        totals["records_produced"] += produced.messages
        with stage(
            f"wave {wave + 1}/{options.waves}: pipeline lands, commits and anchors", options.quiet
        ):
            batch = run_batch(config, source, chain.anchor, lambda m: step(m, options.quiet))
        if batch is None:
            continue
        totals["records_read"] += batch.read
        totals["records_published"] += batch.published
        totals["records_quarantined"] += batch.quarantined
        totals["records_suppressed"] += batch.suppressed
        for code, count in batch.reasons.items():
            reasons[code] = reasons.get(code, 0) + count
        for flag, count in batch.flags.items():
            flags[flag] = flags.get(flag, 0) + count
        checkpoints.extend(batch.checkpoints)
    return {
        **totals,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quality_flags": dict(sorted(flags.items())),
        "checkpoints": checkpoints,
        "data_dir": str(options.data_dir),
    }


def _verify_all(data_dir: Path, chain: ChainContext) -> list[dict[str, Any]]:
    layout = DataLayout(data_dir)
    verdicts = []
    for dataset_dir in sorted(p for p in layout.published.iterdir() if p.is_dir()):
        verdict = verify_dataset(dataset_dir, anchor_lookup=chain.lookup)
        verdicts.append(verdict.as_dict())
    return verdicts
