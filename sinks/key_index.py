"""An index of every published natural key, per dataset, in the catalog's DuckDB file.

Duplicate detection checks a batch's new rows against this index instead of re-reading every
earlier Parquet file of the dataset, so a batch costs what its own rows cost, not what the
dataset's whole history costs.

Keys are indexed per *log*: a dataset, or one shard of it (``<dataset>/<topic>.p<partition>``),
whose keys are compared with that log's only. One table per dataset (``dataset_keys__<dataset>``)
holds the keys of all its logs: the log, the batch that published the row, and the published key
columns with their real types — a match is an exact comparison, never a hash that could wrongly
quarantine a good record. (One table per shard cost each batch a statement and a checkpoint per
shard it wrote: 12 for 3 datasets over 4 partitions.) ``key_index_batches`` lists which batches
of which log the index holds. Any file the catalog lists for a batch the index does not hold yet
is indexed on first use: an existing data directory gets its index built once, automatically
(a catalog with the index's earlier tables, one per shard, has them dropped and built again
once), and a batch published by a writer that does not record its keys is picked up at the next
lookup.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar
from weakref import WeakKeyDictionary

import duckdb
import pyarrow as pa

from schemas.published import published_schema_for_dataset
from sinks.catalog import Catalog
from sinks.key_repeats import repeats_query
from sinks.layout import DataLayout
from sinks.sql import insert_rows, sql_identifier, sql_string, transaction

BATCHES_TABLE = "key_index_batches"
# The index as it was, one table per log, listed in ``natural_key_batches``: dropped, built again.
_LEGACY_TABLES = ("natural_key_batches", "natural_keys__", "shard_keys__")
_FILES_VIEW = "_rda_key_index_files"  # registered for the length of one statement
_KEYS_VIEW = "_rda_key_index_rows"  # likewise
T = TypeVar("T")
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
    return list(_key_schema(_dataset_of(dataset)).names)


@functools.cache
def _key_schema(dataset: str) -> pa.Schema:
    """The key columns of ``dataset`` as published, typed as DuckDB reads them from its files
    (made once: the schema registry does not change while a process runs)."""
    schema = published_schema_for_dataset(dataset)
    published = schema.arrow_schema()
    return pa.schema([published.field(k) for k in schema.natural_key])


def index_table(log: str) -> str:
    """The table of the keys of ``log``'s dataset: every log of the dataset shares it."""
    dataset = _dataset_of(log)
    digest = hashlib.sha256(dataset.encode()).hexdigest()[:8]
    return "dataset_keys__" + re.sub(r"[^A-Za-z0-9]", "_", dataset)[:40] + "_" + digest


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
            SELECT 1 FROM {BATCHES_TABLE} b WHERE b.log = l.log AND b.batch_id = f.batch_id)
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
    """``record_keys`` for several logs (the shards a batch wrote) in one transaction, one
    statement a dataset.

    ``written``: the files' rows as the batch wrote them (their key columns suffice), by path:
    their keys are taken from there (a file not in it is read)."""
    logs = sorted(paths)
    if not logs:
        return 0
    with _transaction(catalog) as db:
        _catch_up(db, catalog, logs)
        redone = sorted(set(logs) & _logs_holding(db, batch_id))  # unless the batch is redone
        if redone:
            _forget(db, catalog, redone, batch_id)
        files = [(path, batch_id, log) for log in logs for path in paths[log]]
        rows = _insert(db, catalog.layout, files, written)
        _mark(db, [(log, batch_id) for log in logs])
    return rows


def forget_batch(catalog: Catalog, batch_id: int) -> None:
    """Drop a batch's keys from every dataset's index (for a batch that will never publish)."""
    with _transaction(catalog) as db:
        _create_batches_table(db, catalog)
        _forget(db, catalog, sorted(_logs_holding(db, batch_id)), batch_id)
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
    checked against its own keys, in one statement and transaction. Repeats by dataset, for
    the datasets with a key."""
    logs = [log for log in sorted(new_paths) if new_paths[log] and natural_key(log)]
    if not logs:
        return {}
    files = [(path, batch_id, log) for log in logs for path in new_paths[log]]
    of_dataset = _by_dataset(files, lambda file: file[2])
    datasets = list(of_dataset)
    with _transaction(catalog) as db:
        _catch_up(db, catalog, logs)
        with _reading(db, catalog.layout, files) as rows_of:
            ctes, selects = [], []
            for position, (dataset, its_files) in enumerate(of_dataset.items()):
                paths = [path for path, _, _ in its_files]
                cte, select = repeats_query(
                    position, natural_key(dataset), rows_of(paths), index_table(dataset)
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


def _dataset_of(log: str) -> str:
    return log.split("/", 1)[0]


def _by_dataset(items: Iterable[T], log_of: Callable[[T], str]) -> dict[str, list[T]]:
    """``items`` by the dataset of their log (``log_of``), datasets in order, items as given:
    a dataset's logs share its table, so its statements take them all at once."""
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(_dataset_of(log_of(item)), []).append(item)
    return dict(sorted(grouped.items()))


def _key_columns(dataset: str) -> str:
    """The key columns of ``dataset``, quoted, for a select list."""
    return ", ".join(f'"{k}"' for k in natural_key(dataset))


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
    _create_tables(db, catalog, stale)  # an up-to-date log's were made when it was caught up
    missing = _unindexed_files(db, stale)
    files = [(path, batch_id, log) for log in stale for path, batch_id in missing.get(log, [])]
    _insert(db, catalog.layout, files)
    marks = sorted({(log, batch_id) for _, batch_id, log in files})
    _mark(db, marks)
    caught_up.update(dict.fromkeys(stale, version))
    return len(marks)


def _create_batches_table(db: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """The marks table, made with the index; the earlier index's tables go then (their marks
    name tables no longer read: every log is indexed again from the catalog's files)."""
    if BATCHES_TABLE in catalog.tables_at_open or _table_exists(db, BATCHES_TABLE):
        return
    db.execute(f"CREATE TABLE {BATCHES_TABLE} (log VARCHAR NOT NULL, batch_id BIGINT NOT NULL)")
    legacy = db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND ("
        + " OR ".join(["starts_with(table_name, ?)"] * len(_LEGACY_TABLES))
        + ")",
        list(_LEGACY_TABLES),
    ).fetchall()
    for (table,) in legacy:
        db.execute(f"DROP TABLE {sql_identifier(table)}")


def _create_tables(db: duckdb.DuckDBPyConnection, catalog: Catalog, logs: list[str]) -> None:
    _create_batches_table(db, catalog)
    for dataset in _by_dataset(logs, str):
        table = index_table(dataset)
        if table in catalog.tables_at_open or _table_exists(db, table):
            continue
        fields = [pa.field("log", pa.string()), pa.field("batch_id", pa.int64())]
        db.register("_rda_key_columns", pa.schema([*fields, *_key_schema(dataset)]).empty_table())
        db.execute(f"CREATE TABLE {table} AS SELECT * FROM _rda_key_columns")
        db.unregister("_rda_key_columns")


def _insert(
    db: duckdb.DuckDBPyConnection,
    layout: DataLayout,
    files: list[tuple[str, int, str]],
    written: Mapping[str, pa.Table] | None = None,
) -> int:
    """Index the key columns of ``files`` (path, batch_id, log), one statement a dataset; the
    caller marks their batches (``_mark``). ``written``: rows of some of the files, by path,
    taken instead of reading them when a dataset's files are all there (~3 ms a statement less
    than DuckDB reading the Parquet). Returns the rows indexed."""
    given = written or {}
    rows = 0
    to_read = {}
    for dataset, its_files in _by_dataset(files, lambda file: file[2]).items():
        if not all(path in given for path, _, _ in its_files):
            to_read[dataset] = its_files
            continue
        db.register(_KEYS_VIEW, _key_rows(dataset, its_files, given))
        rows += _insert_from(db, dataset, _KEYS_VIEW)
        db.unregister(_KEYS_VIEW)
    if to_read:
        with _reading(db, layout, [f for fs in to_read.values() for f in fs]) as rows_of:
            for dataset, its_files in to_read.items():
                rows += _insert_from(db, dataset, rows_of([path for path, _, _ in its_files]))
    return rows


def _insert_from(db: duckdb.DuckDBPyConnection, dataset: str, rows: str) -> int:
    """Index ``rows`` (a FROM item with ``log``, ``batch_id`` and the key columns) in
    ``dataset``'s table; return how many."""
    (count,) = db.execute(
        f"INSERT INTO {index_table(dataset)} "
        f"SELECT log, batch_id, {_key_columns(dataset)} FROM {rows}"
    ).fetchone()
    return int(count)


def _mark(db: duckdb.DuckDBPyConnection, marks: list[tuple[str, int]]) -> None:
    """List (log, batch_id) pairs as indexed, in one statement."""
    insert_rows(db, f"INSERT INTO {BATCHES_TABLE}", marks)


def _logs_holding(db: duckdb.DuckDBPyConnection, batch_id: int) -> set[str]:
    """The logs whose index holds ``batch_id``'s keys."""
    found = db.execute(
        f"SELECT DISTINCT log FROM {BATCHES_TABLE} WHERE batch_id = ?", [batch_id]
    ).fetchall()
    return {log for (log,) in found}


def _key_rows(
    dataset: str, files: list[tuple[str, int, str]], written: Mapping[str, pa.Table]
) -> pa.Table:
    """The index's rows (log, batch_id, then the key columns as the index types them) of
    ``files`` (path, batch_id, log), from their rows as written."""
    keys = _key_schema(dataset)
    parts = []
    for path, batch_id, log in files:
        rows = written[path].select(keys.names).cast(keys)
        rows = rows.add_column(0, "batch_id", pa.repeat(pa.scalar(batch_id, pa.int64()), len(rows)))
        parts.append(rows.add_column(0, "log", pa.repeat(pa.scalar(log, pa.string()), len(rows))))
    return pa.concat_tables(parts)


def _forget(
    db: duckdb.DuckDBPyConnection, catalog: Catalog, logs: list[str], batch_id: int
) -> None:
    """Drop ``batch_id``'s keys from the index of each of ``logs``, one statement a dataset."""
    if not logs:
        return
    _create_tables(db, catalog, logs)
    for dataset, its_logs in _by_dataset(logs, str).items():
        db.execute(
            f"DELETE FROM {index_table(dataset)} WHERE batch_id = ? AND list_contains(?, log)",
            [batch_id, its_logs],
        )
    db.execute(
        f"DELETE FROM {BATCHES_TABLE} WHERE batch_id = ? AND list_contains(?, log)",
        [batch_id, logs],
    )


@contextmanager
def _reading(
    db: duckdb.DuckDBPyConnection, layout: DataLayout, files: list[tuple[str, int, str]]
) -> Iterator[Callable[[list[str]], str]]:
    """For any of ``files`` (path, batch_id, log), a FROM item over their rows, with each row's
    ``log``, ``batch_id``, ``file_index`` (its file's position in ``files``) and
    ``file_row_number``: the files' table is registered once for however many FROM items one
    statement reads (one per dataset, whose columns differ)."""
    owners = {
        "filename": pa.array([str(layout.root / p) for p, _, _ in files], pa.string()),
        "file_index": pa.array(range(len(files)), pa.int64()),
        "batch_id": pa.array([b for _, b, _ in files], pa.int64()),
        "log": pa.array([log for _, _, log in files], pa.string()),
    }
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
