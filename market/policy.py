"""Which buyer SQL may run: one SELECT over the buyer's licensed views, nothing else.

The check uses DuckDB's own parser, never regular expressions: ``extract_statements`` gives
the statement count and types, ``tokenize`` the keyword the buyer wrote first (refusals name
what the buyer wrote, not DuckDB's internal statement type: ``INSTALL`` is a ``LOAD`` inside),
and ``json_serialize_sql`` the syntax tree, which is walked for every table reference and
function call. Names compare case-insensitively, as SQL identifiers do, and a CTE name only
hides a view inside the scope where SQL makes it visible. This is the first of two walls; the
second is the sandboxed connection itself (``market.sandbox``), where only the licensed views
exist and file access is off, so a gap in one is still closed by the other.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import duckdb

from proofs.documents import depth_over

MAX_SQL_CHARS = 20_000
# Levels of the parsed query's JSON syntax tree: a query of a few joins, CTEs and subqueries
# nests 10-60, a sum of 100 terms ~300, 100 nested subqueries 300-400; Python's JSON parser,
# reading it, stops at ~1,000 (RecursionError, a 500 before this bound).
MAX_TREE_DEPTH = 800

# Table references a buyer's query may contain; anything else (SHOW, DESCRIBE, table
# functions, column data…) is refused.
_ALLOWED_TABLE_REFS = {"BASE_TABLE", "JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
# What the buyer wrote, for table references that are statements in disguise.
_TABLE_REF_WORDS = {"SHOW_REF": "DESCRIBE", "COLUMN_DATA": "a table of column data"}
# Functions that describe the server rather than the data, and functions that build a huge
# value from a small input. The worker process's memory cap (``market.pool``) stops any value
# that grows too large; refusing these up front just answers sooner and more clearly.
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
    return _check(sql, frozenset(v.lower() for v in licensed_views))


@functools.lru_cache(maxsize=1024)  # dashboards repeat their queries; refusals are not cached
def _check(sql: str, licensed_views: frozenset[str]) -> CheckedQuery:
    if not sql or not sql.strip():
        raise QueryRefused("empty_query", "the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused("query_too_long", f"the query is longer than {MAX_SQL_CHARS} characters")
    _check_statement(sql)
    tree = _syntax_tree(sql)
    views: set[str] = set()
    for node, ctes in _scoped_nodes(tree):
        _check_node(node, sql, licensed_views, ctes, views)
    return CheckedQuery(sql, tuple(sorted(views)))


def _check_statement(sql: str) -> None:
    try:
        with _parser.cursor() as cursor:  # a connection serves one thread at a time
            statements = cursor.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused("syntax_error", _first_line(error)) from None
    if len(statements) != 1:
        raise QueryRefused(
            "multiple_statements", f"send exactly one statement (got {len(statements)})"
        )
    try:
        kind = statements[0].type.name
    except ValueError:  # a statement type newer than the Python enum (UPDATE EXTENSIONS…)
        kind = "UNKNOWN"
    if kind == "MULTI" and "PIVOT" in _keywords(sql):
        raise QueryRefused(
            "pivot_values_required",
            "PIVOT needs the values it turns into columns, e.g. "
            "PIVOT radio_kpi_v1 ON band IN ('B3', 'B7') USING count(*)",
        )
    if kind != "SELECT":
        raise QueryRefused(
            "statement_not_allowed",
            f"{first_keyword(sql) or kind} statements are not allowed: only SELECT queries run",
        )


def first_keyword(sql: str) -> str | None:
    """The first keyword of ``sql`` as written (upper case), comments and brackets skipped."""
    return next(iter(_keywords(sql)), None)


def _keywords(sql: str) -> list[str]:
    """The keywords of ``sql`` in order, upper case."""
    try:
        tokens = duckdb.tokenize(sql)
    except duckdb.Error:
        return []
    found = []
    for position, kind in tokens:
        if kind == duckdb.token_type.keyword:
            end = position
            while end < len(sql) and (sql[end].isalpha() or sql[end] == "_"):
                end += 1
            found.append(sql[position:end].upper())
    return found


def _syntax_tree(sql: str) -> dict:
    tree = _serialized(sql)
    if tree.get("error"):
        word = first_keyword(sql) or "this"
        raise QueryRefused(
            "statement_not_allowed", f"{word} statements are not allowed: only SELECT queries run"
        )
    return tree


def _serialized(sql: str) -> dict:
    with _parser.cursor() as cursor:
        (text,) = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    # Python's parser recurses once per level: ~250 nested subqueries (3 KB of SQL) raised
    # RecursionError, a 500.
    depth = depth_over(text.encode(), MAX_TREE_DEPTH)
    if depth is not None:
        raise QueryRefused(
            "query_too_complex",
            f"the query nests too deeply ({depth} levels in its syntax tree, over "
            f"{MAX_TREE_DEPTH}): flatten its subqueries, e.g. with WITH",
        )
    return json.loads(text)


def _check_node(
    node: dict, sql: str, licensed: frozenset[str], ctes: frozenset[str], views: set[str]
) -> None:
    ref_type = node.get("type")
    if "table_name" in node and ref_type == "BASE_TABLE":
        name, schema, catalog = node["table_name"], node["schema_name"], node["catalog_name"]
        if schema or catalog:
            qualified = ".".join(p for p in (catalog, schema, name) if p)
            raise QueryRefused(
                "table_not_allowed", f"{qualified}: only your licensed datasets can be queried"
            )
        key = name.lower()  # identifiers are case-insensitive in SQL, quoted or not
        if key in ctes:
            return
        if key not in licensed:
            raise QueryRefused(
                "table_not_allowed",
                f"{name} is not one of your licensed datasets ({_listing(licensed)})",
                status=403,
            )
        views.add(key)
    elif ref_type == "TABLE_FUNCTION":
        function = node.get("function", {}).get("function_name", "?")
        raise QueryRefused(
            "table_function_not_allowed",
            f"table function {function}() is not allowed: query your licensed datasets by name",
        )
    elif _is_table_ref(node) and ref_type not in _ALLOWED_TABLE_REFS:
        word = first_keyword(sql)
        if word in (None, "SELECT", "WITH", "FROM"):
            word = _TABLE_REF_WORDS.get(str(ref_type), str(ref_type))
        raise QueryRefused(
            "statement_not_allowed", f"{word} is not allowed in buyer queries: only SELECT"
        )
    if ref_type == "RECURSIVE_CTE_NODE":  # s || s doubles a string each step, unbounded
        raise QueryRefused(
            "statement_not_allowed", "recursive queries (WITH RECURSIVE) are not allowed"
        )
    if node.get("class") == "FUNCTION":
        _check_function(node)


def _check_function(node: dict) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise QueryRefused("function_not_allowed", f"qualified function {name}() is not allowed")
    if _forbidden(name) or name in _FORBIDDEN_MACROS:
        raise QueryRefused("function_not_allowed", f"function {name}() is not allowed")


def _forbidden(name: str) -> bool:
    return name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES)


def _forbidden_macros() -> frozenset[str]:
    """Built-in macros whose bodies reach, directly or through other macros, a function the
    check refuses by name or any table function (``generate_subscripts`` calls
    ``generate_series``, ``get_block_size`` reads ``pragma_database_size()``…)."""
    with _parser.cursor() as cursor:
        rows = cursor.execute(
            "SELECT function_name, function_type, macro_definition FROM duckdb_functions() "
            "WHERE function_type = 'macro' AND macro_definition IS NOT NULL"
        ).fetchall()  # table macros are table functions, refused wherever they appear
    calls: dict[str, set[str]] = {}
    for name, _kind, definition in rows:
        calls.setdefault(name.lower(), set()).update(_calls(f"SELECT {definition}"))
    forbidden = {m for m, called in calls.items() if any(_forbidden(c) for c in called)}
    changed = True
    while changed:  # a macro calling a forbidden macro is forbidden too
        grown = {m for m, called in calls.items() if called & forbidden} - forbidden
        forbidden |= grown
        changed = bool(grown)
    return frozenset(forbidden)


def _calls(sql: str) -> Iterable[str]:
    """The functions ``sql`` calls; a table function counts as a forbidden call."""
    tree = _serialized(sql)
    if tree.get("error"):
        return {"duckdb_unparsable"}
    found = set()
    for node, _scope in _scoped_nodes(tree):
        if node.get("class") == "FUNCTION":
            found.add(str(node.get("function_name", "")).lower())
        elif node.get("type") == "TABLE_FUNCTION":
            found.add("duckdb_table_function")
    return found


def _is_table_ref(node: dict) -> bool:
    # Table references carry a sample clause and an alias; expressions carry a class.
    return "sample" in node and "alias" in node and "class" not in node and "type" in node


def _scoped_nodes(tree: object) -> Iterator[tuple[dict, frozenset[str]]]:
    """Every JSON object in the tree with the CTE names visible where it stands, depth first
    (iterative: deep trees do not recurse). As in DuckDB, the body of a CTE sees the CTEs
    defined before it in the same WITH (not itself, nor later ones); the query sees them all;
    a WITH inside a subquery is invisible outside it."""
    stack: list[tuple[object, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        item, scope = stack.pop()
        if isinstance(item, dict):
            yield item, scope
            entries = item.get("cte_map", {}).get("map", []) if "cte_map" in item else []
            names = [str(entry["key"]).lower() for entry in entries]
            for index, entry in enumerate(entries):
                stack.append((entry["value"], scope | frozenset(names[:index])))
            inner = scope | frozenset(names)
            stack.extend((value, inner) for key, value in item.items() if key != "cte_map")
        elif isinstance(item, list):
            stack.extend((value, scope) for value in item)


# Computed once at import, before any request thread could race to compute it.
_FORBIDDEN_MACROS = _forbidden_macros()


def _listing(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) or "you have none"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
