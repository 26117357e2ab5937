"""SQL text made from values: string literals and identifiers, quoted as DuckDB reads them; and
statements made one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier (a view's name)."""
    return '"' + name.replace('"', '""') + '"'


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
