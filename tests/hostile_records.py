"""Hostile records, one of each kind: what a broken or malicious producer can put on a topic.

Each kind names the ``rda-format`` header it is sent with (None: no header), its value, and the
quarantine reason code it must end up under. ``tests/test_hostile_stream.py`` sends them all
through the real broker in one topic between valid records; ``tests/test_hostile_kinds.py``
checks each one in the process, fast.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from simulator import ndt7

NODE, GNMI, CSV, RIPE = "rda.node.v1", "gnmi.json", "ems.csv", "ripe.atlas.result"
NDT7 = "mlab.ndt7"
TS_MS = 1_764_000_000_000
DEEP = 100_000  # the nesting that overflowed the C stack (SIGSEGV) before bounded parsing


@dataclass(frozen=True)
class Kind:
    name: str
    header: str | None
    value: bytes | None
    code: str


def _ndt7(**members: object) -> dict:
    """A small NDT7 download result (two snapshots), members of the subtest replaced."""
    test = ndt7.Ndt7Test("download", "ndt-hostile_1_01", TS_MS, 10.0, 50.0, 20.0, 1.0,
                         "198.51.100.9", 40000, snapshots=2)  # fmt: skip
    document = ndt7.result(test)
    document["Download"].update(members)
    return document


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _radio(**members: object) -> dict:
    document = {
        "format": NODE,
        "kind": "radio_kpi",
        "node": "hostile-1",
        "ts_ms": TS_MS,
        "cell": {"eci": 1234, "pci": 7, "earfcn": 1300, "band": "B3"},
        "radio": {"rsrp": -95.0, "rsrq": -10.0, "sinr": 12.0},
        "traffic": {"dl_kbps": 2000.0, "ul_kbps": 500.0, "ues": 3, "prb_pct": 40.0},
    }
    document.update(members)
    return document


def _gnmi(timestamp: object) -> bytes:
    return (
        b'{"update":{"timestamp":' + str(timestamp).encode() + b',"prefix":{"target":"g1",'
        b'"elem":[{"name":"cell","key":{"eci":"5"}}]},"update":[{"path":{"elem":[{"name":'
        b'"rsrp"}]},"val":{"doubleVal":-90}}]}}'
    )


def _ripe(**members: object) -> bytes:
    document = {
        "fw": 5080,
        "type": "ping",
        "af": 4,
        "dst_name": "k.root-servers.net",
        "proto": "ICMP",
        "sent": 3,
        "rcvd": 3,
        "avg": 10.0,
        "min": 9.0,
        "max": 11.0,
        "msm_id": 1001,
        "prb_id": 6001,
        "timestamp": TS_MS // 1000,
    }
    document.update(members)
    return _json(document)


_DEEP_ARRAYS = b"[" * DEEP + b"]" * DEEP
_NDT7_COUNTER_AS_TEXT = _ndt7()
_NDT7_COUNTER_AS_TEXT["Download"]["ServerMeasurements"][-1]["TCPInfo"]["BytesAcked"] = "many"
_DEEP_OBJECTS = b'{"a":' * DEEP + b"1" + b"}" * DEEP
_HUGE = b"9" * 5_000  # over Python's 4,300-digit int() limit
_CSV_HEAD = b"NE Name,Start Time,ECI,RSRP (dBm),Active UEs\r\n"
_GARBAGE = bytes(range(256)) * 4

KINDS: tuple[Kind, ...] = (
    Kind("tombstone", NODE, None, "tombstone"),
    Kind("empty value", NODE, b"", "empty_message"),
    Kind("one byte over 1 MB", NODE, b"{" + b" " * 1_000_000, "too_large"),
    Kind("binary under a JSON header", NODE, _GARBAGE, "invalid_utf8"),
    Kind("binary without a header", None, _GARBAGE, "unknown_format"),
    Kind("an unknown format header", "rda.node.v2", _json(_radio()), "unknown_format"),
    Kind("100,000 nested arrays (node)", NODE, _DEEP_ARRAYS, "too_deep"),
    Kind("100,000 nested objects (node)", NODE, _DEEP_OBJECTS, "too_deep"),
    Kind("100,000 nested arrays (gNMI)", GNMI, _DEEP_ARRAYS, "too_deep"),
    Kind("100,000 nested objects (RIPE)", RIPE, _DEEP_OBJECTS, "too_deep"),
    Kind(
        "deep arrays without a header",
        None,
        b'{"prb_id":1,"msm_id":2,"x":' + _DEEP_ARRAYS + b"}",
        "too_deep",
    ),
    Kind(
        "70 levels inside a valid report",
        NODE,
        _json(_radio(extra=json.loads("[" * 70 + "]" * 70))),
        "too_deep",
    ),
    Kind(
        "a 5,000-digit integer (node ts_ms)",
        NODE,
        _json(_radio()).replace(str(TS_MS).encode(), _HUGE),
        "number_too_long",
    ),
    Kind("a 5,000-digit integer (gNMI timestamp)", GNMI, _gnmi(_HUGE.decode()), "number_too_long"),
    Kind(
        "a 5,000-digit integer (RIPE prb_id)",
        RIPE,
        _ripe().replace(b'"prb_id":6001', b'"prb_id":' + _HUGE),
        "number_too_long",
    ),
    Kind(
        "a 5,000-digit cell (EMS CSV)",
        CSV,
        _CSV_HEAD + b"ne-1,2025-11-24T16:00:00Z," + _HUGE + b",-90,3\r\n",
        "number_too_long",
    ),
    Kind(
        "deep JSON inside a gNMI jsonVal (base64)",
        GNMI,
        _gnmi(1_764_000_000_000_000_000).replace(
            b'{"doubleVal":-90}',
            b'{"jsonVal":"' + base64.b64encode(b"[" * 100 + b"]" * 100) + b'"}',
        ),
        "too_deep",
    ),
    Kind("NaN in a number field", NODE, _json(_radio()).replace(b"-95.0", b"NaN"), "not_finite"),
    Kind("truncated JSON", NODE, _json(_radio())[:60], "invalid_json"),
    Kind("a JSON array, not an object", NODE, b"[1,2,3]", "not_an_object"),
    Kind(
        "no format member",
        NODE,
        _json({k: v for k, v in _radio().items() if k != "format"}),
        "unknown_format",
    ),
    Kind("an unknown kind", NODE, _json(_radio(kind="teleporter")), "unknown_kind"),
    Kind("a string for a number", NODE, _json(_radio(radio={"rsrp": "-95"})), "wrong_type"),
    Kind("a boolean for a number", NODE, _json(_radio(radio={"rsrp": True})), "wrong_type"),
    Kind("an integer past 64 bits", NODE, _json(_radio(ts_ms=2**63)), "out_of_range"),
    Kind("a time in the year 2200", NODE, _json(_radio(ts_ms=7_258_118_400_000)), "bad_timestamp"),
    Kind("a wrong header (node content as gNMI)", GNMI, _json(_radio()), "not_a_notification"),
    Kind(
        "a gNMI notification that only deletes",
        GNMI,
        b'{"update":{"timestamp":1764000000000000000,"delete":[{"elem":[{"name":"x"}]}]}}',
        "no_measurement",
    ),
    Kind("a ragged CSV line", CSV, _CSV_HEAD + b"ne-1,2025-11-24T16:00:00Z,5\r\n", "invalid_csv"),
    Kind(
        "a CSV unit nobody converts",
        CSV,
        b"NE Name,Start Time,ECI,RSRP,DL Throughput (furlongs)\r\n"
        b"ne-1,2025-11-24T16:00:00Z,5,-90,3\r\n",
        "unknown_unit",
    ),
    Kind("a RIPE DNS result", RIPE, _ripe(type="dns"), "unknown_kind"),
    Kind(
        "a RIPE traceroute whose result is a number",
        RIPE,
        _ripe(type="traceroute", result=5),
        "wrong_type",
    ),
    Kind(
        "an unreadable firmware-1 traceroute",
        RIPE,
        _json(
            {
                "fw": 1,
                "prb_id": 1,
                "msm_id": 2,
                "timestamp": TS_MS // 1000,
                "result": "hop one\nhop two",
            }
        ),
        "invalid_traceroute",
    ),
    Kind(
        "invalid UTF-8 in a RIPE result",
        RIPE,
        _ripe().replace(b"k.root", b"k.\xffroot"),
        "invalid_utf8",
    ),
    Kind("a bare null (node)", NODE, b"null", "not_an_object"),
    Kind(
        "100,000 nested arrays inside an NDT7 result",
        NDT7,
        _json(_ndt7()).replace(b'"UUID"', b'"x":' + _DEEP_ARRAYS + b',"UUID"', 1),
        "too_deep",
    ),
    Kind(
        "an NDT7 result holding both subtests",
        NDT7,
        _json({**_ndt7(), "Upload": _ndt7()["Download"]}),
        "unknown_kind",
    ),
    Kind("an NDT7 byte counter as text", NDT7, _json(_NDT7_COUNTER_AS_TEXT), "wrong_type"),
    Kind(
        "an NDT7 result at Go's zero time",
        NDT7,
        _json(_ndt7(StartTime="0001-01-01T00:00:00Z")),
        "bad_timestamp",
    ),
    Kind(
        "an NDT7 result without snapshots",
        NDT7,
        _json(_ndt7(ServerMeasurements=None)),
        "no_measurement",
    ),
    Kind(
        "an NDT5 result sent as NDT7",
        NDT7,
        _json({"ServerIP": "192.0.2.1", "ClientIP": "198.51.100.9", "S2C": {"UUID": "u"}}),
        "unknown_kind",
    ),
)
CRASH_MARKER = "HOSTILE-CRASH-MARKER-9931"
# The record that kills the worker (with RDA_CRASH_ON_RECORD set): bisected out, crashed_worker.
CRASHER = Kind(
    "a record that kills the worker",
    NODE,
    _json(_radio(node="crasher", note=CRASH_MARKER)),
    "crashed_worker",
)
# Valid records that look hostile to a naive guard: published.
BRACKETS_IN_A_STRING = _json(_radio(node="[" * 200 + "]" * 100))  # deep only inside a string
LONG_DIGITS_IN_A_FLOAT = _json(_radio(radio={"rsrp": -95.000000000000000000000000000001}))
NDT7_WITHOUT_A_HEADER = _json(_ndt7())  # over 64 openers, so its depth is measured: sniffed
