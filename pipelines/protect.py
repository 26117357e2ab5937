"""After the row checks, before landing: quality checks, then the privacy policy, per chunk.

Hard quality failures quarantine their whole record (reason code and message, like any
reject); soft ones become the row's ``quality_flags``. Then each dataset's rows are anonymized
by its schema's privacy classes; records whose rows k-anonymity withholds are *suppressed*:
kept whole in the private store and counted, so read = published + quarantined + suppressed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import aggregate
from pipelines.anonymize import PseudonymKey, anonymize
from pipelines.standardize import Standardized
from schemas.fields import DEVICE_FIELD_NAMES
from schemas.model import Privacy, TelemetrySchema
from schemas.published import (
    DEFAULT_PRIVACY,
    FLAGS_FIELD,
    PrivacySettings,
    has_identifiers,
    policy_transforms,
)
from schemas.records import QUARANTINE_SCHEMA, quarantine_batch
from schemas.registry import schema_for_dataset
from validators.quality import QualitySettings, check_quality

SUPPRESSED_CODE = "k_anonymity"


@dataclass
class Protection:
    """Quality and privacy for one data directory (the key lives on its private side)."""

    private_dir: str
    privacy: PrivacySettings = DEFAULT_PRIVACY
    quality: QualitySettings = field(default_factory=QualitySettings)
    _key: PseudonymKey | None = None

    @property
    def key(self) -> PseudonymKey:
        if self._key is None:
            self._key = PseudonymKey.load(Path(self.private_dir))
        return self._key

    def manifest_section(
        self, schema: TelemetrySchema, stats: list[dict], previous: dict | None
    ) -> dict:
        """What a manifest records of the policy: transforms, k, key id and epochs — no key."""
        canonical = schema_for_dataset(schema.dataset)
        section: dict = {
            "transforms": policy_transforms(canonical, self.privacy),
            "suppressed": (previous or {}).get("suppressed", 0)
            + sum(s.get("suppressed", 0) for s in stats),
        }
        if any(f.privacy is Privacy.QUASI_IDENTIFIER for f in canonical.fields):
            section["k_anonymity"] = {
                "k": self.privacy.k,
                "quasi_identifiers": [
                    f.name for f in canonical.fields if f.privacy is Privacy.QUASI_IDENTIFIER
                ],
                "generalize_to": self.privacy.generalize_to,
            }
        if canonical.dataset == aggregate.DATASET:
            section["differential_privacy"] = {
                "mechanism": "Laplace, scale 1/epsilon, rounded and clamped at 0",
                "epsilon": self.privacy.dp_epsilon,
                "delta": 0,
                "sensitivity": 1,
                "unit": "one subscriber in one count (cell, hour, chunk); epsilons compose",
            }
        if has_identifiers(canonical):
            epochs = set((previous or {}).get("pseudonyms", {}).get("epochs", []))
            for s in stats:
                epochs.update(s.get("epochs", []))
            section["pseudonyms"] = {
                "algorithm": "HMAC-SHA256, 128-bit hex, per-epoch key derived from the master key",
                "key_id": self.key.key_id,
                "epoch_seconds": self.privacy.epoch_seconds,
                "epochs": sorted(epochs),
            }
        return section

    def _add_session_counts(
        self, checked: tuple, quarantined: pa.Array, published: dict, stats: dict
    ) -> None:
        """The differentially private counts of the sessions that passed the quality checks."""
        _, rows, _ = checked
        passed = pc.invert(pc.is_in(rows.column("source_offset"), value_set=quarantined))
        counts = aggregate.session_counts(rows.filter(passed), self.key, self.privacy)
        if counts.num_rows:
            published[aggregate.DATASET] = counts
            stats[aggregate.DATASET] = _counts_stats(counts)

    def __call__(self, raw: pa.RecordBatch, result: Standardized) -> Standardized:
        checked, stats = {}, {}
        bad_offsets, bad_codes, bad_reasons = [], [], []
        for dataset, rows in sorted(result.published.items()):
            schema = schema_for_dataset(dataset)
            outcome = check_quality(schema, rows, self.quality)
            failed = pc.invert(outcome.passed)
            bad_offsets.append(pc.filter(rows.column("source_offset"), failed))
            bad_codes.append(pc.filter(outcome.codes, failed))
            bad_reasons.append(pc.filter(outcome.reasons, failed))
            checked[dataset] = (schema, rows, outcome)
            codes = Counter(pc.filter(outcome.codes, failed).to_pylist())
            stats[dataset] = {
                "rows": rows.num_rows,
                "quarantined": dict(sorted(codes.items())),
                "flags": outcome.flag_counts,
            }
        quarantine = _first_per_record(bad_offsets, bad_codes, bad_reasons)
        published, suppressed_offsets, epochs = {}, [], {}
        for dataset, (schema, rows, outcome) in checked.items():
            keep = pc.invert(pc.is_in(rows.column("source_offset"), value_set=quarantine[0]))
            done = anonymize(
                schema, rows.filter(keep), pc.filter(outcome.flags, keep), self.key, self.privacy
            )
            published[dataset] = done.rows
            suppressed_offsets.append(done.suppressed_offsets)
            stats[dataset]["suppressed"] = len(done.suppressed_offsets)
            epochs[dataset] = done.epochs
        suppressed = pc.unique(pa.concat_arrays([pa.array([], pa.int64()), *suppressed_offsets]))
        for dataset, rows in published.items():  # a record is published whole or not at all
            withheld = pc.is_in(rows.column("source_offset"), value_set=suppressed)
            published[dataset] = rows.filter(pc.invert(withheld))
            stats[dataset]["published"] = published[dataset].num_rows
            stats[dataset].update(_cell_counts(published[dataset]))
            stats[dataset]["epochs"] = list(epochs[dataset])
        if aggregate.SOURCE_DATASET in checked:  # after suppression: derived rows, no records
            self._add_session_counts(
                checked[aggregate.SOURCE_DATASET], quarantine[0], published, stats
            )
        return replace(
            result,
            published_records=result.published_records - len(quarantine[0]) - len(suppressed),
            published=published,
            quarantined=_append_rejects(raw, result.quarantined, *quarantine),
            suppressed=_suppressed(raw, suppressed, self.privacy.k),
            quality=stats,
        )


def _counts_stats(rows: pa.RecordBatch) -> dict:
    return {
        "rows": rows.num_rows,
        "quarantined": {},
        "flags": {},
        "suppressed": 0,
        "published": rows.num_rows,
        **_cell_counts(rows),
        "epochs": [],
    }


def _cell_counts(rows: pa.RecordBatch) -> dict[str, int]:
    """Cells and empty cells, for completeness (a row without quality flags is not empty)."""
    # Quality flags and device proofs are about the row, not measurements it could lack.
    skip = {FLAGS_FIELD, *DEVICE_FIELD_NAMES}
    columns = [rows.column(n) for n in rows.schema.names if n not in skip]
    return {
        "null_cells": sum(c.null_count for c in columns),
        "cells": rows.num_rows * len(columns),
    }


def _first_per_record(
    offsets: list[pa.Array], codes: list[pa.Array], reasons: list[pa.Array]
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """One reject per record offset (its first reason, datasets in name order)."""
    table = pa.table(
        {
            "o": pa.concat_arrays(
                [pa.array([], pa.int64()), *[o.cast(pa.int64()) for o in offsets]]
            ),
            "c": pa.concat_arrays([pa.array([], pa.string()), *codes]),
            "r": pa.concat_arrays([pa.array([], pa.string()), *reasons]),
        }
    )
    table = table.group_by("o", use_threads=False).aggregate([("c", "first"), ("r", "first")])
    table = table.sort_by("o")
    return (
        table.column("o").combine_chunks(),
        table.column("c_first").combine_chunks(),
        table.column("r_first").combine_chunks(),
    )


def _append_rejects(
    raw: pa.RecordBatch,
    existing: pa.RecordBatch,
    offsets: pa.Array,
    codes: pa.Array,
    reasons: pa.Array,
) -> pa.RecordBatch:
    if not len(offsets):
        return existing
    positions = pc.index_in(offsets, value_set=raw.column("offset"))
    new = quarantine_batch(raw.take(positions), codes, reasons)
    table = pa.Table.from_batches([existing, new], schema=QUARANTINE_SCHEMA)
    table = table.sort_by([("partition", "ascending"), ("offset", "ascending")]).combine_chunks()
    return table.to_batches()[0]


def _suppressed(raw: pa.RecordBatch, offsets: pa.Array, k: int) -> pa.RecordBatch:
    """Suppressed records, whole, with the reason: for the private store only."""
    offsets = pc.take(offsets, pc.sort_indices(offsets))
    positions = pc.index_in(offsets, value_set=raw.column("offset"))
    n = len(offsets)
    return quarantine_batch(
        raw.take(positions),
        pa.repeat(pa.scalar(SUPPRESSED_CODE), n),
        pa.repeat(pa.scalar(f"quasi-identifier group below k={k} even when generalized"), n),
    )
