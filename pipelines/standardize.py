"""One raw Kafka batch to published rows and quarantined records, with nothing lost between."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters import Adapter
from schemas.records import quarantine_batch
from validators.rowchecks import check_rows


@dataclass(frozen=True)
class Standardized:
    """``published`` rows follow the canonical schema exactly; ``quarantined`` keep raw bytes."""

    dataset: str
    read: int
    published: pa.RecordBatch
    quarantined: pa.RecordBatch

    def __post_init__(self) -> None:
        # The counting invariant, enforced where the split happens.
        if self.read != self.published.num_rows + self.quarantined.num_rows:
            raise AssertionError(
                f"counts do not reconcile: read {self.read} != published "
                f"{self.published.num_rows} + quarantined {self.quarantined.num_rows}"
            )


def standardize(raw: pa.RecordBatch, adapter: Adapter) -> Standardized:
    """Decode with ``adapter``, run the schema's row checks, and split the batch."""
    decoded = adapter.decode(raw)
    checks = check_rows(adapter.schema, decoded.rows)
    failed = pc.invert(checks.valid)
    published = adapter.schema.conform(decoded.rows.filter(checks.valid))

    rejected_index = pa.concat_arrays(
        [decoded.rejected_index, pc.filter(decoded.row_index, failed)]
    )
    codes = pa.concat_arrays([decoded.reject_codes, pc.filter(checks.codes, failed)])
    reasons = pa.concat_arrays([decoded.reject_reasons, pc.filter(checks.reasons, failed)])
    order = pc.sort_indices(rejected_index)
    quarantined = quarantine_batch(
        raw.take(pc.take(rejected_index, order)), pc.take(codes, order), pc.take(reasons, order)
    )
    return Standardized(
        dataset=adapter.schema.dataset,
        read=raw.num_rows,
        published=published,
        quarantined=quarantined,
    )
