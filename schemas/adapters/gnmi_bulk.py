"""gNMI notifications in bulk: Arrow's JSON reader and ``pyarrow.compute``, no per-message Python.

The bulk path takes only the common, canonical shape — gnmic's compact
``{"update": {"timestamp": "<ns>", "prefix": {"target", "elem": [cell[eci=…]]}, "update": [...]}}``
ending in its ``update`` (or ``delete``) list, with one key-less element per update path and one
scalar TypedValue per update, 64-bit integers as strings as proto3 JSON writes them — and only when
every message of a block parses with one explicit schema. Any message outside that shape (or a
block Arrow refuses) goes to the adapter's message-by-message path, which gives identical rows
and names every problem; a test holds the two paths to the same results.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.json_blocks import one_line_objects, parse_objects

_ELEMS = pa.list_(pa.struct([("name", pa.string()), ("key", pa.struct([("eci", pa.string())]))]))
# proto3 JSON: doubles as numbers, 64-bit integers as strings
_VALUE_TYPES = {
    "doubleVal": pa.float64(),
    "floatVal": pa.float64(),
    "intVal": pa.string(),
    "uintVal": pa.string(),
    "stringVal": pa.string(),
}
_VALUE_KINDS = tuple(_VALUE_TYPES)
_VAL = pa.struct(list(_VALUE_TYPES.items()))
_UPDATE = pa.struct([("path", pa.struct([("elem", _ELEMS)])), ("val", _VAL)])
_NOTIFICATION = pa.struct(
    [
        ("timestamp", pa.string()),
        ("prefix", pa.struct([("target", pa.string()), ("elem", _ELEMS)])),
        ("update", pa.list_(_UPDATE)),
    ]
)
_OPTIONS = pajson.ParseOptions(
    explicit_schema=pa.schema([("update", _NOTIFICATION)]),
    unexpected_field_behavior="ignore",
    newlines_in_values=False,
)
_DIGITS = r"^([0-9]{1,18}|[1-8][0-9]{18})$"  # fits int64 without a cast error


@dataclass(frozen=True)
class BulkRows:
    """One row per message taken: raw positions, node, ns, cell, and per slot its value."""

    positions: pa.Array
    columns: dict[str, pa.Array]


def bulk_rows(
    values: pa.Array, leaves: dict[str, tuple[str, str]], slots: tuple[str, ...]
) -> tuple[BulkRows | None, pa.Array]:
    """Rows of the messages the bulk path can take, and the positions left to the slow path.

    ``leaves`` maps a lower-case leaf name to (slot, kind) with kind "float", "int" or "text".
    """
    everything = pa.array(range(len(values)), pa.int64())
    shaped = pc.filter(everything, one_line_objects(values, '{"update":{', "]}}", balanced=False))
    positions, parsed = parse_objects(values, shaped, _OPTIONS)
    if parsed is None:
        return None, everything
    notifications = parsed.column("update").combine_chunks()
    taken = _eligible(notifications)
    notifications, positions = pc.filter(notifications, taken), pc.filter(positions, taken)
    pivoted = _pivot(notifications, leaves, slots)
    if pivoted is None:
        return None, everything
    good, columns = pivoted
    columns = {name: pc.filter(_whole(column), good) for name, column in columns.items()}
    notifications, positions = pc.filter(notifications, good), pc.filter(positions, good)
    columns["node_id"] = _field(notifications, "prefix", "target")
    columns["ns"] = _field(notifications, "timestamp").cast(pa.int64())
    first = pc.list_element(_field(notifications, "prefix", "elem"), 0)
    columns["cell_id"] = _field(first, "key", "eci").cast(pa.int64())
    rest = pc.filter(everything, pc.invert(pc.is_in(everything, value_set=positions)))
    return (BulkRows(positions, columns) if len(positions) else None), rest


def _whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _field(array: pa.Array, *names: str) -> pa.Array:
    for name in names:
        array = pc.struct_field(array, name)
    return array


def _eligible(notifications: pa.StructArray) -> pa.Array:
    """Per message: the canonical shape, with every update one key-less leaf and one value."""
    prefix_elems = _field(notifications, "prefix", "elem")
    updates = _field(notifications, "update")
    ok = pc.and_(pc.is_valid(notifications), pc.is_valid(_field(notifications, "prefix", "target")))
    ok = pc.and_(ok, pc.match_substring_regex(_field(notifications, "timestamp"), _DIGITS))
    ok = pc.and_(ok, pc.equal(pc.list_value_length(prefix_elems), 1))
    ok = pc.and_(ok, pc.greater(pc.list_value_length(updates), 0))
    ok = pc.fill_null(ok, False)
    first = pc.list_element(
        pc.if_else(ok, prefix_elems, pa.scalar([{"name": "", "key": None}], _ELEMS)), 0
    )
    ok = pc.and_(ok, pc.fill_null(pc.equal(pc.utf8_lower(_field(first, "name")), "cell"), False))
    eci = _field(first, "key", "eci")
    ok = pc.and_(ok, pc.fill_null(pc.match_substring_regex(eci, _DIGITS), False))
    flat, parent = pc.list_flatten(updates), pc.list_parent_indices(updates)
    elems = _field(flat, "path", "elem")
    bad = pc.not_equal(pc.fill_null(pc.list_value_length(elems), 0), 1)
    one = pc.list_element(pc.if_else(bad, pa.scalar([{"name": "", "key": None}], _ELEMS), elems), 0)
    name = _field(one, "name")
    bad = pc.or_(bad, pc.is_null(name))
    bad = pc.or_(bad, pc.fill_null(pc.match_substring(name, ":"), False))
    bad = pc.or_(bad, pc.fill_null(pc.equal(pc.utf8_lower(name), "cell"), False))
    bad = pc.or_(bad, pc.is_valid(_field(one, "key", "eci")))
    kinds = [pc.is_valid(_field(flat, "val", kind)).cast(pa.int8()) for kind in _VALUE_KINDS]
    count = kinds[0]
    for more in kinds[1:]:
        count = pc.add(count, more)
    bad = pc.or_(bad, pc.not_equal(count, 1))
    bad_messages = pc.unique(pc.filter(parent, bad))
    messages = pa.array(range(len(notifications)), pa.int64())
    return pc.and_(ok, pc.invert(pc.is_in(messages, value_set=bad_messages.cast(pa.int64()))))


def _pivot(
    notifications: pa.StructArray, leaves: dict[str, tuple[str, str]], slots: tuple[str, ...]
) -> tuple[pa.Array, dict[str, pa.Array]] | None:
    """Per message, each slot's value (the last update wins), and which messages converted
    cleanly (a value the slow path would refuse sends its message there)."""
    count = len(notifications)
    if not count:
        return None
    updates = _field(notifications, "update")
    flat, parent = pc.list_flatten(updates), pc.list_parent_indices(updates).cast(pa.int64())
    name = pc.utf8_lower(_field(pc.list_element(_field(flat, "path", "elem"), 0), "name"))
    names = list(leaves)
    leaf = pc.index_in(name, value_set=pa.array(names, pa.string()))
    known = pc.is_valid(leaf)
    flat, parent, leaf = pc.filter(flat, known), pc.filter(parent, known), pc.filter(leaf, known)
    by_kind = _typed_values(_field(flat, "val"))
    messages = pa.array(range(count), pa.int64())
    columns: dict[str, pa.Array] = {}
    unusable: list[pa.Array] = []  # owners of values the slow path would refuse
    kinds = {slot: kind for slot, kind in leaves.values()}
    for slot in slots:
        kind = kinds.get(slot)
        if kind is None:
            continue
        indices = [i for i, n in enumerate(names) if leaves[n][0] == slot]
        mine = (
            pc.equal(leaf, indices[0])
            if len(indices) == 1
            else pc.is_in(leaf, value_set=pa.array(indices, pa.int32()))
        )
        source = by_kind[kind]
        value = pc.filter(source, mine)
        owners = pc.filter(parent, mine)
        unusable.append(pc.filter(owners, pc.is_null(value)))
        columns[slot] = _last_per_message(owners, value, count)
    # A message without a single known leaf has no measurement: the slow path says so.
    failed = pc.or_(
        pc.invert(pc.is_in(messages, value_set=parent)),
        pc.is_in(messages, value_set=pa.concat_arrays([*unusable, pa.array([], pa.int64())])),
    )
    return pc.invert(failed), columns


def _typed_values(val: pa.StructArray) -> dict[str, pa.Array]:
    """Each update's value read as a float, an integer and text (null where it is not one)."""
    number = pc.coalesce(_field(val, "doubleVal"), _field(val, "floatVal"))
    text = pc.coalesce(_field(val, "intVal"), _field(val, "uintVal"), _field(val, "stringVal"))
    as_float = pc.coalesce(
        number, _text_number(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", pa.float64())
    )
    integral = pc.and_(pc.equal(number, pc.floor(number)), pc.less(pc.abs(number), 2.0**62))
    as_int = pc.coalesce(
        pc.if_else(pc.fill_null(integral, False), number, pa.scalar(None, pa.float64())).cast(
            pa.int64(), safe=False
        ),
        _text_number(text, r"^[+-]?[0-9]{1,18}$", pa.int64()),
    )
    return {"float": as_float, "int": as_int, "text": text}


def _text_number(text: pa.Array, pattern: str, target: pa.DataType) -> pa.Array:
    """Numbers written as text; null where the text is not one (the slow path names it)."""
    usable = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    try:
        typed = pc.if_else(usable, text, pa.scalar(None, pa.string())).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. 1e400: leave it to the slow path
        return pa.nulls(len(text), target)
    if pa.types.is_floating(target):
        return pc.if_else(pc.is_finite(typed), typed, pa.scalar(None, target))
    return typed


def _last_per_message(owners: pa.Array, value: pa.Array, count: int) -> pa.Array:
    """A message-aligned array of each message's last value (null where it has none)."""
    messages = pa.array(range(count), pa.int64())
    if len(owners) and pc.count_distinct(owners).as_py() == len(owners):  # the usual case
        return pc.take(value, pc.index_in(messages, value_set=owners))
    if len(owners):
        table = pa.table({"owner": owners, "value": value, "order": pa.array(range(len(owners)))})
        last = table.group_by("owner", use_threads=False).aggregate([("order", "max")])
        picked = pc.take(value, last.column("order_max"))
        slot = pc.index_in(messages, value_set=last.column("owner"))
        return pc.take(picked, slot)
    return pa.nulls(count, value.type)
