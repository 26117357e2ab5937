"""Message-at-a-time decoding shared by the vendor adapters (gNMI, EMS CSV, RIPE Atlas).

These formats need per-message logic (nested paths, header lines, firmware variants), so each
message is decoded in Python — the only per-row Python the pipeline allows — into plain column
lists; typing, unit conversion and checks then run on whole Arrow columns. Every refusal is a
``Reject`` with a reason code, collected per raw position; nothing here raises on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from schemas.adapters.base import MAX_MESSAGE_BYTES, DecodedRows, DecodeResult
from schemas.adapters.ndjson import INT64_MAX, INT64_MIN, Reject, parse_json
from schemas.records import bounded_reason

__all__ = [
    "Reject",
    "Rejections",
    "load_json_object",
    "screen",
    "to_float",
    "to_int",
    "to_text",
    "unreadable",
]


@dataclass
class Rejections:
    """Rejected raw positions with their code and message, in the order found."""

    positions: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, position: int, code: str, reason: str) -> None:
        self.positions.append(position)
        self.codes.append(code)
        self.reasons.append(bounded_reason(reason))

    def __contains__(self, position: int) -> bool:
        return position in set(self.positions)

    def result(self, parts: tuple[DecodedRows, ...] = ()) -> DecodeResult:
        order = sorted(range(len(self.positions)), key=self.positions.__getitem__)
        return DecodeResult(
            parts=parts,
            rejected_index=pa.array([self.positions[i] for i in order], pa.int64()),
            reject_codes=pa.array([self.codes[i] for i in order], pa.string()),
            reject_reasons=pa.array([self.reasons[i] for i in order], pa.string()),
        )


def screen(values: pa.Array, rejected: Rejections) -> Iterator[tuple[int, bytes]]:
    """Yield (position, bytes) of each message worth decoding; reject tombstones, empty and
    oversized messages without looking inside them."""
    for position, value in enumerate(values.to_pylist()):
        refusal = unreadable(value)
        if refusal is None:
            yield position, value
        else:
            rejected.add(position, refusal.code, refusal.reason)


def unreadable(value: bytes | None) -> Reject | None:
    """Why a message is refused unread (tombstone, empty, over the size limit), or None."""
    if value is None:
        return Reject("tombstone", "record has a null value (Kafka tombstone)")
    if not value:
        return Reject("empty_message", "record value is empty")
    if len(value) > MAX_MESSAGE_BYTES:
        limit = f"over the {MAX_MESSAGE_BYTES} byte limit"
        return Reject("too_large", f"message is {len(value)} bytes, {limit}")
    return None


def decode_text(value: bytes) -> str:
    """UTF-8 text of a message (a leading byte-order mark dropped), or ``Reject``."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Reject("invalid_utf8", f"invalid UTF-8 at byte {error.start}") from None
    return text[1:] if text.startswith("\ufeff") else text


def load_json_object(value: bytes) -> dict:
    """The message as a JSON object; ``Reject`` for bad UTF-8, bad JSON, NaN or a non-object."""
    document = parse_json(decode_text(value))
    if type(document) is not dict:
        raise Reject("not_an_object", f"message is a JSON {type(document).__name__}")
    return document


_NOT_FINITE_TEXT = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity"})
_NOT_FINITE_TEXT |= {"+infinity", "-infinity"}


def to_float(value: Any, where: str) -> float | None:
    """A JSON number, or a number sent as a string (older firmware, proto3 JSON), as a float."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise Reject("not_finite", f"{where} is not a finite number")
        return value
    if kind is int:
        return float(value)
    if value is None:
        return None
    if kind is str:
        text = value.strip()
        if text.lower() in _NOT_FINITE_TEXT:
            raise Reject("not_finite", f"{where}={text} is not a finite number")
        try:
            number = float(text)
        except ValueError:
            raise Reject("wrong_type", f"{where} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise Reject("out_of_range", f"{where}={text} does not fit a 64-bit float")
        return number
    raise Reject("wrong_type", f"{where} must be a number, got {kind.__name__}")


def to_int(value: Any, where: str) -> int | None:
    """A JSON integer, an integral float, or an integer sent as a string, within 64 bits."""
    kind = type(value)
    if kind is int:
        number = value
    elif value is None:
        return None
    elif kind is str:
        try:
            number = int(value.strip())
        except ValueError:
            raise Reject("wrong_type", f"{where} must be an integer, got {value!r}") from None
    elif kind is float and value.is_integer():
        if not INT64_MIN <= value <= INT64_MAX:  # said as it was written: 1e+308, not 309 digits
            raise Reject("out_of_range", f"{where}={value!r} does not fit in 64 bits")
        number = int(value)
    elif kind is float and not math.isfinite(value):
        raise Reject("not_finite", f"{where} is not a finite number")
    else:
        raise Reject("wrong_type", f"{where} must be an integer, got {kind.__name__}")
    if not INT64_MIN <= number <= INT64_MAX:
        raise Reject("out_of_range", f"{where}={number} does not fit in 64 bits")
    return number


def to_text(value: Any, where: str) -> str | None:
    """A JSON string (kept verbatim, control characters included). A lone surrogate
    (``"\\ud800"``) is valid JSON but no text: Arrow refuses it, and an adapter raising there had
    its whole batch halved and decoded again until the record was alone."""
    if value is None:
        return value
    if type(value) is str:
        if not value.isascii() and not _encodable(value):
            raise Reject("invalid_utf8", f"{where} holds a lone surrogate, which is no text")
        return value
    raise Reject("wrong_type", f"{where} must be a string, got {type(value).__name__}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
