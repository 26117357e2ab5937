"""The hybrid network behind the fleet: fiber, microwave and high-altitude relay backhaul.

Around each of the fleet's cities stand two high-altitude platforms (HAPS, ``haps-<city>-a|b``,
class ``high_altitude_relay``) holding station ~20 km up on slow circles, and one gateway
(``gw-<city>``, class ``backhaul``) where the fiber, the microwave hops and the platforms'
feeder links reach the core. Every ground AirNode's backhaul is fiber, a microwave hop, or a
HAPS link; every link reports ``link_kpi`` (TWAMP-like: latency, jitter, loss, capacity, and the
elevation angle towards a platform):

- **weather**: rain cells pass over a city; rain attenuates microwave and HAPS links (dB per
  mm/h, more at low elevation), capacity falls with adaptive modulation, loss rises, and a fade
  beyond the link margin is an outage;
- **handovers**: a node follows the platform higher in its sky; when the other climbs 5° above
  the serving one the node hands over (a short loss burst, the peer changes);
- **outages**: fiber cuts, and platform maintenance, take links down for minutes.

A node's backhaul shows in its radio KPIs (``degrade``): throughput capped by the backhaul's
capacity, latency raised by it, and nothing carried while it is down (and the heartbeat says
``degraded``). Everything is drawn from this module's own random stream, so the radio reports'
other values stay as without it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulator.messages import WIRE_FORMAT

CITY_CODES = ("ber", "mad", "nbo", "mex")  # the fleet's sites, in simulator.ground.SITES order
BACKHAUL_MIX = (("fiber", 0.4), ("microwave", 0.35), ("haps", 0.25))
HAPS_ALTITUDE_KM = 20.0
LINK_EVERY = 5  # ticks between link measurements
HANDOVER_MARGIN_DEG = 5.0
MIN_ELEVATION_DEG = 10.0
FADE_DB_PER_MM_H = {"microwave": 0.35, "haps": 0.25}
FADE_MARGIN_DB = {"microwave": 14.0, "haps": 12.0}
CAPACITY_MBPS = {"fiber": 1000.0, "microwave": 400.0, "haps": 150.0, "feeder": 1200.0}


@dataclass(frozen=True)
class Relay:
    node_id: str
    site: int
    lat: float  # station centre
    lon: float
    radius_km: float
    period_s: float
    phase: float

    def position(self, ts_ms: int) -> tuple[float, float]:
        angle = self.phase + 2 * math.pi * (ts_ms / 1000.0) / self.period_s
        dlat = self.radius_km * math.sin(angle) / 111.0
        dlon = self.radius_km * math.cos(angle) / (111.0 * math.cos(math.radians(self.lat)))
        return round(self.lat + dlat, 6), round(self.lon + dlon, 6)


@dataclass(frozen=True)
class Gateway:
    node_id: str
    site: int
    lat: float
    lon: float


@dataclass
class LinkState:
    """One link's state now."""

    link_id: str
    node_id: str
    kind: str  # fiber | microwave | haps | feeder (a platform's link down to its gateway)
    peer: str
    site: int
    base_latency_ms: float
    down_until_ms: int = 0
    elevation_deg: float | None = None
    fade_db: float = 0.0
    handover: bool = False

    def up(self, ts_ms: int) -> bool:
        margin = FADE_MARGIN_DB.get("haps" if self.kind == "feeder" else self.kind)
        faded_out = margin is not None and self.fade_db > margin
        too_low = self.elevation_deg is not None and self.elevation_deg < MIN_ELEVATION_DEG
        return ts_ms >= self.down_until_ms and not faded_out and not too_low

    def capacity_mbps(self, ts_ms: int) -> float:
        if not self.up(ts_ms):
            return 0.0
        capacity = CAPACITY_MBPS[self.kind]
        if self.elevation_deg is not None:
            capacity *= 0.5 + 0.5 * math.sin(math.radians(self.elevation_deg))
        return capacity * 10 ** (-self.fade_db / 20)  # adaptive modulation steps down


@dataclass
class HybridNetwork:
    """The relays, gateways and links of a fleet, advanced tick by tick."""

    rng: random.Random
    relays: list[Relay] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    links: dict[str, LinkState] = field(default_factory=dict)  # by the reporting node
    rain_mm_h: dict[int, float] = field(default_factory=dict)
    _rain_until: dict[int, int] = field(default_factory=dict)
    _positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    _start_ms: int | None = None

    @classmethod
    def build(cls, ground: list[tuple[str, int, float, float]], seed: int) -> HybridNetwork:
        """``ground``: (node id, site, lat, lon) of each AirNode."""
        rng = random.Random(seed ^ 0xBAC4)
        network = cls(rng)
        sites = sorted({site for _, site, _, _ in ground})
        centres = {site: (lat, lon) for _, site, lat, lon in ground}
        for site in sites:  # some cities start in the rain, so a short run shows fades too
            if rng.random() < 0.35:
                network.rain_mm_h[site] = rng.choice((8.0, 20.0, 45.0))
                network._rain_until[site] = rng.randint(10, 40) * 60_000  # from the first step
        for site in sites:
            lat, lon = centres[site]
            code = CITY_CODES[site % len(CITY_CODES)]
            gateway = Gateway(f"gw-{code}", site, round(lat + 0.05, 6), round(lon - 0.05, 6))
            network.gateways.append(gateway)
            for letter, offset in (("a", -0.12), ("b", 0.12)):
                relay = Relay(
                    f"haps-{code}-{letter}",
                    site,
                    round(lat + offset, 6),
                    round(lon + offset, 6),
                    radius_km=rng.uniform(5, 9),
                    period_s=rng.uniform(1200, 2400),
                    phase=rng.uniform(0, 2 * math.pi),
                )
                network.relays.append(relay)
                network.links[relay.node_id] = LinkState(
                    f"feeder-{relay.node_id}", relay.node_id, "feeder", gateway.node_id, site, 1.2
                )
            network.links[gateway.node_id] = LinkState(
                f"core-{gateway.node_id}", gateway.node_id, "fiber", f"core-{code}", site, 3.0
            )
        for node_id, site, lat, lon in ground:
            kind = _choose(rng, BACKHAUL_MIX)
            code = CITY_CODES[site % len(CITY_CODES)]
            peer = f"gw-{code}" if kind != "haps" else f"haps-{code}-a"
            base = {"fiber": rng.uniform(2, 5), "microwave": rng.uniform(1, 3)}.get(kind, 4.0)
            network.links[node_id] = LinkState(f"bh-{node_id}", node_id, kind, peer, site, base)
            network._positions[node_id] = (lat, lon)
        return network

    def node_classes(self) -> dict[str, str]:
        classes = {r.node_id: "high_altitude_relay" for r in self.relays}
        classes.update({g.node_id: "backhaul" for g in self.gateways})
        return classes

    def locations(self, ts_ms: int) -> dict[str, tuple[float, float]]:
        places = {r.node_id: r.position(ts_ms) for r in self.relays}
        places.update({g.node_id: (g.lat, g.lon) for g in self.gateways})
        return places

    # -- time passes ---------------------------------------------------------------------

    def step(self, ts_ms: int, interval_ms: int) -> None:
        """Advance weather, outages and handovers to ``ts_ms``."""
        hours = interval_ms / 3_600_000
        if self._start_ms is None:  # rain that was falling at the start ends relative to it
            self._start_ms = ts_ms
            self._rain_until = {k: ts_ms + v for k, v in self._rain_until.items()}
        for site in sorted({link.site for link in self.links.values()}):
            if ts_ms >= self._rain_until.get(site, 0):
                self.rain_mm_h[site] = 0.0
                if self.rng.random() < 2.0 * hours:  # about two showers a day per city
                    self.rain_mm_h[site] = self.rng.choice((3.0, 8.0, 20.0, 45.0))
                    self._rain_until[site] = ts_ms + self.rng.randint(5, 30) * 60_000
        relays = {r.node_id: r for r in self.relays}
        for link in self.links.values():
            if link.down_until_ms <= ts_ms and self.rng.random() < 0.3 * hours:
                link.down_until_ms = ts_ms + self.rng.randint(2, 10) * 60_000  # a cut, an outage
            link.handover = False
            if link.kind == "haps":
                self._follow_platforms(link, relays, ts_ms)
            elif link.kind == "feeder":
                gateway = next(g for g in self.gateways if g.node_id == link.peer)
                lat, lon = relays[link.node_id].position(ts_ms)
                link.elevation_deg = _elevation(gateway.lat, gateway.lon, lat, lon)
            rain = self.rain_mm_h.get(link.site, 0.0)
            per_mm = FADE_DB_PER_MM_H.get("haps" if link.kind == "feeder" else link.kind, 0.0)
            slant = 1.0
            if link.elevation_deg is not None:
                slant = 1 / max(0.2, math.sin(math.radians(link.elevation_deg)))
            link.fade_db = rain * per_mm * slant

    def _follow_platforms(self, link: LinkState, relays: dict[str, Relay], ts_ms: int) -> None:
        lat, lon = self._positions[link.node_id]
        code = CITY_CODES[link.site % len(CITY_CODES)]
        sky = {
            name: _elevation(lat, lon, *relays[name].position(ts_ms))
            for name in (f"haps-{code}-a", f"haps-{code}-b")
        }
        best = max(sky, key=sky.__getitem__)
        if best != link.peer and sky[best] > sky[link.peer] + HANDOVER_MARGIN_DEG:
            link.peer, link.handover = best, True
        link.elevation_deg = round(sky[link.peer], 2)
        serving = self.links[link.peer]
        if not serving.up(ts_ms):  # the platform itself is down: so is every link through it
            link.down_until_ms = max(link.down_until_ms, serving.down_until_ms)

    # -- what the nodes report -----------------------------------------------------------

    def link_report(self, node_id: str, ts_ms: int) -> dict:
        """The ``rda.node.v1`` ``link_kpi`` report of ``node_id``'s link."""
        link = self.links[node_id]
        up = link.up(ts_ms)
        sent = 100
        loss = 0.0
        if up:
            burst = self.rng.uniform(2, 6) if link.handover else 0.0
            loss = round(min(100.0, 0.02 + link.fade_db * 0.15 + burst), 2)
        received = round(sent * (1 - loss / 100)) if up else 0
        rtt = link.base_latency_ms + link.fade_db * 0.4 + self.rng.expovariate(2.0)
        if link.kind in ("haps", "feeder"):
            rtt += 2 * _slant_km(link.elevation_deg or 90.0) / 300.0 + 3.0
        body = {
            "id": link.link_id,
            "type": "haps" if link.kind == "feeder" else link.kind,
            "peer": link.peer,
            "protocol": "twamp",
            "sent": sent,
            "received": received,
            "loss_pct": 100.0 if not up else loss,
            "capacity_mbps": round(link.capacity_mbps(ts_ms), 1),
        }
        if link.elevation_deg is not None:
            body["elevation_deg"] = round(link.elevation_deg, 2)
        if up and received:
            jitter = self.rng.uniform(0.05, 0.6) + link.fade_db * 0.05
            body.update(
                rtt_avg_ms=round(rtt, 3),
                rtt_min_ms=round(rtt * 0.8, 3),
                rtt_max_ms=round(rtt * 1.3 + jitter, 3),
                jitter_ms=round(jitter, 3),
            )
        return {"format": WIRE_FORMAT, "kind": "link_kpi", "node": node_id, "ts_ms": ts_ms} | {
            "link": body
        }

    def degrade(self, report: dict, ts_ms: int) -> dict:
        """A ground node's radio report as its backhaul lets it be."""
        link = self.links.get(report.get("node", ""))
        if link is None or report.get("kind") != "radio_kpi":
            return report
        traffic = report["traffic"]
        if not link.up(ts_ms):
            traffic["dl_kbps"], traffic["ul_kbps"] = 0.0, 0.0
            report["latency_ms"] = round(3000.0 + self.rng.uniform(0, 2000), 1)
            return report
        cap_kbps = link.capacity_mbps(ts_ms) * 1000
        traffic["dl_kbps"] = round(min(traffic["dl_kbps"], cap_kbps), 1)
        traffic["ul_kbps"] = round(min(traffic["ul_kbps"], cap_kbps / 4), 1)
        report["latency_ms"] = round(report["latency_ms"] + link.fade_db * 0.8, 1)
        return report

    def backhaul_down(self, node_id: str, ts_ms: int) -> bool:
        link = self.links.get(node_id)
        return link is not None and not link.up(ts_ms)

    def own_reports(self, ts_ms: int, tick: int, heartbeat_every: int) -> list[tuple[str, dict]]:
        """What the platforms and gateways report at this tick: (node id, report)."""
        reports = []
        for relay in self.relays:
            if tick % LINK_EVERY == 0:
                reports.append((relay.node_id, self.link_report(relay.node_id, ts_ms)))
            if tick % heartbeat_every == 0:
                reports.append((relay.node_id, self._relay_heartbeat(relay, ts_ms, tick)))
        for gateway in self.gateways:
            if tick % LINK_EVERY == 0:
                reports.append((gateway.node_id, self.link_report(gateway.node_id, ts_ms)))
        return reports

    def _relay_heartbeat(self, relay: Relay, ts_ms: int, tick: int) -> dict:
        lat, lon = relay.position(ts_ms)
        hour = (ts_ms // 3_600_000) % 24
        daylight = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
        down = not self.links[relay.node_id].up(ts_ms)
        return {
            "format": WIRE_FORMAT,
            "kind": "node_heartbeat",
            "node": relay.node_id,
            "ts_ms": ts_ms,
            "status": "degraded" if down else "online",
            "uptime_s": 30 * 86_400 + tick,
            "power": {"source": "solar", "battery_pct": round(40 + 55 * daylight, 1)},
            "temp_c": round(-50 + 10 * daylight + self.rng.gauss(0, 1), 1),
            "fw": "haps-1.3.0",
            "loc": {"lat": lat, "lon": lon, "source": "gps"},
        }


def _choose(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    draw, total = rng.random(), 0.0
    for name, weight in weighted:
        total += weight
        if draw < total:
            return name
    return weighted[-1][0]


def _ground_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6371.0 * math.hypot(x, y)


def _elevation(lat: float, lon: float, relay_lat: float, relay_lon: float) -> float:
    """Elevation angle (degrees) of a platform ``HAPS_ALTITUDE_KM`` up, seen from the ground."""
    return math.degrees(math.atan2(HAPS_ALTITUDE_KM, _ground_km(lat, lon, relay_lat, relay_lon)))


def _slant_km(elevation_deg: float) -> float:
    return HAPS_ALTITUDE_KM / max(0.05, math.sin(math.radians(elevation_deg)))
