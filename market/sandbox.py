"""The second wall around buyer SQL: a locked, in-memory DuckDB holding only licensed views.

For each set of licensed datasets the sandbox builds one in-memory database whose only objects
are one view per dataset over that dataset's anchored Parquet files. Before any buyer SQL runs,
file access is limited to exactly those files (``allowed_paths``), external access is switched
off, extension auto-loading is off, and the configuration is locked, so no statement can turn
any of it back on. Each query runs on its own cursor, interrupted when it overruns its time,
under a memory limit and a thread cap, and stops reading as soon as it exceeds the row limit.

Buyers cannot change these databases (only SELECT gets past ``market.policy``), so one is
shared by every buyer with the same licences and rebuilt when a new checkpoint is anchored.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from market.assets import Asset
from market.policy import QueryRefused

LEAF_COLUMN = "rda_leaf_index"
_BATCH_ROWS = 8192
_CACHED_DATABASES = 32


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_limit: str = "512MB"
    threads: int = 2
    max_rows: int = 100_000


class Sandbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._databases: OrderedDict[tuple, duckdb.DuckDBPyConnection] = OrderedDict()
        self._lock = threading.Lock()
        self._watchdog = _Watchdog()

    def run(
        self,
        sql: str,
        assets: Sequence[Asset],
        max_rows: int | None = None,
        leaf_index: bool = False,
    ) -> pa.Table:
        """Run checked SQL over views of ``assets``; with ``leaf_index`` every view also has
        the column ``rda_leaf_index`` (the row's leaf in its dataset's Merkle tree)."""
        limit = min(max_rows or self.limits.max_rows, self.limits.max_rows)
        cursor = self._database(assets, leaf_index).cursor()
        watch = self._watchdog.watch(cursor, self.limits.timeout_s)
        try:
            reader = cursor.sql(sql).to_arrow_reader(_BATCH_ROWS)
            batches, rows = [], 0
            for batch in reader:
                rows += batch.num_rows
                if rows > limit:
                    raise QueryRefused(
                        "too_many_rows",
                        f"the result has more than {limit} rows: aggregate, filter or add LIMIT",
                        status=413,
                    )
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            raise QueryRefused(
                "timeout", f"the query ran longer than {self.limits.timeout_s:g} s and was stopped"
            ) from None
        except duckdb.OutOfMemoryException:
            raise QueryRefused(
                "out_of_memory", f"the query needs more than {self.limits.memory_limit} of memory"
            ) from None
        except duckdb.PermissionException:
            raise QueryRefused(
                "access_denied", "files, network and settings are not reachable from buyer SQL"
            ) from None
        except duckdb.Error as error:
            raise QueryRefused("query_failed", _first_line(error)) from None
        except (OSError, pa.ArrowException) as error:
            # Errors while streaming arrive through the Arrow reader, as Arrow errors.
            raise _streaming_refusal(error, self.limits) from None
        finally:
            self._watchdog.release(watch)
            cursor.close()

    def close(self) -> None:
        with self._lock:
            for con in self._databases.values():
                con.close()
            self._databases.clear()

    def _database(self, assets: Sequence[Asset], leaf_index: bool) -> duckdb.DuckDBPyConnection:
        key = (leaf_index, *sorted((a.view, a.checkpoint.tree_size, a.files) for a in assets))
        with self._lock:
            con = self._databases.get(key)
            if con is not None:
                self._databases.move_to_end(key)
                return con
            con = self._build(assets, leaf_index)
            self._databases[key] = con
            while len(self._databases) > _CACHED_DATABASES:
                _key, old = self._databases.popitem(last=False)
                old.close()
            return con

    def _build(self, assets: Sequence[Asset], leaf_index: bool) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            ":memory:",
            config={
                "threads": self.limits.threads,
                "memory_limit": self.limits.memory_limit,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        for asset in assets:
            con.execute(_view_ddl(asset, leaf_index))
        con.execute("SET allowed_paths = ?", [[str(f) for a in assets for f in a.files]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con


def _view_ddl(asset: Asset, leaf_index: bool) -> str:
    """The view over an asset's files. DDL takes no parameters; every part comes from the
    catalog (view names are checked identifiers, paths are quoted literals), never from a buyer."""
    if not leaf_index:
        listing = ", ".join(_literal(str(f)) for f in asset.files)
        # By name: a later minor version's files carry extra optional columns
        return (
            f"CREATE VIEW {asset.view} AS "
            f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        )
    parts = [
        f"SELECT * EXCLUDE (file_row_number), file_row_number + {int(start)} AS {LEAF_COLUMN} "
        f"FROM read_parquet({_literal(str(path))}, file_row_number = true)"
        for path, start in zip(asset.files, asset.leaf_starts, strict=True)
    ]
    return f"CREATE VIEW {asset.view} AS " + " UNION ALL BY NAME ".join(parts)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Watchdog:
    """One thread that interrupts cursors past their deadline (a timer thread per query
    would cost more than a small query itself)."""

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, duckdb.DuckDBPyConnection]] = {}
        self._tokens = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> int:
        token = next(self._tokens)
        with self._wake:
            self._deadlines[token] = (time.monotonic() + seconds, cursor)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rda-sql-watchdog")
                self._thread.daemon = True
                self._thread.start()
            self._wake.notify()
        return token

    def release(self, token: int) -> None:
        with self._wake:
            self._deadlines.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [t for t, (deadline, _c) in self._deadlines.items() if deadline <= now]
                for token in due:
                    _deadline, cursor = self._deadlines.pop(token)
                    # The query may have finished, and its cursor closed, in the meantime.
                    with contextlib.suppress(duckdb.Error):
                        cursor.interrupt()
                pending = [deadline for deadline, _c in self._deadlines.values()]
                self._wake.wait(timeout=max(min(pending) - now, 0.01) if pending else None)


def _streaming_refusal(error: Exception, limits: Limits) -> QueryRefused:
    message = _first_line(error)
    if "Interrupt" in message:
        return QueryRefused("timeout", f"the query ran longer than {limits.timeout_s:g} s")
    if "Out of Memory" in message or "failed to allocate" in message:
        return QueryRefused(
            "out_of_memory", f"the query needs more than {limits.memory_limit} of memory"
        )
    return QueryRefused("query_failed", message)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
