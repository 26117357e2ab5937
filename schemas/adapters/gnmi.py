"""Adapter for OpenConfig/gNMI notifications as JSON (``gnmi.json``) into radio_kpi rows.

Accepted shapes (proto3 JSON mapping of gnmi.proto):

- a ``SubscribeResponse`` as gnmic prints it: ``{"update": {"timestamp", "prefix", "update",
  "delete"}}``;
- a bare ``Notification``: ``{"timestamp", "prefix", "update": [...], "delete": [...]}``;
- a ``GetResponse``: ``{"notification": [Notification, ...]}``.

``timestamp`` is nanoseconds since the epoch, a number or a string (proto3 JSON writes int64 as
a string). ``prefix.target`` is the node id. Paths are ``{"elem": [{"name", "key"}]}``, the
deprecated ``{"element": [names]}``, or path strings ``"/cell[eci=5]/rsrp"``. The cell is the
``cell`` element's ``eci`` (or ``id``/``cell-id``) key, in the prefix or the update's path;
one notification may update several cells and yields one row per cell. Values are TypedValues
(``doubleVal``, ``floatVal``, ``intVal``/``uintVal`` as string or number, ``decimalVal``,
``stringVal``/``asciiVal``, ``jsonVal``/``jsonIetfVal`` as decoded JSON or base64 — a JSON object
updates its members as child leaves); a bare JSON scalar is accepted too.

Leaves (last path element, case-insensitive) and their canonical fields:

| leaf | field | conversion |
|---|---|---|
| ``DRB.UEThpDl`` / ``DRB.UEThpUl`` | dl/ul_throughput_mbps | kbit/s → Mbit/s |
| ``RRU.PrbUsedDl`` / ``RRU.PrbTotDl`` | prb_utilization_pct | used / total × 100 |
| ``RRC.ConnMean`` | connected_ues | — |
| ``rsrp``, ``rsrq``, ``sinr`` | rsrp_dbm, rsrq_db, sinr_db | — |
| ``pci``, ``earfcn``, ``band``, ``latency`` | pci, earfcn, band, latency_ms | — |
| ``latitude``, ``longitude`` | latitude, longitude | — |

``RRU.PrbAvailDl`` stands in for ``RRU.PrbTotDl``. Other leaves (e.g. ``DRB.PdcpSduVolumeDL``,
``DRB.RlcSduDelayDl``, interface counters) are ignored: radio_kpi has no column for them.
``delete`` entries are ignored too (deletes precede updates in a notification); a notification
that only deletes, or touches no cell, has no measurement and is quarantined as
``no_measurement``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.adapters.bounds import refusal
from schemas.adapters.gnmi_bulk import bulk_rows
from schemas.adapters.messages import (
    Reject,
    Rejections,
    load_json_object,
    screen,
    to_float,
    to_int,
    to_text,
)
from schemas.adapters.normalize import epoch_to_micros, implausible_times, kbit_to_mbit
from schemas.model import TelemetrySchema
from schemas.radio import RADIO_KPI_V1

WIRE_FORMAT = "gnmi.json"
_CELL_KEYS = ("eci", "id", "cell-id", "cell_id")
# leaf name (lower case) -> (slot, converter). Slots are radio_kpi fields or PRB inputs.
_LEAVES: dict[str, tuple[str, Any]] = {
    "drb.uethpdl": ("dl_kbps", to_float),
    "drb.uethpul": ("ul_kbps", to_float),
    "rru.prbuseddl": ("prb_used", to_float),
    "rru.prbtotdl": ("prb_total", to_float),
    "rru.prbavaildl": ("prb_total", to_float),
    "rrc.connmean": ("connected_ues", to_int),
    "rsrp": ("rsrp_dbm", to_float),
    "rsrq": ("rsrq_db", to_float),
    "sinr": ("sinr_db", to_float),
    "pci": ("pci", to_int),
    "earfcn": ("earfcn", to_int),
    "band": ("band", to_text),
    "latency": ("latency_ms", to_float),
    "latitude": ("latitude", to_float),
    "longitude": ("longitude", to_float),
}
_SLOTS = ("node_id", "ns", "cell_id", *dict.fromkeys(slot for slot, _ in _LEAVES.values()))
# A key's name and value hold no bracket: with "[" allowed in them, a path "a[a[a[…" was
# scanned to its end from each "[" (quadratic: a 1 MB record, ~20 minutes of CPU).
_PATH_ELEM = re.compile(r"([^/\[]+)((?:\[[^=\[\]]+=[^\[\]]*\])*)")
_PATH_KEY = re.compile(r"\[([^=\[\]]+)=([^\[\]]*)\]")


class GnmiJsonAdapter:
    """Decodes gNMI notifications (JSON) into radio_kpi rows, one per cell updated."""

    wire_format = WIRE_FORMAT
    schemas: tuple[TelemetrySchema, ...] = (RADIO_KPI_V1,)

    bulk = True  # the Arrow path for the common shape; off, every message goes one by one

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        rejected = Rejections()
        values = raw.column("value")
        found, rest = bulk_rows(values, _BULK_LEAVES, _SLOTS) if self.bulk else (None, None)
        slots: dict[str, list] = {slot: [] for slot in _SLOTS}
        index: list[int] = []
        chosen = values if rest is None else values.take(rest)
        where = range(len(values)) if rest is None else rest.to_pylist()
        for local, value in screen(chosen, rejected):
            try:
                rows = notification_rows(load_json_object(value))
            except Reject as reject:
                rejected.add(local, reject.code, reject.reason)
                continue
            for row in rows:
                for slot, column in slots.items():
                    column.append(row.get(slot))
                index.append(where[local])
        rejected.positions = [where[local] for local in rejected.positions]  # to raw positions
        columns = {slot: pa.array(column, _SLOT_TYPES[slot]) for slot, column in slots.items()}
        positions = pa.array(index, pa.int64())
        if found is not None:
            columns = {
                slot: pa.concat_arrays(
                    [
                        found.columns.get(slot, pa.nulls(len(found.positions), column.type)).cast(
                            column.type
                        ),
                        column,
                    ]
                )
                for slot, column in columns.items()
            }
            positions = pa.concat_arrays([found.positions, positions])
        if not len(positions):
            return rejected.result()
        return self._rows(raw, columns, positions, rejected)

    def _rows(
        self, raw: pa.RecordBatch, slots: dict[str, pa.Array], index: pa.Array, rejected: Rejections
    ) -> DecodeResult:
        ns = slots["ns"]
        event_time = epoch_to_micros(ns, "ns")
        late = implausible_times(ns, event_time)
        if pc.any(late).as_py():
            for position, value in zip(
                pc.filter(index, late).to_pylist(), pc.filter(ns, late).to_pylist(), strict=True
            ):
                message = f"timestamp={value} ns is outside 2000-01-01..2100-01-01"
                rejected.add(position, "bad_timestamp", message)
        floats = {name: slots[name] for name in _FLOAT_SLOTS}
        used, total = floats.pop("prb_used"), floats.pop("prb_total")
        prb = pc.if_else(
            pc.greater(total, 0), pc.multiply(pc.divide(used, total), 100.0), pa.scalar(None)
        )
        columns = {
            "node_id": slots["node_id"],
            "event_time": event_time,
            "cell_id": slots["cell_id"],
            "pci": slots["pci"],
            "earfcn": slots["earfcn"],
            "band": slots["band"],
            "connected_ues": slots["connected_ues"],
            "dl_throughput_mbps": kbit_to_mbit(floats.pop("dl_kbps")),
            "ul_throughput_mbps": kbit_to_mbit(floats.pop("ul_kbps")),
            "prb_utilization_pct": prb,
            **floats,
        } | lineage_columns(raw, index)
        rows = canonical_rows(RADIO_KPI_V1, columns, len(index))
        keep = pc.invert(late)
        if not pc.all(keep).as_py():  # a record is published whole or not at all
            keep = pc.invert(pc.is_in(index, value_set=pc.filter(index, late)))
            rows, index = rows.filter(keep), pc.filter(index, keep)
        return rejected.result((DecodedRows(RADIO_KPI_V1, rows, index),))


_KIND = {to_float: "float", to_int: "int", to_text: "text"}
_BULK_LEAVES = {leaf: (slot, _KIND[convert]) for leaf, (slot, convert) in _LEAVES.items()}
_SLOT_TYPES = {
    "node_id": pa.string(),
    "ns": pa.int64(),
    "cell_id": pa.int64(),
    **{
        slot: {"float": pa.float64(), "int": pa.int64(), "text": pa.string()}[kind]
        for slot, kind in _BULK_LEAVES.values()
    },
}
_FLOAT_SLOTS = tuple(
    slot for slot, convert in dict(_LEAVES.values()).items() if convert is to_float
)


def looks_like(value: bytes) -> bool:
    """Content sniff over the whole message: a JSON object with gNMI's ``update`` or
    ``notification`` and ``path``, ``prefix`` or ``timestamp`` members."""
    return (
        value.lstrip()[:1] == b"{"
        and (b'"update"' in value or b'"notification"' in value)
        and (b'"path"' in value or b'"prefix"' in value or b'"timestamp"' in value)
    )


def notification_rows(document: dict) -> list[dict[str, Any]]:
    """The radio_kpi slots of every cell a gNMI JSON document updates (``Reject`` if none)."""
    notifications = _notifications(document)
    rows: dict[tuple, dict[str, Any]] = {}
    for number, notification in enumerate(notifications):
        _cells_of(notification, number, rows)
    if not rows:
        raise Reject("no_measurement", "the notification updates no cell's KPIs")
    return list(rows.values())


def _notifications(document: dict) -> list[dict]:
    update = document.get("update")
    if type(update) is dict:  # SubscribeResponse{update: Notification}
        return [update]
    if "notification" in document:  # GetResponse{notification: [Notification]}
        found = document["notification"]
        if type(found) is not list or not all(type(n) is dict for n in found):
            raise Reject("wrong_type", "notification must be a list of objects")
        return found
    if "sync_response" in document or "error" in document:
        raise Reject("no_measurement", "a sync_response or error carries no telemetry")
    if "update" in document or "delete" in document:
        return [document]
    raise Reject("not_a_notification", "no update, delete or notification member")


def _cells_of(notification: dict, number: int, rows: dict[tuple, dict[str, Any]]) -> None:
    """Add the notification's per-cell slots to ``rows`` (keyed by notification and cell)."""
    prefix = notification.get("prefix")
    if prefix is not None and type(prefix) is not dict and type(prefix) is not str:
        raise Reject("wrong_type", "prefix must be a path object or string")
    node = to_text(prefix.get("target") if type(prefix) is dict else None, "prefix.target")
    ns = to_int(notification.get("timestamp"), "timestamp")
    base = _elems(prefix, "prefix")
    updates = notification.get("update") or []
    if type(updates) is not list:
        raise Reject("wrong_type", "update must be a list")
    cell = _cell_of(base, "prefix")
    for number_in, update in enumerate(updates):
        if cell is not None and _set_simple_leaf(update, number_in, rows, (number, cell, node, ns)):
            continue
        if type(update) is not dict:
            raise Reject("wrong_type", f"update[{number_in}] must be an object")
        where = f"update[{number_in}]"
        elems = base + _elems(update.get("path"), f"{where}.path")
        for leaf_elems, value in _leaves(elems, update.get("val", update.get("value")), where):
            leaf = leaf_elems[-1][0].rpartition(":")[2].lower() if leaf_elems else ""
            mapped = _LEAVES.get(leaf)
            cell = _cell_of(leaf_elems, where)
            if mapped is None or cell is None:
                continue  # a path radio_kpi has no column for
            slot, convert = mapped
            row = rows.setdefault((number, cell), {"node_id": node, "ns": ns, "cell_id": cell})
            row[slot] = convert(value, f"{where} {leaf}")


def _set_simple_leaf(update: Any, number: int, rows: dict, target: tuple) -> bool:
    """The common case, without building paths: one key-less element naming a leaf, under a
    prefix that names the cell, with a scalar TypedValue. False for anything else."""
    if type(update) is not dict:
        return False
    path, val = update.get("path"), update.get("val")
    if type(path) is not dict or type(val) is not dict or len(val) != 1:
        return False
    elems = path.get("elem")
    if type(elems) is not list or len(elems) != 1 or type(elems[0]) is not dict:
        return False
    name = elems[0].get("name")
    if type(name) is not str or ":" in name or elems[0].get("key") or len(path) != 1:
        return False
    ((kind, value),) = val.items()
    if kind in ("jsonVal", "jsonIetfVal", "decimalVal"):
        return False
    mapped = _LEAVES.get(name.lower())
    if mapped is not None:
        slot, convert = mapped
        notification, cell, node, ns = target
        row = rows.get((notification, cell))
        if row is None:
            row = rows[(notification, cell)] = {"node_id": node, "ns": ns, "cell_id": cell}
        row[slot] = convert(value, f"update[{number}] {name.lower()}")
    return True


def _leaves(elems: list, val: Any, where: str) -> list[tuple[list, Any]]:
    """(path, plain value) of each leaf a TypedValue sets; JSON objects update their members."""
    value = _typed(val, where)
    if type(value) is not dict:
        return [(elems, value)]
    leaves = []
    for name, member in value.items():
        leaves += _leaves([*elems, (str(name), {})], {"jsonVal": member}, where)
    return leaves


def _typed(val: Any, where: str) -> Any:
    """The plain value of a proto3-JSON TypedValue (a bare scalar is taken as it is)."""
    if type(val) is not dict:
        return val
    if not val:
        return None
    (kind, value), *_ = val.items()
    if kind in ("jsonVal", "jsonIetfVal"):
        return _json_value(value)
    if kind == "decimalVal" and type(value) is dict:  # deprecated Decimal64{digits, precision}
        digits = to_int(value.get("digits"), f"{where} decimalVal.digits") or 0
        precision = to_int(value.get("precision"), f"{where} decimalVal.precision") or 0
        return digits / 10 ** min(max(precision, 0), 18)
    return value


def _json_value(value: Any) -> Any:
    """jsonVal is bytes in gnmi.proto (base64 in proto3 JSON); gnmic prints it decoded.

    The decoded JSON is bounded like any message before it is parsed.
    """
    if type(value) is not str:
        return value
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    refused = refusal(decoded)
    if refused is not None:
        raise Reject(refused[0], f"jsonVal (base64): {refused[1]}")
    try:
        return json.loads(decoded)
    except ValueError:
        return value


def _elems(path: Any, where: str) -> list[tuple[str, dict]]:
    """A gNMI path as [(name, keys)]."""
    if path is None:
        return []
    if type(path) is str:
        return [
            (m.group(1), dict(_PATH_KEY.findall(m.group(2))))
            for m in _PATH_ELEM.finditer(path.strip("/"))
        ]
    if type(path) is not dict:
        raise Reject("wrong_type", f"{where} must be a path object or string")
    elems = path.get("elem")
    if elems is None and type(path.get("element")) is list:  # deprecated: names only
        return [(to_text(name, f"{where}.element"), {}) for name in path["element"]]
    if elems is None:
        return []
    if type(elems) is not list:
        raise Reject("wrong_type", f"{where}.elem must be a list")
    out = []
    for elem in elems:
        if type(elem) is not dict or type(elem.get("name")) is not str:
            raise Reject("wrong_type", f"{where}.elem entries need a string name")
        keys = elem.get("key") or {}
        if type(keys) is not dict:
            raise Reject("wrong_type", f"{where}.elem key must be an object")
        out.append((elem["name"], keys))
    return out


def _cell_of(elems: list[tuple[str, dict]], where: str) -> int | None:
    for name, keys in elems:
        if name.rpartition(":")[2].lower() == "cell":
            for key in _CELL_KEYS:
                if key in keys:
                    return to_int(keys[key], f"{where} cell[{key}]")
    return None
