"""The DuckDB catalog: what was planned, landed, committed and anchored, and a view per dataset.

The catalog is the pipeline's journal as well as the buyers' entry point. Only the driver writes
it (DuckDB allows one writer): with several workers, each opens it briefly under the data
directory's writer lock (``sinks/writer_lock.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from sinks.layout import DataLayout

_DDL = """
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY, schema_name VARCHAR, schema_version VARCHAR,
    fingerprint VARCHAR, view_name VARCHAR);
CREATE TABLE IF NOT EXISTS batches (
    batch_id BIGINT PRIMARY KEY, topic VARCHAR, state VARCHAR, plan JSON,
    records_read BIGINT, records_published BIGINT, records_quarantined BIGINT,
    created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now());
ALTER TABLE batches ADD COLUMN IF NOT EXISTS owner VARCHAR;
CREATE TABLE IF NOT EXISTS batch_ranges (
    batch_id BIGINT, topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT,
    end_offset BIGINT, PRIMARY KEY (batch_id, kafka_partition));
CREATE TABLE IF NOT EXISTS files (
    path VARCHAR PRIMARY KEY, dataset VARCHAR, sha256 VARCHAR, rows BIGINT, leaf_start BIGINT,
    topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT, end_offset BIGINT,
    batch_id BIGINT);
CREATE TABLE IF NOT EXISTS quarantine_files (
    path VARCHAR PRIMARY KEY, topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT,
    end_offset BIGINT, rows BIGINT, reasons JSON, batch_id BIGINT);
CREATE TABLE IF NOT EXISTS quarantine_resolved (
    topic VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT, batch_id BIGINT,
    PRIMARY KEY (topic, kafka_partition, kafka_offset));
CREATE TABLE IF NOT EXISTS checkpoints (
    dataset VARCHAR, tree_size BIGINT, root VARCHAR, manifest_path VARCHAR,
    manifest_sha256 VARCHAR, chain_id BIGINT, contract VARCHAR, anchor_tx VARCHAR,
    anchor_block BIGINT, gas_used BIGINT, batch_id BIGINT,
    PRIMARY KEY (dataset, tree_size));
"""


class Catalog:
    """A DuckDB catalog file under a data directory."""

    def __init__(self, layout: DataLayout, read_only: bool = False) -> None:
        self.layout = layout
        if read_only:  # for readers such as `rda status`: no DDL, no writer lock taken
            self.db = duckdb.connect(str(layout.catalog), read_only=True)
            return
        layout.root.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(layout.catalog))
        self.db.execute(_DDL)
        self._index_old_plans()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batches: the journal -------------------------------------------------------------

    def next_batch_id(self) -> int:
        (value,) = self.db.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()
        return int(value)

    def record_plan(self, batch_id: int, topic: str, plan: dict, owner: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO batches (batch_id, topic, state, plan, owner) "
            "VALUES (?, ?, 'planned', ?, ?)",
            [batch_id, topic, json.dumps(plan, sort_keys=True), owner],
        )
        self._index_ranges(batch_id, topic, plan.get("ranges", []))

    def set_state(self, batch_id: int, state: str, **counts: int) -> None:
        assignments = ", ".join(f"{name} = ?" for name in counts)
        extra = f", {assignments}" if assignments else ""
        self.db.execute(
            f"UPDATE batches SET state = ?, updated_at = now(){extra} WHERE batch_id = ?",
            [state, *counts.values(), batch_id],
        )

    def record_sequencing(self, batch_id: int, plan: dict, **counts: int) -> None:
        """The batch's place in the logs is fixed (``plan["log_starts"]``): state ``landed``."""
        self.db.execute(
            "UPDATE batches SET plan = ? WHERE batch_id = ?",
            [json.dumps(plan, sort_keys=True), batch_id],
        )
        self.set_state(batch_id, "landed", **counts)

    def set_owner(self, batch_id: int, owner: str) -> None:
        self.db.execute("UPDATE batches SET owner = ? WHERE batch_id = ?", [owner, batch_id])

    def batch(self, batch_id: int) -> dict[str, Any]:
        """One journal entry, plan decoded."""
        cursor = self.db.execute(
            "SELECT batch_id, topic, state, plan, owner, records_read, records_published, "
            "records_quarantined FROM batches WHERE batch_id = ?",
            [batch_id],
        )
        names = [d[0] for d in cursor.description]
        entry = dict(zip(names, cursor.fetchone(), strict=True))
        entry["plan"] = json.loads(entry["plan"])
        return entry

    def unfinished_batches(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Journal entries not yet ``done``, oldest first (of one topic, or of all)."""
        where, params = ("AND topic = ?", [topic]) if topic is not None else ("", [])
        rows = self.db.execute(
            f"SELECT batch_id FROM batches WHERE state <> 'done' {where} ORDER BY batch_id",
            params,
        ).fetchall()
        return [self.batch(batch_id) for (batch_id,) in rows]

    def journal_ends(self, topic: str) -> dict[int, int]:
        """Per partition, the end of the furthest range any batch of ``topic`` has planned."""
        rows = self.db.execute(
            "SELECT kafka_partition, max(end_offset) FROM batch_ranges WHERE topic = ? "
            "GROUP BY kafka_partition",
            [topic],
        ).fetchall()
        return {int(p): int(end) for p, end in rows}

    def _index_ranges(self, batch_id: int, topic: str, ranges: list[dict]) -> None:
        for r in ranges:
            self.db.execute(
                "INSERT OR REPLACE INTO batch_ranges VALUES (?, ?, ?, ?, ?)",
                [batch_id, topic, r["partition"], r["start"], r["end"]],
            )

    def _index_old_plans(self) -> None:
        """Catalogs written before ``batch_ranges`` existed: index their plans once."""
        (indexed,) = self.db.execute("SELECT count(*) FROM batch_ranges").fetchone()
        if indexed:
            return
        for batch_id, topic, plan in self.db.execute(
            "SELECT batch_id, topic, plan FROM batches"
        ).fetchall():
            self._index_ranges(batch_id, topic, json.loads(plan).get("ranges", []))

    def unfinished_topics(self) -> list[str]:
        """Topics with an unfinished batch, oldest batch first."""
        rows = self.db.execute(
            "SELECT topic FROM batches WHERE state <> 'done' GROUP BY topic ORDER BY min(batch_id)"
        ).fetchall()
        return [topic for (topic,) in rows]

    def recent_batches(self, limit: int = 10) -> list[dict[str, Any]]:
        """The journal's last ``limit`` batches, newest first, without their plans."""
        cursor = self.db.execute(
            "SELECT batch_id, topic, state, owner, records_read, records_published, "
            "records_quarantined, created_at, updated_at FROM batches "
            "ORDER BY batch_id DESC LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- datasets and files ---------------------------------------------------------------

    def register_dataset(self, dataset: str, schema: dict, fingerprint: str) -> str:
        view = dataset.replace(".", "_")
        self.db.execute(
            "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?)",
            [dataset, schema["name"], schema["version"], fingerprint, view],
        )
        return view

    def register_files(self, batch_id: int, files: Iterable[dict[str, Any]]) -> None:
        for f in files:
            self.db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [f["path"], f["dataset"], f["sha256"], f["rows"], f["leaf_start"], f["topic"],
                 f["partition"], f["start"], f["end"], batch_id],
            )  # fmt: skip

    def register_quarantine(self, batch_id: int, entries: Iterable[dict[str, Any]]) -> None:
        for q in entries:
            self.db.execute(
                "INSERT OR REPLACE INTO quarantine_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [q["path"], q["topic"], q["partition"], q["start"], q["end"], q["rows"],
                 json.dumps(q["reasons"], sort_keys=True), batch_id],
            )  # fmt: skip

    def dataset_files(self, dataset: str) -> list[dict[str, Any]]:
        cursor = self.db.execute(
            "SELECT path, sha256, rows, leaf_start, topic, kafka_partition AS partition, "
            "start_offset AS start, end_offset AS end, batch_id FROM files WHERE dataset = ? "
            "ORDER BY leaf_start",
            [dataset],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def refresh_views(self) -> None:
        """(Re)create one view per dataset over its files, and one over the quarantine."""
        datasets = self.db.execute("SELECT dataset, view_name FROM datasets").fetchall()
        for dataset, view in datasets:
            paths = [self._absolute(f["path"]) for f in self.dataset_files(dataset)]
            self._create_view(view, paths)
        self._create_quarantine_view()

    def _create_quarantine_view(self) -> None:
        """The quarantine as it stands: every rejected record not since replayed and published."""
        paths = [self._absolute(p) for p in self.quarantine_paths()]
        if not paths:
            return
        listing = ", ".join(_sql_string(p) for p in paths)
        self.db.execute(
            "CREATE OR REPLACE VIEW quarantine AS SELECT q.* FROM read_parquet(["
            + listing
            + "]) q "
            "ANTI JOIN quarantine_resolved r ON q.topic = r.topic "
            "AND q.partition = r.kafka_partition AND q.offset = r.kafka_offset"
        )

    def quarantine_paths(self) -> list[str]:
        rows = self.db.execute("SELECT path FROM quarantine_files ORDER BY path").fetchall()
        return [path for (path,) in rows]

    def resolve_quarantine(self, batch_id: int, records: Iterable[tuple[str, int, int]]) -> None:
        """Mark quarantined records as published by a replay batch."""
        for topic, partition, offset in records:
            self.db.execute(
                "INSERT OR REPLACE INTO quarantine_resolved VALUES (?, ?, ?, ?)",
                [topic, partition, offset, batch_id],
            )

    def _create_view(self, view: str, paths: list[str]) -> None:
        if not paths:
            return
        listing = ", ".join(_sql_string(p) for p in paths)
        # By name: files of a later minor version carry extra optional columns (schemas/model.py)
        self.db.execute(
            f'CREATE OR REPLACE VIEW "{view}" AS '
            f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        )

    def _absolute(self, relative: str) -> str:
        return str((self.layout.root / relative).resolve())

    # -- checkpoints ----------------------------------------------------------------------

    def record_checkpoint(self, batch_id: int, checkpoint: dict[str, Any]) -> None:
        c = checkpoint
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [c["dataset"], c["tree_size"], c["root"], c["manifest_path"], c["manifest_sha256"],
             c.get("chain_id"), c.get("contract"), c.get("anchor_tx"), c.get("anchor_block"),
             c.get("gas_used"), batch_id],
        )  # fmt: skip

    def batch_checkpoints(self, batch_id: int) -> list[dict[str, Any]]:
        cursor = self.db.execute(
            "SELECT * FROM checkpoints WHERE batch_id = ? ORDER BY dataset", [batch_id]
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def checkpoints(self, dataset: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM checkpoints"
        params: list[Any] = []
        if dataset is not None:
            query += " WHERE dataset = ?"
            params.append(dataset)
        cursor = self.db.execute(query + " ORDER BY dataset, tree_size", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def totals(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT coalesce(sum(records_read), 0), coalesce(sum(records_published), 0), "
            "coalesce(sum(records_quarantined), 0) FROM batches WHERE state = 'done'"
        ).fetchone()
        return {"read": int(row[0]), "published": int(row[1]), "quarantined": int(row[2])}


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def open_catalog(root: Path) -> Catalog:
    return Catalog(DataLayout(root))
