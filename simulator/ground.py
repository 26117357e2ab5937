"""The simulated fleet's ground AirNodes and what each reports: cells, radio KPIs, heartbeats
and speed tests in ``rda.node.v1`` (``simulator/fleet.py`` turns them into message streams)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.messages import WIRE_FORMAT

# Cities the fleet is scattered around (lat, lon): sites are jittered within ~20 km.
SITES = ((52.52, 13.405), (40.4168, -3.7038), (-1.2921, 36.8219), (19.4326, -99.1332))
BANDS = {1850: "B3", 3050: "B7", 6300: "B20", 9410: "B28"}  # EARFCN -> E-UTRA band


@dataclass(frozen=True)
class Cell:
    eci: int
    pci: int
    earfcn: int
    rsrp_mean: float


@dataclass(frozen=True)
class GroundNode:
    node_id: str
    lat: float
    lon: float
    cells: tuple[Cell, ...]
    base_latency_ms: float
    solar: bool


def build_fleet(nodes: int, rng: random.Random) -> list[GroundNode]:
    fleet = []
    for index in range(nodes):
        lat0, lon0 = SITES[index % len(SITES)]
        enb_id = 10_000 + index  # 20-bit eNB id; ECI = eNB id << 8 | cell index
        cells = tuple(
            Cell(
                eci=(enb_id << 8) | cell_index,
                pci=rng.randrange(0, 504),
                earfcn=rng.choice(tuple(BANDS)),
                rsrp_mean=rng.uniform(-112, -80),
            )
            for cell_index in range(rng.randint(1, 3))
        )
        fleet.append(
            GroundNode(
                node_id=f"an-{index:04d}",
                lat=round(lat0 + rng.uniform(-0.2, 0.2), 6),
                lon=round(lon0 + rng.uniform(-0.2, 0.2), 6),
                cells=cells,
                base_latency_ms=rng.uniform(8, 40),
                solar=rng.random() < 0.4,
            )
        )
    return fleet


def radio_report(node: GroundNode, cell: Cell, ts_ms: int, rng: random.Random) -> dict:
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
            "band": BANDS[cell.earfcn],
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


def heartbeat_report(node: GroundNode, ts_ms: int, start_ms: int, rng: random.Random) -> dict:
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


def speed_test_report(node: GroundNode, ts_ms: int, rng: random.Random) -> dict:
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
