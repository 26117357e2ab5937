"""A signed fleet, its NodeRegistry (in-process EVM or anvil) and ingest of its reports: what
the device signature tests share (the test modules import its fixtures by name)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pyarrow as pa
import pytest
from web3 import EthereumTesterProvider, Web3

from infra.chain import ChainConfig, connect
from pipelines.device_signatures import REQUIRED, UNSIGNED, DeviceCheck
from pipelines.graph import standardize_chunk
from proofs.node_registry import NodeRegistry
from schemas.records import RAW_RECORD_SCHEMA, SIGNATURE_HEADER
from simulator.fleet import FleetNode, fleet_nodes, generate
from simulator.messages import Message
from simulator.signing import FleetSigning
from streaming.node_cache import NodeRegistryCache
from streaming.nodes import register_fleet

T0 = 1_764_000_000_000
SEED = 11
NODES = 3


# The NodeRegistry's chains: the in-process EVM, and a real node (anvil) over JSON-RPC.
EVMS = ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)]


def make_fleet() -> list[FleetNode]:
    return fleet_nodes(NODES, SEED, hybrid=False)


def make_signing(fleet: list[FleetNode]) -> FleetSigning:
    return FleetSigning.for_nodes([n.node_id for n in fleet], SEED)


def make_messages(signing: FleetSigning) -> list[Message]:
    """30 s of the fleet's signed reports, sessions included."""
    return list(generate(NODES, 30, 1, T0, SEED, sessions=True, signing=signing))


def evm_of(request: pytest.FixtureRequest) -> Callable[[], Web3]:
    """A new connection to the chain ``request.param`` (one of ``EVMS``) names."""
    if request.param == "embedded":
        return lambda: Web3(EthereumTesterProvider())
    node = request.getfixturevalue("anvil")
    return lambda: connect(ChainConfig("anvil", port=node.port))


@pytest.fixture(scope="module")
def fleet() -> list[FleetNode]:
    return make_fleet()


@pytest.fixture(scope="module")
def signing(fleet: list[FleetNode]) -> FleetSigning:
    return make_signing(fleet)


@pytest.fixture(scope="module")
def messages(signing: FleetSigning) -> list[Message]:
    return make_messages(signing)


@pytest.fixture(scope="module", params=EVMS)
def evm(request: pytest.FixtureRequest) -> Callable[[], Web3]:
    return evm_of(request)


@pytest.fixture(scope="module")
def cache(fleet: list[FleetNode], signing: FleetSigning, evm) -> NodeRegistryCache:
    """A registry nobody changes (tests that revoke, rotate or transfer deploy their own)."""
    return deployed(fleet, signing, evm)


def deployed(fleet: list[FleetNode], signing: FleetSigning, evm) -> NodeRegistryCache:
    """A new NodeRegistry on ``evm()`` holding the fleet, and its ingest cache."""
    registry = NodeRegistry.deploy(evm())
    register_fleet(registry, fleet, signing, valid_from_ms=T0 - 86_400_000)
    return NodeRegistryCache(registry)


def raw_batch(messages: list[Message], first_offset: int = 0) -> pa.RecordBatch:
    rows = [
        {
            "topic": "t",
            "partition": 0,
            "offset": first_offset + i,
            "timestamp_ms": m.timestamp_ms,
            "key": m.key,
            "value": m.value,
            "format": m.wire_format,
            "signature": _header_text(m),
        }
        for i, m in enumerate(messages)
    ]
    return pa.RecordBatch.from_pylist(rows, schema=RAW_RECORD_SCHEMA)


def _header_text(message: Message) -> str | None:
    """The rda-sig header as the Kafka sources decode it (None: no header; b"": empty)."""
    value = dict(message.headers).get(SIGNATURE_HEADER)
    return None if value is None else value.decode("utf-8", "replace")


def ingest(messages: list[Message], cache: NodeRegistryCache | None, at_block=None, **kw):
    policy = REQUIRED if cache is not None else UNSIGNED
    snapshot = cache.snapshot(at_block) if cache is not None else None
    return standardize_chunk(
        raw_batch(messages, **kw), "rda.node.v1", None, None, DeviceCheck(policy, snapshot, "t")
    )


def reasons(result) -> dict[int, str]:
    q = result.quarantined
    return dict(
        zip(q.column("offset").to_pylist(), q.column("reason_code").to_pylist(), strict=True)
    )


def published_offsets(result) -> set[int]:
    return {
        o for rows in result.published.values() for o in rows.column("source_offset").to_pylist()
    }


def header(message: Message) -> str:
    return dict(message.headers)[SIGNATURE_HEADER].decode()


def with_header(message: Message, text: str) -> Message:
    return dataclasses.replace(message, headers=((SIGNATURE_HEADER, text.encode()),))


def edited(message: Message, change) -> Message:
    report = json.loads(message.value)
    change(report)
    return dataclasses.replace(message, value=json.dumps(report).encode())


def radio(messages, node: str) -> list[int]:
    return [i for i, m in enumerate(messages) if m.key == node.encode() and b"radio_kpi" in m.value]
