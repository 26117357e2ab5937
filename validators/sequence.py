"""Sequence checks with per-node state carried across chunks and batches.

A node's reports are judged against the node's earlier reports wherever a chunk or a batch
boundary falls: the last state of every node (per topic partition, where its reports are
ordered) is carried in a ``SequenceState`` from one call to the next. Every check is *causal* —
it looks only at reports before the one judged — so a row is decided once, when it arrives, and
a published row never has to change.

* ``teleport`` (quarantine): unreachable (> ``min_jump_km`` at > ``max_speed_kmh``) from the
  node's last accepted report — unless reachable from the previous report when that one was
  rejected: two reports agreeing on a new place mean the node moved;
* ``counter_reset`` (flag): ``uptime_s`` lower than the node's previous report's;
* ``flat_line`` (flag): the ``flat_line_reports``-th identical sensor reading in a row, and each
  one after it.

Rows come in stream order (partition, offset). The counter and flat-line checks see the rows the
teleport check accepted. A row without a location is never a teleport and moves nothing; a row
without a node (an outside speed test) has no sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from validators.node_groups import (
    NO_NODE,
    Groups,
    bools,
    floats,
    group_rows,
    ints,
    last_where,
    looked_up,
    merge,
    new_state,
    node_codes,
    paired,
    state_rows,
    valid,
    value_before,
)

_EARTH_RADIUS_KM = 6371.0088
FLAT_LINE_COLUMNS = {"radio_kpi": ("rsrp_dbm", "sinr_db"), "node_heartbeat": ("temperature_c",)}
_NODE = [("source_partition", pa.int32()), ("node_id", pa.string())]
_PLACE = [("lat", pa.float64()), ("lon", pa.float64()), ("us", pa.int64())]
TELEPORT_STATE = pa.schema(
    [
        *_NODE,
        *[(f"anchor_{n}", t) for n, t in _PLACE],
        *[(f"last_{n}", t) for n, t in _PLACE],
        ("last_accepted", pa.bool_()),
    ]
)
COUNTER_STATE = pa.schema([*_NODE, ("uptime_s", pa.int64())])


def flat_line_state_schema(columns: tuple[str, ...]) -> pa.Schema:
    sensors = [(c, pa.float64()) for c in columns]
    return pa.schema([*_NODE, ("cell_id", pa.int64()), *sensors, ("run", pa.int64())])


@dataclass(frozen=True)
class SequenceSettings:
    max_speed_kmh: float = 1000.0  # faster than an airliner: no node moves like that
    min_jump_km: float = 1.0  # GPS jitter below this is not a jump
    flat_line_reports: int = 5


@dataclass(frozen=True)
class SequenceState:
    """The last state of every node: its place, its counter, its sensors' current run."""

    teleport: pa.Table
    counter: pa.Table
    flat_line: pa.Table

    @classmethod
    def empty(cls, schema_name: str) -> SequenceState:
        columns = FLAT_LINE_COLUMNS.get(schema_name, ())
        return cls(
            TELEPORT_STATE.empty_table(),
            COUNTER_STATE.empty_table(),
            flat_line_state_schema(columns).empty_table(),
        )

    @property
    def nodes(self) -> int:
        return max(self.teleport.num_rows, self.counter.num_rows)


@dataclass(frozen=True)
class SequenceInputs:
    """What the checks read of each row; rows in stream order (partition, offset)."""

    partition: pa.Array
    node: pa.Array
    time_us: pa.Array  # event time, UTC microseconds (int64)
    cell: pa.Array | None = None
    lat: pa.Array | None = None
    lon: pa.Array | None = None
    uptime: pa.Array | None = None
    sensors: tuple[pa.Array, ...] = ()  # the flat-line columns, in FLAT_LINE_COLUMNS order


@dataclass(frozen=True)
class SequenceResult:
    teleport_km: pa.Array  # per row: the jump in km when it is a teleport, else null
    counter_reset: pa.Array  # bool per row
    flat_line: pa.Array  # bool per row


def input_columns(schema_name: str) -> tuple[str, ...]:
    """The canonical columns ``sequence_inputs`` reads (those a dataset has)."""
    keys = ("source_partition", "node_id", "cell_id")
    return (*keys, "latitude", "longitude", "uptime_s", *FLAT_LINE_COLUMNS.get(schema_name, ()))


def sequence_inputs(
    schema_name: str, columns: dict[str, pa.Array], time_us: pa.Array
) -> SequenceInputs:
    """A dataset's check inputs from its rows' canonical columns."""
    flat = FLAT_LINE_COLUMNS.get(schema_name, ())
    located = "latitude" in columns and "longitude" in columns
    return SequenceInputs(
        partition=columns["source_partition"],
        node=columns["node_id"],
        time_us=time_us,
        cell=columns.get("cell_id") if flat else None,
        lat=columns["latitude"] if located else None,
        lon=columns["longitude"] if located else None,
        uptime=columns.get("uptime_s"),
        sensors=tuple(columns[c] for c in flat) if set(flat) <= set(columns) else (),
    )


def check_sequences(
    inputs: SequenceInputs, state: SequenceState, settings: SequenceSettings
) -> tuple[SequenceResult, SequenceState]:
    """Judge each row against its node's state and the rows before it; return the new state."""
    n = len(inputs.time_us)
    tables = (state.teleport, state.counter, state.flat_line)
    codes = node_codes(inputs.partition, inputs.node, tables)
    keyed = [
        _Keyed(table, table_codes) for table, table_codes in zip(tables, codes.states, strict=True)
    ]
    km, teleport = pa.nulls(n, pa.float64()), state.teleport
    if inputs.lat is not None and inputs.lon is not None:
        km, teleport = _teleports(inputs, codes.rows, keyed[0], settings)
    accepted = np.asarray(pc.is_null(km), bool)
    reset, counter = np.zeros(n, bool), state.counter
    if inputs.uptime is not None:
        reset, counter = _counter_resets(inputs, codes.rows, accepted, keyed[1])
    flat, flat_state = np.zeros(n, bool), state.flat_line
    if inputs.sensors:
        flat, flat_state = _flat_lines(inputs, codes.rows, accepted, keyed[2], settings)
    result = SequenceResult(km, pa.array(reset, pa.bool_()), pa.array(flat, pa.bool_()))
    return result, SequenceState(teleport, counter, flat_state)


@dataclass(frozen=True)
class _Keyed:
    """A check's state table and each of its rows' key code (``validators/node_groups.py``)."""

    table: pa.Table
    codes: np.ndarray

    def merged(self, groups: Groups, new: pa.Table) -> pa.Table:
        return merge(self.table, self.codes, new, groups.group_codes)


# -- teleports -------------------------------------------------------------------------------


def _teleports(
    inputs: SequenceInputs, codes: np.ndarray, state: _Keyed, settings: SequenceSettings
) -> tuple[pa.Array, pa.Table]:
    located = valid(inputs.lat) & valid(inputs.lon) & (codes != NO_NODE)
    groups = group_rows(codes, located)
    at = groups.rows
    place = (floats(inputs.lat)[at], floats(inputs.lon)[at], ints(inputs.time_us)[at])
    known = state_rows(groups, state.codes)
    table = state.table
    st = {
        n: looked_up(floats(table.column(n)), known, np.nan)
        for n in ("anchor_lat", "anchor_lon", "last_lat", "last_lon")
    }
    st |= {n: looked_up(ints(table.column(n)), known, 0) for n in ("anchor_us", "last_us")}
    st["last_accepted"] = looked_up(bools(table.column("last_accepted"), True), known, True)
    previous = [
        value_before(values, groups.first, st[f"last_{name}"])
        for values, name in zip(place, ("lat", "lon", "us"), strict=True)
    ]
    bad_previous = _infeasible(*previous, *place, settings)
    trouble = bad_previous | (groups.first & ~st["last_accepted"])
    accepted = np.ones(len(at), bool)
    jump = np.full(len(at), np.nan)
    _walk_trouble(trouble, groups, place, st, settings, accepted, jump)
    km = np.full(len(inputs.time_us), np.nan)
    km[at] = jump
    result = pc.round(pa.array(km, pa.float64(), mask=np.isnan(km)), 1)
    new = _teleport_state(groups, _node_keys(inputs), place, st, accepted)
    return result, state.merged(groups, new)


def _teleport_state(
    groups: Groups,
    keys: dict[str, pa.Array],
    place: tuple,
    st: dict[str, np.ndarray],
    accepted: np.ndarray,
) -> pa.Table:
    """Each group's last report, and its last accepted one (else the anchor it had)."""
    lat, lon, us = place
    last = np.flatnonzero(groups.last)
    anchor = last_where(groups, accepted)
    first = np.flatnonzero(groups.first)
    had = anchor >= 0
    columns = {
        "last_lat": lat[last],
        "last_lon": lon[last],
        "last_us": us[last],
        "last_accepted": accepted[last],
        "anchor_lat": np.where(had, lat[anchor], st["anchor_lat"][first]),
        "anchor_lon": np.where(had, lon[anchor], st["anchor_lon"][first]),
        "anchor_us": np.where(had, us[anchor], st["anchor_us"][first]),
    }
    return new_state(groups, TELEPORT_STATE, keys, columns)


def _walk_trouble(
    trouble: np.ndarray,
    groups: Groups,
    place: tuple[np.ndarray, np.ndarray, np.ndarray],
    st: dict[str, np.ndarray],
    settings: SequenceSettings,
    accepted: np.ndarray,
    jump: np.ndarray,
) -> None:
    """Decide report by report the few stretches where a node jumped (or was just rejected).

    Everywhere else each report is reachable from the previous one, which was accepted, so it is
    accepted too. A stretch ends when a report is accepted right after an accepted one.
    """
    lat, lon, us = place
    done_until = -1
    for start in np.flatnonzero(trouble):
        if start <= done_until:
            continue
        if groups.first[start]:
            anchor = _point(
                st["anchor_lat"][start], st["anchor_lon"][start], st["anchor_us"][start]
            )
            last = _point(st["last_lat"][start], st["last_lon"][start], st["last_us"][start])
            last_ok = bool(st["last_accepted"][start])
        else:  # the report before a stretch was accepted: it is the anchor
            anchor = last = (lat[start - 1], lon[start - 1], us[start - 1])
            last_ok = True
        i = start
        while i < len(lat) and (i == start or not groups.first[i]):
            here = (lat[i], lon[i], us[i])
            ok = anchor is None or _feasible(anchor, here, settings)
            if not ok and not last_ok and last is not None:
                ok = _feasible(last, here, settings)  # two reports agree: the node moved
            if not ok:
                jump[i] = _km(anchor[0], anchor[1], here[0], here[1])
            accepted[i] = ok
            settled = ok and last_ok
            last, last_ok = here, ok
            anchor = here if ok else anchor
            done_until, i = i, i + 1
            if settled:
                break


def _point(lat: float, lon: float, us: int) -> tuple[float, float, int] | None:
    return None if math.isnan(lat) or math.isnan(lon) else (lat, lon, int(us))


def _feasible(a: tuple, b: tuple, settings: SequenceSettings) -> bool:
    km = _km(a[0], a[1], b[0], b[1])
    hours = max(abs(int(b[2]) - int(a[2])) / 3.6e9, 1 / 3600)  # reports in the same second
    return not (km > settings.min_jump_km and km / hours > settings.max_speed_kmh)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    rad = math.pi / 180
    a = (
        math.sin((lat2 - lat1) * rad / 2) ** 2
        + math.cos(lat1 * rad) * math.cos(lat2 * rad) * math.sin((lon2 - lon1) * rad / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def _infeasible(lat1, lon1, us1, lat2, lon2, us2, settings: SequenceSettings) -> np.ndarray:
    """The haversine and speed test, vectorized; False where the previous place is unknown."""
    rad = np.pi / 180
    with np.errstate(invalid="ignore"):
        a = (
            np.sin((lat2 - lat1) * rad / 2) ** 2
            + np.cos(lat1 * rad) * np.cos(lat2 * rad) * np.sin((lon2 - lon1) * rad / 2) ** 2
        )
        km = 2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
        hours = np.maximum(np.abs(us2 - us1) / 3.6e9, 1 / 3600)
        bad = (km > settings.min_jump_km) & (km / hours > settings.max_speed_kmh)
    return np.where(np.isnan(km), False, bad)


# -- counters and flat lines -----------------------------------------------------------------


def _counter_resets(
    inputs: SequenceInputs, codes: np.ndarray, accepted: np.ndarray, state: _Keyed
) -> tuple[np.ndarray, pa.Table]:
    counted = accepted & valid(inputs.uptime) & (codes != NO_NODE)
    groups = group_rows(codes, counted)
    uptime = ints(inputs.uptime)[groups.rows]
    known = state_rows(groups, state.codes)
    column = state.table.column("uptime_s")
    before = value_before(uptime, groups.first, looked_up(ints(column, -1), known, -1))
    has_before = np.where(groups.first, looked_up(valid(column), known, False), True)
    reset = np.zeros(len(inputs.time_us), bool)
    reset[groups.rows] = has_before & (uptime < before)
    columns = {"uptime_s": uptime[groups.last]}
    new = new_state(groups, COUNTER_STATE, _node_keys(inputs), columns)
    return reset, state.merged(groups, new)


def _flat_lines(
    inputs: SequenceInputs,
    codes: np.ndarray,
    accepted: np.ndarray,
    state: _Keyed,
    settings: SequenceSettings,
) -> tuple[np.ndarray, pa.Table]:
    n = len(inputs.time_us)
    cells = ints(inputs.cell, -1) if inputs.cell is not None else np.full(n, -1, np.int64)
    table = state.table
    state_cells = ints(table.column("cell_id"), -1)
    row_codes, state_codes = paired([codes, state.codes], [cells, state_cells])
    groups = group_rows(row_codes, accepted & (codes != NO_NODE))
    values = [floats(column)[groups.rows] for column in inputs.sensors]
    known = state_rows(groups, state_codes)
    names = table.schema.names[3:-1]
    repeats = np.ones(len(groups.rows), bool)
    for column, name in zip(values, names, strict=True):
        from_state = looked_up(floats(table.column(name)), known, np.nan)
        repeats &= column == value_before(column, groups.first, from_state)  # NaN never repeats
    carried = looked_up(ints(table.column("run")), known, 0)
    run = _run_lengths(repeats, groups.first, carried)
    flat = np.zeros(n, bool)
    flat[groups.rows] = run >= settings.flat_line_reports
    last = groups.last
    columns = {name: column[last] for column, name in zip(values, names, strict=True)}
    keys = {**_node_keys(inputs), "cell_id": cells}
    new = new_state(groups, table.schema, keys, {**columns, "run": run[last]})
    return flat, _Keyed(table, state_codes).merged(groups, new)


def _node_keys(inputs: SequenceInputs) -> dict[str, pa.Array]:
    return {"source_partition": inputs.partition, "node_id": inputs.node}


def _run_lengths(repeats: np.ndarray, first: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """How many identical readings in a row each row ends, counting the state's run."""
    index = np.arange(len(repeats))
    starts = ~repeats | first
    start_of_run = np.maximum.accumulate(np.where(starts, index, 0)) if len(index) else index
    # A group's first row repeating the state's reading continues the state's run.
    offset = np.where(repeats[start_of_run], carried[start_of_run], 0)
    return index - start_of_run + 1 + offset
