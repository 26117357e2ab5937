"""Schema documents: a dataset's schema and its Table Schema, published once, named by hash.

A shard manifest is written every batch for every shard the batch grows; carrying the dataset's
schema twice (its ``schema`` section and each resource's Table Schema, ~13 KB of a ~14.5 KB
chained link), its bytes were mostly the same schema over and over. A chained shard manifest
(version 3) now names them instead, and a dataset manifest its schema (docs/proof-format.md
§12):

- ``schema`` is ``{"fingerprint": F, "path": "schemas/F.schema.json"}``: the document at that
  path (in the dataset folder) is the RFC 8785 form of the schema section a manifest would
  carry — ``{"fingerprint": F, ...}`` — and F is the SHA-256 of that object without
  ``fingerprint`` (as ever), so the path's bytes are fixed by F;
- each resource's ``schema`` is a path, ``schemas/H.table-schema.json`` (a Frictionless
  resource may name its Table Schema by path), H the SHA-256 of the document's bytes: the RFC
  8785 form of the Table Schema of that schema (``proofs.manifest.table_schema``).

Both are written before the first manifest that names them, and never change (their names are
their contents' hashes). Standard library only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from proofs.documents import open_untrusted, parse_document
from proofs.jcs import canonicalize

FOLDER = "schemas"
MAX_DOCUMENT_BYTES = 1 << 20  # a schema's documents are a few KB: a larger file is refused unread
_SCHEMA = re.compile(rf"{FOLDER}/([0-9a-f]{{64}})\.schema\.json")
_TABLE = re.compile(rf"{FOLDER}/([0-9a-f]{{64}})\.table-schema\.json")


def schema_path(fingerprint: str) -> str:
    return f"{FOLDER}/{fingerprint}.schema.json"


@functools.lru_cache(maxsize=64)
def _documents(schema_text: str, fingerprint: str) -> tuple[tuple[str, bytes], ...]:
    from proofs.manifest import table_schema

    schema = json.loads(schema_text)
    table = canonicalize(table_schema(schema))
    return (
        (schema_path(fingerprint), canonicalize({"fingerprint": fingerprint, **schema})),
        (f"{FOLDER}/{hashlib.sha256(table).hexdigest()}.table-schema.json", table),
    )


def documents(schema: dict[str, Any], fingerprint: str) -> dict[str, bytes]:
    """The two documents of ``schema`` (its ``describe()``): path in the dataset folder -> bytes,
    the schema's first, then its Table Schema's."""
    return dict(_documents(json.dumps(schema, sort_keys=True), fingerprint))


def references(schema: dict[str, Any], fingerprint: str) -> tuple[dict[str, str], str]:
    """The manifest's ``schema`` section by reference, and its resources' ``schema`` path."""
    schema_doc, table_doc = documents(schema, fingerprint)
    return {"fingerprint": fingerprint, "path": schema_doc}, table_doc


def by_reference(manifest: dict[str, Any]) -> bool:
    section = manifest.get("schema")
    return isinstance(section, dict) and "path" in section


def reference_problem(
    dataset_dir: Path, manifest: dict[str, Any], read: dict[str, bytes | None] | None = None
) -> str | None:
    """What is wrong with a manifest's schema references, or None: the schema document at its
    path (fixed by the fingerprint) and each resource's Table Schema document (named by its
    SHA-256) exist and hash as named, and the Table Schema has the schema's fields and key.
    ``read``: documents already read in this verification (path -> bytes, None if missing)."""
    read = {} if read is None else read
    section = manifest["schema"]
    fingerprint = section.get("fingerprint")
    if set(section) != {"fingerprint", "path"} or not isinstance(fingerprint, str):
        return "schema by reference must be exactly {fingerprint, path}"
    if _SCHEMA.fullmatch(str(section["path"])) is None or section["path"] != schema_path(
        fingerprint
    ):
        return "schema.path must be schemas/<fingerprint>.schema.json"
    schema = _document(dataset_dir, section["path"], read)
    if schema is None:
        return f"schema document {section['path']} is missing"
    without = _schema_of(schema, fingerprint)
    if without is None:
        return f"schema document {section['path']} is not the schema of that fingerprint"
    resources = manifest.get("resources", [])  # a dataset manifest has none
    named = [r.get("schema") if isinstance(r, dict) else None for r in resources]
    if not all(isinstance(path, str) and _TABLE.fullmatch(path) for path in named):
        return "resources[].schema must name schemas/<sha256>.table-schema.json"
    for path in dict.fromkeys(named):
        table = _document(dataset_dir, path, read)
        if table is None:
            return f"Table Schema document {path} is missing"
        if hashlib.sha256(table).hexdigest() != path[len(FOLDER) + 1 : len(FOLDER) + 65]:
            return f"Table Schema document {path} does not hash to its name"
        if not _describes(table, without):
            return f"Table Schema document {path} does not describe the schema's fields"
    return None


def resolved(dataset_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``schema`` section as carried inline: its own, or its document's;
    ``ValueError`` when the document is missing or not the schema of its fingerprint."""
    if not by_reference(manifest):
        return manifest["schema"]
    read: dict[str, bytes | None] = {}
    problem = reference_problem(dataset_dir, {"schema": manifest["schema"]}, read)
    if problem is not None:
        raise ValueError(problem)
    return parse_document(read[manifest["schema"]["path"]])  # the bytes checked, not read again


def _schema_of(document: bytes, fingerprint: str) -> dict[str, Any] | None:
    """The schema (without its fingerprint) a schema document holds, if it is the RFC 8785
    form of ``{"fingerprint": F, ...}`` with F the SHA-256 of the rest; else None."""
    try:
        described = parse_document(document)
        without = {k: v for k, v in described.items() if k != "fingerprint"}
        if canonicalize(described) != document or described.get("fingerprint") != fingerprint:
            return None
        digest = hashlib.sha256(canonicalize(without)).hexdigest()
    except (ValueError, TypeError, AttributeError):
        return None
    return without if digest == fingerprint else None


def _describes(table: bytes, schema: dict[str, Any]) -> bool:
    """Whether a Table Schema document has the schema's fields, in order, and its key."""
    try:
        described = parse_document(table)
        names = [f["name"] for f in described["fields"]]
        key = described.get("primaryKey")
    except (ValueError, TypeError, KeyError):
        return False
    fields = schema.get("fields") or []
    wanted = [f.get("name") for f in fields if isinstance(f, dict)]
    return names == wanted and key == list(schema.get("natural_key", []))


def _document(dataset_dir: Path, path: str, read: dict[str, bytes | None]) -> bytes | None:
    """A document's bytes (None when missing; ``b""`` when too large to be one)."""
    if path not in read:
        try:
            with open_untrusted(dataset_dir / path) as handle:
                data = handle.read(MAX_DOCUMENT_BYTES + 1)
            read[path] = data if len(data) <= MAX_DOCUMENT_BYTES else b""
        except (OSError, ValueError):  # missing, or no regular file
            read[path] = None
    return read[path]
