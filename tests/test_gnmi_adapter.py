"""The gNMI JSON adapter: every TypedValue form, both notification shapes, KPM counters."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json

import pyarrow as pa
from adapter_inputs import both_paths, messages, published, reasons
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.adapters.gnmi import _BULK_LEAVES, _SLOTS
from schemas.adapters.gnmi_bulk import bulk_rows

GNMI = "gnmi.json"
RADIO = "radio_kpi.v1"
NS = 1_764_032_523_123_456_789  # 2025-11-25T01:02:03.123456789Z


def update(name: str, val: dict) -> dict:
    return {"path": {"elem": [{"name": name}]}, "val": val}


NOTIFICATION = {
    "timestamp": str(NS),
    "prefix": {
        "origin": "o-ran",
        "target": "an-0007",
        "elem": [{"name": "cell", "key": {"eci": "5378371"}}],
    },
    "update": [
        update("DRB.UEThpDl", {"doubleVal": 45000.0}),
        update("DRB.UEThpUl", {"floatVal": 8000}),
        update("RRU.PrbUsedDl", {"uintVal": "25"}),
        update("RRU.PrbTotDl", {"uintVal": 100}),
        update("RRC.ConnMean", {"intVal": "12"}),
        update("rsrp", {"doubleVal": -95.5}),
        update("rsrq", {"doubleVal": -10.5}),
        update("sinr", {"decimalVal": {"digits": "123", "precision": 1}}),
        update("pci", {"uintVal": "101"}),
        update("earfcn", {"uintVal": 1850}),
        update("band", {"stringVal": "B3"}),
    ],
}
EXPECTED = {
    "node_id": "an-0007",
    "event_time": dt.datetime(2025, 11, 25, 1, 2, 3, 123456, tzinfo=dt.timezone.utc),
    "cell_id": 5378371,
    "pci": 101,
    "earfcn": 1850,
    "band": "B3",
    "rsrp_dbm": -95.5,
    "rsrq_db": -10.5,
    "sinr_db": 12.3,
    "dl_throughput_mbps": 45.0,
    "ul_throughput_mbps": 8.0,
    "latency_ms": None,
    "prb_utilization_pct": 25.0,
    "connected_ues": 12,
    "latitude": None,
    "longitude": None,
}


def encode(document: dict) -> bytes:
    """Compact, as gnmic writes it (the shape the adapter's bulk path takes)."""
    return json.dumps(document, separators=(",", ":")).encode()


def subscribe_response(notification: dict = NOTIFICATION) -> bytes:
    return encode({"update": notification})


def changed(**members) -> dict:
    notification = copy.deepcopy(NOTIFICATION)
    notification.update(members)
    return notification


def with_update(name: str, val: dict) -> bytes:
    notification = copy.deepcopy(NOTIFICATION)
    notification["update"] = [
        u for u in notification["update"] if u["path"]["elem"][0]["name"] != name
    ]
    notification["update"].append(update(name, val))
    return subscribe_response(notification)


def test_a_subscribe_response_becomes_one_row_in_canonical_units():
    assert published(GNMI, subscribe_response()) == {RADIO: [EXPECTED]}


def test_a_bare_notification_and_a_get_response_read_the_same():
    bare = published(GNMI, encode(NOTIFICATION))
    got = published(GNMI, encode({"notification": [NOTIFICATION]}))
    assert bare == got == {RADIO: [EXPECTED]}


def test_a_numeric_nanosecond_timestamp_equals_the_string_form():
    later = NS + 1_000_000_000
    assert published(GNMI, subscribe_response(changed(timestamp=later)))[RADIO][0][
        "event_time"
    ] == EXPECTED["event_time"] + dt.timedelta(seconds=1)


def test_path_strings_and_deprecated_element_paths_are_read():
    notification = changed(
        prefix={"target": "an-0007"},
        update=[
            {"path": "/cell[eci=5378371]/rsrp", "val": {"doubleVal": -95.5}},
            {"path": {"element": ["cell[eci=5378371]", "RRC.ConnMean"]}, "val": {"uintVal": "3"}},
            {"path": "cell[eci=5378371]/state/RRC.ConnMean", "val": {"uintVal": "12"}},
        ],
    )
    (row,) = published(GNMI, encode(notification))[RADIO]
    assert (row["cell_id"], row["rsrp_dbm"], row["connected_ues"]) == (5378371, -95.5, 12)


def test_a_path_of_many_open_brackets_is_read_in_linear_time():
    """With "[" allowed inside a key, a path "a[a[a[…" was scanned to its end from each "[": a
    1 MB record took about 20 minutes of CPU (red team). Now the record is read at once."""
    import time

    from schemas.adapters.gnmi import _elems

    started = time.process_time()
    assert _elems("a[" * 100_000, "path") == [("a", {})] * 100_000
    assert time.process_time() - started < 1.0
    assert _elems("/cell[eci=5]/x[k=v]", "path") == [("cell", {"eci": "5"}), ("x", {"k": "v"})]


def test_json_values_update_their_members_plain_or_base64():
    radio = {"rsrp": -90.0, "openconfig:rsrq": -9.0, "RRC.ConnMean": 4}
    for val in (
        {"jsonVal": radio},
        {"jsonIetfVal": base64.b64encode(json.dumps(radio).encode()).decode()},
    ):
        notification = changed(update=[{"path": {"elem": [{"name": "radio"}]}, "val": val}])
        (row,) = published(GNMI, encode(notification))[RADIO]
        assert (row["rsrp_dbm"], row["rsrq_db"], row["connected_ues"]) == (-90.0, -9.0, 4)


def test_one_notification_updating_two_cells_yields_two_rows():
    notification = changed(
        prefix={"target": "an-0007"},
        update=[
            {"path": f"/cell[eci={eci}]/{name}", "val": val}
            for eci in (11, 12)
            for name, val in (("rsrp", {"doubleVal": -80.0}), ("RRC.ConnMean", {"uintVal": "1"}))
        ],
    )
    rows = published(GNMI, encode(notification))[RADIO]
    assert [row["cell_id"] for row in rows] == [11, 12]


def test_unknown_paths_and_deletes_are_ignored():
    notification = changed(
        update=[*NOTIFICATION["update"], update("DRB.PdcpSduVolumeDL", {"bytesVal": "AAE="})],
        delete=[{"elem": [{"name": "rsrp"}]}],
    )
    assert published(GNMI, encode(notification)) == {RADIO: [EXPECTED]}


def test_a_notification_that_only_deletes_has_no_measurement():
    notification = {"timestamp": str(NS), "prefix": NOTIFICATION["prefix"], "delete": []}
    notification["delete"] = [{"elem": [{"name": "rsrp"}]}]
    assert reasons(GNMI, encode(notification)) == ["no_measurement"]


def test_sync_responses_carry_no_measurement_and_other_objects_are_not_notifications():
    assert reasons(GNMI, encode({"sync_response": True}), encode({"hello": 1})) == [
        "no_measurement",
        "not_a_notification",
    ]


def test_missing_required_counters_are_named():
    notification = copy.deepcopy(NOTIFICATION)
    notification["update"] = [u for u in notification["update"] if "RRC" not in str(u)]
    assert messages(GNMI, encode(notification)) == ["connected_ues is required but missing"]


def test_a_missing_timestamp_or_target_is_missing_required():
    no_time = copy.deepcopy(NOTIFICATION)
    del no_time["timestamp"]
    no_target = copy.deepcopy(NOTIFICATION)
    del no_target["prefix"]["target"]
    assert messages(GNMI, encode(no_time), encode(no_target)) == [
        "event_time is required but missing",
        "node_id is required but missing",
    ]


def test_wrong_types_are_named():
    assert messages(GNMI, with_update("rsrp", {"stringVal": "strong"})) == [
        "update[10] rsrp must be a number, got 'strong'"
    ]
    assert reasons(GNMI, subscribe_response(changed(update={"rsrp": 1}))) == ["wrong_type"]


def test_proto3_nan_and_infinity_strings_are_not_finite():
    assert reasons(
        GNMI,
        with_update("rsrp", {"doubleVal": "NaN"}),
        with_update("sinr", {"floatVal": "-Infinity"}),
    ) == ["not_finite", "not_finite"]


def test_out_of_range_values_and_prb_ratios_are_refused_by_the_schema():
    assert messages(GNMI, with_update("RRU.PrbUsedDl", {"uintVal": "250"})) == [
        "prb_utilization_pct=250 is outside [0, 100] %"
    ]


def test_timestamps_far_from_now_are_bad_timestamps():
    far = subscribe_response(changed(timestamp=str(5_000_000_000 * 10**9)))
    past = subscribe_response(changed(timestamp=1))
    assert reasons(GNMI, far, past) == ["bad_timestamp", "bad_timestamp"]


def test_sql_and_control_characters_in_text_are_published_verbatim():
    node = "an-1'; DROP TABLE radio_kpi; --\u0007\u0000"
    notification = changed(prefix={**NOTIFICATION["prefix"], "target": node})
    assert published(GNMI, encode(notification))[RADIO][0]["node_id"] == node


def canonical(**members) -> dict:
    """NOTIFICATION as proto3 JSON writes it (64-bit integers as strings, no deprecated
    decimalVal), with ``members``."""
    notification = changed(**members)
    for entry in notification["update"]:
        entry["val"] = {k: str(v) if "int" in k else v for k, v in entry["val"].items()}
        if "decimalVal" in entry["val"]:
            entry["val"] = {"doubleVal": 12.3}
    return notification


def test_the_bulk_path_and_the_message_path_agree_on_a_mixed_batch():
    def at(seconds: int, **members) -> bytes:
        return subscribe_response(canonical(timestamp=str(NS + seconds * 10**9), **members))

    strong = canonical(timestamp=str(NS + 5 * 10**9))
    strong["update"].append(update("rsrp", {"stringVal": "strong"}))
    fractional = canonical(timestamp=str(NS + 6 * 10**9))
    fractional["update"].append(update("RRC.ConnMean", {"doubleVal": 3.5}))
    values = (
        at(0),
        b"",
        at(1)[:50],
        subscribe_response(strong),
        at(2),
        encode(canonical(timestamp=str(NS + 7 * 10**9))),
        subscribe_response(fractional),
        at(3, update=[]),
        None,
        at(4),
    )
    found, _ = bulk_rows(pa.array(values, pa.binary()), _BULK_LEAVES, _SLOTS)
    assert found.positions.to_pylist() == [0, 4, 9]  # the rest go message by message
    bulk, one_by_one = both_paths(GNMI, *values)
    assert bulk == one_by_one
    assert [q["offset"] for q in bulk[1]] == [101, 102, 103, 106, 107, 108]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([u["path"]["elem"][0]["name"] for u in NOTIFICATION["update"]]),
            st.sampled_from(["doubleVal", "floatVal", "intVal", "uintVal", "stringVal"]),
            st.one_of(
                st.integers(-(2**70), 2**70),
                st.floats(allow_nan=False),
                st.text(alphabet="0123456789.-e x", max_size=8),
            ),
        ),
        max_size=6,
    ),
    st.integers(0, 3),
)
def test_the_bulk_path_agrees_with_the_message_path_on_any_values(updates, seconds):
    notification = canonical(timestamp=str(NS + seconds * 10**9))
    for name, kind, value in updates:
        typed = str(value) if kind in ("intVal", "uintVal", "stringVal") else value
        if isinstance(typed, float | int) and kind in ("doubleVal", "floatVal"):
            typed = float(typed)
        notification["update"].append(update(name, {kind: typed}))
    value = subscribe_response(notification)
    bulk, one_by_one = both_paths(GNMI, subscribe_response(canonical()), value)
    assert bulk == one_by_one


def test_a_lone_surrogate_in_a_string_is_invalid_utf8_not_an_adapter_error():
    """JSON lets "\\ud800" through, Arrow does not: the adapter raised, and the guard halved the
    chunk and decoded it again until the record was alone (256 such records in 4,000 took the
    chunk 90 times as long: red team)."""
    hostile = encode(changed(prefix={"target": "@@"})).replace(b'"@@"', b'"x\\ud800"')
    assert messages(GNMI, hostile) == ["prefix.target holds a lone surrogate, which is no text"]
    assert reasons(GNMI, hostile) == ["invalid_utf8"]
