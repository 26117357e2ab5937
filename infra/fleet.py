"""A simulated fleet of community-run 4G nodes publishing radio telemetry to Kafka.

Each node sits at a fixed site with one to three cells and reports per-cell KPIs at a fixed
interval. Load follows the time of day; signal quality drifts around a per-cell mean; throughput
depends on load and SINR. Output is deterministic for a given seed and start time.

Wire format (``rda.node.v1``, one JSON object per message, keyed by node id)::

    {"format": "rda.node.v1", "kind": "radio_kpi", "node": "an-0007", "ts_ms": 1764032523000,
     "cell": {"eci": 5378371, "pci": 101, "earfcn": 1850},
     "radio": {"rsrp": -95.5, "rsrq": -10.5, "sinr": 12.3},
     "traffic": {"dl_kbps": 45000.0, "ul_kbps": 8000.0, "ues": 12},
     "latency_ms": 23.4, "loc": {"lat": 52.52, "lon": 13.405}}
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

WIRE_FORMAT = "rda.node.v1"
FORMAT_HEADER = "rda-format"

# Cities the fleet is scattered around (lat, lon): sites are jittered within ~20 km.
_SITES = ((52.52, 13.405), (40.4168, -3.7038), (-1.2921, 36.8219), (19.4326, -99.1332))
_EARFCNS = (1850, 3050, 6300, 9410)

DEFECT_KINDS = (
    "truncated_json",
    "invalid_utf8",
    "empty_message",
    "missing_node",
    "rsrp_out_of_range",
    "wrong_type",
    "not_a_number",
    "negative_ues",
)


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    timestamp_ms: int
    defect: str | None = None


@dataclass(frozen=True)
class _Cell:
    eci: int
    pci: int
    earfcn: int
    rsrp_mean: float


@dataclass(frozen=True)
class _Node:
    node_id: str
    lat: float
    lon: float
    cells: tuple[_Cell, ...]
    base_latency_ms: float


def _build_fleet(nodes: int, rng: random.Random) -> list[_Node]:
    fleet = []
    for index in range(nodes):
        lat0, lon0 = _SITES[index % len(_SITES)]
        enb_id = 10_000 + index  # 20-bit eNB id; ECI = eNB id << 8 | cell index
        cells = tuple(
            _Cell(
                eci=(enb_id << 8) | cell_index,
                pci=rng.randrange(0, 504),
                earfcn=rng.choice(_EARFCNS),
                rsrp_mean=rng.uniform(-112, -80),
            )
            for cell_index in range(rng.randint(1, 3))
        )
        fleet.append(
            _Node(
                node_id=f"an-{index:04d}",
                lat=round(lat0 + rng.uniform(-0.2, 0.2), 6),
                lon=round(lon0 + rng.uniform(-0.2, 0.2), 6),
                cells=cells,
                base_latency_ms=rng.uniform(8, 40),
            )
        )
    return fleet


def _report(node: _Node, cell: _Cell, ts_ms: int, rng: random.Random) -> dict:
    hour = (ts_ms // 3_600_000) % 24
    load = 0.25 + 0.75 * math.sin(math.pi * max(0.0, hour - 6) / 18) ** 2
    rsrp = min(-44.0, max(-139.0, rng.gauss(cell.rsrp_mean, 4)))
    sinr = min(29.0, max(-19.0, (rsrp + 120) * 0.45 + rng.gauss(0, 3)))
    rsrq = min(-3.0, max(-19.5, -19.5 + (sinr + 20) * 0.33 + rng.gauss(0, 1)))
    ues = max(0, round(rng.gauss(40 * load, 5)))
    spectral_efficiency = max(0.1, math.log2(1 + 10 ** (sinr / 10)))
    dl_kbps = ues * rng.uniform(300, 900) * spectral_efficiency / 4
    return {
        "format": WIRE_FORMAT,
        "kind": "radio_kpi",
        "node": node.node_id,
        "ts_ms": ts_ms,
        "cell": {"eci": cell.eci, "pci": cell.pci, "earfcn": cell.earfcn},
        "radio": {"rsrp": round(rsrp, 1), "rsrq": round(rsrq, 1), "sinr": round(sinr, 1)},
        "traffic": {
            "dl_kbps": round(dl_kbps, 1),
            "ul_kbps": round(dl_kbps * rng.uniform(0.1, 0.3), 1),
            "ues": ues,
        },
        "latency_ms": round(node.base_latency_ms * (1 + load) + rng.expovariate(0.2), 1),
        "loc": {"lat": node.lat, "lon": node.lon},
    }


def _corrupt(report: dict, kind: str) -> bytes:
    """Turn a good report into one with a defect of the given kind."""
    if kind == "truncated_json":
        text = json.dumps(report)
        return text[: len(text) // 2].encode()
    if kind == "invalid_utf8":
        return json.dumps(report).encode()[:-2] + b"\xff\xfe}"
    if kind == "empty_message":
        return b""
    bad = json.loads(json.dumps(report))
    if kind == "missing_node":
        del bad["node"]
    elif kind == "rsrp_out_of_range":
        bad["radio"]["rsrp"] = -20.0
    elif kind == "wrong_type":
        bad["traffic"]["ues"] = "many"
    elif kind == "not_a_number":
        bad["radio"]["sinr"] = float("nan")
    elif kind == "negative_ues":
        bad["traffic"]["ues"] = -3
    return json.dumps(bad).encode()


def generate(
    nodes: int,
    duration_s: float,
    rate_hz: float,
    start_ms: int,
    seed: int,
    bad_fraction: float = 0.0,
) -> Iterator[Message]:
    """Yield the fleet's messages in time order: every node reports every ``1/rate_hz`` s."""
    if nodes <= 0 or duration_s <= 0 or rate_hz <= 0:
        raise ValueError("nodes, duration and rate must be positive")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad fraction must be between 0 and 1")
    rng = random.Random(seed)
    fleet = _build_fleet(nodes, rng)
    interval_ms = max(1, round(1000 / rate_hz))
    ticks = max(1, int(duration_s * 1000 // interval_ms))
    for tick in range(ticks):
        ts_ms = start_ms + tick * interval_ms
        for node in fleet:
            for cell in node.cells:
                report = _report(node, cell, ts_ms, rng)
                defect = rng.choice(DEFECT_KINDS) if rng.random() < bad_fraction else None
                value = _corrupt(report, defect) if defect else _encode(report)
                yield Message(node.node_id.encode(), value, ts_ms, defect)


def _encode(report: dict) -> bytes:
    return json.dumps(report, separators=(",", ":")).encode()
