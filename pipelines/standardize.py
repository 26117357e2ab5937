"""Raw Kafka batches to published rows per dataset and quarantined records, losing nothing.

A record is published whole or quarantined whole: if any row it produced fails its schema's
checks, the record goes to quarantine with that row's reason, and none of its rows is published.
So the counting invariant holds per record: read = published + quarantined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.poison import crash_on_marker
from schemas.adapters import Adapter, DecodeResult, adapter_for, sniff, wire_formats
from schemas.records import QUARANTINE_SCHEMA, echoed_text, quarantine_batch
from schemas.registry import schema_for_dataset
from validators.rowchecks import check_rows


@dataclass(frozen=True)
class Standardized:
    """``published`` maps dataset -> rows in the exact canonical schema, in offset order.

    After ``pipelines/protect.py``: rows in the published schema, ``suppressed`` holds records
    withheld for k-anonymity and ``quality`` the quality and privacy counts per dataset.
    """

    read: int
    published_records: int
    published: dict[str, pa.RecordBatch]
    quarantined: pa.RecordBatch
    suppressed: pa.RecordBatch | None = None
    quality: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The counting invariant, enforced where the split happens.
        suppressed = self.suppressed.num_rows if self.suppressed is not None else 0
        if self.read != self.published_records + self.quarantined.num_rows + suppressed:
            raise AssertionError(
                f"counts do not reconcile: read {self.read} != published "
                f"{self.published_records} + quarantined {self.quarantined.num_rows}"
                f" + suppressed {suppressed}"
            )


@dataclass
class _Rejects:
    positions: list[pa.Array] = field(default_factory=list)
    codes: list[pa.Array] = field(default_factory=list)
    reasons: list[pa.Array] = field(default_factory=list)

    def add(self, positions: pa.Array, codes: pa.Array, reasons: pa.Array) -> None:
        self.positions.append(positions.cast(pa.int64()))
        self.codes.append(codes.cast(pa.string()))
        self.reasons.append(reasons.cast(pa.string()))

    def concat(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        if not self.positions:
            return pa.array([], pa.int64()), pa.array([], pa.string()), pa.array([], pa.string())
        return tuple(
            pa.concat_arrays(arrays) for arrays in (self.positions, self.codes, self.reasons)
        )


def standardize(raw: pa.RecordBatch, adapter: Adapter) -> Standardized:
    """Decode ``raw`` with one adapter, run the schemas' row checks, and split the batch."""
    positions = pa.array(range(raw.num_rows), pa.int64())
    return drop_duplicates(raw, _split(raw, [(positions, adapter.decode(raw))]))


def standardize_routed(
    raw: pa.RecordBatch,
    default_format: str | None,
    override: bool = False,
    refused: Mapping[int, tuple[str, str]] | None = None,
) -> Standardized:
    """Pick each record's adapter: its format header, else the topic's default, else a sniff.

    ``default_format`` ``auto`` (or None) sniffs; with ``override`` it is used for every record,
    whatever its header says (``rda quarantine replay --format F --override-header``).
    ``refused`` maps offsets to (code, reason): records quarantined unread, never parsed (those
    the driver found to kill the worker, ``pipelines/poison.py``).
    """
    return drop_duplicates(raw, standardize_each(raw, default_format, override, refused))


def standardize_each(
    raw: pa.RecordBatch,
    default_format: str | None,
    override: bool = False,
    refused: Mapping[int, tuple[str, str]] | None = None,
) -> Standardized:
    """``standardize_routed`` with no record compared with another: the chunk's duplicates are
    left for ``drop_duplicates``, once every check of a record on its own has been made."""
    unread = pc.is_in(raw.column("offset"), value_set=pa.array(list(refused or {}), pa.int64()))
    formats = pc.if_else(unread, _REFUSED, _record_formats(raw, default_format, override))
    skipped = pc.indices_nonzero(unread).cast(pa.int64())
    crash_on_marker(raw.column("value"), formats, _REFUSED)
    decoded, rejects = [], _Rejects()
    for wire_format in sorted(set(pc.unique(formats).to_pylist()) - {None, _REFUSED}):
        positions = pc.indices_nonzero(pc.equal(formats, wire_format)).cast(pa.int64())
        decoded.append((positions, adapter_for(wire_format).decode(raw.take(positions))))
    unknown = pc.indices_nonzero(pc.is_null(formats)).cast(pa.int64())
    if len(unknown):
        headers = raw.column("format").take(unknown).to_pylist()
        rejects.add(
            unknown, pa.array(["unknown_format"] * len(unknown)),
            pa.array([_unknown_format_reason(h) for h in headers], pa.string()),
        )  # fmt: skip
    if len(skipped):
        why = [refused[offset] for offset in raw.column("offset").take(skipped).to_pylist()]
        rejects.add(
            skipped,
            pa.array([code for code, _ in why], pa.string()),
            pa.array([reason for _, reason in why], pa.string()),
        )
    return _split(raw, decoded, rejects)


_REFUSED = "(refused)"  # a record quarantined unread


def _record_formats(
    raw: pa.RecordBatch, default_format: str | None, override: bool = False
) -> pa.Array:
    """Each record's format, null where no adapter reads it: a declared format is taken at its
    word; else the topic's default; else a sniff of the content (one by one: such records are
    rare, a stream of them should name its format)."""
    known = wire_formats()
    if override and default_format in known:
        return pa.array([default_format] * raw.num_rows, pa.string())
    headers = raw.column("format")
    declared = pc.fill_null(pc.is_in(headers, value_set=pa.array(known, pa.string())), False)
    formats = pc.if_else(declared, headers, pa.scalar(None, pa.string()))
    missing = pc.is_null(headers)
    if not pc.any(missing).as_py():
        return formats
    if default_format in known:
        return pc.if_else(missing, default_format, formats)
    sniffed = formats.to_pylist()
    values = raw.column("value")
    for position in pc.indices_nonzero(missing).to_pylist():
        sniffed[position] = sniff(values[position].as_py())
    return pa.array(sniffed, pa.string())


def _unknown_format_reason(header: str | None) -> str:
    known = ", ".join(wire_formats())
    if header is not None:
        shown = echoed_text(header)
        return f"the rda-format header says {shown!r}, a format no adapter reads (known: {known})"
    return f"no rda-format header, and the content looks like none of: {known}"


def _split(
    raw: pa.RecordBatch,
    decoded: list[tuple[pa.Array, DecodeResult]],
    rejects: _Rejects | None = None,
) -> Standardized:
    """Row checks per part, then whole records to quarantine or to their datasets."""
    rejects = rejects or _Rejects()
    parts = []
    for positions, result in decoded:  # positions map adapter-local indices to ``raw``
        rejects.add(
            pc.take(positions, result.rejected_index), result.reject_codes, result.reject_reasons
        )
        for part in result.parts:
            checks = check_rows(part.schema, part.rows)
            failed = pc.invert(checks.valid)
            index = pc.take(positions, part.row_index)
            rejects.add(
                pc.filter(index, failed),
                pc.filter(checks.codes, failed),
                pc.filter(checks.reasons, failed),
            )
            parts.append((part.schema, part.rows, index))
    _account_for_silent_records(raw.num_rows, parts, rejects)
    positions, codes, reasons = _first_reason_per_record(*rejects.concat())
    published: dict[str, list[pa.RecordBatch]] = {}
    for schema, rows, index in parts:
        clean = pc.invert(pc.is_in(index, value_set=positions))
        conformed = schema.conform(rows.filter(clean))
        published.setdefault(schema.dataset, []).append(conformed)
    quarantined = quarantine_batch(raw.take(positions), codes, reasons)
    return Standardized(
        read=raw.num_rows,
        published_records=raw.num_rows - len(positions),
        published={ds: _in_offset_order(batches) for ds, batches in published.items()},
        quarantined=quarantined
        if len(positions)
        else pa.RecordBatch.from_pylist([], schema=QUARANTINE_SCHEMA),
    )


def _account_for_silent_records(read: int, parts: list, rejects: _Rejects) -> None:
    """A record that yielded neither rows nor a reject is quarantined, never dropped."""
    seen = np.zeros(read, dtype=bool)
    for index in [index for _, _, index in parts] + rejects.positions:
        seen[index.to_numpy(zero_copy_only=False)] = True
    silent = np.flatnonzero(~seen)
    if len(silent):
        rejects.add(
            pa.array(silent, pa.int64()),
            pa.array(["no_rows"] * len(silent)),
            pa.array(["the adapter produced no rows for this record"] * len(silent)),
        )


def _first_reason_per_record(
    positions: pa.Array, codes: pa.Array, reasons: pa.Array
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """One reject per record (its first reason), in record order."""
    if not len(positions):
        return positions, codes, reasons
    table = pa.table(
        {"p": positions, "c": codes, "r": reasons, "n": pa.array(range(len(positions)))}
    )
    table = table.sort_by([("p", "ascending"), ("n", "ascending")])
    p = table.column("p").combine_chunks()
    first = pa.concat_arrays([pa.array([True]), pc.not_equal(p.slice(1), p.slice(0, len(p) - 1))])
    table = table.filter(first)
    return tuple(table.column(name).combine_chunks() for name in ("p", "c", "r"))


def _in_offset_order(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    table = pa.Table.from_batches(batches).combine_chunks()
    order = pc.sort_indices(
        table, [("source_partition", "ascending"), ("source_offset", "ascending")]
    )
    ordered = table.take(order)
    return (
        ordered.to_batches()[0]
        if ordered.num_rows
        else pa.RecordBatch.from_pylist([], schema=table.schema)
    )


# -- duplicates within a chunk -----------------------------------------------------------------


def drop_duplicates(raw: pa.RecordBatch, result: Standardized) -> Standardized:
    """``result`` with each record that repeats an earlier record's natural key quarantined as
    ``duplicate``, naming the first one's offset (see ``duplicate_records``)."""
    offsets, codes, reasons = first_reject_per_record(duplicate_records(result.published))
    if not len(offsets):
        return result
    return Standardized(
        read=result.read,
        published_records=result.published_records - len(offsets),
        published=without_records(result.published, offsets),
        quarantined=with_quarantined(raw, result.quarantined, offsets, codes, reasons),
        suppressed=result.suppressed,
        quality=result.quality,
    )


Rejects = tuple[pa.Array, pa.Array, pa.Array]  # record offsets, reason codes, reasons


def duplicate_records(
    published: Mapping[str, pa.RecordBatch], excluded: pa.Array | None = None
) -> list[Rejects]:
    """Per dataset, the records whose row repeats a natural key an earlier record has.

    Rows of one record may share a key (that is the record's own business). Only the records
    that can still be published own a key: none of ``excluded`` (offsets another check
    quarantines), so a valid record is never lost as the duplicate of a refused one (a glitch,
    a forged signature), and the chunk's choice is the one the batches' key index makes.
    ``published`` rows are in (partition, offset) order, as ``Standardized`` keeps them.
    """
    found = []
    for dataset, rows in sorted(published.items()):
        key = list(schema_for_dataset(dataset).natural_key)
        if key and rows.num_rows:
            found.append(_repeated_keys(rows, key, excluded))
    return found


def _repeated_keys(rows: pa.RecordBatch, key: list[str], excluded: pa.Array | None) -> Rejects:
    offsets, partitions = rows.column("source_offset"), rows.column("source_partition")
    keyed = pa.table({**{k: rows.column(k) for k in key}, "_row": np.arange(rows.num_rows)})
    if excluded is not None and len(excluded):
        keyed = keyed.filter(pc.invert(pc.is_in(offsets, value_set=excluded.cast(offsets.type))))
    first = keyed.group_by(key, use_threads=False).aggregate([("_row", "min")])
    joined = keyed.join(first, key, use_threads=False)
    row, first_row = (joined.column(c).combine_chunks() for c in ("_row", "_row_min"))
    first_offset = offsets.take(first_row)
    later = pc.or_(
        pc.not_equal(offsets.take(row), first_offset),
        pc.not_equal(partitions.take(row), partitions.take(first_row)),
    )
    row, first_offset = row.filter(later), first_offset.filter(later)
    reasons = pc.binary_join_element_wise(
        f"same natural key ({', '.join(key)}) as offset ", first_offset.cast(pa.string()), ""
    )
    return offsets.take(row), pa.repeat(pa.scalar("duplicate"), len(row)), reasons


def first_reject_per_record(rejects: list[Rejects]) -> Rejects:
    """One reject per record offset: its first in ``rejects``' order, offsets ascending."""
    table = pa.table(
        {
            "o": pa.concat_arrays(
                [pa.array([], pa.int64()), *[r[0].cast(pa.int64()) for r in rejects]]
            ),
            "c": pa.concat_arrays(
                [pa.array([], pa.string()), *[r[1].cast(pa.string()) for r in rejects]]
            ),
            "r": pa.concat_arrays(
                [pa.array([], pa.string()), *[r[2].cast(pa.string()) for r in rejects]]
            ),
        }
    )
    table = table.group_by("o", use_threads=False).aggregate([("c", "first"), ("r", "first")])
    table = table.sort_by("o")
    return tuple(table.column(c).combine_chunks() for c in ("o", "c_first", "r_first"))


def without_records(
    published: Mapping[str, pa.RecordBatch], offsets: pa.Array
) -> dict[str, pa.RecordBatch]:
    """Every dataset's rows but those of the records at ``offsets``."""
    if not len(offsets):
        return dict(published)
    return {
        dataset: rows.filter(
            pc.invert(pc.is_in(rows.column("source_offset"), value_set=offsets.cast(pa.int64())))
        )
        for dataset, rows in published.items()
    }


def with_quarantined(
    raw: pa.RecordBatch,
    existing: pa.RecordBatch,
    offsets: pa.Array,
    codes: pa.Array,
    reasons: pa.Array,
) -> pa.RecordBatch:
    """``existing`` quarantine entries and those of ``raw``'s records at ``offsets``, in
    (partition, offset) order."""
    if not len(offsets):
        return existing
    positions = pc.index_in(offsets.cast(pa.int64()), value_set=raw.column("offset"))
    new = quarantine_batch(raw.take(positions), codes, reasons)
    table = pa.Table.from_batches([existing, new], schema=QUARANTINE_SCHEMA)
    table = table.sort_by([("partition", "ascending"), ("offset", "ascending")]).combine_chunks()
    return table.to_batches()[0]
