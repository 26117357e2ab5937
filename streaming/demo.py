"""``rda demo``: a simulated fleet through the whole system, on embedded defaults.

Starts a local broker (and anvil if asked), publishes the fleet's telemetry in waves, runs one
micro-batch per wave (so the dataset log grows through several anchored checkpoints), verifies
the latest checkpoint against the chain, stops what it started, and summarizes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.broker import start_broker, stop_broker
from infra.chain import start_anvil
from infra.state import state_dir
from infra.tools import free_port
from pipelines.kafka_source import open_source
from proofs.audit import audit_log
from proofs.verdict import VERIFIED, overall
from simulator.fleet import generate
from simulator.messages import Message
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.chain import ChainContext, open_chain
from streaming.chain_binding import bind
from streaming.driver import BatchSummary, RunConfig, run_batch


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
    sessions: bool = True  # subscriber sessions, published under the privacy policy
    quality_fraction: float = 0.01  # reports with a quality defect (see infra/quality_defects)


@dataclass(frozen=True)
class Reporter:
    """How the demo shows its progress: a stage around each long step, a line within it."""

    stage: Callable[[str], AbstractContextManager[object]] = lambda _message: nullcontext()
    step: Callable[[str], None] = lambda _message: None


def run_demo(options: DemoOptions, report: Reporter | None = None) -> dict[str, Any]:
    """Run the demo end to end and return its summary (counts, checkpoints, verdicts)."""
    report = report or Reporter()
    started = time.monotonic()
    shutil.rmtree(options.data_dir, ignore_errors=True)
    runtime = state_dir() / "demo"
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(parents=True)
    anvil = None
    with report.stage("starting a Kafka-protocol broker on 127.0.0.1"):
        broker = start_broker(runtime)
    try:
        with report.stage(f"connecting to the {options.chain} chain and deploying AnchorRegistry"):
            if options.chain == "anvil":
                anvil = start_anvil(free_port(), runtime)
            chain = open_chain(options.chain, anvil.rpc_url if anvil else None, None)
            bind(chain, options.data_dir)  # the publisher identity, published in the registry
        summary = _waves(options, broker.bootstrap, chain, report)
        with report.stage("verifying every row, the history and the anchors on chain"):
            verdicts = _verify_all(options.data_dir, chain)
    finally:
        # Stopping the broker is the demo's own doing: a client still connected (kafka-python
        # closes lazily) must not report it as an error.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        if anvil is not None:
            anvil.stop()
        stop_broker(runtime)
    summary["verdict"] = overall(v["verdict"] for v in verdicts)
    summary["verified"] = summary["verdict"] == VERIFIED
    summary["verdicts"] = verdicts
    summary["chain"] = chain.describe()
    summary["wall_seconds"] = round(time.monotonic() - started, 2)
    return summary


def _fleet_messages(options: DemoOptions) -> list[Message]:
    """The whole fleet's telemetry over the demo's duration, ending at the current minute."""
    start_ms = (int(time.time()) // 60) * 60_000 - int(options.duration_s * 1000)
    return list(
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


def _waves(
    options: DemoOptions, bootstrap: str, chain: ChainContext, report: Reporter
) -> dict[str, Any]:
    """Publish the messages in ``options.waves`` parts, one micro-batch after each."""
    messages = _fleet_messages(options)
    config = RunConfig(bootstrap, options.topic, "rda-demo", options.data_dir)
    source = open_source(bootstrap)  # keeps no connection between calls: nothing to close
    totals = _Totals()
    size = -(-len(messages) // options.waves)
    for wave in range(options.waves):
        part = messages[wave * size : (wave + 1) * size]
        title = f"wave {wave + 1}/{options.waves}"
        with report.stage(f"{title}: {options.nodes} nodes publish {len(part)} reports"):
            totals.produced += produce(bootstrap, options.topic, part).messages
        # The last wave is the end of input: its batch closes every event-time window, so every
        # session held for an open window is released (or suppressed) before the demo ends.
        last = replace(config, flush_windows=wave == options.waves - 1)
        with report.stage(f"{title}: pipeline lands, commits and anchors"):
            batch = run_batch(last, source, chain.anchor, report.step)
        if batch is not None:
            totals.add(batch)
    return {**totals.as_dict(), "data_dir": str(options.data_dir)}


@dataclass
class _Totals:
    """The demo's batches added up."""

    produced: int = 0
    read: int = 0
    published: int = 0
    quarantined: int = 0
    suppressed: int = 0
    held: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    checkpoints: list[dict] = field(default_factory=list)

    def add(self, batch: BatchSummary) -> None:
        self.read += batch.read
        self.published += batch.published
        self.quarantined += batch.quarantined
        self.suppressed += batch.suppressed
        self.held += batch.held
        self.reasons.update(batch.reasons)
        self.flags.update(batch.flags)
        self.checkpoints.extend(batch.checkpoints)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_produced": self.produced,
            "records_read": self.read,
            "records_published": self.published,
            "records_quarantined": self.quarantined,
            "records_suppressed": self.suppressed,
            "records_held": self.held,
            "quarantine_reasons": dict(sorted(self.reasons.items())),
            "quality_flags": dict(sorted(self.flags.items())),
            "checkpoints": self.checkpoints,
        }


def _verify_all(data_dir: Path, chain: ChainContext) -> list[dict[str, Any]]:
    """What ``rda verify`` checks, pinned to the identity this run published."""
    layout = DataLayout(data_dir)
    trust = chain.trust_root()
    verdicts = []
    for dataset_dir in sorted(p for p in layout.published.iterdir() if p.is_dir()):
        verdicts.append(audit_log(dataset_dir, trust).as_dict())
    return verdicts
