"""Landing a replay batch: quarantined records standardized again, written to their datasets'
files, the ones whose natural key is already published dropped, and the released sessions'
lineage concealed as a closed window conceals it (``streaming/replay.py`` runs these steps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.anonymize import PseudonymKey
from pipelines.device_signatures import DeviceCheck
from pipelines.graph import Refused, standardize_chunk
from pipelines.protect import Protection
from pipelines.release import conceal_lineage
from pipelines.staged import is_windowed
from pipelines.standardize import Standardized
from schemas.records import RAW_RECORD_SCHEMA
from sinks.catalog import Catalog
from sinks.dedup import drop_records, find_batch_duplicates
from sinks.layout import DataLayout
from sinks.parquet import read_parquet, write_parquet
from sinks.state_store import one_batch
from streaming.poison import standardize_contained
from streaming.sequencer import batch_shards


@dataclass(frozen=True)
class Decoder:
    """How replayed records are standardized: format, header override, crash containment."""

    default_format: str | None
    override: bool
    crash_limit: int
    devices: Callable[[str], DeviceCheck]  # a topic's device signature checks

    def __call__(self, part: pa.RecordBatch, protect: Protection, what: str) -> Standardized:
        topic = part.column("topic")[0].as_py() if part.num_rows else ""
        devices = self.devices(topic)

        def decode(raw: pa.RecordBatch, refused: Refused) -> Standardized:
            result = standardize_chunk(
                raw, self.default_format, None, refused, devices, self.override
            )
            # Replayed records are judged on their own: a closed window's counts are never redone.
            # Offsets stay as they are until its duplicates are dropped (``conceal_released``).
            return protect(raw, result, aggregates=False, conceal=False)

        return standardize_contained(part, decode, self.crash_limit, what)


def land_replay(
    layout: DataLayout, batch_id: int, pending: pa.Table, decode: Decoder
) -> tuple[list[dict], dict[tuple[str, int, int], str | None]]:
    """Standardize per topic-partition; write what passes. Outcome per record: None or code."""
    if "signature" not in pending.schema.names:  # quarantined before device signatures
        pending = pending.append_column("signature", pa.nulls(pending.num_rows, pa.string()))
    raw = pending.select(RAW_RECORD_SCHEMA.names).cast(RAW_RECORD_SCHEMA)
    protect = Protection(str(layout.private))  # replayed rows are published like any others
    receipts, outcome = [], {}
    groups = raw.group_by(["topic", "partition"]).aggregate([]).to_pylist()
    for group in sorted(groups, key=lambda g: (g["topic"], g["partition"])):
        mask = pc.and_(
            pc.equal(raw.column("topic"), group["topic"]),
            pc.equal(raw.column("partition"), group["partition"]),
        )
        part = raw.filter(mask).combine_chunks().to_batches()[0]
        result = decode(part, protect, f"replaying {group['topic']}/{group['partition']}")
        offsets = part.column("offset").to_pylist()
        key = (group["topic"], group["partition"])
        for offset in offsets:
            outcome[(*key, offset)] = None
        for rejects in (result.quarantined, result.suppressed):  # suppressed stay quarantined
            for offset, code in zip(
                rejects.column("offset").to_pylist(),
                rejects.column("reason_code").to_pylist(),
                strict=True,
            ):
                outcome[(*key, offset)] = code
        for receipt in _write_replay_files(layout, batch_id, group, offsets, result.published):
            quality = {d: q for d, q in result.quality.items() if d in receipt["files"]}
            receipts.append({**receipt, "quality": quality})
    return receipts, outcome


def _write_replay_files(
    layout: DataLayout, batch_id: int, group: dict, offsets: list[int], published: dict
) -> list[dict]:
    """The group's files, in receipts of its offsets: one for the windowed datasets' (their
    range is concealed once their duplicates are dropped: ``conceal_released``), one for the
    others'."""
    name = f"replay-b{batch_id:06d}-{group['topic']}-p{group['partition']:04d}"
    source = {
        "topic": group["topic"],
        "partition": group["partition"],
        "start": min(offsets),
        "end": max(offsets) + 1,
    }
    receipts = {False: {"range": dict(source), "files": {}}, True: {"range": source, "files": {}}}
    for dataset, rows in sorted(published.items()):
        if rows.num_rows:
            path = layout.data_file(dataset, name, group["topic"], group["partition"])
            receipts[is_windowed(dataset)]["files"][dataset] = {
                "path": layout.relative(path),
                "sha256": write_parquet(rows, path),
                "rows": rows.num_rows,
            }
    return [r for r in receipts.values() if r["files"]]


def drop_already_published(
    layout: DataLayout, catalog: Catalog, batch_id: int, receipts: list[dict], outcome: dict
) -> None:
    """Replayed records whose natural key is already published stay in quarantine. A shard is
    one topic's partition: its duplicates are that topic's records (another topic's record at
    the same partition and offset was dropped too)."""
    topic_of = {
        file["path"]: receipt["range"]["topic"]
        for receipt in receipts
        for file in receipt["files"].values()
    }
    duplicates: dict[str, set[tuple[int, int]]] = {}
    for (_dataset, shard), new in batch_shards(receipts).items():
        # No record_batch_keys here: a replay batch is not redone after a crash, so its keys
        # reach the index from the catalog once committed (at the next lookup).
        found = find_batch_duplicates(catalog, shard, batch_id, new)
        duplicates.setdefault(topic_of[new[0]], set()).update(found)
    for receipt in receipts:
        topic = receipt["range"]["topic"]
        drop_records(layout, receipt, duplicates.get(topic, set()))
        for partition, offset in duplicates.get(topic, set()):
            if (topic, partition, offset) in outcome:
                outcome[(topic, partition, offset)] = "duplicate"


def conceal_released(layout: DataLayout, receipts: list[dict], key: PseudonymKey) -> None:
    """The windowed datasets' files (sessions) as a closed window releases them: their offsets
    keyed pseudonyms, in that order (``pipelines/release.conceal_lineage``), and their receipts'
    range naming no record (the span of a few replayed sessions' offsets would date them)."""
    for receipt in receipts:
        if not any(is_windowed(dataset) for dataset in receipt["files"]):
            continue
        for file in receipt["files"].values():
            path = layout.root / file["path"]
            rows = conceal_lineage(read_parquet(path), key)
            file["sha256"] = write_parquet(one_batch(rows), path)
        receipt["range"] = {**receipt["range"], "start": 0, "end": 0}
