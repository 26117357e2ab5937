"""Listing metadata for buyers' tools: a Frictionless Data Package and MLCommons Croissant.

Both describe the dataset at its anchored checkpoint: the Parquet files (paths relative to the
dataset folder ``published/<dataset>/``, with their SHA-256), the fields with types, units and
ranges, the license, and the checkpoint (tree size, root, anchor transaction) under an
``rda:`` key so a loader can tie what it reads to what was anchored.
"""

from __future__ import annotations

import re
from typing import Any

from market.assets import Asset
from market.store import Terms

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "rda": "https://github.com/rda-pipeline/rda-pipeline/blob/main/docs/marketplace.md#",
}
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def _kind(arrow_type: str) -> str:
    """A coarse kind of an Arrow type name as written in manifests."""
    if arrow_type.startswith(("int", "uint")):
        return "integer"
    if arrow_type.startswith(("double", "float", "halffloat", "decimal")):
        return "number"
    if arrow_type.startswith("timestamp"):
        return "datetime"
    if arrow_type.startswith("date"):
        return "date"
    if arrow_type == "bool":
        return "boolean"
    return "string"


_CROISSANT_TYPES = {
    "integer": "sc:Integer",
    "number": "sc:Float",
    "datetime": "sc:DateTime",
    "date": "sc:Date",
    "boolean": "sc:Boolean",
    "string": "sc:Text",
}


def _relative_files(asset: Asset) -> list[str]:
    base = asset.manifest_path.parent.parent  # published/<dataset>/
    return [f.relative_to(base).as_posix() for f in asset.files]


def _package_name(dataset: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", dataset.lower())


def data_package(asset: Asset, terms: Terms, listing: dict[str, Any]) -> dict[str, Any]:
    """Frictionless Data Package (v1) descriptor, to be placed in ``published/<dataset>/``."""
    fields = []
    for f in listing["schema"]["fields"]:
        constraints = {"required": bool(f["required"])}
        if f["minimum"] is not None:
            constraints["minimum"] = f["minimum"]
        if f["maximum"] is not None:
            constraints["maximum"] = f["maximum"]
        entry = {
            "name": f["name"],
            "type": _kind(f["type"]),
            "description": f["description"] or "",
            "constraints": constraints,
            "rda:arrow_type": f["type"],
        }
        if f["unit"]:
            entry["unit"] = f["unit"]
        fields.append(entry)
    primary_key = listing["schema"]["natural_key"] or []
    return {
        "profile": "data-package",
        "name": _package_name(asset.dataset),
        "title": listing["title"],
        "description": listing["description"],
        "version": str(listing["schema"]["version"]),
        "licenses": [{"name": terms.license}],
        "resources": [
            {
                "profile": "data-resource",
                "name": _package_name(asset.view),
                "path": _relative_files(asset),
                "format": "parquet",
                "mediatype": PARQUET_MEDIA_TYPE,
                "schema": {"fields": fields, "primaryKey": primary_key},
            }
        ],
        "rda:checkpoint": asset.checkpoint.as_dict(),
        "rda:coverage": listing["coverage"],
        "rda:quality": listing["quality"],
        "rda:price_usd": terms.price_usd,
    }


def croissant(asset: Asset, terms: Terms, listing: dict[str, Any]) -> dict[str, Any]:
    """MLCommons Croissant 1.0 JSON-LD: one FileSet of Parquet files, one RecordSet."""
    file_set = f"{asset.view}-parquet"
    fields = []
    for f in listing["schema"]["fields"]:
        description = f["description"] or ""
        if f["unit"]:
            description = f"{description} (unit: {f['unit']})".strip()
        fields.append(
            {
                "@type": "cr:Field",
                "@id": f"{asset.view}/{f['name']}",
                "name": f["name"],
                "description": description,
                "dataType": _CROISSANT_TYPES[_kind(f["type"])],
                "source": {"fileSet": {"@id": file_set}, "extract": {"column": f["name"]}},
            }
        )
    checkpoint = asset.checkpoint
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": asset.dataset,
        "description": listing["description"],
        "license": terms.license,
        "version": f"{listing['schema']['version']}+tree{checkpoint.tree_size}",
        "distribution": [
            {
                "@type": "cr:FileSet",
                "@id": file_set,
                "name": file_set,
                "encodingFormat": PARQUET_MEDIA_TYPE,
                "includes": _relative_files(asset),
            }
        ],
        "recordSet": [
            {"@type": "cr:RecordSet", "@id": asset.view, "name": asset.view, "field": fields}
        ],
        "rda:checkpoint": checkpoint.as_dict(),
    }
