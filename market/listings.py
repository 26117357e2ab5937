"""Listings: what a buyer sees before licensing a dataset.

A listing is computed from an asset (its anchored checkpoint, manifest schema and files) and
the seller's terms: schema with units, row count, coverage (event-time range, node count, H3
cells of the published locations, from latitude/longitude or a published ``h3_cell``), quality
score and report when the pipeline attached one, license, price and the anchor transaction.
"""

from __future__ import annotations

from typing import Any

import duckdb
import h3

from market.assets import Asset
from market.sandbox import view_query
from market.store import Terms

H3_RESOLUTION = 5  # cells of ~250 km²: a region, not a site
_MAX_CELLS = 500


def build_listing(asset: Asset, terms: Terms) -> dict[str, Any]:
    schema = asset.schema
    return {
        "dataset": asset.dataset,
        "title": terms.title or default_title(asset),
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
        "price": price(terms),
        "checkpoint": asset.checkpoint.as_dict(),
    }


_ACRONYMS = {"kpi": "KPI", "dp": "(DP)", "h3": "H3", "ip": "IP", "ue": "UE"}


def default_title(asset: Asset) -> str:
    """``radio_kpi`` version 1.1 → "Radio KPI v1.1", when the seller set no title."""
    words = str(asset.schema.get("name") or asset.view).split("_")
    named = " ".join(_ACRONYMS.get(w, w) for w in words)
    version = asset.schema.get("version")
    return (named[:1].upper() + named[1:]) + (f" v{version}" if version else "")


def price(terms: Terms) -> dict[str, Any]:
    """The price as a buyer reads it: amount, currency, unit, and one label."""
    unit = terms.price_unit or "one-time licence"
    if not terms.price_usd:
        label = "Free" + (f" ({unit})" if terms.price_unit else "")
    else:
        label = f"${terms.price_usd:,.2f} USD {unit}"
    return {"amount": terms.price_usd, "currency": "USD", "unit": unit, "label": label}


def _field(field: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "type", "unit", "minimum", "maximum", "required", "privacy", "description")
    return {key: field.get(key) for key in keys}


def time_column(schema: dict[str, Any]) -> str | None:
    """The column that says when a row was measured: ``event_time``, else the first other
    timestamp that is not the ingest time."""
    stamps = [
        f["name"]
        for f in schema.get("fields", [])
        if str(f.get("type", "")).startswith("timestamp") and f["name"] != "ingest_time"
    ]
    return "event_time" if "event_time" in stamps else (stamps[0] if stamps else None)


def coverage(asset: Asset) -> dict[str, Any]:
    """Event-time range, distinct nodes and H3 cells covered by the asset's rows."""
    names = {f["name"] for f in asset.schema.get("fields", [])}
    when = time_column(asset.schema)
    summary: dict[str, Any] = {"time_start": None, "time_end": None, "nodes": None}
    summary["time_column"] = when
    cells: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        con.execute(f"CREATE VIEW t AS {view_query(asset)}")  # compacted runs: sandbox.py
        if when:
            start, end = con.execute(f'SELECT min("{when}"), max("{when}") FROM t').fetchone()
            summary["time_start"] = start.isoformat() if start else None
            summary["time_end"] = end.isoformat() if end else None
        if "node_id" in names:
            (summary["nodes"],) = con.execute("SELECT count(DISTINCT node_id) FROM t").fetchone()
        if {"latitude", "longitude"} <= names:
            points = con.execute(
                "SELECT latitude, longitude, count(*) FROM t "
                "WHERE latitude IS NOT NULL AND longitude IS NOT NULL GROUP BY ALL"
            ).fetchall()
            for lat, lon, n in points:
                cell = h3.latlng_to_cell(lat, lon, H3_RESOLUTION)
                cells[cell] = cells.get(cell, 0) + n
        elif "h3_cell" in names:
            counted = con.execute(
                "SELECT h3_cell, count(*) FROM t WHERE h3_cell IS NOT NULL GROUP BY ALL"
            ).fetchall()
            for published, n in counted:
                cell = _coarse(published)
                if cell:
                    cells[cell] = cells.get(cell, 0) + n
    ranked = sorted(cells.items(), key=lambda item: (-item[1], item[0]))[:_MAX_CELLS]
    summary["h3_resolution"] = H3_RESOLUTION
    summary["h3_cells"] = [
        {
            "cell": cell,
            "rows": n,
            "center": list(h3.cell_to_latlng(cell)),
            "boundary": [[round(lat, 4), round(lng, 4)] for lat, lng in h3.cell_to_boundary(cell)],
        }
        for cell, n in ranked
    ]
    return summary


def _coarse(cell: str) -> str | None:
    """A published H3 cell at the listing's resolution (its parent when finer)."""
    if not isinstance(cell, str) or not h3.is_valid_cell(cell):
        return None
    if h3.get_resolution(cell) <= H3_RESOLUTION:
        return cell
    return h3.cell_to_parent(cell, H3_RESOLUTION)
