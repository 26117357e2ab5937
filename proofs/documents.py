"""JSON documents from places a verifier cannot trust, parsed within a bound on their nesting.

Manifests, signatures, attestations, tables, schema documents and proof bundles come from a
data directory or a seller. Their size is bounded where they are read (``read_document``);
their nesting is bounded here, from the text, before anything parses it. Python's JSON parser
recurses once per level, and web3 (through py_ecc, which it imports) raises the interpreter's
recursion limit to 100,000: in any process that has imported it, ``json.loads`` of a document
nested ~100,000 deep overflows the C stack, a segmentation fault rather than a
``RecursionError`` (a 200 KB manifest of brackets killed ``rda verify``). No document of the
documented formats nests deeper than ~8 levels.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

MAX_DEPTH = 64
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')  # after escapes are gone: linear, no backtracking blow-up
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_RUNS = re.compile(rb"[\[{]+|[\]}]+")  # openers, or closers, in a row
_OPENERS = b"[{"


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in ``data``, brackets inside strings not
    counted: the depth a parser recurses to (up to the first syntax error, where it stops).

    The same measure as the ingest's (``schemas/adapters/bounds.py``, over a batch of messages
    with NumPy), with the standard library only: escapes dropped, then all but quotes and
    brackets, then adjacent quote pairs and the strings left; the running depth's peak over
    the brackets that remain, a run of openers or closers at a time. Linear time (64 MiB of
    nested brackets: 0.38 s here).
    """
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    structure = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", structure).translate(None, _NOT_BRACKETS)
    depth = peak = 0
    for run in _RUNS.finditer(brackets):
        if brackets[run.start()] in _OPENERS:
            depth += run.end() - run.start()
            peak = max(peak, depth)
        else:
            depth -= run.end() - run.start()
    return peak


def depth_over(data: bytes, limit: int = MAX_DEPTH) -> int | None:
    """``data``'s nesting depth if it is over ``limit``, else None (a document with no more
    openers than ``limit``, the usual small one, is not scanned)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth = nesting_depth(data)
    return depth if depth > limit else None


def nests_deeper(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON value nests objects and arrays more than ``limit`` deep (walked
    without recursion)."""
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_document(data: bytes, limit: int = MAX_DEPTH) -> Any:
    """The JSON value of an untrusted document: ``ValueError`` if it is not JSON or nests
    deeper than ``limit``."""
    depth = depth_over(data, limit)
    if depth is not None:
        raise ValueError(f"not read: arrays and objects nest {depth:,} levels, over {limit}")
    try:
        return json.loads(data)
    except RecursionError:  # a recursion limit below ``limit`` levels
        raise ValueError("not read: nested deeper than Python's recursion limit") from None


def open_untrusted(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (or a link to one); ``ValueError``
    if it is anything else or cannot be opened, ``FileNotFoundError`` if it is not there.

    A folder a verifier reads is untrusted: a named pipe in it blocks its opening, then its
    reads, for as long as nobody writes to it (``rda verify`` hung on a FIFO named as a
    manifest, a signature or a listed Parquet file), a device reads without end, and a
    directory or a loop of links is no document either. Opened without blocking, then
    checked on the open file itself, so what is read is what was checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path.name} cannot be read ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path.name} is not a regular file: not read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
