"""M-Lab NDT7 results as ndt-server archives them, one JSON object per subtest.

Written from M-Lab's documentation of the format (ndt-server ``spec/ndt7-protocol.md`` and
``spec/data-format.md``, the ``data.NDT7Result`` and ``model.ArchivalData`` structures), for
tests and benchmarks; addresses come from the documentation ranges (RFC 5737, RFC 3849).
Three server generations, whose field sets differ:

- ``v0.12.0`` (2019): snake-case measurements — the server's carry ``elapsed`` (s),
  ``bbr_info`` (``max_bandwidth`` bit/s, ``min_rtt`` ms) and ``tcp_info`` (``smoothed_rtt``,
  ``rtt_var``, ms) but no byte counts; the client's carry ``app_info.num_bytes``;
- ``v0.14.2`` (2020): CamelCase — ``TCPInfo`` with the kernel's whole ``tcp_info``
  (``BytesAcked``, ``BytesReceived``, ``BytesSent``, ``BytesRetrans``, ``MinRTT`` µs,
  ``ElapsedTime`` µs…), ``BBRInfo`` (``MaxBandwidth``, ``MinRTT``, ``ElapsedTime``);
- ``v0.20.17`` (2022): the same with ``ConnectionInfo`` (the client's address and port) in every
  snapshot, ``BBRInfo`` ``BW``/``PacingGain``/``CwndGain``, ``ServerMetadata``, and an
  ``access_token`` (a JWT issued for the server machine) in ``ClientMetadata``.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from simulator.messages import Message

WIRE_FORMAT = "mlab.ndt7"
VERSIONS = ("v0.12.0", "v0.14.2", "v0.20.17")
_SITES = ("lga03", "par02", "syd03", "nbo01", "mex02", "ams08")
_CLIENTS = ("ndt7-client-go-cmd", "speed-measurementlab-net", "ist", "ndt7-js")


@dataclass(frozen=True)
class Ndt7Test:
    """What one subtest measured, and who ran it: the input of ``result``."""

    direction: str  # "download" or "upload"
    uuid: str
    start_ms: int
    seconds: float
    mbps: float
    min_rtt_ms: float
    retransmit_pct: float
    client_ip: str
    client_port: int
    server_ip: str = "192.0.2.10"
    version: str = "v0.20.17"
    site: str = "lga03"
    client_name: str = "ndt7-client-go-cmd"
    snapshots: int = 25
    utc_offset_h: int = 0  # times written with this offset (the spec's example uses -04:00)


def result(test: Ndt7Test) -> dict:
    """The NDT7 result document ndt-server writes for ``test``."""
    start = datetime.fromtimestamp(test.start_ms / 1000, tz=timezone.utc)
    end = start + timedelta(seconds=test.seconds)
    subtest = {
        "UUID": test.uuid,
        "StartTime": _rfc3339(start, test.utc_offset_h, 744),
        "EndTime": _rfc3339(end, test.utc_offset_h, 215),
        "ServerMeasurements": [_server(test, i) for i in range(1, test.snapshots + 1)],
        "ClientMeasurements": _client(test),
        "ClientMetadata": _metadata(test),
    }
    if _generation(test) >= (0, 20):
        subtest["ServerMetadata"] = [
            {"Name": "deployment", "Value": "stable"},
            {"Name": "type", "Value": "physical"},
        ]
    return {
        "GitShortCommit": "65ed3f0",
        "Version": test.version,
        "ServerIP": test.server_ip,
        "ServerPort": 443,
        "ClientIP": test.client_ip,
        "ClientPort": test.client_port,
        "StartTime": _rfc3339(start, test.utc_offset_h, 214),
        "EndTime": _rfc3339(end, test.utc_offset_h, 61),
        test.direction.capitalize(): subtest,
    }


def encode(document: dict) -> bytes:
    """As ndt-server writes it: Go's ``encoding/json``, compact."""
    return json.dumps(document, separators=(",", ":")).encode()


def tests(count: int, start_ms: int, seed: int) -> Iterator[Ndt7Test]:
    """``count`` subtests by a population of clients, alternating download and upload, from
    every server generation, one every 7 s."""
    rng = random.Random(seed)
    for number in range(count):
        version = VERSIONS[number % len(VERSIONS)]
        v6 = rng.random() < 0.3
        client = f"2001:db8:{rng.randrange(1, 999):x}::{rng.randrange(1, 9999):x}" if v6 else (
            f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randrange(1, 254)}"
        )  # fmt: skip
        site = rng.choice(_SITES)
        yield Ndt7Test(
            direction=("download", "upload")[number % 2],
            uuid=f"ndt-{site[:3]}{number % 97:02d}_1764000000_{number:016X}",
            start_ms=start_ms + number * 7_000,
            seconds=round(rng.uniform(9.5, 10.6), 6),
            mbps=rng.uniform(2, 400),
            min_rtt_ms=rng.uniform(2, 120),
            retransmit_pct=rng.uniform(0, 6),
            client_ip=client,
            client_port=rng.randrange(1024, 65535),
            version=version,
            site=site,
            client_name=rng.choice(_CLIENTS),
            snapshots=rng.randrange(20, 40),
        )


def messages(count: int, start_ms: int, seed: int) -> Iterator[Message]:
    """``tests`` as Kafka messages, keyed by test UUID, stamped when the test ended."""
    for test in tests(count, start_ms, seed):
        ended = test.start_ms + round(test.seconds * 1000)
        yield Message(test.uuid.encode(), encode(result(test)), ended, None, WIRE_FORMAT)


def from_speed_test(report: dict, rng: random.Random) -> list[bytes]:
    """A node's speed test (``rda.node.v1``) as the two NDT7 results it would have made."""
    speed = report["speed"]
    number = int(report["node"].rsplit("-", 1)[-1])
    base = Ndt7Test(
        direction="download",
        uuid=f"ndt-{report['node']}_{report['ts_ms'] // 1000}_{0:016X}",
        start_ms=report["ts_ms"],
        seconds=10.0,
        mbps=speed["down_bps"] * 8 / 1e6,
        min_rtt_ms=speed["latency_ms"],
        retransmit_pct=round(rng.uniform(0, 3), 3),
        client_ip=f"198.51.100.{number % 250 + 1}",
        client_port=rng.randrange(1024, 65535),
        snapshots=12,
    )
    upload = replace(
        base,
        direction="upload",
        uuid=base.uuid[:-1] + "1",
        start_ms=base.start_ms + 11_000,
        mbps=speed["up_bps"] * 8 / 1e6,
    )
    return [encode(result(base)), encode(result(upload))]


def access_token(machine: str) -> str:
    """An access token as M-Lab's locate service issues it: a JWT whose audience is the
    machine the test may run on (signed by locate; the signature here is made up)."""
    header = {"alg": "EdDSA", "kid": "locate_20200409"}
    claims = {"aud": [machine], "exp": 1_764_003_600, "iss": "locate", "sub": "ndt"}
    parts = [_b64(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims)]
    return ".".join([*parts, _b64(bytes(range(64)))])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _rfc3339(moment: datetime, offset_h: int, nanos: int) -> str:
    """Go's RFC 3339 with nanoseconds (``time.RFC3339Nano``), at a given UTC offset."""
    local = moment.astimezone(timezone(timedelta(hours=offset_h)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}{nanos:03d}"
    zone = local.strftime("%z")
    return text + ("Z" if offset_h == 0 else f"{zone[:3]}:{zone[3:]}")


def _server(test: Ndt7Test, number: int) -> dict:
    """The ``number``-th server snapshot (every 250 ms or so), with counters up to then."""
    fraction = number / test.snapshots
    micros = round(test.seconds * 1e6 * fraction * 0.96)
    rtt_us = round(test.min_rtt_ms * 1000)
    client = f"[{test.client_ip}]" if ":" in test.client_ip else test.client_ip
    connection = {"Client": f"{client}:{test.client_port}", "Server": f"{test.server_ip}:443"}
    if _generation(test) < (0, 14):
        snapshot = {
            "elapsed": micros / 1e6,
            "bbr_info": {"max_bandwidth": round(test.mbps * 1.1e6), "min_rtt": rtt_us / 1000},
            "tcp_info": {"smoothed_rtt": rtt_us * 1.2 / 1000, "rtt_var": rtt_us * 0.1 / 1000},
        }
        if number == 1:  # the first snapshot named the connection
            lower = {k.lower(): v for k, v in connection.items()}
            snapshot["connection_info"] = lower | {"uuid": test.uuid}
        return snapshot
    moved = round(test.mbps * micros / 8)  # bytes: Mbit/s × µs / 8
    sent = moved if test.direction == "download" else round(moved * 0.017)
    retrans = round(sent * test.retransmit_pct / 100) if test.direction == "download" else 0
    bbr = {"ElapsedTime": micros, "MaxBandwidth": round(test.mbps * 125_000), "MinRTT": rtt_us}
    if _generation(test) >= (0, 20):
        bbr = {"BW": round(test.mbps * 125_000), "MinRTT": rtt_us, "PacingGain": 256}
        bbr |= {"CwndGain": 512, "ElapsedTime": micros}
    snapshot: dict = {"BBRInfo": bbr, "TCPInfo": _tcp_info(test, micros, moved, sent, retrans)}
    if _generation(test) >= (0, 20):
        snapshot = {"ConnectionInfo": connection | {"UUID": test.uuid}, **snapshot}
    return snapshot


def _tcp_info(test: Ndt7Test, micros: int, moved: int, sent: int, retrans: int) -> dict:
    """The kernel's ``tcp_info`` as ndt-server serializes it (``tcp.LinuxTCPInfo``)."""
    download = test.direction == "download"
    rtt_us = round(test.min_rtt_ms * 1000)
    return {
        "State": 1, "CAState": 0, "Retransmits": 0, "Probes": 0, "Backoff": 0, "Options": 6,
        "WScale": 120, "AppLimited": 0 if download else 1, "RTO": 204000 + rtt_us,
        "ATO": 40000, "SndMSS": 1448, "RcvMSS": 1448, "Unacked": 120 if download else 0,
        "Sacked": 0, "Lost": 0, "Retrans": 0, "Fackets": 0, "LastDataSent": 0,
        "LastAckSent": 0, "LastDataRecv": 4, "LastAckRecv": 0, "PMTU": 1500,
        "RcvSsThresh": 64076, "RTT": round(rtt_us * 1.2), "RTTVar": round(rtt_us * 0.1),
        "SndSsThresh": 2147483647, "SndCwnd": 360, "AdvMSS": 1448, "Reordering": 3,
        "RcvRTT": 0 if download else rtt_us, "RcvSpace": 14600, "TotalRetrans": retrans // 1448,
        "PacingRate": round(test.mbps * 130_000), "MaxPacingRate": -1,
        "BytesAcked": moved if download else sent, "BytesReceived": 2844 if download else moved,
        "SegsOut": sent // 1448 + 5, "SegsIn": moved // 1448 // 2 + 5, "NotsentBytes": 0,
        "MinRTT": rtt_us, "DataSegsIn": 29 if download else moved // 1448,
        "DataSegsOut": sent // 1448, "DeliveryRate": round(test.mbps * 125_000),
        "BusyTime": micros, "RWndLimited": 0, "SndBufLimited": 0,
        "Delivered": sent // 1448, "DeliveredCE": 0, "BytesSent": sent + retrans,
        "BytesRetrans": retrans, "DSackDups": 0, "ReordSeen": 0, "ElapsedTime": micros,
    }  # fmt: skip


def _client(test: Ndt7Test) -> list[dict] | None:
    """Clients send measurements optionally; the 2019 servers count no bytes without them."""
    if _generation(test) >= (0, 14):
        return None  # what ndt-server writes when the client sent none
    found = []
    for quarter in range(1, 5):
        seconds = test.seconds * quarter / 4
        moved = round(test.mbps * 1e6 / 8 * seconds)
        found.append({"elapsed": seconds, "app_info": {"num_bytes": moved}})
    return found


def _generation(test: Ndt7Test) -> tuple[int, ...]:
    return tuple(int(part) for part in test.version.lstrip("v").split("."))


def _metadata(test: Ndt7Test) -> list[dict]:
    pairs = {
        "client_library_name": "ndt7-client-go",
        "client_library_version": "0.5.0",
        "client_name": test.client_name,
        "client_os": "linux",
    }
    if _generation(test) >= (0, 20):
        pairs["access_token"] = access_token(f"mlab1-{test.site}.mlab-oti.measurement-lab.org")
    return [{"Name": name, "Value": value} for name, value in pairs.items()]
