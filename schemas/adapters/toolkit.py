"""What an adapter in another package imports: the names this project keeps stable for it.

An installed adapter (``docs/adapters.md``) builds on these and on nothing else of the package,
so the project can move its modules without breaking anyone's adapter:

- the contract: ``DecodeResult``, ``DecodedRows``; a canonical schema by name or version,
  ``get_schema("speed_test.v2")``;
- building rows: ``canonical_rows`` (every column of a schema, absent ones null) and
  ``lineage_columns`` (where each row came from);
- rejecting records: ``Reject`` (raise it with a reason code and a reason) and ``Rejections``
  (collect them by record), ``screen`` (tombstones, empty and oversized messages refused
  unread), ``load_json_object`` (a message as a JSON object, or a ``Reject``), ``to_float`` /
  ``to_int`` / ``to_text`` (a JSON value of the right type, or a ``Reject`` naming it);
- units and times, on whole Arrow columns: ``epoch_to_micros``, ``text_to_micros``,
  ``implausible_times``, ``bytes_per_s_to_mbit``, ``kbit_to_mbit``;
- a fast path over many one-line JSON messages with Arrow's reader: ``one_line_objects``,
  ``parse_objects``;
- testing: ``check_adapter`` (the properties every adapter keeps), ``raw_records``.
"""

from __future__ import annotations

from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.adapters.conformance import check_adapter, raw_records
from schemas.adapters.json_blocks import one_line_objects, parse_objects
from schemas.adapters.messages import (
    Reject,
    Rejections,
    load_json_object,
    screen,
    to_float,
    to_int,
    to_text,
)
from schemas.adapters.normalize import (
    bytes_per_s_to_mbit,
    epoch_to_micros,
    implausible_times,
    kbit_to_mbit,
    text_to_micros,
)
from schemas.registry import get_schema

__all__ = [
    "DecodeResult",
    "DecodedRows",
    "Reject",
    "Rejections",
    "bytes_per_s_to_mbit",
    "canonical_rows",
    "check_adapter",
    "epoch_to_micros",
    "get_schema",
    "implausible_times",
    "kbit_to_mbit",
    "lineage_columns",
    "load_json_object",
    "one_line_objects",
    "parse_objects",
    "raw_records",
    "screen",
    "text_to_micros",
    "to_float",
    "to_int",
    "to_text",
]
