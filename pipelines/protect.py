"""After the row checks, before landing: quality checks, then the privacy policy.

Two ways to apply them:

* ``Protection.stage`` — per chunk, in the Beam pipeline of the streaming driver: the checks that
  judge a row on its own (hard failures quarantine the whole record, with a reason), then every
  per-row privacy transform. The result is *staged* rows (``pipelines/staged.py``): what depends
  on the rest of the stream — sequence checks, lateness, k-anonymity, the DP aggregate — is
  decided by the driver's event-time step, with state carried from batch to batch
  (``pipelines/windows.py``, ``streaming/event_time.py``).
* ``Protection(raw, result)`` — all of it at once over one input taken as a whole stream, with
  every window closed at its end (replay, users' own pipelines, tests): published rows, flags,
  quarantined and suppressed records, so read = published + quarantined + suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import aggregate, staged, windows
from pipelines.anonymize import PseudonymKey, anonymize, subscriber_keys
from pipelines.quality_counts import sum_stats
from pipelines.release import release as release_window
from pipelines.standardize import (
    Standardized,
    duplicate_records,
    first_reject_per_record,
    with_quarantined,
    without_records,
)
from schemas.model import Privacy, TelemetrySchema
from schemas.published import DEFAULT_PRIVACY, PrivacySettings, has_identifiers, policy_transforms
from schemas.records import quarantine_batch
from schemas.registry import schema_for_dataset
from validators.event_time import WindowSettings
from validators.quality import QualitySettings, check_stateless, event_time_field

SUPPRESSED_CODE = "k_anonymity"


@dataclass
class Protection:
    """Quality and privacy for one data directory (the key lives on its private side)."""

    private_dir: str
    privacy: PrivacySettings = DEFAULT_PRIVACY
    quality: QualitySettings = field(default_factory=QualitySettings)
    windows: WindowSettings = field(default_factory=WindowSettings)
    # True in the streaming driver's pipeline: calling it only stages (``stage``); the driver's
    # event-time step decides the rest with the state it carries from batch to batch.
    staged_only: bool = False
    _key: PseudonymKey | None = None

    @property
    def key(self) -> PseudonymKey:
        if self._key is None:
            self._key = PseudonymKey.load(Path(self.private_dir))
        return self._key

    @property
    def settings(self) -> windows.Settings:
        return windows.Settings(self.windows, self.quality, self.privacy)

    def manifest_section(
        self, schema: TelemetrySchema, stats: list[dict], previous: dict | None
    ) -> dict:
        """What a manifest records of the policy: transforms, k, key id and epochs — no key."""
        canonical = schema_for_dataset(schema.dataset)
        # No count of the records k-anonymity withholds: exact, per checkpoint, it would say
        # someone had a rare session in that partition and hour (kept private: rda status).
        section: dict = {"transforms": policy_transforms(canonical, self.privacy)}
        if any(f.privacy is Privacy.QUASI_IDENTIFIER for f in canonical.fields):
            section["k_anonymity"] = {
                "k": self.privacy.k,
                "quasi_identifiers": [
                    f.name for f in canonical.fields if f.privacy is Privacy.QUASI_IDENTIFIER
                ],
                "generalize_to": self.privacy.generalize_to,
                "decided": f"per closed event-time window of {self.windows.window_s} s",
            }
        if canonical.dataset == aggregate.DATASET:
            section["differential_privacy"] = self._dp_section(stats, previous)
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

    def _dp_section(self, stats: list[dict], previous: dict | None) -> dict:
        """The mechanism, and the per-subscriber budget composed over the windows released."""
        p = self.privacy
        before = (previous or {}).get("differential_privacy", {}).get("composition", {})
        windows_released = before.get("windows_released", 0) + sum(
            s.get("windows", 0) for s in stats
        )
        epochs = set(before.get("epochs", []))
        for s in stats:
            epochs.update(s.get("epochs", []))
        per_window = p.dp_epsilon * p.dp_max_counts_per_window
        per_cell_delta = aggregate.per_cell_delta(p)
        counts_per_epoch = aggregate.max_counts_per_epoch(p)
        return {
            "mechanism": "Laplace, scale 1/epsilon, rounded and clamped at 0",
            "epsilon": p.dp_epsilon,
            "delta": p.dp_delta,
            "sensitivity": 1,
            "unit": "one subscriber in one count (cell, event-time window)",
            "partition_selection": {
                "mechanism": "Laplace thresholding: a cell with a counted subscriber is released "
                "only if its noisy count (the released value's own draw) reaches tau",
                "tau": aggregate.partition_threshold(p),
                "delta_per_cell": per_cell_delta,
                "formula": "tau = 1 - ln(2 * delta_per_cell) / epsilon, delta_per_cell = "
                "1 - (1 - delta)^(1 / max_counts_per_subscriber_per_window)",
            },
            "budget": {
                "max_counts_per_subscriber_per_window": p.dp_max_counts_per_window,
                "max_epsilon_per_subscriber_per_window": per_window,
                "max_delta_per_subscriber_per_window": p.dp_delta,
                "max_epsilon_per_subscriber_per_epoch": p.dp_budget_per_epoch,
                "max_delta_per_subscriber_per_epoch": counts_per_epoch * per_cell_delta,
                "epoch_seconds": p.epoch_seconds,
            },
            "composition": {
                "rule": "basic sequential composition: a subscriber's epsilons and deltas add up",
                "windows_released": windows_released,
                "epochs": sorted(epochs),
                "max_epsilon_per_subscriber": min(
                    windows_released * per_window, len(epochs) * p.dp_budget_per_epoch
                ),
                "max_delta_per_subscriber": min(
                    windows_released * p.dp_delta, len(epochs) * counts_per_epoch * per_cell_delta
                ),
            },
        }

    # -- the Beam stage ---------------------------------------------------------------------

    def stage(self, raw: pa.RecordBatch, result: Standardized) -> Standardized:
        """Stateless checks and per-row transforms of one chunk: staged rows, rejects.

        A record failing a check keeps its rows, marked with its code (the event-time step
        counts them); a duplicate among the records that pass does not (``drop_duplicates``).
        """
        bad = []
        for dataset, rows in sorted(result.published.items()):
            outcome = check_stateless(schema_for_dataset(dataset), rows, self.quality)
            failed = pc.invert(outcome.passed)
            offsets = pc.filter(rows.column("source_offset"), failed)
            bad.append(
                (offsets, pc.filter(outcome.codes, failed), pc.filter(outcome.reasons, failed))
            )
        offsets, codes, reasons = first_reject_per_record(bad)
        repeats = first_reject_per_record(duplicate_records(result.published, offsets))
        staged_rows = {
            dataset: self._staged(schema_for_dataset(dataset), rows, (offsets, codes), raw)
            for dataset, rows in without_records(result.published, repeats[0]).items()
        }
        quarantined = with_quarantined(raw, result.quarantined, offsets, codes, reasons)
        return replace(
            result,
            published_records=result.published_records - len(offsets) - len(repeats[0]),
            published=staged_rows,
            quarantined=with_quarantined(raw, quarantined, *repeats),
            quality={},
        )

    def _staged(
        self,
        schema: TelemetrySchema,
        rows: pa.RecordBatch,
        record_codes: tuple[pa.Array, pa.Array],
        raw: pa.RecordBatch,
    ) -> pa.RecordBatch:
        """Published columns (flags empty, no group decision yet), then the private ones."""
        flags = pa.nulls(rows.num_rows, pa.string())
        done = anonymize(schema, rows, flags, self.key, self.privacy, k_anonymity=False)
        extra = {
            staged.EVENT_TIME: rows.column(event_time_field(schema)),
            staged.QUARANTINE: _codes_at(rows.column("source_offset"), *record_codes),
        }
        if staged.precise_location(schema):
            extra[staged.LATITUDE] = rows.column("latitude")
            extra[staged.LONGITUDE] = rows.column("longitude")
        if schema.dataset == aggregate.SOURCE_DATASET:
            extra[staged.SUBSCRIBER] = subscriber_keys(rows.column("imsi"), self.key)
        if staged.is_windowed(schema.dataset):  # held for hours: the record travels along
            records = raw.take(pc.index_in(rows.column("source_offset"), raw.column("offset")))
            for private, column in staged.RECORD.items():
                extra[private] = records.column(column)
        arrays = [*done.rows.columns, *extra.values()]
        names = [*done.rows.schema.names, *extra]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    # -- everything at once -----------------------------------------------------------------

    def __call__(
        self,
        raw: pa.RecordBatch,
        result: Standardized,
        aggregates: bool = True,
        conceal: bool = True,
    ) -> Standardized:
        """Every check and transform over ``raw`` as one whole stream, all windows closed.
        ``conceal=False``: released rows keep their offsets (``release``)."""
        if self.staged_only:
            return self.stage(raw, result)
        stage = self.stage(raw, result)
        state = windows.TopicState()
        staged_tables = {d: pa.Table.from_batches([r]) for d, r in stage.published.items()}
        decision = windows.advance(state, staged_tables, self.settings)
        partitions = sorted(set(raw.column("partition").to_pylist()))
        published = {d: [t] for d, t in decision.published.items()}
        stats = {d: [s] for d, s in decision.stats.items()}
        suppressed: list[tuple[int, int]] = []
        topic = raw.column("topic")[0].as_py() if raw.num_rows else ""
        ledger = aggregate.empty_ledger()
        for window in windows.windows_to_close(state, partitions, self.settings, flush=True):
            held = {d: windows.held_in(t, window) for d, t in decision.held.items()}
            release = release_window(
                state, window, held, self.settings, self.key, topic, ledger, conceal=conceal
            )
            ledger = release.ledger
            suppressed += release.suppressed
            for dataset, rows in release.published.items():
                if dataset == aggregate.DATASET and not aggregates:
                    continue
                published.setdefault(dataset, []).append(rows)
            for dataset, s in release.stats.items():
                stats.setdefault(dataset, []).append(s)
        now = decision.quarantined
        quarantine = with_quarantined(
            raw,
            stage.quarantined,
            now.column("source_offset").combine_chunks(),
            now.column("reason_code").combine_chunks(),
            now.column("reason").combine_chunks(),
        )
        withheld = pa.array(sorted(o for _, o in suppressed), pa.int64())
        return replace(
            stage,
            published_records=stage.published_records - now.num_rows - len(withheld),
            published={d: _one_batch(tables) for d, tables in published.items()},
            quarantined=quarantine,
            suppressed=suppressed_records(raw, withheld, self.privacy.k),
            quality={d: sum_stats(s) for d, s in stats.items()},
        )


def _one_batch(tables: list[pa.Table]) -> pa.RecordBatch:
    table = pa.concat_tables(tables).combine_chunks()
    order = pc.sort_indices(
        table, [("source_partition", "ascending"), ("source_offset", "ascending")]
    )
    table = table.take(order)
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def suppressed_records(raw: pa.RecordBatch, offsets: pa.Array, k: int) -> pa.RecordBatch:
    """Suppressed records of one partition's ``raw`` batch, whole, with the reason."""
    offsets = pc.take(offsets, pc.sort_indices(offsets))
    positions = pc.index_in(offsets, value_set=raw.column("offset"))
    return suppression_batch(pa.Table.from_batches([raw.take(positions)], schema=raw.schema), k)


def suppression_batch(records: pa.Table, k: int) -> pa.RecordBatch:
    """``records`` (raw, whole) with the k-anonymity reason: for the private store only."""
    batch = records.combine_chunks().to_batches()
    raw = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=records.schema)
    n = raw.num_rows
    return quarantine_batch(
        raw,
        pa.repeat(pa.scalar(SUPPRESSED_CODE), n),
        pa.repeat(pa.scalar(f"quasi-identifier group below k={k} even when generalized"), n),
    )


def _codes_at(offsets: pa.Array, record_offsets: pa.Array, codes: pa.Array) -> pa.Array:
    """Each row's record's code (``codes`` by ``record_offsets``, one per record), null where
    its record has none."""
    if not len(record_offsets):
        return pa.nulls(len(offsets), pa.string())
    where = pc.index_in(offsets, value_set=record_offsets.cast(offsets.type))
    return codes.cast(pa.string()).take(where)
