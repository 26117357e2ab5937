"""Which buyer SQL may run: one SELECT over the buyer's licensed views, nothing else.

The check uses DuckDB's own parser, never regular expressions: ``extract_statements`` gives
the statement count and types, and ``json_serialize_sql`` the syntax tree, which is walked for
every table reference and function call. This is the first of two walls; the second is the
sandboxed connection itself (``market.sandbox``), where only the licensed views exist and
file access is off, so a gap in one is still closed by the other.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

MAX_SQL_CHARS = 20_000

# Table references a buyer's query may contain; anything else (SHOW, DESCRIBE, table
# functions, column data…) is refused.
_ALLOWED_TABLE_REFS = {"BASE_TABLE", "JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
# Functions that describe the server rather than the data, and functions that build a huge
# value from a small input: DuckDB's memory limit does not bound a single value, so
# repeat('x', 1500000000) would take gigabytes, uninterruptibly.
_FORBIDDEN_FUNCTIONS = {
    "current_setting", "getenv", "current_schemas", "version", "read_blob",
    "repeat", "lpad", "rpad", "range", "generate_series", "list_resize", "array_resize",
    "printf", "format", "bar",
}  # fmt: skip
_FORBIDDEN_PREFIXES = ("duckdb_", "pragma_", "pg_", "sqlite_")


class QueryRefused(Exception):
    """A buyer query that will not run, with a machine-readable code and a clear message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class CheckedQuery:
    sql: str
    views: tuple[str, ...]  # the licensed views the query reads, sorted


_parser = duckdb.connect(":memory:", config={"enable_external_access": False})


def check_query(sql: str, licensed_views: set[str]) -> CheckedQuery:
    """Refuse anything but a single SELECT that reads only ``licensed_views``."""
    return _check(sql, frozenset(licensed_views))


@functools.lru_cache(maxsize=1024)  # dashboards repeat their queries; refusals are not cached
def _check(sql: str, licensed_views: frozenset[str]) -> CheckedQuery:
    if not sql or not sql.strip():
        raise QueryRefused("empty_query", "the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused("query_too_long", f"the query is longer than {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused("syntax_error", _first_line(error)) from None
    if len(statements) != 1:
        raise QueryRefused(
            "multiple_statements", f"send exactly one statement (got {len(statements)})"
        )
    kind = statements[0].type.name
    if kind != "SELECT":
        raise QueryRefused(
            "statement_not_allowed", f"{kind} statements are not allowed: only SELECT"
        )
    tree = _syntax_tree(sql)
    views: set[str] = set()
    ctes = set(_cte_names(tree))
    for node in _nodes(tree):
        _check_node(node, licensed_views, ctes, views)
    return CheckedQuery(sql, tuple(sorted(views)))


def _syntax_tree(sql: str) -> dict:
    with _parser.cursor() as cursor:
        (text,) = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(text)
    if tree.get("error"):
        message = tree.get("error_message", "the statement cannot be analysed")
        raise QueryRefused("statement_not_allowed", f"only plain SELECT queries run: {message}")
    return tree


def _check_node(node: dict, licensed: frozenset[str], ctes: set[str], views: set[str]) -> None:
    ref_type = node.get("type")
    if "table_name" in node and ref_type == "BASE_TABLE":
        name, schema, catalog = node["table_name"], node["schema_name"], node["catalog_name"]
        if schema or catalog:
            qualified = ".".join(p for p in (catalog, schema, name) if p)
            raise QueryRefused(
                "table_not_allowed", f"{qualified}: only your licensed datasets can be queried"
            )
        if name in ctes:
            return
        if name not in licensed:
            raise QueryRefused(
                "table_not_allowed",
                f"{name} is not one of your licensed datasets ({_listing(licensed)})",
                status=403,
            )
        views.add(name)
    elif ref_type == "TABLE_FUNCTION":
        function = node.get("function", {}).get("function_name", "?")
        raise QueryRefused(
            "table_function_not_allowed",
            f"table function {function}() is not allowed: query your licensed datasets by name",
        )
    elif _is_table_ref(node) and ref_type not in _ALLOWED_TABLE_REFS:
        raise QueryRefused("statement_not_allowed", f"{ref_type} is not allowed in buyer queries")
    if ref_type == "RECURSIVE_CTE_NODE":  # s || s doubles a string each step, unbounded
        raise QueryRefused("statement_not_allowed", "recursive queries are not allowed")
    if node.get("class") == "FUNCTION":
        _check_function(node)


def _check_function(node: dict) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise QueryRefused("function_not_allowed", f"qualified function {name}() is not allowed")
    if name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES):
        raise QueryRefused("function_not_allowed", f"function {name}() is not allowed")


def _is_table_ref(node: dict) -> bool:
    # Table references carry a sample clause and an alias; expressions carry a class.
    return "sample" in node and "alias" in node and "class" not in node and "type" in node


def _cte_names(tree: object) -> Iterator[str]:
    for node in _nodes(tree):
        for entry in node.get("cte_map", {}).get("map", []) if "cte_map" in node else []:
            yield entry["key"]


def _nodes(value: object) -> Iterator[dict]:
    """Every JSON object in the tree, depth first (iterative: deep trees do not recurse)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _listing(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) or "you have none"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
