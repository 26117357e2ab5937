"""JSON messages parsed in bulk by Arrow's JSON reader, for the adapters' fast paths.

Messages are screened with ``pyarrow.compute`` (one line, ASCII, no NaN/Infinity, a given
opening), joined into one newline-delimited block and parsed against an explicit schema. Arrow
refuses a whole block for one odd message, so a refused block is halved until the odd ones are
isolated; whatever is not parsed is left to the adapter's message-by-message path.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.base import MAX_MESSAGE_BYTES
from schemas.adapters.ndjson import READ_OPTIONS, lines_buffer

# Parse attempts per batch: enough to isolate a few odd messages, bounded when most are odd.
_ATTEMPTS = 64


def one_line_objects(
    values: pa.Array, opening: str, closing: str = "}", balanced: bool = True
) -> pa.Array:
    """Mask of messages fit for the bulk path: one ASCII line from ``opening`` to ``closing``,
    with balanced braces unless the caller's ``closing`` is telling enough.

    NaN and Infinity (which Arrow accepts and ``json`` refuses) are left to the per-message
    path, which names them; non-ASCII messages too, so a block never fails on bad UTF-8.
    """
    text = values.cast(pa.string(), safe=False)  # bytes as they are; only ASCII ones are used
    length = pc.binary_length(values)
    fit = pc.and_(pc.greater(length, 0), pc.less_equal(length, MAX_MESSAGE_BYTES))
    fit = pc.and_(fit, pc.string_is_ascii(text))
    fit = pc.and_(fit, pc.starts_with(text, opening))
    fit = pc.and_(fit, pc.ends_with(text, closing))
    fit = pc.and_(fit, pc.invert(pc.match_substring_regex(text, "[\r\n]|NaN|Infinity")))
    if balanced:  # a truncated message that happens to end in "}" rarely balances its braces
        braces = pc.equal(pc.count_substring(text, "{"), pc.count_substring(text, "}"))
        fit = pc.and_(fit, braces)
    return pc.fill_null(fit, False)


def parse_objects(
    values: pa.Array, positions: pa.Array, options: pajson.ParseOptions
) -> tuple[pa.Array, pa.Table | None]:
    """Parse the messages at ``positions``; (the positions parsed, their rows in that order)."""
    found = _parse_in_halves(values.take(positions), options, [_ATTEMPTS])
    if not found:
        return pa.array([], pa.int64()), None
    taken = pa.concat_arrays([positions.slice(start, table.num_rows) for start, table in found])
    return taken, pa.concat_tables([table for _, table in found]).combine_chunks()


def _parse_in_halves(
    chosen: pa.Array, options: pajson.ParseOptions, budget: list[int]
) -> list[tuple[int, pa.Table]]:
    if budget[0] <= 0:
        return []
    budget[0] -= 1
    table = _parse(chosen, options)
    if table is not None:
        return [(0, table)]
    if len(chosen) < 2:
        return []
    middle = len(chosen) // 2
    first = _parse_in_halves(chosen.slice(0, middle), options, budget)
    second = _parse_in_halves(chosen.slice(middle), options, budget)
    return first + [(middle + start, table) for start, table in second]


def _parse(chosen: pa.Array, options: pajson.ParseOptions) -> pa.Table | None:
    if not len(chosen):
        return None
    try:
        block = pa.BufferReader(lines_buffer(chosen))
        table = pajson.read_json(block, read_options=READ_OPTIONS, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(chosen) else None
