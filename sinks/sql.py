"""SQL text made from values: string literals and identifiers, quoted as DuckDB reads them."""

from __future__ import annotations


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier (a view's name)."""
    return '"' + name.replace('"', '""') + '"'
