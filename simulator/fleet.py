"""A simulated fleet of community-run 4G nodes publishing radio telemetry to Kafka.

Each node sits at a fixed site with one to three cells and reports per-cell KPIs at a fixed
interval, a heartbeat every 10 intervals and a speed test every 30. Load follows the time of
day; signal quality drifts around a per-cell mean; throughput depends on load and SINR; solar
sites' batteries follow the sun. Output is deterministic for a given seed and start time.

Wire format (``rda.node.v1``, one JSON object per message, keyed by node id)::

    {"format": "rda.node.v1", "kind": "radio_kpi", "node": "an-0007", "ts_ms": 1764032523000,
     "cell": {"eci": 5378371, "pci": 101, "earfcn": 1850, "band": "B3"},
     "radio": {"rsrp": -95.5, "rsrq": -10.5, "sinr": 12.3},
     "traffic": {"dl_kbps": 45000.0, "ul_kbps": 8000.0, "ues": 12, "prb_pct": 41.5},
     "latency_ms": 23.4, "loc": {"lat": 52.52, "lon": 13.405}}
    {"format": "rda.node.v1", "kind": "node_heartbeat", "node": "an-0007", "ts_ms": ...,
     "status": "online", "uptime_s": 86400, "power": {"source": "solar", "battery_pct": 87.5},
     "temp_c": 31.2, "fw": "2.4.1", "loc": {"lat": 52.52, "lon": 13.405, "source": "gps"}}
    {"format": "rda.node.v1", "kind": "speed_test", "node": "an-0007", "ts_ms": ...,
     "speed": {"down_bps": 6250000, "up_bps": 1250000, "latency_ms": 21.0, "jitter_ms": 2.1,
               "server": "speed.example.net"}, "loc": {"lat": 52.52, "lon": 13.405}}

    {"format": "rda.node.v1", "kind": "subscriber_session", "node": "an-0007", "ts_ms": ...,
     "subscriber": {"imsi": "262011234567890", "msisdn": "4915112345678",
                    "imei": "353320110123457", "mac": "3c:22:fb:12:34:56"},
     "session": {"cell": 2560001, "start_ms": ..., "end_ms": ..., "ue_ip": "100.64.12.7",
                 "bytes_up": 120000, "bytes_down": 4200000}}

Subscriber sessions (``sessions=True``; see ``simulator/subscribers.py``) come from a stable
population, so the same subscriber shows up again and again, as in a real network.

Defects (``bad_fraction``) are injected into radio reports only, one defect per bad message.
With another ``wire_format`` (see ``simulator/formats.py``) the radio reports are rendered in that
vendor's format and only the byte-level defects apply; heartbeats and speed tests stay native.
With ``mlab.ndt7`` the speed tests are rendered as M-Lab NDT7 results (``simulator/ndt7.py``).
Quality defects (``quality_fraction``, ``QUALITY_DEFECTS``) are well-formed reports that a
quality check must catch: teleports, flat lines, clock skew, implausible SINR, counter resets.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulator import ndt7
from simulator.formats import ENCODERS
from simulator.messages import WIRE_FORMAT, Message, encode_report
from simulator.quality_defects import QualityInjector
from simulator.subscribers import SessionSource

# Cities the fleet is scattered around (lat, lon): sites are jittered within ~20 km.
_SITES = ((52.52, 13.405), (40.4168, -3.7038), (-1.2921, 36.8219), (19.4326, -99.1332))
_BANDS = {1850: "B3", 3050: "B7", 6300: "B20", 9410: "B28"}  # EARFCN -> E-UTRA band
HEARTBEAT_EVERY, SPEED_TEST_EVERY = 10, 30
# What ``generate`` can emit: the native format, the vendors' (radio reports) and NDT7 (each
# speed test as the download and upload results M-Lab's server would have archived).
SIMULATED_FORMATS = (WIRE_FORMAT, *ENCODERS, ndt7.WIRE_FORMAT)

DEFECT_KINDS = (
    "truncated_json",
    "invalid_utf8",
    "empty_message",
    "missing_node",
    "rsrp_out_of_range",
    "wrong_type",
    "not_a_number",
    "negative_ues",
    "duplicate",
)


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
    solar: bool


def _build_fleet(nodes: int, rng: random.Random) -> list[_Node]:
    fleet = []
    for index in range(nodes):
        lat0, lon0 = _SITES[index % len(_SITES)]
        enb_id = 10_000 + index  # 20-bit eNB id; ECI = eNB id << 8 | cell index
        cells = tuple(
            _Cell(
                eci=(enb_id << 8) | cell_index,
                pci=rng.randrange(0, 504),
                earfcn=rng.choice(tuple(_BANDS)),
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
                solar=rng.random() < 0.4,
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
        "cell": {
            "eci": cell.eci,
            "pci": cell.pci,
            "earfcn": cell.earfcn,
            "band": _BANDS[cell.earfcn],
        },
        "radio": {"rsrp": round(rsrp, 1), "rsrq": round(rsrq, 1), "sinr": round(sinr, 1)},
        "traffic": {
            "dl_kbps": round(dl_kbps, 1),
            "ul_kbps": round(dl_kbps * rng.uniform(0.1, 0.3), 1),
            "ues": ues,
            "prb_pct": round(min(100.0, 100 * load * rng.uniform(0.5, 1.1)), 1),
        },
        "latency_ms": round(node.base_latency_ms * (1 + load) + rng.expovariate(0.2), 1),
        "loc": {"lat": node.lat, "lon": node.lon},
    }


def _heartbeat(node: _Node, ts_ms: int, start_ms: int, rng: random.Random) -> dict:
    hour = (ts_ms // 3_600_000) % 24
    daylight = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
    return {
        "format": WIRE_FORMAT,
        "kind": "node_heartbeat",
        "node": node.node_id,
        "ts_ms": ts_ms,
        "status": "online" if rng.random() > 0.02 else "degraded",
        "uptime_s": 86_400 + (ts_ms - start_ms) // 1000,
        "power": {
            "source": "solar" if node.solar else "grid",
            "battery_pct": round(min(100.0, 35 + 60 * daylight + rng.uniform(0, 5)), 1)
            if node.solar
            else None,
        },
        "temp_c": round(18 + 15 * daylight + rng.gauss(0, 1.5), 1),
        "fw": "2.4.1",
        "loc": {"lat": node.lat, "lon": node.lon, "source": "gps"},
    }


def _speed_test(node: _Node, ts_ms: int, rng: random.Random) -> dict:
    down_mbps = rng.uniform(15, 120)
    return {
        "format": WIRE_FORMAT,
        "kind": "speed_test",
        "node": node.node_id,
        "ts_ms": ts_ms,
        "speed": {
            "down_bps": round(down_mbps * 125_000),  # bytes/s, as Helium reports them
            "up_bps": round(down_mbps * rng.uniform(0.1, 0.4) * 125_000),
            "latency_ms": round(node.base_latency_ms + rng.expovariate(0.3), 1),
            "jitter_ms": round(rng.uniform(0.5, 6), 1),
            "server": "speedtest.rda.example",
        },
        "loc": {"lat": node.lat, "lon": node.lon},
    }


def _corrupt(report: dict, kind: str, previous: dict | None) -> bytes:
    """Turn a good report into one with a defect of the given kind."""
    if kind == "duplicate":  # the cell's previous report sent again (a retrying node)
        return encode_report(previous or report)
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


BYTE_DEFECTS = ("truncated_json", "invalid_utf8", "empty_message")


def generate(
    nodes: int,
    duration_s: float,
    rate_hz: float,
    start_ms: int,
    seed: int,
    bad_fraction: float = 0.0,
    wire_format: str = WIRE_FORMAT,
    sessions: bool = False,
    quality_fraction: float = 0.0,
) -> Iterator[Message]:
    """Yield the fleet's messages in time order: every node reports every ``1/rate_hz`` s."""
    if nodes <= 0 or duration_s <= 0 or rate_hz <= 0:
        raise ValueError("nodes, duration and rate must be positive")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad fraction must be between 0 and 1")
    if not 0.0 <= quality_fraction <= 1.0:
        raise ValueError("quality defect fraction must be between 0 and 1")
    if sessions or quality_fraction:
        if wire_format != WIRE_FORMAT:
            raise ValueError(f"sessions and quality defects are emitted in {WIRE_FORMAT} only")
        yield from _with_extras(
            nodes, duration_s, rate_hz, start_ms, seed, bad_fraction, sessions, quality_fraction
        )
        return
    if wire_format != WIRE_FORMAT:
        yield from _in_format(nodes, duration_s, rate_hz, start_ms, seed, bad_fraction, wire_format)
        return
    yield from _plain(nodes, duration_s, rate_hz, start_ms, seed, bad_fraction)


def _plain(
    nodes: int, duration_s: float, rate_hz: float, start_ms: int, seed: int, bad_fraction: float
) -> Iterator[Message]:
    """Radio reports of every cell each tick, heartbeats and speed tests, some made defective."""
    rng = random.Random(seed)
    fleet = _build_fleet(nodes, rng)
    interval_ms = max(1, round(1000 / rate_hz))
    ticks = max(1, int(duration_s * 1000 // interval_ms))
    last_good: dict[int, dict] = {}
    for tick in range(ticks):
        ts_ms = start_ms + tick * interval_ms
        for node in fleet:
            for cell in node.cells:
                report = _report(node, cell, ts_ms, rng)
                defect = rng.choice(DEFECT_KINDS) if rng.random() < bad_fraction else None
                if defect == "duplicate" and cell.eci not in last_good:
                    defect = "truncated_json"  # nothing to repeat yet
                value = (
                    _corrupt(report, defect, last_good.get(cell.eci))
                    if defect
                    else encode_report(report)
                )
                if defect is None:
                    last_good[cell.eci] = report
                yield Message(node.node_id.encode(), value, ts_ms, defect)
            if tick % HEARTBEAT_EVERY == 0:
                heartbeat = _heartbeat(node, ts_ms, start_ms, rng)
                yield Message(node.node_id.encode(), encode_report(heartbeat), ts_ms)
            if tick % SPEED_TEST_EVERY == 0:
                yield Message(
                    node.node_id.encode(), encode_report(_speed_test(node, ts_ms, rng)), ts_ms
                )


def _in_format(
    nodes: int,
    duration_s: float,
    rate_hz: float,
    start_ms: int,
    seed: int,
    bad_fraction: float,
    wire_format: str,
) -> Iterator[Message]:
    """The fleet's radio reports (speed tests, for NDT7) rendered in another wire format."""
    if wire_format not in SIMULATED_FORMATS:
        known = ", ".join(SIMULATED_FORMATS)
        raise ValueError(f"the simulator cannot emit {wire_format!r} (known: {known})")
    kind = "speed_test" if wire_format == ndt7.WIRE_FORMAT else "radio_kpi"
    rng = random.Random(seed ^ 0x5EED)
    for message in generate(nodes, duration_s, rate_hz, start_ms, seed):
        report = json.loads(message.value)
        if report["kind"] != kind:
            continue
        if kind == "speed_test":
            values = ndt7.from_speed_test(report, rng)
        else:
            values = [ENCODERS[wire_format](report, rng)]
        for value in values:
            defect = None
            if rng.random() < bad_fraction:
                defect = rng.choice(BYTE_DEFECTS)
                value = {
                    "truncated_json": value[: len(value) // 2],
                    "empty_message": b"",
                    "invalid_utf8": value[:-2] + b"\xff\xfe",
                }[defect]
            yield Message(message.key, value, message.timestamp_ms, defect, wire_format)


def _with_extras(
    nodes: int,
    duration_s: float,
    rate_hz: float,
    start_ms: int,
    seed: int,
    bad_fraction: float,
    sessions: bool,
    quality_fraction: float,
) -> Iterator[Message]:
    """The plain fleet, with quality defects and subscriber sessions woven in.

    Both draw from their own random streams, so the plain reports stay exactly as without them.
    """
    fleet = _build_fleet(nodes, random.Random(seed))
    injector = QualityInjector(random.Random(seed ^ 0xDEFEC7), quality_fraction, start_ms)
    source = SessionSource(fleet, random.Random(seed ^ 0x5E55)) if sessions else None
    interval_ms = max(1, round(1000 / rate_hz))
    for message in generate(nodes, duration_s, rate_hz, start_ms, seed, bad_fraction):
        if message.defect is None:
            message = injector.apply(message)
        yield message
        if source is not None and message.defect is None and _is_radio(message):
            yield from source.sessions(message.key.decode(), message.timestamp_ms, interval_ms)


def _is_radio(message: Message) -> bool:
    return b'"kind":"radio_kpi"' in message.value
