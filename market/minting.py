"""The publisher's side of data assets: deploy the contracts, mint a dataset, make offers.

``mint`` turns a dataset's latest anchored checkpoint into a DataAsset token owned by the
publisher's wallet (the registry's owner): the token commits to that checkpoint's manifest (read
from the registry by the contract itself), to the asset's terms document by hash, and to the
checkpoint's contribution table. Later checkpoints' tables are committed by ``rda run`` after
each anchor (``streaming.assets``). The contracts are deployed on first use and recorded, with
every token, in ``published/data-assets.json``.

The terms document (``published/<dataset>/asset-terms.json``, RFC 8785 JSON; its SHA-256 is the
token's ``termsHash``): ``{"asset_terms_version": 1, "dataset", "license", "node_share_bps",
"revenue": "…"}``, the node share being the part of every sale shared by the nodes' owners
pro rata to their rows in the licensed checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from market.licence_chain import DataLicences, TestStablecoin
from proofs.contributions import ContributionTable
from proofs.data_asset import DataAsset, Sent
from proofs.jcs import canonicalize
from proofs.node_owners import RegistryNodeOwners
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.assets import AssetRecord, contribution_table, read_table

TERMS_FILE = "asset-terms.json"
REVENUE_RULE = (
    "each sale: node_share_bps / 10000 of the price to the owners of the nodes whose rows are "
    "in the licensed checkpoint, pro rata to rows (floor; the remainder stays as dust), the "
    "rest to the asset's owner"
)


class MintError(ValueError):
    """The dataset cannot be minted (not anchored, already minted elsewhere…)."""


@dataclass(frozen=True)
class Minted:
    dataset: str
    token_id: int
    tree_size: int
    table: ContributionTable
    sent: Sent | None  # None: it was minted before


def terms_document(dataset: str, license_id: str, node_share_bps: int) -> bytes:
    if not 0 <= node_share_bps <= 10_000:
        raise MintError("the node share is 0 to 10000 basis points (0-100 %)")
    return canonicalize(
        {
            "asset_terms_version": 1,
            "dataset": dataset,
            "license": license_id,
            "node_share_bps": node_share_bps,
            "revenue": REVENUE_RULE,
        }
    )


def deploy_contracts(
    w3: Any, layout: DataLayout, registry: str, node_registry: str | None, sender: str | None = None
) -> AssetRecord:
    """The recorded contracts on this chain, or new ones (with a test stablecoin) whose licences
    pay the owners of ``node_registry``'s nodes (``proofs.node_owners``)."""
    record = AssetRecord.load(layout)
    chain_id = w3.eth.chain_id
    if record is not None and record.chain_id == chain_id and w3.eth.get_code(record.data_asset):
        return record
    if not node_registry:
        raise MintError(
            "--node-registry ADDRESS: the node registry (ERC-721) whose owners are paid; "
            "the publisher identity names none"
        )
    try:
        nodes = RegistryNodeOwners(w3, node_registry)
    except ValueError as error:
        raise MintError(f"--node-registry: {error}") from None
    asset = DataAsset.deploy(w3, sender=sender)
    licences = DataLicences.deploy(w3, asset.address, nodes.address, sender=sender)
    coin = TestStablecoin.deploy(w3, sender=sender)
    record = AssetRecord(
        chain_id, registry, asset.address, licences.address, coin.address, {}, nodes.address
    )
    record.save(layout)
    return record


def mint(
    w3: Any,
    layout: DataLayout,
    catalog: Catalog,
    dataset: str,
    record: AssetRecord,
    license_id: str,
    node_share_bps: int,
    sender: str | None = None,
) -> Minted:
    """Mint ``dataset`` at its latest anchored checkpoint (or return its existing token)."""
    anchored = [c for c in catalog.checkpoints(dataset) if c["contract"]]
    if not anchored:
        raise MintError(f"{dataset} has no anchored checkpoint to mint")
    latest = anchored[-1]
    if (latest["contract"] or "").lower() != record.registry.lower():
        raise MintError(f"{dataset} is anchored in {latest['contract']}, not {record.registry}")
    size = latest["tree_size"]
    previous = anchored[-2]["tree_size"] if len(anchored) > 1 else 0
    table = read_table(layout, dataset, size) or contribution_table(
        layout, catalog, dataset, size, previous
    )
    asset = DataAsset(w3, record.data_asset, sender)
    existing = asset.asset_of(record.registry, dataset)
    if existing is not None:
        record.tokens[dataset] = existing
        record.save(layout)
        return Minted(dataset, existing, size, table, None)
    terms = terms_document(dataset, license_id, node_share_bps)
    terms_path = layout.dataset_dir(dataset) / TERMS_FILE
    terms_path.write_bytes(terms)
    sent = asset.mint(
        record.registry,
        dataset,
        size,
        hashlib.sha256(terms).digest(),
        node_share_bps,
        table.root(),
        table.node_rows,
    )
    record.tokens[dataset] = int(sent.value)
    record.save(layout)
    return Minted(dataset, int(sent.value), size, table, sent)
