"""The coverage map's reference layer: Natural Earth land and country borders.

From the npm package ``world-atlas`` (Natural Earth's public-domain vectors as TopoJSON),
installed with the project's other tools and pinned by version and SHA-256, never fetched by
the page: the page draws what ``/static/reference/land.json`` serves. TopoJSON is decoded here
(quantized, delta-encoded arcs; a ring is a sequence of arcs, a negative index ``~i`` meaning
arc ``i`` reversed) into plain rings and lines of ``[longitude, latitude]`` rounded to 0.01°.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from infra.tools import ToolInstallError, ensure_npm_file

PACKAGE = "world-atlas@2.0.2"
LAND = ("land-50m.json", "619477ff690c086885e45cb91707d783805561bd75ae8e437b7d4694b0204e0f")
COUNTRIES = (
    "countries-110m.json",
    "2516c915867c7baf18ddec727aec46c315541a07cfb3d79a6559b05d5e94eee8",
)
SOURCE = f"Natural Earth 1:50m land and 1:110m country borders (public domain), from npm {PACKAGE}"


def ensure_reference_layer() -> Path:
    """Install the layer's package files (first use only); the land file's path."""
    ensure_npm_file(PACKAGE, *COUNTRIES)
    return ensure_npm_file(PACKAGE, *LAND)


@functools.cache
def land_layer() -> bytes:
    """The layer as JSON bytes: ``{source, land: [ring…], borders: [line…]}``, or
    ``{source: null, error}`` when the package cannot be installed."""
    try:
        land = _decode(ensure_npm_file(PACKAGE, *LAND))
        countries = _decode(ensure_npm_file(PACKAGE, *COUNTRIES))
    except (ToolInstallError, OSError, ValueError) as error:
        layer: dict[str, Any] = {"source": None, "error": str(error), "land": [], "borders": []}
    else:
        layer = {
            "source": SOURCE,
            "land": [ring for polygon in _polygons(land, "land") for ring in polygon],
            "borders": [_round(arc) for arc in countries["arcs"]],
        }
    return json.dumps(layer, separators=(",", ":")).encode()


def _decode(path: Path) -> dict[str, Any]:
    topology = json.loads(path.read_text())
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return {"objects": topology["objects"], "arcs": arcs}


def _polygons(topology: dict[str, Any], name: str) -> list[list[list[list[float]]]]:
    polygons = []
    for geometry in topology["objects"][name]["geometries"]:
        parts = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in parts:
            polygons.append([_round(_ring(topology["arcs"], ring)) for ring in polygon])
    return polygons


def _ring(arcs: list[list[tuple[float, float]]], indices: list[int]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])  # arcs share their end points
    return points


def _round(points: list[tuple[float, float]]) -> list[list[float]]:
    rounded: list[list[float]] = []
    for x, y in points:
        point = [round(x, 2), round(y, 2)]
        if not rounded or rounded[-1] != point:
            rounded.append(point)
    return rounded
