"""Every adapter behind one guard: bounded input in, and no exception out.

``GuardedAdapter`` wraps an adapter so that (1) messages over the bounds of
``schemas/adapters/bounds.py`` are refused before any parser runs, with the process-wide
recursion limit put back under what the C stack can take; and (2) an exception the adapter
raises anyway (a bug, or input nobody foresaw) never leaves it: the batch is halved until the
records that raise are alone, and each is rejected as ``adapter_error`` naming the exception,
while the rest decode as usual. ``schemas.adapters.adapter_for`` hands out guarded adapters only.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters.base import Adapter, DecodedRows, DecodeResult
from schemas.adapters.bounds import contain_recursion, out_of_bounds
from schemas.model import TelemetrySchema

MAX_ERROR_TEXT = 200


class GuardedAdapter:
    """An adapter whose input is bounded and whose exceptions become quarantine reasons."""

    def __init__(self, adapter: Adapter, nested: bool) -> None:
        self.adapter = adapter
        self.nested = nested  # JSON: nesting depth is bounded too
        self.wire_format: str = adapter.wire_format
        self.schemas: Sequence[TelemetrySchema] = adapter.schemas

    @property
    def bulk(self) -> bool:
        """The wrapped adapter's Arrow fast path switch (where it has one)."""
        return getattr(self.adapter, "bulk", False)

    @bulk.setter
    def bulk(self, on: bool) -> None:
        self.adapter.bulk = on  # type: ignore[attr-defined]

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        contain_recursion()
        refused = out_of_bounds(raw.column("value"), self.nested)
        if not refused:
            return self._contained(raw)
        positions = {position for position, _, _ in refused}
        keep = pa.array([i for i in range(raw.num_rows) if i not in positions], pa.int64())
        decoded = remap(self._contained(raw.take(keep)), keep)
        return merge([decoded, rejected(refused)])

    def _contained(self, raw: pa.RecordBatch) -> DecodeResult:
        """Decode, and when the adapter raises, find the records that make it raise."""
        try:
            return self.adapter.decode(raw)
        except Exception as error:  # any failure becomes a reason, never a crash
            if raw.num_rows <= 1:
                return rejected([(0, "adapter_error", self._reason(error))] if raw.num_rows else [])
        middle = raw.num_rows // 2
        first = self._contained(raw.slice(0, middle))
        second = self._contained(raw.slice(middle))
        return merge([first, remap(second, pa.array(range(middle, raw.num_rows), pa.int64()))])

    def _reason(self, error: Exception) -> str:
        text = " ".join(str(error).split())[:MAX_ERROR_TEXT]
        return (
            f"the {self.wire_format} adapter failed on this record "
            f"({type(error).__name__}: {text or 'no message'})"
        )


def rejected(found: list[tuple[int, str, str]]) -> DecodeResult:
    """A result holding only rejects: (position, code, reason) each."""
    return DecodeResult(
        rejected_index=pa.array([p for p, _, _ in found], pa.int64()),
        reject_codes=pa.array([c for _, c, _ in found], pa.string()),
        reject_reasons=pa.array([r for _, _, r in found], pa.string()),
    )


def remap(result: DecodeResult, positions: pa.Array) -> DecodeResult:
    """``result`` of ``raw.take(positions)``, with its indices mapped back to ``raw``'s."""
    return DecodeResult(
        parts=tuple(
            DecodedRows(p.schema, p.rows, pc.take(positions, p.row_index)) for p in result.parts
        ),
        rejected_index=pc.take(positions, result.rejected_index),
        reject_codes=result.reject_codes,
        reject_reasons=result.reject_reasons,
    )


def merge(results: list[DecodeResult]) -> DecodeResult:
    """Results over disjoint records of one batch, as one (rejects in position order)."""
    index = pa.concat_arrays([r.rejected_index.cast(pa.int64()) for r in results])
    codes = pa.concat_arrays([r.reject_codes.cast(pa.string()) for r in results])
    reasons = pa.concat_arrays([r.reject_reasons.cast(pa.string()) for r in results])
    order = pc.sort_indices(index)
    return DecodeResult(
        parts=tuple(part for r in results for part in r.parts),
        rejected_index=index.take(order),
        reject_codes=codes.take(order),
        reject_reasons=reasons.take(order),
    )
