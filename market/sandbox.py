"""The second wall around buyer SQL: a locked, in-memory DuckDB holding only licensed views.

For each set of licensed datasets the sandbox builds one in-memory database whose only objects
are one view per dataset over that dataset's anchored Parquet files (runs of a stream's small
files read from compacted copies of them, ``market/compaction.py``). Before any buyer SQL runs,
file access is limited to exactly those files (``allowed_paths``), external access is switched
off, extension auto-loading is off, and the configuration is locked, so no statement can turn
any of it back on. Each query runs on its own cursor, interrupted when it overruns its time,
under a memory limit and a thread cap, and stops reading as soon as it exceeds the row limit.
DuckDB's memory limit bounds its buffers, not a single value (a string doubled thirty times is
one value): the process around the sandbox bounds that (``market.pool``).

Buyers cannot change these databases (only SELECT gets past ``market.policy``), so one is
shared by every buyer with the same licences and rebuilt when a new checkpoint is anchored, and
at least every half hour (sooner while compaction has runs left to copy).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from market import compaction
from market.assets import Asset
from market.compaction import Member, Parts
from market.deadlines import Deadlines
from market.policy import QueryRefused
from sinks.layout import DataLayout

LEAF_COLUMN = "rda_leaf_index"
_FILE = "_rda_file"  # each row's file, inside a view's query only (never one of its columns)
_BATCH_ROWS = 8192
_CACHED_DATABASES = 32
# How long a database (its views) is kept: then made again, so that no view reads a compacted
# file longer than ``compaction.UNUSED_S`` after it was last used; sooner when its compaction
# was left for later (``compaction.MAX_FILES_PER_VIEW``).
_VIEW_S = compaction.UNUSED_S / 2
_PENDING_VIEW_S = 5.0


@dataclass(frozen=True)
class Limits:
    """What one query may spend: time (query, proofs and encoding together), DuckDB's buffer
    memory, threads, rows and bytes of the encoded result."""

    timeout_s: float = 10.0
    memory_limit: str = "512MB"
    threads: int = 2
    max_rows: int = 100_000
    max_result_bytes: int = 128 * 1024 * 1024


class Sandbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._databases: OrderedDict[tuple, _Database] = OrderedDict()
        self._lock = threading.Lock()
        self._watchdog = Deadlines(_interrupt, "rda-sql-watchdog")

    def run(
        self,
        sql: str,
        assets: Sequence[Asset],
        max_rows: int | None = None,
        leaf_index: bool = False,
    ) -> pa.Table:
        """Run checked SQL over views of ``assets``; with ``leaf_index`` every view also has
        the column ``rda_leaf_index`` (the row's leaf in its dataset's Merkle tree)."""
        with self.stream(sql, assets, max_rows, leaf_index) as (schema, batches):
            return pa.Table.from_batches(list(batches), schema=schema)

    @contextlib.contextmanager
    def stream(
        self,
        sql: str,
        assets: Sequence[Asset],
        max_rows: int | None = None,
        leaf_index: bool = False,
        deadline: float | None = None,
    ) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
        """The result's schema and its batches, read while the caller consumes them (and
        encodes them) under the time limit: the query is interrupted at ``deadline``
        (``time.monotonic()``; default: now + the limit), and a consumer still busy past it
        gets a ``timeout`` at its next batch."""
        limit = min(max_rows or self.limits.max_rows, self.limits.max_rows)
        deadline = deadline or time.monotonic() + self.limits.timeout_s
        cursor = self._database(assets, leaf_index).cursor()
        watch = self._watchdog.watch(cursor, max(deadline - time.monotonic(), 0.0))
        try:
            reader = cursor.sql(sql).to_arrow_reader(_BATCH_ROWS)
            yield reader.schema, self._batches(reader, limit, deadline)
        except duckdb.Error as error:
            if isinstance(error, (duckdb.IOException, duckdb.PermissionException)):
                self._forget_if_gone(assets, leaf_index)
            raise _duckdb_refusal(error, self.limits) from None
        except (OSError, pa.ArrowException) as error:
            # Errors while streaming arrive through the Arrow reader, as Arrow errors.
            self._forget_if_gone(assets, leaf_index)
            raise _streaming_refusal(error, self.limits) from None
        finally:
            self._watchdog.release(watch)
            cursor.close()

    def _batches(
        self, reader: pa.RecordBatchReader, limit: int, deadline: float
    ) -> Iterator[pa.RecordBatch]:
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if rows > limit:
                raise QueryRefused(
                    "too_many_rows",
                    f"the result has more than {limit} rows: aggregate, filter or add LIMIT",
                    status=413,
                )
            if time.monotonic() > deadline:
                raise timeout_refusal(self.limits)
            yield batch

    def close(self) -> None:
        with self._lock:
            for database in self._databases.values():
                database.con.close()
            self._databases.clear()

    def _forget_if_gone(self, assets: Sequence[Asset], leaf_index: bool) -> None:
        """Drop the assets' database if a file it reads is gone (by hand, or a compacted copy
        removed under it): the next query makes it again rather than fail for as long as it is
        kept. A file there still: the error was the query's own."""
        key = _key(assets, leaf_index)
        with self._lock:
            database = self._databases.get(key)
            if database is not None and not all(map(os.path.exists, database.files)):
                self._databases.pop(key)

    def _database(self, assets: Sequence[Asset], leaf_index: bool) -> duckdb.DuckDBPyConnection:
        key = _key(assets, leaf_index)
        with self._lock:
            cached = self._databases.get(key)
            if cached is not None and time.monotonic() < cached.until:
                self._databases.move_to_end(key)
                return cached.con
            # An expired database is not closed here: a query may still be reading it (it closes
            # once no cursor holds it).
            con, pending, files = self._build(assets, leaf_index)
            kept = _PENDING_VIEW_S if pending else _VIEW_S
            self._databases[key] = _Database(con, time.monotonic() + kept, files)
            while len(self._databases) > _CACHED_DATABASES:
                _evicted, old = self._databases.popitem(last=False)
                old.con.close()
            return con

    def _build(
        self, assets: Sequence[Asset], leaf_index: bool
    ) -> tuple[duckdb.DuckDBPyConnection, bool, list[str]]:
        """A database with the assets' views; whether compaction left runs for a later one;
        the files it reads."""
        con = duckdb.connect(
            ":memory:",
            config={
                "threads": self.limits.threads,
                "memory_limit": self.limits.memory_limit,
                # No spilling: over its memory a query spilled to `.tmp` in the server's working
                # directory, up to 90 % of the free disk (365 MiB in 2 s at 128MB); it is refused
                # as out of memory instead, and the memory limit is the whole of what it takes.
                "temp_directory": "",
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        allowed, pending = [], False
        for asset in assets:
            parts = asset_parts(asset)
            pending |= parts.pending
            con.execute(_view_ddl(asset, leaf_index, parts))
            allowed += [str(path) for path, _ in parts.compacted]
            allowed += [str(member.path) for member in parts.loose]
        con.execute("SET allowed_paths = ?", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con, pending, allowed


@dataclass(frozen=True)
class _Database:
    """A database with views, kept until ``until`` (``time.monotonic()``)."""

    con: duckdb.DuckDBPyConnection
    until: float
    files: list[str]  # what its views read


def _key(assets: Sequence[Asset], leaf_index: bool) -> tuple:
    return (leaf_index, *sorted((a.view, a.checkpoint.tree_size, a.files) for a in assets))


def asset_parts(asset: Asset, budget: int | None = None) -> Parts:
    """The files a view of ``asset`` reads: runs of small files from their compacted copies
    (``market/compaction.py``, which copies at most ``budget`` files now), the others as
    published."""
    if not asset.file_ids:
        members = [Member(path, "", "", start) for path, start in zip(
            asset.files, asset.leaf_starts, strict=True)]  # fmt: skip
        return Parts(loose=members)
    members = [
        Member(path, key, sha256, start, log, log_leaf)
        for path, start, (log, key, sha256, log_leaf) in zip(
            asset.files, asset.leaf_starts, asset.file_ids, strict=True
        )
    ]
    if len(members) < compaction.RUN_FILES or len(set(asset.files)) < len(asset.files):
        return Parts(loose=members)  # few files, or a file listed twice: read as published
    logs: dict[str, list[Member]] = {}
    for member in members:
        logs.setdefault(member.log, []).append(member)
    root = asset.dataset_dir.parent.parent  # the data directory: published/<dataset>/..
    cache = DataLayout(root).private_cache("market", "compacted", asset.dataset)
    return compaction.view_parts(cache, list(logs.values()), budget)


def _view_ddl(asset: Asset, leaf_index: bool, parts: Parts | None = None) -> str:
    """The view over an asset's files. DDL takes no parameters; every part comes from the
    catalog (view names are checked identifiers, paths are quoted literals), never from a buyer."""
    return f"CREATE VIEW {asset.view} AS {view_query(asset, leaf_index, parts)}"


def view_query(asset: Asset, leaf_index: bool = False, parts: Parts | None = None) -> str:
    """The query of an asset's rows as published (a view's body; ``parts``: its files, by
    default ``asset_parts(asset)``).

    With ``leaf_index``, each row's leaf: its file's first leaf joined to its row number in the
    file, over one scan of every file (a view that united a scan per file cost DuckDB a plan the
    size of the file list: a stream's 1,967 files took 0.79 s to make and 1.3 s a count, against
    0.04 s and 0.28 s). Compacted files (``parts``) hold each row's log and its leaf there."""
    parts = parts or asset_parts(asset)
    selects = []
    if parts.compacted:
        members = [m for _, held in parts.compacted for m in held]
        selects.append(
            _compacted_select([path for path, _ in parts.compacted], members, leaf_index)
        )
    if parts.loose:
        selects.append(_select([m.path for m in parts.loose], parts.loose, leaf_index))
    return " UNION ALL BY NAME ".join(selects)


def _select(files: Sequence[Path], members: Sequence[Member], leaf_index: bool) -> str:
    """One scan of loose ``files``: their rows (with each one's leaf, numbered from its file's
    first leaf, with ``leaf_index``)."""
    if leaf_index:  # each file scanned once, numbered from each of its places in the listing
        files = list(dict.fromkeys(files))
    scan = _scan(files, f", file_row_number = true, filename = '{_FILE}'" if leaf_index else "")
    if not leaf_index:
        return f"SELECT * FROM {scan}"
    starts = ", ".join(f"({_literal(str(m.path))}, {int(m.leaf_start)})" for m in members)
    return (
        f"SELECT rows.* EXCLUDE (file_row_number, {_FILE}), "
        f"rows.file_row_number + CAST(starts.leaf_start AS BIGINT) AS {LEAF_COLUMN} "
        f"FROM {scan} AS rows JOIN (VALUES {starts}) AS starts({_FILE}, leaf_start) USING ({_FILE})"
    )


def _compacted_select(files: Sequence[Path], members: Sequence[Member], leaf_index: bool) -> str:
    """One scan of compacted ``files``: their rows (with each one's leaf, its leaf in its log
    plus the log's first leaf in the checkpoint, with ``leaf_index``: one value per log)."""
    log, log_leaf = compaction.LOG_COLUMN, compaction.LOG_LEAF_COLUMN
    scan = _scan(files, "")
    if not leaf_index:
        return f"SELECT * EXCLUDE ({log}, {log_leaf}) FROM {scan}"
    offsets = {m.log: m.leaf_start - m.log_leaf for m in members}
    listed = ", ".join(f"({_literal(name)}, {int(offset)})" for name, offset in offsets.items())
    return (
        f"SELECT rows.* EXCLUDE ({log}, {log_leaf}), "
        f"rows.{log_leaf} + CAST(logs.leaf_offset AS BIGINT) AS {LEAF_COLUMN} "
        f"FROM {scan} AS rows JOIN (VALUES {listed}) AS logs({log}, leaf_offset) USING ({log})"
    )


def _scan(files: Sequence[Path], options: str) -> str:
    listing = ", ".join(_literal(str(f)) for f in files)
    # By name when a later minor version's files carry extra optional columns; only then:
    # union_by_name reads every file's footer at each query (measured 2.5x slower)
    by_name = ", union_by_name = true" if _schemas_differ(files) else ""
    return f"read_parquet([{listing}]{by_name}{options})"


def _schemas_differ(files: Sequence[Path]) -> bool:
    first = pq.read_schema(files[0]) if files else None
    return any(not pq.read_schema(f).equals(first) for f in files[1:])


def _interrupt(cursor: duckdb.DuckDBPyConnection) -> None:
    cursor.interrupt()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def timeout_refusal(limits: Limits) -> QueryRefused:
    return QueryRefused(
        "timeout", f"the query ran longer than {limits.timeout_s:g} s and was stopped"
    )


def out_of_memory_refusal(limits: Limits) -> QueryRefused:
    return QueryRefused(
        "out_of_memory",
        f"the query needs more memory than a query may use (DuckDB {limits.memory_limit}, "
        "or a single value too large): aggregate, filter or build smaller values",
    )


def _duckdb_refusal(error: duckdb.Error, limits: Limits) -> QueryRefused:
    if isinstance(error, duckdb.InterruptException):
        return timeout_refusal(limits)
    if isinstance(error, duckdb.OutOfMemoryException):
        return out_of_memory_refusal(limits)
    if isinstance(error, duckdb.PermissionException):
        return QueryRefused(
            "access_denied", "files, network and settings are not reachable from buyer SQL"
        )
    return QueryRefused("query_failed", _first_line(error))


def _streaming_refusal(error: Exception, limits: Limits) -> QueryRefused:
    message = _first_line(error)
    if "Interrupt" in message:
        return timeout_refusal(limits)
    if "Out of Memory" in message or "failed to allocate" in message.lower():
        return out_of_memory_refusal(limits)
    return QueryRefused("query_failed", message)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
