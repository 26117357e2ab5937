"""RIPE Atlas traceroute hops, in every firmware's shape, summarized for ``path_trace``.

Firmware 4400 and later send ``result`` as a list of hops ``{"hop": n, "result": [reply…]}``
(or ``{"hop": n, "error": "…"}`` when the probe could not send). A reply is one of
``{"from", "rtt", "ttl", "size", "err"?, "icmpext"?, "dup"?}`` (an answer, ``err`` naming an ICMP
error such as ``"N"`` or ``"H"``), ``{"x": "*"}`` (a timeout), ``{"from", "late": n}`` (an answer
that came after the next probe was sent: it has no usable RTT) or ``{"error": "…"}``.
Firmware 1 sent the traceroute command's text output instead; it is parsed line by line.
Hop addresses are not kept: they can identify the probe host's own network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas.adapters.messages import Reject, to_float, to_text


@dataclass(frozen=True)
class PathSummary:
    hop_count: int
    reached: bool
    final_rtt_ms: float | None
    hop_rtt_ms: list[float | None]
    timeouts: int


def summarize_hops(result: Any, target: str | None) -> PathSummary:
    """Summarize a traceroute's ``result`` (a list of hops, or firmware 1's text)."""
    if type(result) is str:
        return _summarize_text(result)
    if type(result) is not list:
        raise Reject("wrong_type", "traceroute result must be a list of hops or text")
    best: list[float | None] = []
    reached, timeouts = False, 0
    for number, hop in enumerate(result):
        if type(hop) is not dict:
            raise Reject("wrong_type", f"result[{number}] must be an object")
        replies = hop.get("result") or []
        if type(replies) is not list:
            raise Reject("wrong_type", f"result[{number}].result must be a list")
        rtts = []
        for reply in replies:
            if type(reply) is not dict:
                raise Reject("wrong_type", f"result[{number}] replies must be objects")
            if "x" in reply:
                timeouts += 1
                continue
            rtt = to_float(reply.get("rtt"), f"result[{number}] rtt")
            if rtt is not None and "dup" not in reply:
                rtts.append(rtt)
            source = to_text(reply.get("from"), f"result[{number}] from")
            if target and source == target:
                reached = True
        best.append(min(rtts) if rtts else None)
    return _summary(best, reached, timeouts)


def _summary(best: list[float | None], reached: bool, timeouts: int) -> PathSummary:
    answered = [rtt for rtt in best if rtt is not None]
    last = next((rtt for rtt in reversed(best) if rtt is not None), None)
    return PathSummary(len(best), reached, last if answered else None, best, timeouts)


_FIRST_LINE = re.compile(r"traceroute6? to (\S+)(?: \(([^)]*)\))?")
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _summarize_text(text: str) -> PathSummary:
    """Firmware 1: ``traceroute to NAME (ADDR), …`` then `` N  ADDR  1.2 ms  * …`` per hop."""
    lines = text.strip().splitlines()
    if not lines:
        raise Reject("missing_required", "traceroute text is empty")
    first = _FIRST_LINE.search(lines[0])
    target = (first.group(2) or first.group(1)) if first else None
    best: list[float | None] = []
    reached, timeouts = False, 0
    for line in lines[1:] if first else lines:
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0].isdigit():  # a new hop; otherwise more replies of the current one
            best.append(None)
            tokens = tokens[1:]
        if not best:
            raise Reject("invalid_traceroute", f"cannot read traceroute line {line!r}")
        rtts = []
        for i, token in enumerate(tokens):
            if token == "*":
                timeouts += 1
            elif _NUMBER.match(token) and i + 1 < len(tokens) and tokens[i + 1] == "ms":
                rtts.append(float(token))
            elif token.strip("()") == target:
                reached = True
        if rtts:
            best[-1] = min([*rtts, *([best[-1]] if best[-1] is not None else [])])
    return _summary(best, reached, timeouts)
