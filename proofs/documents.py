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
import re
from typing import Any

MAX_DEPTH = 64
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"')  # possessive: linear on any input
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def nesting_problem(data: bytes, limit: int = MAX_DEPTH) -> str | None:
    """Why ``data`` cannot be parsed safely — brackets nested deeper than ``limit``, or not
    balanced — or None. Counted on the text: strings removed, then innermost pairs removed
    level by level (each pass a regular-expression substitution, no recursion)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return None  # the usual small document: no deeper than its brackets
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return None
        inner = _INNERMOST.sub(b"", brackets)
        if len(inner) == len(brackets):
            break  # mismatched: the parser would refuse it, after recursing as deep
        brackets = inner
    if not brackets:
        return None
    return f"brackets nested deeper than {limit} levels, or not balanced"


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


def parse_document(data: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """The JSON value of an untrusted document: ``ValueError`` if it is not JSON or nests
    deeper than ``limit``."""
    raw = data.encode() if isinstance(data, str) else data
    problem = nesting_problem(raw, limit)
    if problem is not None:
        raise ValueError(f"not read: {problem}")
    try:
        return json.loads(raw)
    except RecursionError:  # a recursion limit below ``limit`` levels
        raise ValueError("not read: nested deeper than Python's recursion limit") from None
