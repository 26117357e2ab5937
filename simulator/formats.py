"""The fleet's telemetry in other vendors' wire formats, so every adapter can be exercised.

Each encoder takes the fleet's native radio report (``rda.node.v1``, see ``simulator/fleet.py``) and
renders what another kind of equipment would have sent for the same measurement:

- ``gnmi.json``: an OpenConfig/gNMI ``SubscribeResponse`` as JSON (gnmic's output shape), the
  cell's O-RAN E2SM-KPM / 3GPP TS 28.552 counters under ``/cell[eci=…]``, timestamps in ns;
- ``ems.csv``: a legacy element manager's CSV export (header line + one line per report);
- ``ripe.atlas.result``: a RIPE Atlas ping result (firmware 4790 shape) of the node's probe
  towards a measurement anchor (one measurement per cell), with the node's latency as RTTs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

GNMI, CSV, RIPE = "gnmi.json", "ems.csv", "ripe.atlas.result"

CSV_HEADER = (
    "NE Name,Start Time,ECI,PCI,EARFCN,RSRP (dBm),RSRQ (dB),SINR (dB),DL Throughput (kbps),"
    "UL Throughput (kbps),PRB Usage (%),Active UEs,Latency (ms)"
)


def to_gnmi(report: dict, rng: random.Random) -> bytes:
    """A gNMI notification updating the cell's KPM counters."""
    counters = {
        "DRB.UEThpDl": {"doubleVal": report["traffic"]["dl_kbps"]},
        "DRB.UEThpUl": {"doubleVal": report["traffic"]["ul_kbps"]},
        "RRU.PrbUsedDl": {"uintVal": str(round(report["traffic"]["prb_pct"]))},
        "RRU.PrbTotDl": {"uintVal": "100"},
        "RRC.ConnMean": {"uintVal": str(report["traffic"]["ues"])},
        "rsrp": {"doubleVal": report["radio"]["rsrp"]},
        "rsrq": {"doubleVal": report["radio"]["rsrq"]},
        "sinr": {"doubleVal": report["radio"]["sinr"]},
        "pci": {"uintVal": str(report["cell"]["pci"])},
        "earfcn": {"uintVal": str(report["cell"]["earfcn"])},
    }
    notification = {
        "timestamp": str(report["ts_ms"] * 1_000_000),  # proto3 JSON: int64 as a string
        "prefix": {
            "origin": "o-ran",
            "target": report["node"],
            "elem": [{"name": "cell", "key": {"eci": str(report["cell"]["eci"])}}],
        },
        "update": [
            {"path": {"elem": [{"name": name}]}, "val": value} for name, value in counters.items()
        ],
    }
    return json.dumps({"update": notification}, separators=(",", ":")).encode()


def to_csv(report: dict, rng: random.Random) -> bytes:
    """A one-line CSV export of the report, as an element manager would write it."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(report["ts_ms"] / 1000, tz=timezone.utc)
    line = ",".join(
        str(v)
        for v in (
            report["node"],
            when.strftime("%Y-%m-%d %H:%M:%S"),
            report["cell"]["eci"],
            report["cell"]["pci"],
            report["cell"]["earfcn"],
            report["radio"]["rsrp"],
            report["radio"]["rsrq"],
            report["radio"]["sinr"],
            report["traffic"]["dl_kbps"],
            report["traffic"]["ul_kbps"],
            report["traffic"]["prb_pct"],
            report["traffic"]["ues"],
            report["latency_ms"],
        )
    )
    return f"{CSV_HEADER}\r\n{line}\r\n".encode()


def to_ripe_ping(report: dict, rng: random.Random) -> bytes:
    """A RIPE Atlas ping result from the node's probe (its id derived from the node id)."""
    probe = 10_000 + int(report["node"].rsplit("-", 1)[-1])
    rtts = [round(report["latency_ms"] * rng.uniform(0.9, 1.1), 3) for _ in range(3)]
    lost = rng.random() < 0.05
    result = [{"rtt": r} for r in rtts] if not lost else [{"x": "*"}, {"rtt": rtts[0]}, {"x": "*"}]
    answered = [r["rtt"] for r in result if "rtt" in r]
    document = {
        "af": 4,
        "dst_addr": "193.0.14.129",
        "dst_name": "k.root-servers.net",
        "dup": 0,
        "from": f"198.51.100.{probe % 250 + 1}",
        "fw": 4790,
        "lts": 20,
        # One measurement per cell's anchor, so a node's cells do not repeat one natural key.
        "msm_id": 1_000_000 + report["cell"]["eci"] % 1_000_000,
        "msm_name": "Ping",
        "prb_id": probe,
        "proto": "ICMP",
        "rcvd": len(answered),
        "result": result,
        "sent": 3,
        "size": 48,
        "src_addr": f"192.168.{probe % 250}.2",
        "step": 240,
        "timestamp": report["ts_ms"] // 1000,
        "ttl": 54,
        "type": "ping",
        "avg": round(sum(answered) / len(answered), 3),
        "min": min(answered),
        "max": max(answered),
    }
    return json.dumps(document, separators=(",", ":")).encode()


ENCODERS: dict[str, Callable[[dict, random.Random], bytes]] = {
    GNMI: to_gnmi,
    CSV: to_csv,
    RIPE: to_ripe_ping,
}
