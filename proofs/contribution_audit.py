"""``rda verify --contribution NODE``: a node owner checks the rows their node is paid for.

On top of what plain ``rda verify`` checks (every row re-hashed to the root, manifest,
signature, identity, anchor on the pinned registry, and the log's history up to the registry's
``latest()``: ``proofs.audit``), it checks:

- ``contributions``: the published table is the one the (signed, anchored) manifest commits to
  (its SHA-256 and root) and is well formed;
- ``counts``: recounted from the published rows, which the root covers, every node's count is the
  table's; a node whose count differs is named with both numbers;
- ``node``: NODE's count, and its sum-tree path to the table's root (what a claim sends);
- ``asset``: when the dataset is a DataAsset token, the contract holds this checkpoint (at the
  manifest's size: the table must be of that checkpoint) with the same root and total, bound to
  this manifest's hash, for the pinned registry's dataset; for the newest checkpoint, sales must
  pay into it (``latestTreeSize``), else the check is not passed (INCOMPLETE). The
  token is the one the checkpoint's own manifest names (``asset``: signed and anchored with it),
  else the one the caller names (the publisher's ``data-assets.json``: checkpoints before the
  mint). A contract that does not answer as a DataAsset fails the check, never the verifier.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from proofs.anchor import dataset_key
from proofs.audit import audit_log
from proofs.contributions import (
    ContributionTable,
    differences,
    node_token_id,
    parse_table,
    recount,
    verify_path,
)
from proofs.manifest import latest_manifest, load_manifest, read_document
from proofs.shard_log import dataset_files
from proofs.trust import TrustRoot
from proofs.verdict import Check, Verdict

CONTRIBUTION_CHECKS = ("contributions", "counts", "node", "asset")


def verify_contribution(
    dataset_dir: Path,
    node_id: str,
    trust: TrustRoot,
    manifest_file: Path | None = None,
    asset: tuple[Any, int] | None = None,
) -> Verdict:
    """``asset``: (a ``proofs.data_asset.DataAsset``, token id) to check on chain, if minted."""
    newest = latest_manifest(dataset_dir)
    manifest_file = manifest_file or newest
    verdict = audit_log(dataset_dir, trust, manifest_file)
    verdict.required = (*verdict.required, *CONTRIBUTION_CHECKS)
    if manifest_file is None or verdict.first_failure is not None:
        return verdict
    manifest, digest = load_manifest(manifest_file)
    table, check = _published_table(dataset_dir, manifest)
    verdict.checks.append(check)
    if table is None:
        return verdict
    files = [dataset_dir / f.entry["path"] for f in dataset_files(dataset_dir, manifest)]
    counted = recount(manifest["dataset"], manifest["checkpoint"]["tree_size"], files)
    verdict.checks.append(_counts_check(table, counted))
    verdict.checks.append(_node_check(table, counted, node_id))
    is_newest = newest is not None and manifest_file.resolve() == newest.resolve()
    verdict.checks.append(_asset_check(asset, trust, manifest, table, digest, is_newest))
    return verdict


def _published_table(
    dataset_dir: Path, manifest: dict[str, Any]
) -> tuple[ContributionTable | None, Check]:
    section = manifest.get("contributions")
    if not isinstance(section, dict) or not isinstance(section.get("path"), str):
        return None, Check("contributions", None, "the manifest commits to no contribution table")
    path = dataset_dir / section["path"]
    if ".." in section["path"].split("/") or not path.is_file():
        return None, Check("contributions", False, f"{section['path']}: missing")
    try:
        raw = read_document(path)
        table = parse_table(raw)
    except ValueError as error:  # over the size limit, or not a table (ContributionError)
        return None, Check("contributions", False, f"{section['path']}: {error}")
    # A changed table is still recounted, so the verdict also names the nodes it changed.
    if hashlib.sha256(raw).hexdigest() != section.get("sha256"):
        changed = f"{section['path']} is not the table the manifest commits to"
        return table, Check("contributions", False, changed)
    if table.root().hex() != section.get("root"):
        return table, Check("contributions", False, "the table's root is not the manifest's")
    size = manifest["checkpoint"]["tree_size"]
    if (table.dataset, table.tree_size) != (manifest["dataset"], size):
        # Its own size is where the asset would be read: another checkpoint's root there.
        other = f"{table.dataset} at {table.tree_size}"
        return table, Check("contributions", False, f"the table is of {other}, not of {size}")
    detail = f"{len(table.rows_by_node)} nodes, {table.node_rows} rows, root {section['root']}"
    return table, Check("contributions", True, detail)


def _counts_check(table: ContributionTable, counted: ContributionTable) -> Check:
    wrong = differences(table, counted)
    if not wrong:
        return Check("counts", True, "every node's count is the published rows' count")
    shown = "; ".join(
        f"node {d['node_id']}: table says {d['published']}, the rows say {d['counted']}"
        for d in wrong[:10]
    )
    more = f" (and {len(wrong) - 10} more)" if len(wrong) > 10 else ""
    return Check("counts", False, f"tampered contribution table: {shown}{more}")


def _node_check(table: ContributionTable, counted: ContributionTable, node_id: str) -> Check:
    rows = counted.rows_by_node.get(node_id, 0)
    if node_id not in table.rows_by_node:
        return Check("node", rows == 0, f"node {node_id} is not in the table; rows say {rows}")
    listed, path = table.path(node_id)
    proven = verify_path(table.root(), table.node_rows, node_token_id(node_id), listed, path)
    if not proven or listed != rows:
        return Check("node", False, f"node {node_id}: table {listed}, rows {rows}")
    detail = f"node {node_id}: {rows} of {table.node_rows} rows, path of {len(path.siblings)}"
    return Check("node", True, detail)


def _asset_check(
    asset: tuple[Any, int] | None,
    trust: TrustRoot,
    manifest: dict[str, Any],
    table: ContributionTable,
    digest: bytes,
    is_newest: bool = False,
) -> Check:
    """``is_newest``: the checkpoint is the dataset's newest, the one sales must pay into."""
    named = _manifest_asset(manifest, trust)
    if isinstance(named, Check):
        return named
    asset = named or asset
    if asset is None:
        return Check("asset", None, "no DataAsset named: the on-chain root was not read")
    try:
        return _asset_on_chain(asset, trust, manifest, table, digest, is_newest)
    except Exception as error:  # a contract, or a node, that does not answer as a DataAsset
        contract, token = asset
        reason = f"{type(error).__name__}: {error}"[:200]
        return Check(
            "asset", False, f"asset {token} at {contract.address} cannot be read: {reason}"
        )


def _manifest_asset(manifest: dict[str, Any], trust: TrustRoot) -> tuple[Any, int] | Check | None:
    """The DataAsset token the manifest names, on the chain being read; None when it names
    none (or there is no chain to read); a failed check when it names one wrongly."""
    section = manifest.get("asset")
    if section is None or trust.w3 is None:
        return None
    fields = section if isinstance(section, dict) else {}
    chain_id, address, token = (
        fields.get("chain_id"),
        fields.get("contract"),
        fields.get("token_id"),
    )
    if not (_is_int(chain_id) and _is_int(token) and isinstance(address, str)):
        return Check(
            "asset", False, f"the manifest's asset section is malformed: {section!r}"[:200]
        )
    read = trust.identity.chain_id if trust.identity is not None else None
    if read is not None and chain_id != read:
        return Check("asset", False, f"the manifest names an asset on chain {chain_id}, not {read}")
    from proofs.data_asset import DataAsset

    try:
        return DataAsset(trust.w3, address), token
    except ValueError as error:
        return Check("asset", False, f"the manifest's asset contract {address!r}: {error}"[:200])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _asset_on_chain(
    asset: tuple[Any, int],
    trust: TrustRoot,
    manifest: dict[str, Any],
    table: ContributionTable,
    digest: bytes,
    is_newest: bool,
) -> Check:
    contract, token = asset
    if problem := _not_data_asset_code(contract):
        return Check("asset", False, f"asset {token} at {contract.address}: {problem}")
    info = contract.info(token)
    pinned = trust.registry.address if trust.registry is not None else None
    if info.dataset_id != dataset_key(manifest.get("log", manifest["dataset"])):
        return Check("asset", False, f"asset {token} is another dataset's token")
    if pinned is None or info.registry.lower() != pinned.lower():
        return Check("asset", False, f"asset {token} points at registry {info.registry}")
    size = manifest["checkpoint"]["tree_size"]
    committed = contract.checkpoint(token, size)
    if committed is None:
        return Check("asset", None, f"asset {token} has no table committed at {size}")
    if (committed.contribution_root, committed.node_rows) != (table.root(), table.node_rows):
        return Check("asset", False, f"asset {token} holds another root at {size}")
    if committed.manifest_hash != digest:
        return Check("asset", False, f"asset {token} binds another manifest at {size}")
    held = f"asset {token} holds this root, bound to this manifest"
    if info.latest_tree_size == size:
        return Check("asset", True, f"{held}; sales pay into it")
    paying = f"sales pay into checkpoint {info.latest_tree_size}"
    if is_newest:  # its rows are the ones the node's share is paid for, or the data is stale
        return Check("asset", None, f"{held}, but {paying}, which this data does not hold")
    return Check("asset", True, f"{held} (an earlier checkpoint: {paying} now)")


def _not_data_asset_code(contract: Any) -> str | None:
    """Why the contract is not a DataAsset, byte for byte (a look-alike could hold any root;
    ``proofs/contract_code.py``); None when it is."""
    from proofs.contract_code import code_problem
    from proofs.data_asset import load_artifact

    artifact = load_artifact(contract.artifact_path, contract.artifact_name)
    return code_problem(contract.w3.eth.get_code(contract.address), artifact)
