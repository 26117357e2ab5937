"""SQL text made from values: string literals and identifiers, quoted as DuckDB reads them; and
statements made one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier (a view's name)."""
    return '"' + name.replace('"', '""') + '"'


def insert_rows(db: duckdb.DuckDBPyConnection, into: str, rows: Sequence[Sequence[object]]) -> None:
    """``into`` (``INSERT [OR REPLACE | OR IGNORE] INTO <table>``) the ``rows``, in one
    statement: outside a transaction, one commit for them all. Nothing when there are none."""
    if rows:
        row = "(" + ", ".join(["?"] * len(rows[0])) + ")"
        db.execute(f"{into} VALUES {', '.join([row] * len(rows))}", [v for r in rows for v in r])


# Up to this many rows, ``replace_rows`` looks their keys up before a plain insert (best of 5
# into a 20,000-row table: 2 rows 3.9 against 5.9 ms for DuckDB's upsert, 12 rows 6.8 against
# 7.2, 32 rows 10.7 against 9.9).
LOOKED_UP_ROWS = 16


def replace_rows(
    db: duckdb.DuckDBPyConnection,
    table: str,
    key: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """What ``INSERT OR REPLACE INTO <table>`` of ``rows`` does, for a table whose primary key
    is ``key``, the rows' first columns: the rows already listed under those keys are deleted,
    then all are inserted. Call it inside a transaction (both or neither).

    DuckDB's upsert checks every row against the key's index and costs ~6 ms for a few rows,
    a plain insert ~2: a batch's rows are new, but on a redo, which this looks up first
    (~1.5 ms) and only then deletes; more than ``LOOKED_UP_ROWS`` rows go to the upsert.
    ``rows`` must hold each key once."""
    if not rows:
        return
    if len(rows) > LOOKED_UP_ROWS:  # the lookup grows with the rows: DuckDB's own upsert then
        insert_rows(db, f"INSERT OR REPLACE INTO {table}", rows)
        return
    width = len(key)
    # Equalities, not ``IN (VALUES …)``: DuckDB looks them up in the key's index (1.5 ms for a
    # batch's files against 2.3).
    one = "(" + " AND ".join(f"{column} = ?" for column in key) + ")"
    listed = " OR ".join([one] * len(rows))
    values = [value for row in rows for value in row[:width]]
    (found,) = db.execute(f"SELECT count(*) FROM {table} WHERE {listed}", values).fetchone()
    if found:
        db.execute(f"DELETE FROM {table} WHERE {listed}", values)
    insert_rows(db, f"INSERT INTO {table}", rows)


@contextmanager
def transaction(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's statements on ``db`` as one transaction: all or none, and one commit (a
    DuckDB file syncs its log at each commit: ~1 ms, as much as a small statement)."""
    db.begin()
    try:
        yield
        db.commit()
    except BaseException:
        db.rollback()
        raise
