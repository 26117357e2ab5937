"""Bounds a message must keep before any parser sees it: size, nesting depth, number length.

Parsers are not safe on hostile input. CPython's ``json`` recurses in C once per nesting level
and trusts the recursion limit, which web3's ``py_ecc`` raises to 100,000 at import: 100,000
nested arrays then overflow the C stack (SIGSEGV) before any ``RecursionError``. Arrow's JSON
reader overflows it on deep input whatever the limit. ``int()`` refuses literals of more than
4,300 digits with a ``ValueError``. So every message is measured first, over the whole batch at once
(``pyarrow.compute`` and NumPy on the batch's data buffer), and only the few messages that a
cheap bound cannot clear are measured exactly. A message out of bounds is quarantined with a
reason and never reaches a parser. Measured on clean input (``rda bench --only
decode_standardize``), the guard costs a few percent of decoding.

| bound | limit | reason code |
|---|---|---|
| size | 1,000,000 bytes (Kafka's default maximum message size) | ``too_large`` |
| nesting depth of ``[``/``{`` outside strings (JSON formats) | 64 | ``too_deep`` |
| a run of decimal digits (any format) | 400 | ``number_too_long`` |

No real telemetry comes near these: the deepest documented shape (a RIPE Atlas traceroute with
ICMP extensions) nests 8 levels, and a float64 has at most 309 integer digits.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_MESSAGE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_DIGITS = 400
_SAMPLES = 16  # digits sampled in a row to suspect a long number (divides MAX_DIGITS)
# py-evm raises the limit to 12,288 so the EVM can reach its 1,024 call frames; py_ecc then
# raises it to 100,000, deep enough to overflow the C stack. Parsing restores this bound.
SAFE_RECURSION_LIMIT = 12_288

_LONG_NUMBER_BYTES = re.compile(rb"[0-9]{%d}" % (MAX_DIGITS + 1))
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')  # after escapes are gone: linear, no backtracking blow-up
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def contain_recursion() -> None:
    """Put the process-wide recursion limit back under what the C stack can take."""
    if sys.getrecursionlimit() > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)


def out_of_bounds(values: pa.Array, nested: bool) -> list[tuple[int, str, str]]:
    """(position, code, reason) of each message over a bound; ``nested``: a JSON format."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if values.type != pa.binary():
        values = values.cast(pa.binary())
    found: dict[int, tuple[str, str]] = {}
    lengths = pc.fill_null(pc.binary_length(values), 0)
    for position in _positions(pc.greater(lengths, MAX_MESSAGE_BYTES)):
        size = lengths[position].as_py()
        found[position] = ("too_large", f"the message is {size:,} bytes, over the limit of "
                           f"{MAX_MESSAGE_BYTES:,}")  # fmt: skip
    offsets, data = _layout(values)
    for position in _maybe_long_numbers(offsets, data):  # then RE2 on those messages only
        if position not in found and re.search(_LONG_NUMBER_BYTES, values[position].as_py()):
            found[position] = number_too_long(values[position].as_py())
    if nested:
        for position in np.flatnonzero(_opener_counts(offsets, data) > MAX_DEPTH).tolist():
            if position not in found:  # more openers than the limit: measure it exactly
                depth = nesting_depth(values[position].as_py())
                if depth > MAX_DEPTH:
                    found[position] = too_deep(depth)
    return [(position, *found[position]) for position in sorted(found)]


def _layout(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(message offsets from 0, the bytes of every message) of a binary array, without copies."""
    _, offsets_buffer, data = values.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, len(values) + 1, values.offset * 4)
    if data is None or not len(values):
        return np.zeros(len(values) + 1, np.int64), np.zeros(0, np.uint8)
    start = int(offsets[0])
    return offsets.astype(np.int64) - start, np.frombuffer(data, np.uint8)[start : offsets[-1]]


def _opener_counts(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Per message, how many ``[`` and ``{`` it holds (an upper bound of its nesting depth).

    One pass over the bytes: ``[`` (0x5B) and ``{`` (0x7B) are the only bytes that OR 0x20 makes
    0x7B; the openers before each message boundary are then counted by binary search.
    """
    found = np.flatnonzero((data | 0x20) == 0x7B)
    return np.diff(np.searchsorted(found, offsets))


def _maybe_long_numbers(offsets: np.ndarray, data: np.ndarray) -> list[int]:
    """Messages that may hold a run of more than ``MAX_DIGITS`` digits (a superset).

    Such a run covers at least ``_SAMPLES`` consecutive bytes sampled every ``MAX_DIGITS //
    _SAMPLES``: only those samples are read (a 25th of the bytes). Sixteen samples in a row all
    digits almost never happens by chance, even in digit-dense JSON (kernel counters), so few
    messages are left for the exact search.
    """
    step = MAX_DIGITS // _SAMPLES
    sample = data[::step]
    digit = (sample - np.uint8(ord("0"))) < 10  # uint8 arithmetic wraps: one compare
    if len(digit) < _SAMPLES:
        return []
    run = digit[: len(digit) - _SAMPLES + 1].copy()
    for shift in range(1, _SAMPLES):
        run &= digit[shift : len(digit) - _SAMPLES + 1 + shift]
    found = np.flatnonzero(run) * step
    owner = np.searchsorted(offsets[1:], found, side="right")
    last = np.searchsorted(offsets[1:], found + (_SAMPLES - 1) * step, side="right")
    return np.unique(owner[owner == last]).tolist()  # all samples in one message


def refusal(value: bytes, nested: bool = True) -> tuple[str, str] | None:
    """(code, reason) if one message is over a bound, else None (for JSON inside a message)."""
    refused = out_of_bounds(pa.array([value], pa.binary()), nested)
    return refused[0][1:] if refused else None


def nesting_depth(value: bytes) -> int:
    """The deepest nesting of JSON arrays and objects, brackets inside strings not counted.

    Linear time, in C but for the final count. Only quotes and brackets decide it, so the rest
    goes first; then adjacent quote pairs (a string with no bracket in it, or the end of one
    string and the start of the next: dropping them keeps every bracket inside or outside a
    string as it was), then what strings remain, with the brackets they hold. The running
    depth's peak is the answer (up to the first syntax error, which is as far as a parser would
    go, it is the parser's own depth). A message with a backslash has its escapes dropped first.
    """
    if b"\\" in value:
        value = _ESCAPE.sub(b"", value)
    structure = value.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", structure).translate(None, _NOT_BRACKETS)
    codes = np.frombuffer(brackets, np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def too_deep(depth: int) -> tuple[str, str]:
    return "too_deep", (
        f"arrays and objects nest {depth:,} levels deep, over the limit of {MAX_DEPTH} "
        "(refused before parsing)"
    )


def number_too_long(value: bytes) -> tuple[str, str]:
    match = re.search(rb"[0-9]{%d,}" % (MAX_DIGITS + 1), value)  # the whole run, for its length
    where = f" at byte {match.start()}" if match else ""
    length = f"{match.end() - match.start():,} " if match else ""
    return "number_too_long", (
        f"a number of {length}digits{where}, over the limit of {MAX_DIGITS} "
        "(refused before parsing)"
    )


def _positions(mask: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
