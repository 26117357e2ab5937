"""Checkpoint manifests: what a dataset contained at one tree size, committed by one hash.

A manifest is stored as its RFC 8785 canonical JSON bytes, so the SHA-256 of the file *is* the
manifest hash that goes on chain. It is also a Frictionless Data Package (``datapackage.json``
shape: ``profile``, ``name``, ``resources`` with ``path``, ``hash``, ``bytes``, ``format`` and a
Table Schema), and is signed by the publisher's Ed25519 key, the signature stored beside it
(``<tree size>.manifest.sig.json``). See docs/proof-format.md for every field.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proofs.documents import open_untrusted, parse_document
from proofs.jcs import canonicalize
from proofs.schema_docs import references

if TYPE_CHECKING:
    from proofs.signing import PublisherKey

MANIFEST_VERSION = 1
SHARDED_VERSION = 2  # shard manifests and dataset checkpoints over shard heads (proofs/shards.py)
CHAINED_SHARD_VERSION = 3  # shard manifests of the files their checkpoint adds (shard_chain.py)
# The largest document a verifier reads: a version-1 manifest listing every file of a big
# dataset, or a contribution table of many nodes, is a few MB.
MAX_DOCUMENT_BYTES = 64 << 20


def build_manifest(
    *,
    dataset: str,
    tree_size: int,
    root: bytes,
    schema: dict[str, Any],
    fingerprint: str,
    files: list[dict[str, Any]],
    batch: dict[str, Any],
    previous: dict[str, Any] | None,
    pipeline_version: str,
    publisher: dict[str, str] | None = None,
    quality: dict[str, Any] | None = None,
    log: str | None = None,
    privacy: dict[str, Any] | None = None,
    schema_by_reference: bool = False,
) -> dict[str, Any]:
    """Assemble a manifest; every input must be deterministic for a given batch plan.

    ``files[]`` entries carry ``path``, ``sha256``, ``bytes``, ``rows``, ``leaf_start`` and
    ``source``. ``publisher`` is ``PublisherKey.describe()``; ``quality`` is
    ``{report_path, attestation_path, score}`` (paths relative to the dataset folder: GE's report
    and its signed attestation, written after the anchor; version-1 checkpoints made before had
    ``report_sha256`` instead of ``attestation_path``), possibly with
    more (``components``, ``counts``, ``expectations``: docs/quality-and-privacy.md); ``log``
    the id of the Merkle log this checkpoints (default: the dataset's own log, named
    ``dataset``); ``privacy`` the privacy policy applied (key id and epochs, never the key).
    ``schema_by_reference``: name the schema and its Table Schema by their documents' paths
    instead of carrying them (``proofs/schema_docs.py``; a chained shard manifest's).
    """
    listed_from = files[0]["leaf_start"] if files else 0  # a chained shard's: its added files
    if listed_from + sum(f["rows"] for f in files) != tree_size:
        raise ValueError("the files' rows do not add up to the tree size")
    if quality is not None and not (
        "score" in quality
        and ("report_path" not in quality)
        == ("report_sha256" not in quality and "attestation_path" not in quality)
    ):
        raise ValueError(
            "quality must have a score, and a report_path only with its report_sha256 or "
            "attestation_path"
        )
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "profile": "data-package",
        "name": dataset,
        "dataset": dataset,
        "log": log or dataset,
        "checkpoint": {
            "tree_size": tree_size,
            "root": root.hex(),
            "tree": "RFC 9162 SHA-256",
            "leaf": "RFC 8785 canonical JSON of the published row",
        },
        "previous": previous,
        "schema": {"fingerprint": fingerprint, **schema},
        "files": files,
        "batch": batch,
        "pipeline": {"name": "rda-pipeline", "version": pipeline_version},
        "resources": [],
        "publisher": publisher,
    }
    if schema_by_reference:
        manifest["schema"], table = references(schema, fingerprint)
        manifest["resources"] = [_resource(f, table) for f in files]
    else:
        manifest["resources"] = _resources(files, schema)
    if quality is not None:
        manifest["quality"] = quality
    if privacy is not None:
        manifest["privacy"] = privacy
    return manifest


# Arrow type (as schemas describe it) -> Frictionless Table Schema type.
_TABLE_TYPES = (
    ("bool", "boolean"),
    ("int", "integer"),
    ("uint", "integer"),
    ("float", "number"),
    ("double", "number"),
    ("halffloat", "number"),
    ("decimal", "number"),
    ("timestamp", "datetime"),
    ("date", "date"),
    ("string", "string"),
    ("large_string", "string"),
    ("list", "array"),
    ("large_list", "array"),
    ("fixed_size_list", "array"),
    ("struct", "object"),
)


def table_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The canonical schema as a Frictionless Table Schema (units and privacy kept as extras)."""
    fields = []
    for field in schema["fields"]:
        constraints = {
            key: field.get(source)
            for key, source in (
                ("required", "required"),
                ("minimum", "minimum"),
                ("maximum", "maximum"),
                ("enum", "allowed"),
            )
            if field.get(source) not in (None, False)
        }
        entry = {"name": field["name"], "type": _table_type(field["type"])}
        entry.update({"description": field.get("description"), "constraints": constraints})
        entry.update({"rda:arrow_type": field["type"], "rda:unit": field.get("unit")})
        entry["rda:privacy"] = field.get("privacy")
        fields.append(entry)
    return {"fields": fields, "primaryKey": list(schema.get("natural_key", []))}


def _table_type(arrow_type: str) -> str:
    base = re.match(r"[a-z_]*", arrow_type).group().rstrip("0123456789")  # "decimal128(…" …
    for prefix, kind in _TABLE_TYPES:
        if base == prefix:
            return kind
    return "binary" if "binary" in base else "any"


def _resources(files: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Each Parquet file as a Frictionless Data Resource. Every file has the same Table Schema:
    one object, built once, which the serializer writes out again for each resource (its
    bytes are the same as if each had its own)."""
    described = table_schema(schema)
    return [_resource(f, described) for f in files]


def _resource(file: dict[str, Any], described: dict[str, Any] | str) -> dict[str, Any]:
    """One Parquet file as a Frictionless Data Resource (``described``: its Table Schema, or
    the path of its document)."""
    name = file["path"].rsplit("/", 1)[-1].removesuffix(".parquet").lower()
    return {
        "name": "".join(c if c.isalnum() or c in "._-" else "-" for c in name),
        "path": file["path"],
        "profile": "tabular-data-resource",
        "format": "parquet",
        "mediatype": "application/vnd.apache.parquet",
        "bytes": file["bytes"],
        "hash": f"sha256:{file['sha256']}",
        "schema": described,
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return canonicalize(manifest)


def manifest_hash(manifest: dict[str, Any]) -> bytes:
    return hashlib.sha256(manifest_bytes(manifest)).digest()


def manifest_path(dataset_dir: Path, tree_size: int) -> Path:
    return dataset_dir / "checkpoints" / f"{tree_size:012d}.manifest.json"


def signature_path(manifest_file: Path) -> Path:
    """Where a manifest's signature is stored: beside it, ``….manifest.sig.json``."""
    return manifest_file.with_name(manifest_file.name.removesuffix(".json") + ".sig.json")


def write_manifest(
    dataset_dir: Path, manifest: dict[str, Any], signer: PublisherKey | None = None
) -> tuple[Path, bytes]:
    """Write the manifest's canonical bytes (and its signature); return its path and hash."""
    path = manifest_path(dataset_dir, manifest["checkpoint"]["tree_size"])
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest_bytes(manifest)
    if signer is not None:
        if manifest.get("publisher") != signer.describe():
            raise ValueError("the manifest's publisher is not the signing key")
        _write_atomically(signature_path(path), canonicalize(signer.sign(data)))
    _write_atomically(path, data)
    return path, hashlib.sha256(data).digest()


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def load_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest at ``path`` and the SHA-256 of its bytes as stored."""
    data = read_document(path)
    return parse_document(data), hashlib.sha256(data).digest()


def read_document(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a document a verifier reads from a data directory (a manifest, signature,
    attestation, report or table: untrusted), read no further than ``limit``: a larger file is
    refused (``ValueError``), not loaded whole."""
    with open_untrusted(path) as file:
        size = os.fstat(file.fileno()).st_size
        # ``read(n)`` sets n bytes aside first: asked for no more than the file holds, a small
        # document costs its own size, not the bound's (64 MiB for every manifest read).
        data = file.read(min(size, limit) + 1 if size else limit + 1)
        if size and len(data) > size:  # it grew since: read on, to the bound
            data += file.read(limit + 1 - len(data))
    if len(data) > limit:
        raise ValueError(f"{path.name} is over {limit:,} bytes: not read")
    return data


def all_manifests(dataset_dir: Path) -> list[Path]:
    """Every checkpoint manifest of the dataset, by tree size.

    Names are the tree size zero-padded to at least 12 digits: from 10**12 leaves on they are
    longer, so they are ordered by their number, not as text.
    """
    found = []
    for path in (dataset_dir / "checkpoints").glob("*.manifest.json"):
        size = path.name.removesuffix(".manifest.json")
        if size.isdigit() and size.isascii():
            found.append((int(size), path))
    return [path for _size, path in sorted(found)]


def manifest_problem(manifest: Any) -> str | None:
    """What makes ``manifest`` unusable for verification (types and shapes), or None."""
    if not isinstance(manifest, dict):
        return "a manifest must be a JSON object"
    version = manifest.get("manifest_version", MANIFEST_VERSION)
    if version not in (MANIFEST_VERSION, SHARDED_VERSION, CHAINED_SHARD_VERSION):
        known = f"{MANIFEST_VERSION}, {SHARDED_VERSION} or {CHAINED_SHARD_VERSION}"
        return f"manifest_version must be {known}"
    if version == CHAINED_SHARD_VERSION and manifest.get("kind") != "shard":
        return f"manifest_version {CHAINED_SHARD_VERSION} is a shard manifest's (kind shard)"
    if manifest.get("kind") == "dataset":  # version 2: a checkpoint over shard heads
        from proofs.manifest_v2 import dataset_manifest_problem

        return dataset_manifest_problem(manifest)
    checkpoint = manifest.get("checkpoint")
    if not isinstance(manifest.get("dataset"), str) or not isinstance(checkpoint, dict):
        return "dataset and checkpoint are missing"
    if not isinstance(manifest.get("log", ""), str):
        return "log must be a string"
    if not _count(checkpoint.get("tree_size")) or not _hex64(checkpoint.get("root")):
        return "checkpoint.tree_size must be a count and checkpoint.root 64 lowercase hex digits"
    files = manifest.get("files")
    if not isinstance(files, list):
        return "files must be a list"
    for entry in files:
        if not (
            isinstance(entry, dict)
            and _relative(entry.get("path"))
            and _hex64(entry.get("sha256"))
            and _count(entry.get("rows"))
            and _count(entry.get("leaf_start"))
        ):
            return "every files[] entry needs a relative path, sha256, rows and leaf_start"
    previous = manifest.get("previous")
    if previous is not None and not link_shape(previous):
        return "previous must be null or {tree_size, root, manifest_sha256}"
    if version == CHAINED_SHARD_VERSION:
        from proofs.shard_chain import chain_shape_problem

        return chain_shape_problem(manifest)
    return None


def placement_problem(
    manifest: dict[str, Any], dataset_dir: Path, manifest_file: Path
) -> str | None:
    """What makes a well-formed manifest no checkpoint of the folder it is read from, or None.

    A folder holds its own dataset's checkpoints only: a genuine, signed and anchored checkpoint
    of another dataset copied in would vouch for that dataset's rows, not the folder's."""
    dataset = dataset_dir.name
    log = manifest.get("log", manifest["dataset"])
    if manifest["dataset"] != dataset or log != dataset:
        return f"a checkpoint of {log!r}, not of {dataset!r} (the folder it is in)"
    return misnamed(manifest, manifest_file)


def misnamed(manifest: dict[str, Any], manifest_file: Path) -> str | None:
    """Whether a manifest's file name claims a tree size other than its checkpoint's: the
    newest checkpoint is the one with the largest name (a name that is no number claims none)."""
    named = manifest_file.name.removesuffix(".manifest.json")
    size = manifest["checkpoint"]["tree_size"]
    if named != manifest_file.name and named.isdigit() and named.isascii() and int(named) != size:
        return f"named for tree size {int(named)}, but its checkpoint is of size {size}"
    return None


def link_shape(link: Any) -> bool:
    """Whether ``link`` names a checkpoint as a manifest's ``previous`` does."""
    if not isinstance(link, dict) or not {"tree_size", "root", "manifest_sha256"} <= set(link):
        return False
    return _count(link["tree_size"]) and _hex64(link["root"]) and _hex64(link["manifest_sha256"])


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _relative(value: Any) -> bool:
    """A path inside the dataset folder: relative, no ``..``."""
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value:
        return False
    return ".." not in value.split("/")


def latest_manifest(dataset_dir: Path) -> Path | None:
    found = all_manifests(dataset_dir)
    return found[-1] if found else None
