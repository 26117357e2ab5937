"""A shard's Merkle log, rebuilt where proofs are needed, from what its manifests list.

Writers keep no mutable log on shared storage: a shard grows by immutable objects only (its
Parquet files, a leaf file beside each, its manifests), and a worker continues a shard from the
frontier in its head manifest. Whoever needs inclusion or consistency proofs (an auditor's
history check, ``rda prove``, a buyer's query proofs) rebuilds the stored log of
``proofs.log`` in a directory of its own: the leaf hashes come from each file's ``.leaves``
(32 bytes per row, in row order; written by the pipeline), or, when one is missing or does not
hold that many hashes, from the rows themselves. The result is checked against the head's root:
nothing in a leaf file is trusted. A chained shard manifest (version 3) lists only the files its
checkpoint adds: the earlier ones are read through its ``previous`` chain (proofs/shard_chain.py).

The legacy shard (the dataset's own version-1 log) keeps its stored log, ``<dataset>/log``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proofs.documents import open_untrusted, parse_document
from proofs.log import DatasetLog
from proofs.manifest import read_document
from proofs.merkle import HASH_SIZE
from proofs.shard_chain import (
    ChainMemo,
    LoadManifest,
    chain,
    chain_files,
    listed_from,
    shard_files,
)
from proofs.shards import shard_folder

if TYPE_CHECKING:
    import pyarrow as pa

LEAVES_SUFFIX = ".leaves"
_SLICE_LEAVES = 1 << 16  # leaves read from a leaf file at once (2 MiB)
_APPEND_LEAVES = 1 << 20  # leaves held before they are written to the log being rebuilt


def leaves_path(parquet_path: str) -> str:
    """Where a file's leaf hashes are stored: beside it, ``<name>.leaves``."""
    return parquet_path.removesuffix(".parquet") + LEAVES_SUFFIX


def write_leaf_file(parquet_file: Path, rows: pa.RecordBatch | pa.Table) -> None:
    """Beside a published Parquet file, its rows' leaf hashes (``<name>.leaves``, 32 bytes per
    row, in row order): a shard's log is rebuilt from them, and each row is hashed once."""
    from proofs.leaves import leaf_hashes_for_batch

    write_leaf_hashes(parquet_file, leaf_hashes_for_batch(rows))


def write_leaf_hashes(parquet_file: Path, hashes: list[bytes]) -> None:
    """``write_leaf_file`` with the rows' leaf hashes already computed."""
    target = parquet_file.with_name(leaves_path(parquet_file.name))
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(b"".join(hashes))
    partial.replace(target)


def file_leaves(dataset_dir: Path, entry: dict[str, Any]) -> list[bytes]:
    """The leaf hashes of one ``files[]`` entry, all of them (``file_leaf_slices``)."""
    return [leaf for leaves in file_leaf_slices(dataset_dir, entry) for leaf in leaves]


def file_leaf_slices(dataset_dir: Path, entry: dict[str, Any]) -> Iterator[list[bytes]]:
    """The leaf hashes of one ``files[]`` entry, a slice at a time: from its leaf file, else
    from its rows. A slice at a time, because the entry (and the file) come from an untrusted
    folder: a sparse leaf file of 8 GiB sized for the rows a planted manifest claims was read
    whole, and a small Parquet file can hold billions of rows."""
    stored = dataset_dir / leaves_path(entry["path"])
    try:  # read only when it has the size the rows give it (untrusted: never loaded blindly)
        sized = stored.is_file() and stored.stat().st_size == entry["rows"] * HASH_SIZE
    except OSError:
        sized = False
    if sized:
        with open_untrusted(stored) as handle:
            while data := handle.read(_SLICE_LEAVES * HASH_SIZE):
                yield [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return
    from proofs.leaves import open_parquet, parquet_leaf_hashes

    with open_parquet(dataset_dir / entry["path"]) as parquet:
        rows = parquet.metadata.num_rows  # before its rows: a small file may hold billions
        if rows != entry["rows"]:
            message = f"{entry['path']} holds {rows} rows, its manifest says {entry['rows']}"
            raise ValueError(message)
        yield from parquet_leaf_hashes(parquet)


def manifest_loader(dataset_dir: Path) -> LoadManifest:
    """Reads a manifest of the dataset folder that must hash to a given SHA-256 (a link of a
    shard's chain): ``ValueError`` when its bytes are not those."""

    def load(relative: str, digest: str) -> dict[str, Any]:
        data = read_document(dataset_dir / relative)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"{relative} is not the manifest {digest[:16]}… its successor names")
        return parse_document(data)

    return load


def shard_log(dataset_dir: Path, shard_manifest: dict[str, Any], directory: Path) -> DatasetLog:
    """The shard's log at its manifest's checkpoint, in ``directory`` (reused when it already
    holds this checkpoint, or a later one; grown when it holds an earlier one of the chain).
    ``ValueError`` when the leaves do not give the manifest's root."""
    shard = shard_manifest.get("log", shard_manifest["dataset"])
    size = shard_manifest["checkpoint"]["tree_size"]
    root = shard_manifest["checkpoint"]["root"]
    if not shard_folder(shard):  # the legacy shard: the dataset's own stored log
        log = DatasetLog(dataset_dir / "log", shard)
        if log.size < size or log.root(size).hex() != root:
            raise ValueError(f"the stored log of {shard} does not hold its checkpoint {size}")
        return log
    log = DatasetLog(directory, shard)
    if log.size >= size and log.root(size).hex() == root:
        return log
    load = manifest_loader(dataset_dir)
    links = chain(shard, shard_manifest, load, since=log.size if log.size < size else 0)
    start = listed_from(links[0])  # 0, or the stored log's size if it holds an earlier link
    if start and not (start == log.size and log.root(start).hex() == links[0]["previous"]["root"]):
        links, start = chain(shard, links[0], load) + links[1:], 0  # the links before, too
    hashes: list[bytes] = []  # appended a bounded number at a time
    for entry in chain_files(links):
        for leaves in file_leaf_slices(dataset_dir, entry):
            hashes += leaves
            if len(hashes) >= _APPEND_LEAVES:
                start, _ = log.append_at(start, hashes)
                hashes = []
    log.append_at(start, hashes)
    if log.size != size or log.root().hex() != root:
        raise ValueError(f"the leaves of {shard} do not give its root at size {size}")
    return log


def dataset_files(
    dataset_dir: Path, manifest: dict[str, Any], memo: ChainMemo | None = None
) -> list[DatasetFile]:
    """Every file of a dataset checkpoint in its order — the shards in the checkpoint's order,
    each shard's files in leaf order — with each file's first row's position in that order.

    A version-1 manifest's own files; a version-2 one's shard manifests (and their chains),
    read from the dataset folder and checked against the heads' hashes (``ValueError`` if one
    is not the head's). ``memo``: the shards' files read before, for a reader that reads the same
    growing dataset again and again."""
    if manifest.get("kind") != "dataset":
        log = manifest.get("log", manifest["dataset"])
        return [DatasetFile(log, None, f, f["leaf_start"]) for f in manifest["files"]]
    found, offset, load = [], 0, manifest_loader(dataset_dir)
    for head in manifest["shards"]:
        data = read_document(dataset_dir / head["manifest_path"])
        if hashlib.sha256(data).hexdigest() != head["manifest_sha256"]:
            raise ValueError(
                f"{head['manifest_path']} is not the manifest of {head['shard']}'s head"
            )
        shard_manifest = parse_document(data)
        shard, digest = head["shard"], head["manifest_sha256"]
        if memo is None:
            entries = shard_files(shard, shard_manifest, load)
        else:
            entries = memo.shard_files(str(dataset_dir), shard, digest, shard_manifest, load)
        for entry in entries:
            found.append(
                DatasetFile(head["shard"], shard_manifest, entry, offset + entry["leaf_start"])
            )
        offset += head["tree_size"]
    return found


@dataclass(frozen=True)
class DatasetFile:
    """A published file as a dataset checkpoint orders it."""

    log: str  # the log its rows are leaves of: a shard id, or the dataset's own log
    shard_manifest: dict[str, Any] | None  # None for a version-1 checkpoint
    entry: dict[str, Any]  # its ``files[]`` entry in its log's manifest
    position: int  # its first row's position in the checkpoint's order
