"""``rda demo``: a simulated fleet through the whole system, on embedded defaults.

Starts a local broker (and anvil if asked), deploys the AnchorRegistry and a NodeRegistry with
the fleet's nodes in it (``streaming/demo_devices.py``), publishes the hybrid fleet's signed
telemetry in waves — and, on a second topic configured unsigned, public RIPE Atlas pings — runs
one micro-batch per wave and topic (so the dataset logs grow through several anchored
checkpoints), verifies every log against the chain and the device signatures of a few proven
rows, stops what it started, and summarizes.
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
from pipelines.device_signatures import REQUIRED, UNSIGNED
from pipelines.kafka_source import KafkaSource, open_source
from proofs.audit import audit_log
from proofs.verdict import VERIFIED, overall
from simulator.fleet import generate
from simulator.formats import RIPE
from simulator.messages import Message
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.batch import Anchorer
from streaming.chain import ChainContext, open_chain
from streaming.chain_binding import bind
from streaming.demo_devices import DemoNodes, attacks, prove_and_check, register_demo_fleet
from streaming.driver import BatchSummary, RunConfig, Worker, run_batch
from streaming.poison import landing_process
from streaming.quality_worker import QualityWorker


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
    ripe_topic: str | None = "ripe-atlas"  # public probes' pings, a source that cannot sign
    ripe_probes: int = 10


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
        start_ms = _start_ms(options)
        with report.stage("deploying the NodeRegistry and registering the fleet's nodes"):
            nodes = register_demo_fleet(
                chain, options.nodes, options.seed, start_ms, int(options.duration_s * 1000)
            )
            bind(chain, options.data_dir)  # the publisher identity, published in the registry
        summary = _waves(options, broker.bootstrap, chain, report, nodes, start_ms)
        with report.stage("verifying every row, the history and the anchors on chain"):
            verdicts = _verify_all(options.data_dir, chain)
        with report.stage("proving rows and checking their device signatures"):
            proven = prove_and_check(options.data_dir, chain.trust_root())
    finally:
        # Stopping the broker is the demo's own doing: a client still connected (kafka-python
        # closes lazily) must not report it as an error.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        if anvil is not None:
            anvil.stop()
        stop_broker(runtime)
    summary["verdict"] = overall(
        [*(v["verdict"] for v in verdicts), *(p["verdict"] for p in proven)]
    )
    summary["verified"] = summary["verdict"] == VERIFIED
    summary["verdicts"] = verdicts
    summary["nodes"] = {**nodes.registered, "revoked": nodes.revoked}
    summary["proven_rows"] = proven
    summary["chain"] = chain.describe()
    summary["wall_seconds"] = round(time.monotonic() - started, 2)
    return summary


def _start_ms(options: DemoOptions) -> int:
    """The demo's telemetry ends at the current minute."""
    return (int(time.time()) // 60) * 60_000 - int(options.duration_s * 1000)


def _fleet_messages(options: DemoOptions, nodes: DemoNodes, start_ms: int) -> list[Message]:
    """The whole hybrid fleet's signed telemetry over the demo's duration, and three attacks."""
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
            hybrid=True,
            signing=nodes.signing,
        )
    )
    middle = len(messages) // (2 * options.waves)  # in the first wave
    return messages[:middle] + attacks(messages, options.seed) + messages[middle:]


def _ripe_messages(options: DemoOptions, start_ms: int) -> list[Message]:
    """Public RIPE Atlas probes' pings: unsigned, as such sources are."""
    return list(
        generate(
            min(options.ripe_probes, options.nodes), options.duration_s, options.rate_hz / 5,
            start_ms, options.seed + 1, wire_format=RIPE,
        )
    )  # fmt: skip


def _waves(
    options: DemoOptions,
    bootstrap: str,
    chain: ChainContext,
    report: Reporter,
    nodes: DemoNodes,
    start_ms: int,
) -> dict[str, Any]:
    """Publish the messages in ``options.waves`` parts, one micro-batch per topic after each."""
    streams = [
        (
            options.topic,
            _fleet_messages(options, nodes, start_ms),
            RunConfig(bootstrap, options.topic, "rda-demo", options.data_dir,
                      signatures=REQUIRED, nodes=chain.nodes),
        )
    ]  # fmt: skip
    if options.ripe_topic:
        config = RunConfig(
            bootstrap, options.ripe_topic, "rda-demo", options.data_dir, signatures=UNSIGNED
        )
        streams.append((options.ripe_topic, _ripe_messages(options, start_ms), config))
    # Lands every batch, as in `rda run`: forked first, before any Kafka client or thread of
    # this process (``RunLoop._landing``).
    worker = Worker(lander=landing_process())
    worker.lander.start()
    source = open_source(bootstrap)
    totals = _Totals()
    quality = QualityWorker(options.data_dir)  # GE on each anchored checkpoint, in a child
    quality.start()  # GE warms up while the first batch lands
    try:
        _run_waves(options, report, streams, source, chain.anchor, quality, totals, worker)
    finally:
        source.close()
        if worker.lander is not None:
            worker.lander.close()
    with report.stage("Great Expectations reports on every checkpoint, attested by the publisher"):
        quality.stop(drain_queue=True)
    return {**totals.as_dict(), "data_dir": str(options.data_dir)}


def _run_waves(
    options: DemoOptions,
    report: Reporter,
    streams: list[tuple[str, list[Message], RunConfig]],
    source: KafkaSource,
    anchor: Anchorer,
    quality: QualityWorker,
    totals: _Totals,
    worker: Worker,
) -> None:
    """Produce each wave of each stream, then run a batch over it."""
    bootstrap = streams[0][2].bootstrap
    for wave in range(options.waves):
        title = f"wave {wave + 1}/{options.waves}"
        for topic, messages, config in streams:
            waves = options.waves if topic == options.topic else 1  # the probes: one batch
            if wave >= waves:
                continue
            size = -(-len(messages) // waves)
            part = messages[wave * size : (wave + 1) * size]
            with report.stage(f"{title}: {len(part)} reports to {topic}"):
                totals.produced += produce(bootstrap, topic, part).messages
            # A topic's last wave is the end of its input: that batch closes every event-time
            # window, so every session held for an open window is released (or suppressed).
            last = replace(config, flush_windows=wave == waves - 1)
            with report.stage(f"{title}: pipeline lands, commits and anchors {topic}"):
                batch = run_batch(last, source, anchor, report.step, worker)
            if batch is not None:
                totals.add(batch, topic)
            quality.nudge()


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
    topics: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, batch: BatchSummary, topic: str) -> None:
        counts = self.topics.setdefault(topic, {"read": 0, "published": 0, "quarantined": 0})
        counts["read"] += batch.read
        counts["published"] += batch.published
        counts["quarantined"] += batch.quarantined
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
            "topics": self.topics,
        }


def _verify_all(data_dir: Path, chain: ChainContext) -> list[dict[str, Any]]:
    """What ``rda verify`` checks, pinned to the identity this run published."""
    layout = DataLayout(data_dir)
    trust = chain.trust_root()
    verdicts = []
    for dataset_dir in sorted(p for p in layout.published.iterdir() if p.is_dir()):
        verdicts.append(audit_log(dataset_dir, trust).as_dict())
    return verdicts
