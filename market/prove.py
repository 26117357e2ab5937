"""``rda prove``: one proof bundle per published row that a SQL predicate selects.

The publisher's answer to "prove these rows": DuckDB selects the rows over the checkpoint's
Parquet files (in the manifest's leaf order), each row is read back exactly as published, and
``proofs.bundle.build_bundles`` ties it to the checkpoint and, where the catalog recorded one,
to its anchor. Buyers' query proofs are made the same way (``market/proving.py``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from proofs.bundle import anchor_section, build_bundles
from proofs.bundle_v2 import build_shard_bundles
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.manifest import latest_manifest, load_manifest
from proofs.shard_log import DatasetFile, dataset_files, shard_log
from sinks.catalog import Catalog
from sinks.layout import DataLayout


class ProveError(ValueError):
    """The request cannot be proven as asked (no checkpoint, a bad predicate, too many rows)."""


@dataclass(frozen=True)
class ProveRequest:
    data_dir: Path
    dataset: str
    where: str  # a SQL predicate over the dataset's columns
    out_dir: Path
    manifest: Path | None = None  # default: the latest checkpoint
    limit: int = 10_000  # refuse to write more bundles than this


def prove_rows(
    request: ProveRequest, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Write the bundles into ``request.out_dir``; return what was written and against what."""
    dataset_dir = DataLayout(request.data_dir).dataset_dir(request.dataset)
    manifest_file = request.manifest or latest_manifest(dataset_dir)
    if manifest_file is None or not Path(manifest_file).exists():
        raise ProveError(f"no checkpoint of {request.dataset!r} under {dataset_dir}")
    manifest, digest = load_manifest(Path(manifest_file))
    try:
        files = dataset_files(dataset_dir, manifest)
    except (OSError, ValueError) as error:
        raise ProveError(f"checkpoint {manifest_file}: {error}") from None
    matches = _matching_rows(dataset_dir, [f.entry for f in files], request.where)
    if len(matches) > request.limit:
        raise ProveError(
            f"{len(matches)} rows match; at most --limit {request.limit} bundles are written: "
            "narrow --where or raise --limit"
        )
    checkpoint = {
        "tree_size": manifest["checkpoint"]["tree_size"],
        "root": manifest["checkpoint"]["root"],
        "manifest_sha256": digest.hex(),
    }
    anchor = _recorded_anchor(request.data_dir, manifest)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="rda-prove-") as logs:
        for file_index, rows in _by_file(matches).items():
            bundles = _file_bundles(
                dataset_dir, manifest, checkpoint, anchor, files[file_index], rows, Path(logs)
            )
            for bundle in bundles:
                path = request.out_dir / _bundle_name(request.dataset, bundle)
                path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
                written.append(str(path))
            progress(f"{files[file_index].entry['path']}: {len(rows)} bundles")
    return {
        "dataset": request.dataset,
        "log": manifest.get("log", request.dataset),
        "checkpoint": checkpoint,
        "anchored": anchor is not None,
        "matched": len(matches),
        "bundles": written,
        "out": str(request.out_dir),
    }


def _file_bundles(
    dataset_dir: Path,
    manifest: dict,
    checkpoint: dict,
    anchor: dict | None,
    file: DatasetFile,
    rows: list[int],
    logs: Path,
) -> list[dict]:
    """The bundles of some rows of one file, exactly as published."""
    entry = file.entry
    table = pq.read_table(dataset_dir / entry["path"]).take(rows)
    indices = [entry["leaf_start"] + row for row in rows]
    leaves = leaf_bytes_for_batch(table)
    if file.shard_manifest is None:  # version 1: the dataset's own log
        log = LogRef(file.log, dataset_dir / "log")
        return build_bundles(log, indices, leaves, checkpoint, anchor, manifest["dataset"])
    directory = logs / hashlib.sha256(file.log.encode()).hexdigest()[:16]
    log = shard_log(dataset_dir, file.shard_manifest, directory)
    section = anchor_section(manifest["dataset"], anchor)
    return build_shard_bundles(
        log, indices, leaves, manifest["shards"], checkpoint, section, manifest["dataset"]
    )


def _bundle_name(dataset: str, bundle: dict) -> str:
    """``<dataset>-leaf-<index>`` (version 1), ``<dataset>-<topic>.p<n>-leaf-<index>`` (2)."""
    shard = bundle["log"].partition("/")[2]
    return f"{dataset}{'-' + shard if shard else ''}-leaf-{bundle['leaf_index']:012d}.bundle.json"


def _matching_rows(dataset_dir: Path, files: list[dict], where: str) -> list[tuple[int, int]]:
    """(file index in the manifest, row number in the file) of every row matching ``where``."""
    if not files:
        return []
    paths = [str(dataset_dir / f["path"]) for f in files]
    index = {path: i for i, path in enumerate(paths)}
    sql = (
        "SELECT filename, file_row_number FROM "
        "read_parquet(?, filename = true, file_row_number = true) "
        f"WHERE ({where}) ORDER BY filename, file_row_number"
    )
    try:
        found = duckdb.connect().execute(sql, [paths]).fetchall()
    except duckdb.Error as error:
        message = str(error).splitlines()[0]
        raise ProveError(f"--where {where!r} is not a valid predicate: {message}") from None
    return sorted((index[name], row) for name, row in found)


def _by_file(matches: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for file_index, row in matches:
        grouped.setdefault(file_index, []).append(row)
    return grouped


def _recorded_anchor(data_dir: Path, manifest: dict) -> dict | None:
    """Where the runtime anchored this checkpoint: the anchor record beside its manifest, else
    the catalog (None if not anchored). A claim the bundle carries, never trusted."""
    layout = DataLayout(data_dir)
    size = manifest["checkpoint"]["tree_size"]
    record = layout.dataset_dir(manifest["dataset"]) / "checkpoints" / f"{size:012d}.anchor.json"
    if record.is_file():
        found = json.loads(record.read_text())
        return found if found.get("contract") else None
    if not layout.catalog.exists():
        return None
    log_id = manifest.get("log", manifest["dataset"])
    with Catalog(layout) as catalog:
        for checkpoint in catalog.checkpoints(log_id):
            if checkpoint["tree_size"] == manifest["checkpoint"]["tree_size"]:
                return checkpoint if checkpoint.get("contract") else None
    return None
