"""Duplicates across chunks and batches: a later record repeating a natural key is quarantined.

Each chunk already drops duplicates within itself. Here the driver checks a batch's new rows
against everything the dataset published before — through the natural-key index
(``sinks/key_index.py``), so the check does not grow with the dataset's history — and against
earlier rows of the same batch (in leaf order), rewrites the affected chunk files without the
duplicate records — in every dataset the record had rows in, since a record is published whole
or not at all — and quarantines them with their raw bytes, read again from Kafka by offset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.kafka_source import KafkaSource, OffsetRange
from schemas.published import published_schema_for_dataset
from schemas.records import quarantine_batch
from sinks import key_index
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.parquet import read_parquet, write_parquet, write_private_parquet


def find_batch_duplicates(
    catalog: Catalog, dataset: str, batch_id: int, new_paths: list[str]
) -> dict[tuple[int, int], str]:
    """(partition, offset) of new records repeating a key -> the reason message.

    ``new_paths`` are the batch's files of ``dataset`` in leaf order; they are compared with
    the index of every other batch and with each other. Once the batch's files are final, the
    driver records their keys with ``record_batch_keys``.
    """
    return find_shard_duplicates(catalog, batch_id, {dataset: new_paths})


def find_shard_duplicates(
    catalog: Catalog, batch_id: int, new_paths: dict[str, list[str]]
) -> dict[tuple[int, int], str]:
    """``find_batch_duplicates`` for several shards, of any datasets, at once (shard -> the
    batch's files in it, in leaf order): each shard is checked against its own keys. A record
    repeating a key in several datasets gets the first dataset's reason (datasets in order)."""
    reasons: dict[tuple[int, int], str] = {}
    for dataset, repeats in key_index.repeated_keys_of_logs(catalog, batch_id, new_paths).items():
        for record, message in _reasons(key_index.natural_key(dataset), repeats).items():
            reasons.setdefault(record, message)
    return reasons


def catch_up_shards(catalog: Catalog, shards: list[str]) -> None:
    """Index what the catalog lists for ``shards`` and their indexes lack, in one lookup (the
    duplicate checks and key recording of a batch then find them up to date)."""
    key_index.catch_up(catalog, shards)


def record_batch_keys(catalog: Catalog, dataset: str, batch_id: int, paths: list[str]) -> int:
    """Index the natural keys of the batch's final files (idempotent); return rows indexed."""
    return key_index.record_keys(catalog, dataset, batch_id, paths)


def record_shard_keys(
    catalog: Catalog,
    batch_id: int,
    paths: dict[str, list[str]],
    written: Mapping[str, pa.Table] | None = None,
) -> int:
    """``record_batch_keys`` for every shard the batch wrote (shard -> its final files), in
    one transaction; returns rows indexed. ``written``: some files' key columns as the batch
    wrote them, by path (``key_index.record_keys_of_logs``)."""
    return key_index.record_keys_of_logs(catalog, batch_id, paths, written)


def find_duplicates(
    layout: DataLayout, dataset: str, prior: list[str], new: list[str]
) -> dict[tuple[int, int], str]:
    """(partition, offset) of new records repeating a key -> the reason message.

    Re-reads every file in ``prior``: the reference ``find_batch_duplicates`` is checked and
    measured against (a batch's cost grows with the dataset's history).
    """
    # The published natural key: a coarsened key field is replaced by a keyed row key.
    keys = list(published_schema_for_dataset(dataset).natural_key)
    if not new or not keys:
        return {}
    key_list = ", ".join(f'"{k}"' for k in keys)
    db = duckdb.connect()
    try:
        db.execute(_files_view("new_rows", layout, new, with_order=True))
        prior_clause = ""
        if prior:
            db.execute(_files_view("prior_rows", layout, prior, with_order=False))
            prior_clause = f"OR ({key_list}) IN (SELECT ({key_list}) FROM prior_rows)"
        rows = db.execute(
            f"""
            SELECT source_partition, source_offset, first_offset FROM (
                SELECT *, row_number() OVER w AS occurrence,
                       first_value(source_offset) OVER w AS first_offset
                FROM new_rows
                WINDOW w AS (PARTITION BY {key_list} ORDER BY file_index, file_row_number)
            ) WHERE occurrence > 1 {prior_clause}
            """
        ).fetchall()
    finally:
        db.close()
    return _reasons(keys, rows)


def _reasons(keys: list[str], repeats: list[tuple[int, int, int]]) -> dict[tuple[int, int], str]:
    """The reason message of each repeat (partition, offset, offset of the key's first row)."""
    key = ", ".join(keys)
    return {
        (partition, offset): f"same natural key ({key}) as an earlier published row"
        + ("" if first == offset else f" (offset {first})")
        for partition, offset, first in repeats
    }


def _files_view(name: str, layout: DataLayout, paths: list[str], with_order: bool) -> str:
    listing = ", ".join("'" + str(layout.root / p).replace("'", "''") + "'" for p in paths)
    if not with_order:
        return f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listing}])"
    order = " ".join(f"WHEN '{(layout.root / p)}' THEN {i}" for i, p in enumerate(paths))
    return (
        f"CREATE VIEW {name} AS SELECT *, CASE filename {order} END AS file_index "
        f"FROM read_parquet([{listing}], filename = true, file_row_number = true)"
    )


def drop_records(layout: DataLayout, receipt: dict, drop: set[tuple[int, int]]) -> int:
    """Rewrite the receipt's files without the dropped records; return records dropped."""
    partition = receipt["range"]["partition"]
    offsets = sorted(o for p, o in drop if p == partition and _in_range(o, receipt["range"]))
    if not offsets:
        return 0
    for file in receipt["files"].values():
        path = layout.root / file["path"]
        table = read_parquet(path)
        keep = pc.invert(pc.is_in(table.column("source_offset"), pa.array(offsets, pa.int64())))
        table = table.filter(keep).combine_chunks()
        file["rows"] = table.num_rows
        if table.num_rows:
            file["sha256"] = write_private_parquet(table.to_batches()[0], path)
        else:
            path.unlink()  # nothing of this chunk is left to publish in this dataset
    receipt["files"] = {ds: f for ds, f in receipt["files"].items() if f["rows"]}
    return len(offsets)


def quarantine_duplicates(
    layout: DataLayout, source: KafkaSource, receipt: dict, reasons: dict[tuple[int, int], str]
) -> Path | None:
    """Write the receipt's duplicate records, raw bytes and all, to a private quarantine file."""
    chunk = OffsetRange(**receipt["range"])
    offsets = sorted(
        o for (p, o) in reasons if p == chunk.partition and _in_range(o, receipt["range"])
    )
    if not offsets:
        return None
    raw = source.read(chunk)
    positions = pc.index_in(pa.array(offsets, pa.int64()), value_set=raw.column("offset"))
    chosen = raw.take(positions)
    messages = [reasons[(chunk.partition, o)] for o in offsets]
    rejects = quarantine_batch(chosen, pa.array(["duplicate"] * len(offsets)), pa.array(messages))
    path = layout.quarantine_file(chunk.topic, chunk.name + ".duplicates")
    write_parquet(rejects, path)
    count = len(offsets)
    receipt["published"] -= count
    receipt["quarantined"] += count
    reasons_now = Counter(receipt["reasons"]) + Counter({"duplicate": count})
    receipt["reasons"] = dict(sorted(reasons_now.items()))
    receipt["duplicates_file"] = {"path": layout.relative(path), "rows": count}
    return path


def _in_range(offset: int, offsets: dict) -> bool:
    return offsets["start"] <= offset < offsets["end"]
