"""The DuckDB catalog: the buyers' and auditors' entry point to what was published.

It lists each dataset (schema, fingerprint, view name), its Parquet files with their leaf ranges
and sources, and each anchored checkpoint, and keeps one view per dataset over its files. The
quarantine register (``sinks/quarantine.py``) and the natural-key index (``sinks/key_index.py``)
share its file. The batch journal is not here: it is the runtime's (``streaming/journal.py``).
Only the runtime writes the catalog (DuckDB allows one writer): with several workers, each opens
it briefly under the data directory's writer lock (``sinks/writer_lock.py``).
"""

from __future__ import annotations

import json
import os
import re
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from sinks import attached
from sinks.layout import DataLayout
from sinks.quarantine import DDL as QUARANTINE_DDL
from sinks.quarantine import QuarantineRegister
from sinks.sql import replace_rows, sql_string, transaction
from sinks.views import DDL as VIEWS_DDL
from sinks.views import FILE_COLUMN, add_folders, made_views, refresh_view

_DDL = (
    """
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY, schema_name VARCHAR, schema_version VARCHAR,
    fingerprint VARCHAR, view_name VARCHAR);
CREATE TABLE IF NOT EXISTS files (
    path VARCHAR PRIMARY KEY, dataset VARCHAR, sha256 VARCHAR, rows BIGINT, leaf_start BIGINT,
    topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT, end_offset BIGINT,
    batch_id BIGINT);
CREATE TABLE IF NOT EXISTS checkpoints (
    dataset VARCHAR, tree_size BIGINT, root VARCHAR, manifest_path VARCHAR,
    manifest_sha256 VARCHAR, chain_id BIGINT, contract VARCHAR, anchor_tx VARCHAR,
    anchor_block BIGINT, gas_used BIGINT, batch_id BIGINT,
    PRIMARY KEY (dataset, tree_size));
CREATE TABLE IF NOT EXISTS hydrated_shards (shard VARCHAR PRIMARY KEY, manifest_sha256 VARCHAR);
CREATE TABLE IF NOT EXISTS window_quality (
    dataset VARCHAR, topic VARCHAR, window_start VARCHAR, window_end VARCHAR, score DOUBLE,
    components JSON, counts JSON, batch_id BIGINT, PRIMARY KEY (dataset, topic, window_start));
"""
    + QUARANTINE_DDL
    + VIEWS_DDL
)

_DDL_TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _DDL))


class Catalog:
    """A DuckDB catalog file under a data directory."""

    def __init__(self, layout: DataLayout, read_only: bool = False) -> None:
        self.layout = layout
        if read_only:  # for readers such as `rda status`: no DDL, no writer lock taken
            self.db = duckdb.connect(str(layout.catalog), read_only=True)
        else:  # the runtime, once a batch: attached to the process's DuckDB (sinks/attached.py)
            layout.root.mkdir(parents=True, exist_ok=True)
            self.db = attached.attach(layout.catalog)
        # Closed once: by `close`, or when the catalog is collected unclosed (the file attached
        # to the process's DuckDB would otherwise stay locked until the process ends).
        path = None if read_only else layout.catalog
        self._finalizer = weakref.finalize(self, _close, self.db, path, os.getpid())
        # The tables committed when this connection opened: modules that create a table on first
        # use (the key index) need not ask again, several times a batch, whether it exists.
        try:
            self.tables_at_open = self._tables()
            if not read_only and not self.tables_at_open >= _DDL_TABLES:
                self.db.execute(_DDL)  # a new catalog, or an older one (~2 ms an opening if always)
                self.tables_at_open = self._tables()
        except BaseException:
            self.close()
            raise
        (self._database,) = self.db.execute("SELECT current_database()").fetchone()
        self.quarantine = QuarantineRegister(self.db, layout.root)
        self.files_version = 0  # bumped by every `register_files` (the key index asks again then)
        self.windows = WindowHistory(self.db)

    def _tables(self) -> frozenset[str]:
        tables = self.db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        return frozenset(name for (name,) in tables)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to this catalog (registering Arrow data is refused on one that
        holds a partly fetched result); the caller closes it."""
        cursor = self.db.cursor()
        cursor.execute(f'USE "{self._database}"')
        return cursor

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets and files ---------------------------------------------------------------

    def register_dataset(self, dataset: str, schema: dict, fingerprint: str) -> str:
        """List ``dataset`` (its schema, fingerprint and view name) unless listed as it is: every
        batch registers its datasets, and replacing a keyed row costs ~10 times looking it up."""
        view = dataset.replace(".", "_")
        row = (dataset, schema["name"], schema["version"], fingerprint, view)
        listed = self.db.execute("SELECT * FROM datasets WHERE dataset = ?", [dataset]).fetchall()
        if listed != [row]:
            self.db.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?)", list(row))
        return view

    def register_files(self, batch_id: int, files: Iterable[dict[str, Any]]) -> None:
        """List ``files`` (a redo replaces their rows) with their folders, in one transaction."""
        rows = {  # by path: a file listed twice is registered as listed last
            f["path"]: [f["path"], f["dataset"], f["sha256"], f["rows"], f["leaf_start"],
                        f["topic"], f["partition"], f["start"], f["end"], batch_id]
            for f in files
        }  # fmt: skip
        if not rows:
            return
        listed: dict[str, list[str]] = {}
        for path, row in rows.items():
            listed.setdefault(row[1], []).append(path)
        db = self.cursor()
        try:
            with transaction(db):  # the files with their folders, in one commit
                replace_rows(db, "files", ["path"], list(rows.values()))
                add_folders(db, listed)
        finally:
            db.close()
            self.files_version += 1

    def hydrated_heads(self, shards: list[str]) -> dict[str, str]:
        """Shard -> the hash of its anchored head manifest up to which this catalog lists every
        file of the shard (``mark_hydrated``)."""
        if not shards:
            return {}
        found = self.db.execute(
            "SELECT shard, manifest_sha256 FROM hydrated_shards "
            "WHERE shard IN (SELECT UNNEST(?::VARCHAR[]))",
            [shards],
        ).fetchall()
        return dict(found)

    def mark_hydrated(self, heads: dict[str, str]) -> None:
        """Note that every file of each shard up to its head manifest (shard -> its hash) is
        listed: kept in the catalog beside the files, so a catalog made anew starts unmarked."""
        if not heads:
            return
        shards = sorted(heads)
        self.db.execute(
            "INSERT OR REPLACE INTO hydrated_shards "
            "SELECT UNNEST(?::VARCHAR[]), UNNEST(?::VARCHAR[])",
            [shards, [heads[s] for s in shards]],
        )

    def listed_paths(self, paths: list[str]) -> set[str]:
        """Which of ``paths`` the ``files`` table lists."""
        if not paths:
            return set()
        found = self.db.execute(
            "SELECT path FROM files WHERE path IN (SELECT UNNEST(?::VARCHAR[]))", [paths]
        ).fetchall()
        return {path for (path,) in found}

    def dataset_files(self, dataset: str) -> list[dict[str, Any]]:
        cursor = self.db.execute(
            "SELECT path, sha256, rows, leaf_start, topic, kafka_partition AS partition, "
            "start_offset AS start, end_offset AS end, batch_id FROM files WHERE dataset = ? "
            "ORDER BY leaf_start",
            [dataset],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def refresh_views(self, only: Iterable[str] | None = None) -> None:
        """Make one view per dataset over its listed files (``only``: of these datasets, the ones
        a batch changed), and the one over the quarantine, unless made already: a view shows
        files as they are listed (``sinks/views.py``)."""
        datasets = self.db.execute("SELECT dataset, view_name FROM datasets").fetchall()
        wanted = None if only is None else set(only)
        made = made_views(self.db)
        for dataset, view in datasets:
            if wanted is None or dataset in wanted:
                refresh_view(
                    self.db,
                    view,
                    self.layout.root,
                    (dataset, f"SELECT path FROM files WHERE dataset = {sql_string(dataset)}"),
                    # By name: files of a later minor version carry extra optional columns
                    "SELECT * EXCLUDE (" + FILE_COLUMN + ") FROM {files} WHERE {listed}",
                    made,
                )
        self.quarantine.refresh_view(made)

    # -- checkpoints ----------------------------------------------------------------------

    def record_checkpoint(self, batch_id: int, checkpoint: dict[str, Any]) -> None:
        self.record_checkpoints(batch_id, [checkpoint])

    def record_checkpoints(self, batch_id: int, checkpoints: list[dict[str, Any]]) -> None:
        """Record anchored checkpoints (a redo replaces their rows), in one statement."""
        rows = [
            [c["dataset"], c["tree_size"], c["root"], c["manifest_path"], c["manifest_sha256"],
             c.get("chain_id"), c.get("contract"), c.get("anchor_tx"), c.get("anchor_block"),
             c.get("gas_used"), batch_id]
            for c in checkpoints
        ]  # fmt: skip
        if rows:
            with transaction(self.db):
                replace_rows(self.db, "checkpoints", ["dataset", "tree_size"], rows)

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


class WindowHistory:
    """Each closed event-time window's quality figures, per dataset: the score's history."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self.db = db

    def record(self, batch_id: int, closed: Iterable[dict[str, Any]]) -> None:
        rows = {  # by key: a window listed twice is recorded as listed last
            (w["dataset"], _window_source(w), w["window_start"]): [
                w["dataset"], _window_source(w), w["window_start"], w["window_end"], w["score"],
                json.dumps(w["components"], sort_keys=True),
                json.dumps(w["counts"], sort_keys=True), batch_id,
            ]
            for w in closed
        }  # fmt: skip
        if rows:
            with transaction(self.db):
                replace_rows(
                    self.db,
                    "window_quality",
                    ["dataset", "topic", "window_start"],
                    list(rows.values()),
                )

    def latest(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last ``limit`` closed windows, newest first, each with every dataset's score."""
        cursor = self.db.execute(
            "SELECT topic, window_start, window_end, dataset, score FROM window_quality "
            "WHERE (topic, window_start) IN (SELECT DISTINCT topic, window_start "
            "FROM window_quality ORDER BY window_start DESC LIMIT ?) "
            "ORDER BY window_start DESC, topic, dataset",
            [limit],
        )
        windows: dict[tuple[str, str], dict[str, Any]] = {}
        for topic, start, end, dataset, score in cursor.fetchall():
            entry = windows.setdefault(
                (topic, start), {"topic": topic, "window_start": start, "window_end": end}
            )
            entry.setdefault("scores", {})[dataset] = score
        return list(windows.values())


def _window_source(window: dict[str, Any]) -> str:
    """A closed window's source: its topic, and its partition when each has its own windows."""
    partition = window.get("partition")
    return window["topic"] if partition is None else f"{window['topic']}.p{partition}"


def _close(db: duckdb.DuckDBPyConnection, attached_file: Path | None, opener: int) -> None:
    if os.getpid() != opener:  # a forked child's copy of its parent's catalog: not its own
        return
    db.close()
    if attached_file is not None:
        attached.detach(attached_file)


def open_catalog(root: Path) -> Catalog:
    return Catalog(DataLayout(root))
