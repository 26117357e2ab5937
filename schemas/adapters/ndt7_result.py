"""One M-Lab NDT7 result read into speed_test v2 slot values, whatever the server version.

The result is the JSON object ndt-server writes per subtest (its ``data.NDT7Result``): the
server's and client's addresses and ports, ``StartTime``/``EndTime``, and a ``Download`` or
``Upload`` object (``model.ArchivalData``) with ``UUID``, its own times, ``ServerMeasurements``,
``ClientMeasurements``, ``ClientMetadata`` and, since v0.20, ``ServerMetadata``. Field sets by
server version:

- v0.10–v0.13 (2019): snake-case measurements: ``elapsed`` (s), ``app_info.num_bytes``,
  ``bbr_info.min_rtt`` (ms), ``tcp_info.smoothed_rtt``/``rtt_var``; the server counts no bytes.
  ``ClientMetadata`` is an object (v0.10–v0.11), then a list of ``{Name, Value}`` (v0.12+).
- v0.14+ (2020–): CamelCase: ``TCPInfo`` (the kernel's ``tcp_info``: ``BytesAcked``,
  ``BytesReceived``, ``BytesSent``, ``BytesRetrans``, ``MinRTT`` µs, ``ElapsedTime`` µs…),
  ``BBRInfo`` (``MinRTT`` µs), ``AppInfo`` (``NumBytes``, ``ElapsedTime`` µs),
  ``ConnectionInfo``; ``ServerMetadata`` since v0.20.

Either measurement list may be absent, null or empty. Every value is read from the snapshots
that hold it, the last one first (the protocol makes the last snapshot the test's summary).
Nothing that names the client is kept: ``ClientIP`` becomes its /24 or /48 network (published
as a keyed pseudonym), ``ClientPort``, ``ConnectionInfo`` and every ``ClientMetadata`` value but
a ``client_name`` naming a known ndt7 client (``KNOWN_CLIENTS``) are dropped; an ``access_token``
is read for the name of the machine it was issued for (its audience), never kept.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any

from schemas.adapters.messages import Reject, to_float, to_int, to_text

SUBTESTS = ("Download", "Upload")
# ``client_name`` is whatever the client put in its query string (ndt-server keeps it as sent):
# integrators choose it (ndt7-client-go's -client-name, ndt7-js's metadata), and some choose a
# host or device name (wifi-f4f5.e8ab.cd1e, Jane-Does-iPhone). So it is published only when it
# is one of these ndt7 clients, alone or followed by a version; any other value is null.
KNOWN_CLIENTS = frozenset(
    {
        "ndt7-client-go-cmd",  # ndt7-client-go's command: its default name (the M-Lab sample)
        "ndt7-client-go",  # the Go library (its client_library_name)
        "ndt7-js",  # M-Lab's JavaScript client, @m-lab/ndt7 (its client_library_name)
        "libndt7.js",  # ndt-server's first JavaScript client (its spec/data-format.md)
        "ndt-server-example",  # ndt-server's own test page (html/ndt7.html)
        "speed-measurementlab-net",  # speed.measurementlab.net (m-lab/mlab-speedtest)
        "ndt7-android",  # m-lab/ndt7-client-android and -android-java, as they name themselves
        "ndt7-client-android",  # the same clients by their repository's name
        "ndt7-client-ios",  # m-lab/ndt7-client-ios
        "murakami",  # M-Lab's Murakami device (its ndt7 runner calls ndt7-client-go's command)
        "ist",  # in the simulator's population of clients (simulator/ndt7.py)
    }
)
# A version: v1, 0.8, 0.20.17; at most three numbers of one or two digits (six digits in all,
# too few for an address, a phone number or a MAC). Digits are [0-9], not \d (any script's).
_VERSION = r"v?(?:0|[1-9][0-9]?)(?:\.(?:0|[1-9][0-9]?)){0,2}"
# The whole value: a known name, then optionally one separator and a version (ndt7-js-0.0.6,
# ndt7-client-go/0.8.0, ndt7-js@0.0.6). Anchored at both ends by fullmatch, and written in the
# syntax RE2 shares, so "^(?:" + KNOWN_CLIENT + ")$" is the same test in pyarrow.compute.
KNOWN_CLIENT = (
    "(?:" + "|".join(re.escape(name) for name in sorted(KNOWN_CLIENTS)) + f")(?:[-/@_]{_VERSION})?"
)
_KNOWN_CLIENT = re.compile(KNOWN_CLIENT)
# An M-Lab machine name holds its site: mlab1-lga03.mlab-oti.measurement-lab.org,
# mlab1.lga03.measurement-lab.org, ndt-iupui-mlab2-tun01...; the site is 3 letters (IATA),
# a digit, and a digit or "t" (test sites).
_SITE = re.compile(r"(?:^|[^a-z0-9])mlab\d[.-]([a-z]{3}[0-9][0-9t])(?:[^a-z0-9]|$)")
_MAX_TOKEN = 4096  # the ndt7 query string, which carries the token, is at most 4,096 bytes
INT32_UNSET = 4_294_967_295  # the kernel's "no sample yet" for 32-bit RTT fields


def subtest(document: dict) -> tuple[str, dict]:
    """("download" | "upload", the subtest's ArchivalData object)."""
    present = [name for name in SUBTESTS if document.get(name) is not None]
    if not present:
        ndt5 = any(document.get(name) is not None for name in ("C2S", "S2C", "Control"))
        what = "an NDT5 result (C2S, S2C)" if ndt5 else "neither Download nor Upload"
        raise Reject("unknown_kind", f"{what}: an NDT7 result holds one subtest")
    if len(present) > 1:
        raise Reject("unknown_kind", "both Download and Upload: an NDT7 result holds one subtest")
    test = document[present[0]]
    if type(test) is not dict:
        raise Reject("wrong_type", f"{present[0]} must be an object")
    return present[0].lower(), test


def result_row(document: dict) -> tuple:
    """The slot values (see ``SLOTS``) of one NDT7 result."""
    direction, test = subtest(document)
    where = direction.capitalize()
    server = snapshots(test, where, "ServerMeasurements")
    client = snapshots(test, where, "ClientMeasurements")
    uuid = to_text(test.get("UUID"), f"{where}.UUID") or _connection_uuid(server, where)
    mbps = throughput(direction, server, client, where)
    if mbps is None:
        raise Reject(
            "no_measurement",
            f"no {where} snapshot holds a byte count with its elapsed time "
            "(TCPInfo, AppInfo, or the client's app_info)",
        )
    metadata = client_metadata(test.get("ClientMetadata"))
    return (
        uuid.replace("_unsafe", "") if uuid else None,  # as M-Lab's own ETL does
        _time_text(test, document, "StartTime", where),
        _time_text(test, document, "EndTime", where),
        mbps if direction == "download" else None,
        mbps if direction == "upload" else None,
        min_rtt_ms(server, where),
        retransmit_pct(server, where) if direction == "download" else None,
        to_text(document.get("ServerIP"), "ServerIP") or None,
        site(metadata.get("access_token"), uuid),
        client_network(document.get("ClientIP")),
        known_client(metadata.get("client_name")),
        to_text(document.get("Version"), "Version") or None,
    )


SLOTS = (
    "test_id",
    "StartTime",
    "EndTime",
    "download_mbps",
    "upload_mbps",
    "latency_ms",
    "retransmit_pct",
    "server",
    "server_site",
    "client_network",
    "client_name",
    "source_version",
)


def snapshots(test: dict, where: str, name: str) -> list[dict]:
    """A measurement list (absent or null: empty), each entry an object."""
    found = test.get(name)
    if found is None:
        return []
    if type(found) is not list:
        raise Reject("wrong_type", f"{where}.{name} must be a list")
    for number, entry in enumerate(found):
        if type(entry) is not dict:
            raise Reject("wrong_type", f"{where}.{name}[{number}] must be an object")
    return found


def throughput(direction: str, server: list, client: list, where: str) -> float | None:
    """Mbit/s: the last server snapshot's ``TCPInfo`` byte counter (``BytesAcked`` downloading,
    ``BytesReceived`` uploading) × 8 / its ``ElapsedTime`` (µs); else the server's, then the
    client's application-level ``AppInfo`` (``app_info`` and ``elapsed`` in s before v0.14)."""
    counter = "BytesAcked" if direction == "download" else "BytesReceived"
    for label, snapshots_, group, count in (
        ("ServerMeasurements", server, "TCPInfo", counter),
        ("ServerMeasurements", server, "AppInfo", "NumBytes"),
        ("ClientMeasurements", client, "AppInfo", "NumBytes"),
    ):
        for index in range(len(snapshots_) - 1, -1, -1):
            path = f"{where}.{label}[{index}].{group}"
            info = _group(snapshots_[index], group, path)
            if info is None:
                continue
            sent = to_int(info.get(count), f"{path}.{count}")
            micros = to_int(info.get("ElapsedTime"), f"{path}.ElapsedTime")
            if sent is not None and micros is not None and micros > 0:
                return sent * 8 / micros  # bytes per µs × 8 = Mbit/s
    return _legacy_throughput(client, where)


def _legacy_throughput(client: list, where: str) -> float | None:
    """Before v0.14 only a client's ``app_info.num_bytes`` over ``elapsed`` (s) counts bytes."""
    for index in range(len(client) - 1, -1, -1):
        path = f"{where}.ClientMeasurements[{index}]"
        info = _group(client[index], "app_info", f"{path}.app_info")
        seconds = to_float(client[index].get("elapsed"), f"{path}.elapsed")
        if info is not None and seconds is not None and seconds > 0:
            sent = to_int(info.get("num_bytes"), f"{path}.app_info.num_bytes")
            if sent is not None:
                return sent * 8 / seconds / 1e6
    return None


def min_rtt_ms(server: list, where: str) -> float | None:
    """The kernel's minimum RTT of the last snapshot that has one (``TCPInfo``, else
    ``BBRInfo``, in µs; ``bbr_info.min_rtt`` in ms before v0.14), in ms."""
    for group, scale in (("TCPInfo", 1000.0), ("BBRInfo", 1000.0), ("bbr_info", 1.0)):
        name = "min_rtt" if group == "bbr_info" else "MinRTT"
        for index in range(len(server) - 1, -1, -1):
            path = f"{where}.ServerMeasurements[{index}].{group}"
            info = _group(server[index], group, path)
            rtt = None if info is None else to_float(info.get(name), f"{path}.{name}")
            if rtt is not None and 0 < rtt < INT32_UNSET:
                return rtt / scale
    return None


def retransmit_pct(server: list, where: str) -> float | None:
    """``BytesRetrans`` / ``BytesSent`` × 100 of the last ``TCPInfo`` that has both."""
    for index in range(len(server) - 1, -1, -1):
        path = f"{where}.ServerMeasurements[{index}].TCPInfo"
        info = _group(server[index], "TCPInfo", path)
        if info is None:
            continue
        sent = to_int(info.get("BytesSent"), f"{path}.BytesSent")
        again = to_int(info.get("BytesRetrans"), f"{path}.BytesRetrans")
        if sent and again is not None:
            return again / sent * 100
    return None


def client_metadata(metadata: Any) -> dict[str, str]:
    """ClientMetadata as name -> value: a list of ``{Name, Value}`` (v0.12+) or an object
    (v0.10–v0.11). Entries of any other shape carry nothing we publish and are skipped."""
    if type(metadata) is dict:
        pairs = metadata.items()
    elif type(metadata) is list:
        pairs = [(e.get("Name"), e.get("Value")) for e in metadata if type(e) is dict]
    else:
        return {}
    return {name: value for name, value in pairs if type(name) is str and type(value) is str}


def known_client(name: str | None) -> str | None:
    """``name`` if it is a known ndt7 client, alone or with a version (``KNOWN_CLIENT``), else
    None: an allowlist, as a name that merely looks like software may still name a device."""
    if name is not None and _KNOWN_CLIENT.fullmatch(name):
        return name
    return None


def client_network(address: Any) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) holding ``address``, or None if it is not an address."""
    if type(address) is not str or not address or len(address) > 64:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def site(token: str | None, uuid: str | None) -> str | None:
    """The M-Lab site named by the machine the access token was issued for (its audience),
    else by the machine name heading the UUID; None when neither names one."""
    for text in (_token_claims(token), (uuid or "").split("_", 1)[0]):
        found = _SITE.search(text.lower())
        if found:
            return found.group(1)
    return None


def _token_claims(token: str | None) -> str:
    """A JWT's payload as text (not verified: only read for its audience), or ""."""
    if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
        return ""
    payload = token.split(".")[1]
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return ""


def _group(snapshot: dict, name: str, path: str) -> dict | None:
    found = snapshot.get(name)
    if found is None:
        return None
    if type(found) is not dict:
        raise Reject("wrong_type", f"{path} must be an object")
    return found


def _connection_uuid(server: list, where: str) -> str | None:
    for index, snapshot in enumerate(server):
        path = f"{where}.ServerMeasurements[{index}]"
        info = _group(snapshot, "ConnectionInfo", f"{path}.ConnectionInfo") or _group(
            snapshot, "connection_info", f"{path}.connection_info"
        )
        if info is not None:
            uuid = info.get("UUID", info.get("uuid"))
            if type(uuid) is str and uuid:
                return uuid
    return None


def _time_text(test: dict, document: dict, name: str, where: str) -> str | None:
    """The subtest's own time, else the result's (RFC 3339 text, converted in bulk later)."""
    own = to_text(test.get(name), f"{where}.{name}")
    return own or to_text(document.get(name), name) or None
