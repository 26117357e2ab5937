"""CSV exports split in bulk with ``pyarrow.compute``: header line, body and line counts for
every message at once, and one Arrow CSV parse per distinct header — no per-message Python.

Only *simple* exports take this path: ASCII (so valid UTF-8), no quote characters, no byte-order
mark, no blank lines, and a comma count that fits the header. Everything else, and any block
Arrow refuses, is left to the adapter's message-by-message reader, which names the bad line.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.adapters.base import MAX_MESSAGE_BYTES
from schemas.adapters.ndjson import lines_buffer

# Exports of a feed share a header or a few; beyond this many, the rest go message by message.
MAX_HEADERS = 8


@dataclass(frozen=True)
class SimpleExports:
    """Simple exports sharing one header line: raw positions, bodies, data line and comma counts."""

    header: str
    positions: pa.Array
    bodies: pa.Array
    counts: pa.Array
    commas: pa.Array


def split_exports(values: pa.Array) -> tuple[list[SimpleExports], pa.Array]:
    """The simple exports of ``values`` grouped by header, and the positions of all the others."""
    everything = pa.array(range(len(values)), pa.int64())
    text = values.cast(pa.string(), safe=False)  # the bytes as they are; only ASCII ones are used
    length = pc.binary_length(values)
    simple = pc.and_(pc.greater(length, 0), pc.less_equal(length, MAX_MESSAGE_BYTES))
    simple = pc.and_(simple, pc.string_is_ascii(text))
    for pattern in ('"', "\n\n", "\n\r\n"):
        simple = pc.and_(simple, pc.invert(pc.match_substring(text, pattern)))
    left = pc.fill_null(simple, False)
    groups = []
    for _ in range(MAX_HEADERS):
        first = pc.index(left, True).as_py()
        if first < 0:
            break
        header, newline, _ = text[first].as_py().partition("\n")
        prefix = header + newline
        mine = pc.and_(left, pc.starts_with(text, prefix)) if newline else None
        if mine is None or not pc.any(mine).as_py():
            left = pc.and_(left, pc.not_equal(everything, first))
            continue
        left = pc.and_(left, pc.invert(mine))
        bodies = pc.utf8_slice_codeunits(pc.filter(text, mine), len(prefix))
        ends = pc.ends_with(bodies, "\n")
        groups.append(
            SimpleExports(
                header.rstrip("\r"),
                pc.filter(everything, mine),
                bodies,
                pc.add(pc.count_substring(bodies, "\n"), pc.invert(ends).cast(pa.int32())).cast(
                    pa.int64()
                ),
                pc.count_substring(bodies, ",").cast(pa.int64()),
            )
        )
    taken = [group.positions for group in groups]
    others = pc.filter(
        everything,
        pc.invert(pc.is_in(everything, pa.concat_arrays([*taken, pa.array([], pa.int64())]))),
    )
    return groups, others


def parse_block(bodies: pa.Array, counts: pa.Array, width: int) -> list[pa.Array] | None:
    """The cells' text of every data line of ``bodies`` (all of one header), per column; None
    if Arrow refuses the block or finds another number of lines than ``counts`` says."""
    names = [f"c{i}" for i in range(width)]
    block = lines_buffer(bodies.cast(pa.binary()))  # a final newline doubled: a blank line, skipped
    try:
        table = pacsv.read_csv(
            pa.BufferReader(block),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != pc.sum(counts).as_py():
        return None
    return [table.column(i).combine_chunks() for i in range(width)]


def line_numbers(positions: pa.Array, counts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Per data line: its export's raw position and its line number (the header is line 1)."""
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(counts)])
    total = offsets[-1].as_py()
    spans = pa.ListArray.from_arrays(offsets.cast(pa.int32()), pa.nulls(total, pa.int8()))
    parent = pc.list_parent_indices(spans)
    first = pc.take(offsets, parent)
    lines = pc.add(pc.subtract(pa.array(range(total), pa.int64()), first), 2)
    return pc.take(positions, parent), lines
