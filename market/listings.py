"""Listings: what a buyer sees before licensing a dataset.

A listing is computed from an asset (its anchored checkpoint, manifest schema and files) and
the seller's terms: schema with units, row count, coverage (event-time range, node count, H3
cells of the published locations), quality score and report when the pipeline attached one,
license, price and the anchor transaction. Coverage is one DuckDB aggregate over the files.
"""

from __future__ import annotations

from typing import Any

import duckdb
import h3

from market.assets import Asset
from market.store import Terms

H3_RESOLUTION = 5  # cells of ~250 km²: a region, not a site
_MAX_CELLS = 500


def build_listing(asset: Asset, terms: Terms) -> dict[str, Any]:
    schema = asset.schema
    return {
        "dataset": asset.dataset,
        "title": terms.title or schema.get("description") or asset.dataset,
        "view": asset.view,
        "description": schema.get("description", ""),
        "schema": {
            "name": schema.get("name"),
            "version": schema.get("version"),
            "fingerprint": schema.get("fingerprint"),
            "natural_key": schema.get("natural_key"),
            "fields": [_field(f) for f in schema.get("fields", [])],
        },
        "rows": asset.checkpoint.tree_size,
        "coverage": coverage(asset),
        "quality": asset.quality,
        "license": terms.license,
        "price_usd": terms.price_usd,
        "checkpoint": asset.checkpoint.as_dict(),
    }


def _field(field: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "type", "unit", "minimum", "maximum", "required", "privacy", "description")
    return {key: field.get(key) for key in keys}


def coverage(asset: Asset) -> dict[str, Any]:
    """Event-time range, distinct nodes and H3 cells covered by the asset's rows."""
    names = {f["name"] for f in asset.schema.get("fields", [])}
    files = [str(f) for f in asset.files]
    summary: dict[str, Any] = {"time_start": None, "time_end": None, "nodes": None}
    cells: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        if "event_time" in names:
            start, end = con.execute(
                "SELECT min(event_time), max(event_time) FROM read_parquet(?)", [files]
            ).fetchone()
            summary["time_start"] = start.isoformat() if start else None
            summary["time_end"] = end.isoformat() if end else None
        if "node_id" in names:
            (summary["nodes"],) = con.execute(
                "SELECT count(DISTINCT node_id) FROM read_parquet(?)", [files]
            ).fetchone()
        if {"latitude", "longitude"} <= names:
            points = con.execute(
                "SELECT latitude, longitude, count(*) FROM read_parquet(?) "
                "WHERE latitude IS NOT NULL AND longitude IS NOT NULL GROUP BY ALL",
                [files],
            ).fetchall()
            for lat, lon, n in points:
                cell = h3.latlng_to_cell(lat, lon, H3_RESOLUTION)
                cells[cell] = cells.get(cell, 0) + n
    ranked = sorted(cells.items(), key=lambda item: (-item[1], item[0]))[:_MAX_CELLS]
    summary["h3_resolution"] = H3_RESOLUTION
    summary["h3_cells"] = [
        {"cell": cell, "rows": n, "center": list(h3.cell_to_latlng(cell))} for cell, n in ranked
    ]
    return summary
