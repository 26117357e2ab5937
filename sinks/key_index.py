"""An index of every published natural key, per dataset, in the catalog's DuckDB file.

Duplicate detection checks a batch's new rows against this index instead of re-reading every
earlier Parquet file of the dataset, so a batch costs what its own rows cost, not what the
dataset's whole history costs.

One table per dataset (``natural_keys__<dataset>``) holds the published key columns with their
real types — a match is an exact comparison, never a hash that could wrongly quarantine a good
record — and the batch that published them. ``natural_key_batches`` lists which batches of which
dataset the index holds. Any file the catalog lists for a batch the index does not hold yet is
indexed on first use: an existing data directory gets its index built once, automatically, and
a batch published by a writer that does not record its keys is picked up at the next lookup.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import duckdb
import pyarrow as pa

from schemas.published import published_schema_for_dataset
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.sql import insert_rows, sql_string, transaction

BATCHES_TABLE = "natural_key_batches"
_FILES_VIEW = "_rda_key_index_files"  # registered for the length of one statement
_KEYS_VIEW = "_rda_key_index_rows"  # likewise
# (partition, offset) of a new row repeating a key, and the offset of the key's first row in
# the batch (its own offset when the earlier row is in another batch).
Repeat = tuple[int, int, int]
# Per open catalog, the logs whose index was caught up with the catalog's files, and the
# catalog's ``files_version`` then: a batch's duplicate check and its key recording catch up
# the same shards, and nothing is listed in between (~2 ms a query per shard spared).
_CAUGHT_UP: WeakKeyDictionary[Catalog, dict[str, int]] = WeakKeyDictionary()


def natural_key(dataset: str) -> list[str]:
    """The published natural key of ``dataset`` (a coarsened key is replaced by a row key).

    ``dataset`` may also name a shard of it (``<dataset>/<topic>.p<partition>``): every function
    here takes a dataset id or a shard id, and a shard's index holds that shard's keys only.
    """
    return list(published_schema_for_dataset(dataset.split("/", 1)[0]).natural_key)


def index_table(dataset: str) -> str:
    if "/" not in dataset:
        return "natural_keys__" + dataset.replace(".", "_")
    digest = hashlib.sha256(dataset.encode()).hexdigest()[:12]
    return "shard_keys__" + re.sub(r"[^A-Za-z0-9]", "_", dataset)[:40] + "_" + digest


def _unindexed_files(
    db: duckdb.DuckDBPyConnection, logs: list[str]
) -> dict[str, list[tuple[str, int]]]:
    """Per log (a dataset, or one shard of it), (path, batch_id) of the catalog's files whose
    batch the log's index does not hold: asked in SQL, so a lookup costs what is new, not the
    history, and in one statement for all of a batch's logs (~2 ms each asked alone)."""
    listed = []
    for log in logs:
        dataset, _, shard = log.partition("/")
        topic, _, partition = shard.rpartition(".p")
        listed += [log, dataset, topic or None, partition or None]
    values = ", ".join(["(?::VARCHAR, ?::VARCHAR, ?::VARCHAR, ?::VARCHAR)"] * len(logs))
    found = db.execute(
        f"""
        SELECT l.log, f.path, f.batch_id
        FROM (VALUES {values}) AS l(log, dataset, topic, kafka_partition)
        JOIN files f ON f.dataset = l.dataset AND (l.topic IS NULL OR (
            f.topic = l.topic AND CAST(f.kafka_partition AS VARCHAR) = l.kafka_partition))
        WHERE NOT EXISTS (
            SELECT 1 FROM {BATCHES_TABLE} b WHERE b.dataset = l.log AND b.batch_id = f.batch_id)
        ORDER BY l.log, f.leaf_start
        """,
        listed,
    ).fetchall()
    files: dict[str, list[tuple[str, int]]] = {}
    for log, path, batch_id in found:
        files.setdefault(log, []).append((path, batch_id))
    return files


def ensure_index(catalog: Catalog, dataset: str) -> int:
    """Create ``dataset``'s index if missing and index the catalog's files it lacks.

    Returns how many batches were indexed now (0 once the index is up to date).
    """
    with _transaction(catalog) as db:
        return _catch_up(db, catalog, [dataset])


def catch_up(catalog: Catalog, logs: Iterable[str]) -> int:
    """``ensure_index`` for several logs (the shards a batch touches) in one transaction and
    one lookup; returns how many (log, batch) pairs were indexed now."""
    with _transaction(catalog) as db:
        return _catch_up(db, catalog, logs)


def record_keys(catalog: Catalog, dataset: str, batch_id: int, paths: list[str]) -> int:
    """Index the keys of ``batch_id``'s final files of ``dataset``; return the rows indexed.

    Idempotent: a redo of the batch (after a crash) replaces what an earlier attempt recorded.
    """
    return record_keys_of_logs(catalog, batch_id, {dataset: paths})


def record_keys_of_logs(
    catalog: Catalog,
    batch_id: int,
    paths: dict[str, list[str]],
    written: Mapping[str, pa.Table] | None = None,
) -> int:
    """``record_keys`` for several logs (the shards a batch wrote) in one transaction.

    ``written``: the files' rows as the batch wrote them (their key columns suffice), by path:
    their keys are taken from there (a file not in it is read)."""
    logs = sorted(paths)
    if not logs:
        return 0
    rows = 0
    with _transaction(catalog) as db:
        _catch_up(db, catalog, logs)
        redone = _logs_holding(db, batch_id)  # none unless the batch is being redone
        for log in logs:
            if log in redone:
                _forget(db, catalog, log, batch_id)
            listed = [(p, batch_id) for p in paths[log]]
            rows += _insert(db, catalog.layout, log, listed, written or {})
        _mark(db, [(log, batch_id) for log in logs])
    return rows


def forget_batch(catalog: Catalog, batch_id: int) -> None:
    """Drop a batch's keys from every dataset's index (for a batch that will never publish)."""
    with _transaction(catalog) as db:
        _create_batches_table(db, catalog)
        for log in sorted(_logs_holding(db, batch_id)):
            _forget(db, catalog, log, batch_id)
    _CAUGHT_UP.pop(catalog, None)  # a listed file of the batch would be indexed again


def repeated_keys(
    catalog: Catalog, dataset: str, batch_id: int, new_paths: list[str]
) -> list[Repeat]:
    """New rows (files in leaf order) repeating a key of another batch or an earlier new row."""
    return repeated_keys_of_logs(catalog, batch_id, {dataset: new_paths}).get(dataset, [])


def repeated_keys_of_logs(
    catalog: Catalog, batch_id: int, new_paths: dict[str, list[str]]
) -> dict[str, list[Repeat]]:
    """``repeated_keys`` for several logs (the shards a batch writes, of any datasets), each
    checked against its own index, in one statement and transaction. Repeats by dataset, for
    the datasets with a key."""
    logs = [log for log in sorted(new_paths) if new_paths[log] and natural_key(log)]
    if not logs:
        return {}
    of_dataset: dict[str, list[int]] = {}  # each dataset's logs, by their log_index
    for log_index, log in enumerate(logs):
        of_dataset.setdefault(_dataset_of(log), []).append(log_index)
    datasets = sorted(of_dataset)
    files = [(path, batch_id) for log in logs for path in new_paths[log]]
    log_of_file = [log_index for log_index, log in enumerate(logs) for _ in new_paths[log]]
    with _transaction(catalog) as db:
        _catch_up(db, catalog, logs)
        with _reading(db, catalog.layout, files, log_of_file) as rows_of:
            ctes, selects = [], []
            for position, dataset in enumerate(datasets):
                its_logs = of_dataset[dataset]
                cte, select = _repeats_of_dataset(
                    position,
                    [(i, logs[i]) for i in its_logs],
                    rows_of([path for i in its_logs for path in new_paths[logs[i]]]),
                )
                ctes.append(cte)
                selects.append(select)
            found = db.execute(
                f"WITH {', '.join(ctes)} {' UNION ALL '.join(selects)} ORDER BY 1, 2, 3",
                {"batch": batch_id},
            ).fetchall()
    repeats: dict[str, list[Repeat]] = {dataset: [] for dataset in datasets}
    for position, partition, offset, first in found:
        repeats[datasets[position]].append((partition, offset, first))
    return repeats


def _repeats_of_dataset(position: int, logs: list[tuple[int, str]], rows: str) -> tuple[str, str]:
    """One dataset's part of ``repeated_keys_of_logs``: a CTE of its new rows (``rows``, a FROM
    item over its files) and the SELECT of its repeats, tagged with ``position``. ``logs``: its
    logs, each with its ``log_index``."""
    keys = natural_key(logs[0][1])
    columns = ", ".join(f'"{k}"' for k in keys)
    matches = " AND ".join(f'i."{k}" = n."{k}"' for k in keys)
    new_rows = f"new_rows_{position}"
    cte = f"""{new_rows} AS MATERIALIZED (
        SELECT log_index, {columns}, source_partition, source_offset,
               row_number() OVER w AS occurrence,
               first_value(source_offset) OVER w AS first_offset
        FROM {rows}
        WINDOW w AS (PARTITION BY log_index, {columns} ORDER BY file_index, file_row_number)
    )"""
    # Rows repeating a key within their log in the batch, then first occurrences whose key
    # another batch published in that log. DuckDB builds each join's hash table on the batch's
    # (smaller) side and pushes its key ranges into the index scan, skipping old row groups.
    selects = [
        f"SELECT {position}, source_partition, source_offset, first_offset "
        f"FROM {new_rows} WHERE occurrence > 1"
    ] + [
        f"SELECT DISTINCT {position}, n.source_partition, n.source_offset, n.first_offset "
        f"FROM {new_rows} n JOIN {index_table(log)} i ON {matches} "
        f"WHERE n.log_index = {log_index} AND n.occurrence = 1 AND i.batch_id <> $batch"
        for log_index, log in logs
    ]
    return cte, " UNION ALL ".join(selects)


def _dataset_of(log: str) -> str:
    return log.split("/", 1)[0]


@contextmanager
def _transaction(catalog: Catalog) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction on a cursor of the catalog's connection: all of it happens or none.

    A cursor, because registering an Arrow table is refused while the catalog's own
    connection holds a partly fetched result.
    """
    db = catalog.cursor()
    try:
        with transaction(db):
            yield db
    except BaseException:
        _CAUGHT_UP.pop(catalog, None)  # what it caught up is undone
        raise
    finally:
        db.close()


def _catch_up(db: duckdb.DuckDBPyConnection, catalog: Catalog, logs: Iterable[str]) -> int:
    """Index every file the catalog lists for a batch a log's index lacks, for each of ``logs``;
    return how many (log, batch) pairs that was."""
    caught_up = _CAUGHT_UP.setdefault(catalog, {})
    version = catalog.files_version
    stale = sorted({log for log in logs if caught_up.get(log) != version})
    if not stale:
        return 0
    for log in stale:  # an up-to-date log's tables were made when it was caught up
        _create_tables(db, catalog, log)
    missing = _unindexed_files(db, stale)
    marks = []
    for log in stale:
        files = missing.get(log, [])
        _insert(db, catalog.layout, log, files)
        marks += [(log, batch_id) for batch_id in sorted({b for _, b in files})]
    _mark(db, marks)
    caught_up.update(dict.fromkeys(stale, version))
    return len(marks)


def _create_batches_table(db: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    if BATCHES_TABLE in catalog.tables_at_open:
        return
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {BATCHES_TABLE} "
        "(dataset VARCHAR NOT NULL, batch_id BIGINT NOT NULL)"
    )


def _create_tables(db: duckdb.DuckDBPyConnection, catalog: Catalog, dataset: str) -> None:
    _create_batches_table(db, catalog)
    table = index_table(dataset)
    if table in catalog.tables_at_open or _table_exists(db, table):
        return
    # The key columns' types are those DuckDB reads from the published Parquet files.
    schema = published_schema_for_dataset(dataset.split("/", 1)[0]).arrow_schema()
    fields = [pa.field("batch_id", pa.int64())] + [schema.field(k) for k in natural_key(dataset)]
    db.register("_rda_key_columns", pa.schema(fields).empty_table())
    db.execute(f"CREATE TABLE {table} AS SELECT * FROM _rda_key_columns")
    db.unregister("_rda_key_columns")


def _insert(
    db: duckdb.DuckDBPyConnection,
    layout: DataLayout,
    dataset: str,
    files: list[tuple[str, int]],
    written: Mapping[str, pa.Table] | None = None,
) -> int:
    """Index the key columns of ``files`` (path, batch_id); the caller marks their batches
    (``_mark``). ``written``: rows of some of the files, by path, taken instead of reading them
    (when every file's are there: ~3 ms a statement less than DuckDB reading the Parquet).
    Returns the rows indexed."""
    columns = ", ".join(f'"{k}"' for k in natural_key(dataset))
    rows = 0
    table = index_table(dataset)
    if files and written and all(path in written for path, _ in files):
        db.register(_KEYS_VIEW, _key_rows(dataset, files, written))
        (rows,) = db.execute(
            f"INSERT INTO {table} SELECT batch_id, {columns} FROM {_KEYS_VIEW}"
        ).fetchone()
        db.unregister(_KEYS_VIEW)
    elif files:
        with _reading(db, layout, files) as rows_of:
            found = rows_of([path for path, _ in files])
            (rows,) = db.execute(
                f"INSERT INTO {table} SELECT batch_id, {columns} FROM {found}"
            ).fetchone()
    return int(rows)


def _mark(db: duckdb.DuckDBPyConnection, marks: list[tuple[str, int]]) -> None:
    """List (log, batch_id) pairs as indexed, in one statement."""
    insert_rows(db, f"INSERT INTO {BATCHES_TABLE}", marks)


def _logs_holding(db: duckdb.DuckDBPyConnection, batch_id: int) -> set[str]:
    """The logs whose index holds ``batch_id``'s keys."""
    found = db.execute(
        f"SELECT DISTINCT dataset FROM {BATCHES_TABLE} WHERE batch_id = ?", [batch_id]
    ).fetchall()
    return {log for (log,) in found}


def _key_rows(
    dataset: str, files: list[tuple[str, int]], written: Mapping[str, pa.Table]
) -> pa.Table:
    """The index's rows (batch_id, then the key columns as the index types them) of ``files``,
    from their rows as written."""
    schema = published_schema_for_dataset(dataset.split("/", 1)[0]).arrow_schema()
    keys = pa.schema([schema.field(k) for k in natural_key(dataset)])
    parts = []
    for path, batch_id in files:
        rows = written[path].select(keys.names).cast(keys)
        batch_ids = pa.repeat(pa.scalar(batch_id, pa.int64()), rows.num_rows)
        parts.append(rows.add_column(0, "batch_id", batch_ids))
    return pa.concat_tables(parts)


def _forget(db: duckdb.DuckDBPyConnection, catalog: Catalog, dataset: str, batch_id: int) -> None:
    _create_tables(db, catalog, dataset)
    db.execute(f"DELETE FROM {index_table(dataset)} WHERE batch_id = ?", [batch_id])
    db.execute(
        f"DELETE FROM {BATCHES_TABLE} WHERE dataset = ? AND batch_id = ?", [dataset, batch_id]
    )


@contextmanager
def _reading(
    db: duckdb.DuckDBPyConnection,
    layout: DataLayout,
    files: list[tuple[str, int]],
    log_of_file: list[int] | None = None,
) -> Iterator[Callable[[list[str]], str]]:
    """For any of ``files`` (path, batch_id), a FROM item over their rows, with each row's
    ``batch_id``, ``file_index`` (its file's position in ``files``), ``file_row_number`` and,
    given ``log_of_file``, its file's ``log_index``: the files' table is registered once for
    however many FROM items one statement reads (one per dataset, whose columns differ)."""
    owners = {
        "filename": pa.array([str(layout.root / p) for p, _ in files], pa.string()),
        "file_index": pa.array(range(len(files)), pa.int64()),
        "batch_id": pa.array([b for _, b in files], pa.int64()),
    }
    if log_of_file is not None:
        owners["log_index"] = pa.array(log_of_file, pa.int64())
    db.register(_FILES_VIEW, pa.table(owners))

    def rows_of(paths: list[str]) -> str:
        listing = ", ".join(sql_string(str(layout.root / p)) for p in paths)
        return (
            f"(SELECT * FROM read_parquet([{listing}], filename = true, file_row_number = true, "
            f"union_by_name = true) JOIN {_FILES_VIEW} USING (filename))"
        )

    yield rows_of
    # Not on failure: an aborted transaction refuses it, and the cursor's end drops it anyway.
    db.unregister(_FILES_VIEW)


def _table_exists(db: duckdb.DuckDBPyConnection, table: str) -> bool:
    (count,) = db.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND table_name = ?",
        [table],
    ).fetchall()[0]
    return count > 0
