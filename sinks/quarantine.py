"""The quarantine register: which private quarantine files exist, and what replays resolved.

Rejected records are kept whole, with their reasons, in Parquet files under
``private/quarantine/`` (written with each chunk, ``sinks/parquet.py``). The register lists those
files in the catalog's DuckDB file and keeps one view, ``quarantine``, over every record not since
replayed and published (``rda quarantine list|show|replay``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from schemas.records import QUARANTINE_SCHEMA
from sinks.sql import replace_rows, transaction
from sinks.views import FILE_COLUMN, add_folders, refresh_view

DDL = """
CREATE TABLE IF NOT EXISTS quarantine_files (
    path VARCHAR PRIMARY KEY, topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT,
    end_offset BIGINT, rows BIGINT, reasons JSON, batch_id BIGINT);
CREATE TABLE IF NOT EXISTS quarantine_resolved (
    topic VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT, batch_id BIGINT,
    PRIMARY KEY (topic, kafka_partition, kafka_offset));
"""


class QuarantineRegister:
    """The register's tables on a catalog connection; stored paths are relative to ``root``."""

    def __init__(self, db: duckdb.DuckDBPyConnection, root: Path) -> None:
        self.db = db
        self._root = root

    def register(self, batch_id: int, entries: Iterable[dict[str, Any]]) -> None:
        """A batch's quarantine files: path, source range, row count and reasons of each."""
        rows = {  # by path: a file listed twice is registered as listed last
            q["path"]: [q["path"], q["topic"], q["partition"], q["start"], q["end"], q["rows"],
                        json.dumps(q["reasons"], sort_keys=True), batch_id]
            for q in entries
        }  # fmt: skip
        if not rows:
            return
        with transaction(self.db):
            replace_rows(self.db, "quarantine_files", ["path"], list(rows.values()))
            add_folders(self.db, {"quarantine": list(rows)})

    def batch_reasons(self, batch_id: int) -> dict[str, int]:
        """Records quarantined by one batch, per reason code (from its registered files)."""
        counts: dict[str, int] = {}
        rows = self.db.execute(
            "SELECT reasons FROM quarantine_files WHERE batch_id = ?", [batch_id]
        ).fetchall()
        for (reasons,) in rows:
            for code, n in json.loads(reasons).items():
                counts[code] = counts.get(code, 0) + n
        return dict(sorted(counts.items()))

    def paths(self) -> list[str]:
        rows = self.db.execute("SELECT path FROM quarantine_files ORDER BY path").fetchall()
        return [path for (path,) in rows]

    def resolve(self, batch_id: int, records: Iterable[tuple[str, int, int]]) -> None:
        """Mark quarantined records (topic, partition, offset) as published by a replay batch."""
        for topic, partition, offset in records:
            self.db.execute(
                "INSERT OR REPLACE INTO quarantine_resolved VALUES (?, ?, ?, ?)",
                [topic, partition, offset, batch_id],
            )

    def pending(self, reason: str | None = None, topic: str | None = None) -> pa.Table:
        """Quarantined records not yet resolved, optionally of one reason code or topic."""
        self.refresh_view()
        if not self.paths():
            return QUARANTINE_SCHEMA.empty_table()
        query, params = "SELECT * FROM quarantine WHERE true", []
        if reason:
            query, params = query + " AND reason_code = ?", [*params, reason]
        if topic:
            query, params = query + " AND topic = ?", [*params, topic]
        ordered = query + ' ORDER BY topic, partition, "offset"'
        return self.db.sql(ordered, params=params).to_arrow_table()

    def refresh_view(self, made: dict[str, str] | None = None) -> None:
        """The ``quarantine`` view: every rejected record not since replayed and published (by
        column name: files from before a column was added read on). ``made``: as
        ``sinks.views.refresh_view``'s."""
        refresh_view(
            self.db,
            "quarantine",
            self._root,
            ("quarantine", "SELECT path FROM quarantine_files"),
            "SELECT q.* EXCLUDE (" + FILE_COLUMN + ") FROM {files} q "
            "ANTI JOIN quarantine_resolved r ON q.topic = r.topic "
            "AND q.partition = r.kafka_partition AND q.offset = r.kafka_offset WHERE {listed}",
            made,
        )
