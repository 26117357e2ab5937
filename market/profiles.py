"""What a buyer may see of a dataset before licensing it: column profiles, sample rows and
example queries, all computed from the published rows of the anchored checkpoint.

The privacy policy holds here too: columns that carry pseudonyms or truncated addresses
(``identifier``, ``network_address`` and the ``row_key`` pseudonym) show only their null
fraction and distinct count, never a value; in sample rows their values are masked. Everything
else was published as it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import duckdb

from market.assets import Asset
from market.compaction import Parts
from market.sandbox import LEAF_COLUMN, view_query

MASKED_CLASSES = {"identifier", "network_address"}
MASK = "•••• hidden"
SAMPLE_ROWS = 5
_TOP_VALUES = 5
_NUMERIC = ("int", "uint", "float", "double", "decimal")


def masked_columns(asset: Asset) -> list[str]:
    return [
        f["name"]
        for f in asset.schema.get("fields", [])
        if f.get("privacy") in MASKED_CLASSES or f["name"] == "row_key"
    ]


def column_profiles(asset: Asset, parts: Parts | None = None) -> list[dict[str, Any]]:
    """Per column: nulls, distinct values; range and mean of numbers and times; the most
    frequent values of low-cardinality text. One scan for every column's figures, then one per
    low-cardinality text column (a query per column and figure scanned every file again: 34 s
    over a 510-batch stream's 1,967 files). ``parts``: the files to read (``asset_parts``)."""
    fields = asset.schema.get("fields", [])
    masked = set(masked_columns(asset))
    with duckdb.connect(":memory:", config={"threads": 2}) as con:
        con.execute(f"CREATE VIEW t AS {view_query(asset, parts=parts)}")
        present = {row[0] for row in con.execute("DESCRIBE t").fetchall()}
        shown = [
            (f["name"], str(f.get("type", "")), f.get("privacy"))
            for f in fields
            if f["name"] in present
        ]
        figures = ["count(*)"] + [
            figure for name, kind, _ in shown for figure in _figures(name, kind, name in masked)
        ]
        values = iter(con.execute(f"SELECT {', '.join(figures)} FROM t").fetchone())
        rows = next(values)
        return [
            {"name": name, "type": kind, "privacy": privacy,
             **_profile(con, name, kind, rows, name in masked, values)}
            for name, kind, privacy in shown
        ]  # fmt: skip


def _figures(name: str, kind: str, masked: bool) -> list[str]:
    """The aggregates of one column's profile, in the order ``_profile`` takes them."""
    column = _quote(name)
    figures = [f"count(*) - count({column})", f"approx_count_distinct({column})"]
    if masked:
        return figures
    if kind.startswith(_NUMERIC):
        # Kahan's sum for floating point: the same mean whatever order the threads add it in
        mean = "favg" if kind.startswith(("float", "double")) else "avg"
        return [*figures, f"min({column})", f"max({column})", f"{mean}({column})"]
    if kind.startswith(("timestamp", "date")):
        return [*figures, f"min({column})", f"max({column})"]
    return figures


def _profile(
    con: duckdb.DuckDBPyConnection,
    name: str,
    kind: str,
    rows: int,
    masked: bool,
    values: Iterator[Any],
) -> dict[str, Any]:
    nulls, distinct = next(values), next(values)
    profile: dict[str, Any] = {
        "null_fraction": round(nulls / rows, 4) if rows else None,
        "distinct": int(distinct),
        "masked": masked,
    }
    if masked:
        return profile
    if kind.startswith(_NUMERIC):
        low, high, mean = next(values), next(values), next(values)
        profile.update(min=_number(low), max=_number(high), mean=_number(mean))
    elif kind.startswith(("timestamp", "date")):
        low, high = next(values), next(values)
        profile.update(min=_text(low), max=_text(high))
    elif kind.startswith(("string", "large_string")) and distinct <= 50:
        column = _quote(name)
        top = con.execute(
            f"SELECT {column}, count(*) AS n FROM t WHERE {column} IS NOT NULL "
            f"GROUP BY 1 ORDER BY n DESC, 1 LIMIT {_TOP_VALUES}"
        ).fetchall()
        profile["top"] = [{"value": value, "rows": n} for value, n in top]
    return profile


def sample_rows(
    asset: Asset, count: int = SAMPLE_ROWS, parts: Parts | None = None
) -> dict[str, Any]:
    """``count`` published rows spread over the dataset (every n-th leaf), masked columns
    masked; timestamps as text, numbers rounded to what the schema publishes. ``parts``: the
    files to read (``asset_parts``)."""
    masked = set(masked_columns(asset))
    step = max(asset.checkpoint.tree_size // count, 1)
    with duckdb.connect(":memory:") as con:
        relation = con.sql(
            f"SELECT * EXCLUDE ({LEAF_COLUMN}) FROM ({view_query(asset, True, parts)}) "
            f"WHERE {LEAF_COLUMN} % ? = 0 ORDER BY {LEAF_COLUMN} LIMIT ?",
            params=[step, count],
        )
        columns = list(relation.columns)
        rows = relation.fetchall()
    shown = [
        [MASK if c in masked and value is not None else _text(value)
         for c, value in zip(columns, row, strict=True)]
        for row in rows
    ]  # fmt: skip
    return {"columns": columns, "rows": shown, "masked": sorted(masked & set(columns))}


def example_queries(asset: Asset, time_column: str | None) -> list[dict[str, str]]:
    """A few queries that work on this dataset as published, for the console."""
    view = asset.view
    names = {f["name"]: f for f in asset.schema.get("fields", [])}
    measures = [
        f["name"]
        for f in asset.schema.get("fields", [])
        if str(f.get("type", "")).startswith(("double", "float"))
        and f.get("unit")
        and f["name"] not in ("latitude", "longitude")
    ]
    examples = []
    if "node_id" in names:
        examples.append({"title": "Rows per node", "sql": (
            f"SELECT node_id, count(*) AS rows FROM {view} GROUP BY node_id ORDER BY rows DESC "
            "LIMIT 20")})  # fmt: skip
    if time_column and measures:
        m = measures[0]
        examples.append({"title": f"{m} per hour", "sql": (
            f"SELECT date_trunc('hour', {time_column}) AS hour, count(*) AS rows, "
            f"round(avg({m}), 2) AS avg_{m} FROM {view} GROUP BY hour ORDER BY hour")})  # fmt: skip
    elif time_column:
        examples.append({"title": "Rows per hour", "sql": (
            f"SELECT date_trunc('hour', {time_column}) AS hour, count(*) AS rows FROM {view} "
            "GROUP BY hour ORDER BY hour")})  # fmt: skip
    if measures:
        m = measures[-1] if len(measures) > 1 else measures[0]
        examples.append({"title": f"Distribution of {m}", "sql": (
            f"SELECT quantile_cont({m}, [0.05, 0.5, 0.95]) AS p5_p50_p95, min({m}) AS min, "
            f"max({m}) AS max FROM {view}")})  # fmt: skip
    if "h3_cell" in names:
        examples.append({"title": "Rows per H3 cell", "sql": (
            f"SELECT h3_cell, count(*) AS rows FROM {view} GROUP BY h3_cell ORDER BY rows DESC "
            "LIMIT 20")})  # fmt: skip
    if "noisy_subscribers" in names:
        examples.append({"title": "Subscribers per cell and hour (sum the chunks)", "sql": (
            f"SELECT cell_id, hour, sum(noisy_subscribers) AS subscribers FROM {view} "
            "GROUP BY ALL ORDER BY hour, cell_id")})  # fmt: skip
    examples.append({"title": "A few whole rows", "sql": f"SELECT * FROM {view} LIMIT 10"})
    return examples


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _number(value: Any) -> float | int | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, float):
        return float(f"{value:.10g}")  # float noise (0.7666000000000001) off, data kept
    return value


def _text(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
