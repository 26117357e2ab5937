"""What the simulated fleet emits: one Kafka message per report, in a named wire format."""

from __future__ import annotations

import json
from dataclasses import dataclass

WIRE_FORMAT = "rda.node.v1"  # the fleet's native format (see ``simulator/fleet.py``)
FORMAT_HEADER = "rda-format"  # Kafka header naming a message's wire format


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    timestamp_ms: int
    defect: str | None = None  # the injected defect, for tests to check what catches it
    wire_format: str = WIRE_FORMAT
    headers: tuple[tuple[str, bytes], ...] = ()  # more Kafka headers, e.g. the node's rda-sig


def encode_report(report: dict) -> bytes:
    """A report as ``rda.node.v1`` bytes: compact JSON."""
    return json.dumps(report, separators=(",", ":")).encode()
