"""Data assets in the pipeline: the contribution table of every checkpoint, and its commitment.

For each checkpoint the commit step writes the dataset's contribution table (node id -> rows in
the checkpoint, ``proofs.contributions``) beside its manifest, and the manifest carries its root
(``contributions``) and, once the dataset is minted as a DataAsset, the token (``asset``), so the
anchor of the checkpoint commits to both. After the batch is anchored, the roots of minted
datasets are committed on chain in one ``DataAsset.commitContributions`` transaction
(``committer``); the licences sold from then on share their node part by that table.

Which datasets are minted, and where, is ``published/data-assets.json`` (``AssetRecord``),
written by ``rda market mint``: chain id, the DataAsset and DataLicences contracts, the
registry, the node registry whose owners are paid (``proofs.node_owners``), and each dataset's
token id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs.contributions import ContributionError, ContributionTable, parse_table, recount
from proofs.contributions import table_path as contribution_path
from proofs.data_asset import ContractRefused, DataAsset
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.errors import SettingsError

log = logging.getLogger("rda.run")
RECORD_FILE = "data-assets.json"
_REQUIRED = ("registry", "data_asset")


class AssetRecordDamaged(SettingsError):
    """``published/data-assets.json`` is there but is not a record: which datasets are minted,
    and where, is unknown, so nothing is published, minted or sold as if none were."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Contribution tables this process made, by the SHA-256 of their bytes: the next checkpoint of
# the dataset starts from its previous one's, named by hash in that checkpoint's manifest.
_KNOWN_TABLES: dict[str, ContributionTable] = {}


@dataclass
class AssetRecord:
    """``published/data-assets.json``: where the data directory's datasets are tokens."""

    chain_id: int
    registry: str
    data_asset: str
    data_licences: str | None = None
    stablecoin: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)  # dataset -> DataAsset token id
    node_registry: str | None = None  # the ERC-721 whose node owners DataLicences pays

    @staticmethod
    def path(layout: DataLayout) -> Path:
        return layout.published / RECORD_FILE

    @classmethod
    def load(cls, layout: DataLayout) -> AssetRecord | None:
        """The record; None when the data directory has none (nothing minted yet).

        ``AssetRecordDamaged`` when the file is there but is not a record. Taken for "none", it
        would have checkpoints of minted datasets anchored without their asset, their roots
        never committed, and a new mint record new contracts over the old ones: each for good.
        """
        path = cls.path(layout)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return cls.from_document(json.loads(raw))
        except (ValueError, TypeError) as error:  # not JSON, not UTF-8, fields amiss
            raise AssetRecordDamaged(
                f"{path} cannot be read ({error}): it records which datasets are tokens, and "
                "on which contracts; restore it from a backup of the data directory"
            ) from None

    @classmethod
    def from_document(cls, doc: Any) -> AssetRecord:
        """The record a parsed ``data-assets.json`` holds; ``ValueError`` or ``TypeError``
        (a field missing or unknown) if it is not one."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        record = cls(**doc)
        if not _is_int(record.chain_id):
            raise ValueError(f"chain_id {record.chain_id!r} is not an integer")
        for name in ("registry", "data_asset", "data_licences", "stablecoin", "node_registry"):
            value = getattr(record, name)
            if not isinstance(value, str) and (value is not None or name in _REQUIRED):
                raise ValueError(f"{name} {value!r} is not an address")
        tokens = record.tokens
        if not isinstance(tokens, dict) or not all(
            isinstance(dataset, str) and _is_int(token) for dataset, token in tokens.items()
        ):
            raise ValueError("tokens must map dataset names to token ids")
        return record

    def save(self, layout: DataLayout) -> None:
        path = self.path(layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)


def contribution_table(
    layout: DataLayout, catalog: Catalog, dataset: str, tree_size: int, previous_size: int
) -> ContributionTable:
    """The table at ``tree_size``: the previous checkpoint's plus the rows after it (or all
    rows counted, when the previous table is missing)."""
    files = [f for f in catalog.dataset_files(dataset) if f["leaf_start"] < tree_size]
    previous = _read_table(contribution_path(layout.dataset_dir(dataset), previous_size))
    if previous_size and previous is not None:
        added = recount(
            dataset,
            tree_size,
            [layout.root / f["path"] for f in files if f["leaf_start"] >= previous_size],
        )
        counts = Counter(previous.rows_by_node) + Counter(added.rows_by_node)
        return ContributionTable(dataset, tree_size, dict(counts))
    return recount(dataset, tree_size, [layout.root / f["path"] for f in files])


def checkpoint_sections(
    store: Any,
    work: DataLayout,
    dataset: str,
    tree_size: int,
    previous_size: int,
    added: list[dict[str, Any]],
    previous_sha256: str | None = None,
) -> dict[str, Any]:
    """For a dataset checkpoint over shards: its table (the previous checkpoint's plus the rows
    of ``added``, the files it adds, paths from the work root) written and published to
    ``store``; the manifest sections naming it (and the asset, if any). ``previous_sha256``:
    the previous table's hash as its manifest names it (a table this process made is then not
    read back)."""
    previous = None
    if previous_size:
        previous = _KNOWN_TABLES.get(previous_sha256 or "")
        previous = previous or _shared_table(store, dataset, previous_size, previous_sha256)
    if previous_size and previous is None:  # a table is never made up from part of the rows
        log.warning(
            "%s: no contribution table at checkpoint %d; none at %d either",
            dataset, previous_size, tree_size,
        )  # fmt: skip
        return {}
    counted = recount(dataset, tree_size, [work.root / f["path"] for f in added])
    counts = Counter(previous.rows_by_node if previous else {}) + Counter(counted.rows_by_node)
    table = ContributionTable(dataset, tree_size, dict(counts))
    relative = table_relative_path(tree_size)
    raw = table.to_bytes()
    path = work.dataset_dir(dataset) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(raw)
    os.replace(partial, path)
    digest = hashlib.sha256(raw).hexdigest()
    if store.local is None or Path(store.local).absolute() != work.root:
        # Under its hash until its checkpoint is anchored (``promote_table``): a worker whose
        # checkpoint of the same size loses the anchor would otherwise overwrite the winner's.
        store.put_file(path, f"published/{dataset}/{pending_table_path(digest)}")
    _KNOWN_TABLES[digest] = table
    while len(_KNOWN_TABLES) > 64:  # a few per dataset: the previous checkpoint's is the one used
        _KNOWN_TABLES.pop(next(iter(_KNOWN_TABLES)))
    sections: dict[str, Any] = {
        "contributions": {
            "path": relative,
            "sha256": digest,
            "root": table.root().hex(),
            "node_rows": table.node_rows,
            "nodes": len(table.rows_by_node),
        }
    }
    return {**sections, **_asset_section(work, dataset)}


def _shared_table(
    store: Any, dataset: str, tree_size: int, sha256: str | None = None
) -> ContributionTable | None:
    """The table at ``tree_size`` as published in the shared store (another worker may have
    written it), or None; given ``sha256`` (its checkpoint's manifest names it), only that one:
    under the size's name once its checkpoint is anchored and promoted, under its hash before.
    A table with other bytes (a file damaged, or written by an older version, in which two
    workers racing at one size both wrote the size's name) is never built on."""
    relative = table_relative_path(tree_size)
    places = [relative] if sha256 is None else [relative, pending_table_path(sha256)]
    for place in places:  # anchored and promoted, else still under its hash
        try:
            raw = store.read_bytes(f"published/{dataset}/{place}")
            if sha256 is None or hashlib.sha256(raw).hexdigest() == sha256:
                return parse_table(raw)
        except (OSError, ContributionError, KeyError):
            continue
    if sha256 is not None:
        log.warning(
            "%s: no contribution table at checkpoint %d is the one its manifest names",
            dataset, tree_size,
        )  # fmt: skip
    return None


def table_relative_path(tree_size: int) -> str:
    """An anchored checkpoint's contribution table (the path its manifest names), relative to
    the dataset folder."""
    return contribution_path(Path(""), tree_size).as_posix()


def pending_table_path(sha256: str) -> str:
    """Where a shared store keeps a contribution table until its checkpoint is anchored,
    relative to the dataset folder (beside the pending manifests)."""
    return f"checkpoints/pending/{sha256}.contributions.json"


def promote_table(store: Any, dataset: str, tree_size: int, sha256: str | None) -> None:
    """Give an anchored checkpoint's contribution table its final name in ``store`` (the one
    its manifest names); nothing to do when it has none, or it is there already."""
    if sha256 is None:
        return
    pending = f"published/{dataset}/{pending_table_path(sha256)}"
    try:
        raw = store.read_bytes(pending)
    except FileNotFoundError:
        return
    store.write_bytes(f"published/{dataset}/{table_relative_path(tree_size)}", raw)
    store.delete(pending)


def _asset_section(work: DataLayout, dataset: str) -> dict[str, Any]:
    """``{"asset": …}`` once the dataset is minted as a DataAsset, else nothing."""
    record = AssetRecord.load(work)
    if record is None or dataset not in record.tokens:
        return {}
    token = {"chain_id": record.chain_id, "contract": record.data_asset}
    return {"asset": {**token, "token_id": record.tokens[dataset]}}


def read_table(layout: DataLayout, dataset: str, tree_size: int) -> ContributionTable | None:
    return _read_table(contribution_path(layout.dataset_dir(dataset), tree_size))


def _read_table(path: Path) -> ContributionTable | None:
    try:
        return parse_table(path.read_bytes())
    except (OSError, ContributionError):
        return None


def committer(chain: Any, layout: DataLayout) -> Callable[[list[dict]], None]:
    """After a batch is anchored: commit the contribution roots of its minted datasets."""

    def after_anchor(checkpoints: list[dict]) -> None:
        record = AssetRecord.load(layout)
        if record is None or record.chain_id != chain.chain_id:
            return
        entries = commit_entries(
            layout, record, checkpoints, DataAsset(chain.registry.w3, record.data_asset)
        )
        if not entries:
            return
        asset = DataAsset(chain.registry.w3, record.data_asset, chain.registry.sender)
        try:
            sent = asset.commit_contributions(entries)
        except (ContractRefused, ValueError) as error:  # the anchors stand; say why not
            log.warning("contribution roots not committed: %s", error)
            return
        log.info(
            "committed %d contribution roots",
            len(entries),
            extra={"event": "contributions", "tx": sent.tx_hash, "gas_used": sent.gas_used},
        )

    return after_anchor


def commit_entries(
    layout: DataLayout, record: AssetRecord, checkpoints: list[dict], asset: DataAsset
) -> list[tuple[int, int, bytes, int]]:
    """(token id, tree size, root, node rows) for each checkpoint newer than its asset's."""
    entries = []
    for checkpoint in sorted(checkpoints, key=lambda c: (c["dataset"], c["tree_size"])):
        token = record.tokens.get(checkpoint["dataset"])
        if token is None:
            continue
        if asset.info(token).latest_tree_size >= checkpoint["tree_size"]:
            continue
        table = read_table(layout, checkpoint["dataset"], checkpoint["tree_size"])
        if table is None:
            log.warning(
                "no contribution table for %s at %d", checkpoint["dataset"], checkpoint["tree_size"]
            )
            continue
        entries.append((token, table.tree_size, table.root(), table.node_rows))
    return entries
