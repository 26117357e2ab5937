"""Simulated subscribers and their data sessions, for the fleet in ``simulator/fleet.py``.

A stable population per fleet: each node has its own home subscribers (plus a few roamers from
other nodes), each with a fixed IMSI, MSISDN, IMEI, Wi-Fi MAC and IP address, so the same person
appears session after session — what makes pseudonym stability and k-anonymity meaningful.
Identifiers look real: IMSI = MCC + MNC + MSIN (15 digits), MSISDN in E.164 digits of the
site's country, IMEI = a real-looking TAC + serial + Luhn check digit, MACs under vendor OUIs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from simulator.messages import WIRE_FORMAT, Message

# Per site of the fleet (in simulator.ground.SITES order): MCC, MNC, country code, mobile prefix.
_NETWORKS = (("262", "01", "49", "151"), ("214", "07", "34", "6"), ("639", "02", "254", "7"))
_NETWORKS += (("334", "020", "52", "55"),)
# Type Allocation Codes of common handsets (8 digits: reporting body + model).
_TACS = ("35332011", "35891211", "35328115", "86012304", "35467410", "35209911", "01332700")
_OUIS = ("3c:22:fb", "f0:18:98", "a4:83:e7", "28:6c:07", "dc:a6:32", "b8:27:eb")
SUBSCRIBERS_PER_NODE = 30
SESSION_PROBABILITY = 0.5  # per cell report: about one session per cell every two intervals


@dataclass(frozen=True)
class Subscriber:
    imsi: str
    msisdn: str
    imei: str
    mac: str
    ipv4: str
    ipv6: str


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for ``digits`` (the IMEI's 15th digit)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_digit(number[:-1]) == number[-1]


def make_subscriber(site: int, rng: random.Random) -> Subscriber:
    mcc, mnc, country, prefix = _NETWORKS[site % len(_NETWORKS)]
    msin_digits = 15 - len(mcc) - len(mnc)
    imsi = mcc + mnc + "".join(rng.choice("0123456789") for _ in range(msin_digits))
    msisdn = country + prefix + "".join(rng.choice("0123456789") for _ in range(12 - len(prefix)))
    body = rng.choice(_TACS) + f"{rng.randrange(1_000_000):06d}"
    mac = rng.choice(_OUIS) + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
    ipv4 = f"100.{64 + rng.randrange(64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    hextets = [f"{rng.randrange(1, 1 << 16):x}" for _ in range(3)]
    ipv6 = f"2001:db8:{hextets[0]}:{hextets[1]}::{hextets[2]}"
    return Subscriber(imsi, msisdn, body + luhn_digit(body), mac, ipv4, ipv6)


class SessionSource:
    """Emits sessions that end at a given time on a node's cells, from a stable population."""

    def __init__(self, fleet: list[Any], rng: random.Random) -> None:
        self.rng = rng
        self.nodes = {node.node_id: node for node in fleet}
        self.population = {
            node.node_id: [make_subscriber(index, rng) for _ in range(SUBSCRIBERS_PER_NODE)]
            for index, node in enumerate(fleet)
        }
        self.everyone = [s for people in self.population.values() for s in people]

    def sessions(self, node_id: str, ts_ms: int, interval_ms: int) -> Iterator[Message]:
        if self.rng.random() >= SESSION_PROBABILITY:
            return
        node = self.nodes[node_id]
        people = self.population[node_id] if self.rng.random() < 0.9 else self.everyone
        who = self.rng.choice(people)
        duration_ms = min(3_600_000, int(self.rng.expovariate(1 / 600_000)) + 1000)
        # Sessions end within the last interval, so a session is reported once it is over.
        end_ms = ts_ms - self.rng.randrange(max(1, interval_ms))
        report = {
            "format": WIRE_FORMAT,
            "kind": "subscriber_session",
            "node": node_id,
            "ts_ms": ts_ms,
            "subscriber": {"imsi": who.imsi, "msisdn": who.msisdn, "imei": who.imei},
            "session": {
                "cell": self.rng.choice(node.cells).eci,
                "start_ms": end_ms - duration_ms,
                "end_ms": end_ms,
                "ue_ip": who.ipv4 if self.rng.random() < 0.7 else who.ipv6,
                "bytes_up": round(duration_ms * self.rng.uniform(2, 40)),
                "bytes_down": round(duration_ms * self.rng.uniform(20, 400)),
            },
        }
        if self.rng.random() < 0.3:  # on Wi-Fi offload the access point sees the device's MAC
            report["subscriber"]["mac"] = who.mac
        value = json.dumps(report, separators=(",", ":")).encode()
        yield Message(node_id.encode(), value, ts_ms)
