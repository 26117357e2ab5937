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
