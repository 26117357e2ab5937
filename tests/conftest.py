"""Shared fixtures: a real Kafka-protocol broker on loopback, started once per test session."""

from __future__ import annotations

import import_deferrals  # noqa: F401 - first: before anything imports web3 or GE

# isort: split
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import audit_dataset
import pytest
from child_processes import reap_spawned
from hypothesis import settings

from infra.broker import Broker, start_broker, stop_broker
from infra.chain import AnvilProcess, ChainConfig, connect, start_anvil
from infra.tools import free_port
from proofs.anchor import AnchorRegistry
from simulator.fleet import generate
from simulator.producer import ProduceReport, produce
from sinks.storage import Store
from streaming.chain import ChainContext, open_chain

pytest_plugins = [
    "market_support",  # the marketplace tests' demo data and server
    "quality_support",  # anchored batches awaiting GE, the gated quality worker
]

START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z: fixed, so fixtures are reproducible


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first, each file's tests in their order: the test command's
    workers take whole files as they free up (``--dist loadfile --no-loadscope-reorder``), so a
    slow file taken last kept one worker busy alone at the suite's end (35 s in one run)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Every process the test started (``child_processes.spawn``, ``run_helpers.start_run``)
    killed if it still runs, waited for and its pipes closed, however the test ended."""
    try:
        return (yield)
    finally:
        reap_spawned()


_topic_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    directory = tmp_path_factory.mktemp("broker")
    running = start_broker(directory)
    try:
        yield running
    finally:
        stop_broker(directory)


@pytest.fixture
def topic() -> str:
    """A fresh topic name per test (memory storage; topics are never reused)."""
    return f"telemetry-{next(_topic_numbers)}"


def _publish(
    broker: Broker,
    topic: str,
    nodes: int = 10,
    duration_s: float = 30,
    seed: int = 1,
    bad_fraction: float = 0.0,
    start_ms: int = START_MS,
) -> ProduceReport:
    """Publish a simulated fleet's reports to ``topic``."""
    messages = generate(nodes, duration_s, 1.0, start_ms, seed, bad_fraction)
    return produce(broker.bootstrap, topic, messages)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def counting_store(tmp_path: Path) -> Store:
    """A local store at ``tmp_path`` counting the objects read from it (``store.reads``)."""

    class CountingStore(Store):
        reads = 0

        def read_bytes(self, relative: str) -> bytes:
            CountingStore.reads += 1
            return super().read_bytes(relative)

    return CountingStore.open(tmp_path)


@pytest.fixture
def publish() -> Callable[..., ProduceReport]:
    """``publish(broker, topic, nodes=…, duration_s=…, bad_fraction=…)`` a simulated fleet."""
    return _publish


# Tests never assert on wall-clock time: Hypothesis' per-example deadline (200 ms) fails
# examples on a loaded machine (five suites share two cores here).
settings.register_profile("rda", deadline=None)
settings.load_profile("rda")


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    """One real anvil node for the whole run (installed from npm on first use)."""
    node = start_anvil(free_port(), tmp_path_factory.mktemp("anvil"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def registry(anvil: AnvilProcess) -> AnchorRegistry:
    """A registry per test: anchors are global per dataset id on one registry."""
    return AnchorRegistry.deploy(connect(ChainConfig("anvil", port=anvil.port)))


@pytest.fixture
def chain() -> ChainContext:
    """A fresh in-process EVM with an AnchorRegistry deployed."""
    return open_chain("embedded", None, None)


@pytest.fixture
def published(tmp_path: Path, chain: ChainContext) -> tuple[Path, list[dict]]:
    """Two anchored checkpoints: 30 rows, then 50."""
    checkpoints = audit_dataset.publish(
        tmp_path, [audit_dataset.rows(0, 30), audit_dataset.rows(30, 20)], chain
    )
    return tmp_path / "published" / audit_dataset.DATASET, checkpoints
