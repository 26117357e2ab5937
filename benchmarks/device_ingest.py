"""Ingest from Kafka with device signatures checked, against the same ingest without them.

One broker, one topic of the hybrid fleet's signed telemetry; the same backlog is taken by
``run_batch`` in one batch of the same size, once with ``signatures = required`` (against a
NodeRegistry holding the fleet, on its own in-process EVM, through the ingest cache) and once
with ``unsigned``, each on a fresh consumer group, data directory and anchoring chain, in turns
(best of N). It is the whole of what ``rda run`` does per batch: read, verify, decode, check,
protect, land Parquet, sequence, anchor.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.timing import rate
from infra.broker import start_broker, stop_broker
from pipelines.device_signatures import REASONS, REQUIRED, UNSIGNED
from simulator.fleet import fleet_nodes, generate
from simulator.producer import produce
from simulator.signing import FleetSigning

START_MS = 1_764_000_000_000


def measure(nodes: int, duration: int, repeat: int) -> dict:
    from web3 import EthereumTesterProvider, Web3

    from proofs.node_registry import NodeRegistry
    from streaming.node_cache import NodeRegistryCache
    from streaming.nodes import register_fleet

    fleet = fleet_nodes(nodes, 3)
    signing = FleetSigning.for_nodes([n.node_id for n in fleet], 3)
    registry = NodeRegistry.deploy(Web3(EthereumTesterProvider()))
    register_fleet(registry, fleet, signing, valid_from_ms=START_MS - 86_400_000)
    cache = NodeRegistryCache(registry)
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-devices-"))
    broker = start_broker(workdir)
    try:
        messages = generate(
            nodes, duration, 1, START_MS, 3, 0.0, sessions=True, hybrid=True, signing=signing
        )
        n = produce(broker.bootstrap, "signed", messages).messages
        _one_batch(broker.bootstrap, workdir / "warm-up", n, UNSIGNED, None)  # imports, GE
        best = {REQUIRED: float("inf"), UNSIGNED: float("inf")}
        for attempt in range(repeat):
            order = (REQUIRED, UNSIGNED) if attempt % 2 == 0 else (UNSIGNED, REQUIRED)
            for policy in order:
                data_dir = workdir / f"{policy}-{attempt}"
                seconds = _one_batch(broker.bootstrap, data_dir, n, policy, cache)
                best[policy] = min(best[policy], seconds)
    finally:
        stop_broker(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "records": n,
        "with_rows_per_s": round(rate(n, best[REQUIRED])),
        "without_rows_per_s": round(rate(n, best[UNSIGNED])),
        "ratio": round(best[UNSIGNED] / best[REQUIRED], 3),
    }


def _one_batch(bootstrap: str, data_dir: Path, n: int, policy: str, cache) -> float:
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, run_batch

    chain = open_chain("embedded", None, None)  # anchors of each run on a chain of their own
    nodes = cache if policy == REQUIRED else None
    config = RunConfig(
        bootstrap, "signed", f"g-{data_dir.name}", data_dir, signatures=policy, nodes=nodes
    )
    started = time.perf_counter()
    batch = run_batch(config, open_source(bootstrap), chain.anchor)
    seconds = time.perf_counter() - started
    assert batch is not None and batch.read == n, batch
    assert not set(batch.reasons) & set(REASONS), batch.reasons  # every genuine report verifies
    return seconds
