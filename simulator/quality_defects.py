"""Quality defects for the simulated fleet: well-formed reports that are wrong.

Unlike the byte and schema defects in ``simulator/fleet.py`` these decode fine; only the quality
checks in ``validators/quality.py`` can catch them. Each defective message is marked with its
kind (``Message.defect``), so tests can check every one is caught at its expected level.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace

from simulator.messages import Message

# Well-formed but wrong: what the quality checks in validators/quality.py must catch.
QUALITY_DEFECTS = (
    "teleport",  # one report from ~5,000 km away
    "flat_line",  # a cell's radio values stuck for FLAT_LINE_REPORTS reports
    "clock_skew",  # event time an hour ahead of ingest
    "late",  # event time two hours behind ingest
    "implausible_sinr",  # excellent SINR at the noise floor's RSRP
    "counter_reset",  # the node reboots: its uptime counter restarts
)
FLAT_LINE_REPORTS = 8

_RADIO_DEFECTS = tuple(d for d in QUALITY_DEFECTS if d != "counter_reset")


@dataclass
class _Stuck:
    radio: dict
    left: int


class QualityInjector:
    """Applies one quality defect to a fraction of the clean radio reports and heartbeats."""

    def __init__(self, rng: random.Random, fraction: float, start_ms: int) -> None:
        self.rng = rng
        self.fraction = fraction
        self.start_ms = start_ms
        self.stuck: dict[int, _Stuck] = {}  # cell -> the radio values it repeats
        self.uptime_offset: dict[str, int] = {}  # node -> seconds lost to reboots

    def apply(self, message: Message) -> Message:
        if not self.fraction:
            return message
        report = json.loads(message.value)
        kind = report["kind"]
        if kind == "node_heartbeat":
            return self._heartbeat(message, report)
        if kind != "radio_kpi":
            return message
        eci = report["cell"]["eci"]
        if eci in self.stuck:
            return self._continue_flat_line(message, report, eci)
        if self.rng.random() >= self.fraction:
            return message
        defect = self.rng.choice(_RADIO_DEFECTS)
        if defect == "flat_line":
            self.stuck[eci] = _Stuck(dict(report["radio"]), FLAT_LINE_REPORTS - 1)
        elif defect == "teleport":
            report["loc"]["lat"] = round(
                report["loc"]["lat"] + (45 if report["loc"]["lat"] < 0 else -45), 6
            )
        elif defect == "clock_skew":
            report["ts_ms"] += 3_600_000
        elif defect == "late":
            report["ts_ms"] -= 2 * 3_600_000
        elif defect == "implausible_sinr":
            report["radio"].update(rsrp=-128.0, sinr=25.0)
        return _remade(message, report, defect)

    def _continue_flat_line(self, message: Message, report: dict, eci: int) -> Message:
        stuck = self.stuck[eci]
        report["radio"] = dict(stuck.radio)
        stuck.left -= 1
        if not stuck.left:
            del self.stuck[eci]
        return _remade(message, report, "flat_line")

    def _heartbeat(self, message: Message, report: dict) -> Message:
        node = report["node"]
        defect = None
        if report["ts_ms"] > self.start_ms and self.rng.random() < self.fraction:
            # The node rebooted a minute ago: its uptime restarts from 60 s.
            self.uptime_offset[node] = report["uptime_s"] - 60
            defect = "counter_reset"
        report["uptime_s"] -= self.uptime_offset.get(node, 0)
        return _remade(message, report, defect) if node in self.uptime_offset else message


def _remade(message: Message, report: dict, defect: str | None) -> Message:
    value = json.dumps(report, separators=(",", ":")).encode()
    return replace(message, value=value, defect=defect)
