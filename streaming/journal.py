"""The batch journal: each micro-batch's plan and how far it got, written before any work.

A batch is journaled ``planned`` (its offset ranges, its owner) before anything is read, then
moves through ``landed`` (its place in each dataset log fixed), ``committed`` (manifests
written), ``anchored`` and ``done`` (Kafka offsets committed). After a crash the journal says
exactly which ranges to redo and where their rows go, so the redo is byte-identical
(docs/pipeline.md, "Exactly once"). It lives in its own DuckDB file, ``journal.duckdb``, beside
the buyers' catalog; the runtime writes it only under the data directory's writer lock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

STATES = ("planned", "landed", "committed", "anchored", "done")
TABLES = ("batches", "batch_ranges")
_DDL = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id BIGINT PRIMARY KEY, topic VARCHAR, state VARCHAR, plan JSON,
    records_read BIGINT, records_published BIGINT, records_quarantined BIGINT,
    created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now());
ALTER TABLE batches ADD COLUMN IF NOT EXISTS owner VARCHAR;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS records_held BIGINT;
CREATE TABLE IF NOT EXISTS batch_ranges (
    batch_id BIGINT, topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT,
    end_offset BIGINT, PRIMARY KEY (batch_id, kafka_partition));
"""


class BatchJournal:
    """The journal file of a data directory (``read_only`` for readers such as ``rda status``)."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        if read_only:
            self.db = duckdb.connect(str(path), read_only=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(path))
        self.db.execute(_DDL)
        self._index_old_plans()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> BatchJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def next_batch_id(self) -> int:
        (value,) = self.db.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()
        return int(value)

    def record_plan(self, batch_id: int, topic: str, plan: dict, owner: str | None = None) -> None:
        """A new batch, ``planned``: its ranges are never planned again by anyone."""
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

    def update_plan(self, batch_id: int, plan: dict) -> None:
        """Rewrite a batch's plan (its ranges never change; crashes and poison offsets do)."""
        self.db.execute(
            "UPDATE batches SET plan = ?, updated_at = now() WHERE batch_id = ?",
            [json.dumps(plan, sort_keys=True), batch_id],
        )

    def set_owner(self, batch_id: int, owner: str) -> None:
        self.db.execute("UPDATE batches SET owner = ? WHERE batch_id = ?", [owner, batch_id])

    # -- reading ----------------------------------------------------------------------------

    def batch(self, batch_id: int) -> dict[str, Any]:
        """One journal entry, plan decoded."""
        cursor = self.db.execute(
            "SELECT batch_id, topic, state, plan, owner, records_read, records_published, "
            "records_quarantined, records_held FROM batches WHERE batch_id = ?",
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

    def unfinished_counts(self) -> dict[str, int]:
        """Per topic, the batches not yet ``done``."""
        rows = self.db.execute(
            "SELECT topic, count(*) FROM batches WHERE state <> 'done' GROUP BY topic"
        ).fetchall()
        return {topic: int(n) for topic, n in rows}

    def unfinished_topics(self) -> list[str]:
        """Topics with an unfinished batch, oldest batch first."""
        rows = self.db.execute(
            "SELECT topic FROM batches WHERE state <> 'done' GROUP BY topic ORDER BY min(batch_id)"
        ).fetchall()
        return [topic for (topic,) in rows]

    def journal_ends(self, topic: str) -> dict[int, int]:
        """Per partition, the end of the furthest range any batch of ``topic`` has planned."""
        rows = self.db.execute(
            "SELECT kafka_partition, max(end_offset) FROM batch_ranges WHERE topic = ? "
            "GROUP BY kafka_partition",
            [topic],
        ).fetchall()
        return {int(p): int(end) for p, end in rows}

    def state_head(self, topic: str) -> int | None:
        """The batch of ``topic`` whose event-time state is the latest (``streaming/event_time``):
        of the batches sequenced (``landed`` or later), the one whose state came last."""
        row = self.db.execute(
            "SELECT batch_id FROM batches WHERE topic = ? AND state <> 'planned' "
            "AND json_extract(plan, '$.state.position') IS NOT NULL "
            "ORDER BY CAST(json_extract(plan, '$.state.position') AS BIGINT) DESC LIMIT 1",
            [topic],
        ).fetchone()
        return int(row[0]) if row else None

    def state_bases(self, topic: str) -> set[int]:
        """The state snapshots unfinished batches of ``topic`` started from (a redo needs them)."""
        rows = self.db.execute(
            "SELECT CAST(json_extract(plan, '$.state.base') AS BIGINT) FROM batches "
            "WHERE topic = ? AND state NOT IN ('planned', 'done') "
            "AND json_extract(plan, '$.state.base') IS NOT NULL",
            [topic],
        ).fetchall()
        return {int(base) for (base,) in rows if base is not None}

    def recent_batches(self, limit: int = 10) -> list[dict[str, Any]]:
        """The journal's last ``limit`` batches, newest first, without their plans."""
        cursor = self.db.execute(
            "SELECT batch_id, topic, state, owner, records_read, records_published, "
            "records_quarantined, records_held, created_at, updated_at FROM batches "
            "ORDER BY batch_id DESC LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def totals(self) -> dict[str, int]:
        """Records read, published, quarantined, suppressed and held by every ``done`` batch.

        A batch's ``records_held`` is the change it made to the records on hold (negative when
        it released more than it held), so the totals reconcile:
        read = published + quarantined + suppressed + held."""
        row = self.db.execute(
            "SELECT coalesce(sum(records_read), 0), coalesce(sum(records_published), 0), "
            "coalesce(sum(records_quarantined), 0), coalesce(sum(records_held), 0) "
            "FROM batches WHERE state = 'done'"
        ).fetchone()
        read, published, quarantined, held = (int(v) for v in row)
        return {
            "read": read,
            "published": published,
            "quarantined": quarantined,
            "suppressed": read - published - quarantined - held,
            "held": held,
        }

    # -- ranges index -----------------------------------------------------------------------

    def _index_ranges(self, batch_id: int, topic: str, ranges: list[dict]) -> None:
        for r in ranges:
            self.db.execute(
                "INSERT OR REPLACE INTO batch_ranges VALUES (?, ?, ?, ?, ?)",
                [batch_id, topic, r["partition"], r["start"], r["end"]],
            )

    def _index_old_plans(self) -> None:
        """Journals written before ``batch_ranges`` existed: index their plans once."""
        (indexed,) = self.db.execute("SELECT count(*) FROM batch_ranges").fetchone()
        if indexed:
            return
        for batch_id, topic, plan in self.db.execute(
            "SELECT batch_id, topic, plan FROM batches"
        ).fetchall():
            self._index_ranges(batch_id, topic, json.loads(plan).get("ranges", []))
