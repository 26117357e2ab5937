"""Proof bundles: one published row, provable on its own against an anchored checkpoint.

A bundle (JSON, docs/proof-format.md §10) carries the row, its leaf index, the RFC 9162 audit
path, the checkpoint (log id, tree size, root, manifest hash) and where the checkpoint is
anchored (chain id, contract, transaction). ``verify_bundle`` needs nothing else: the row is
re-canonicalized (RFC 8785) and hashed, the path is folded into the root, and, given a chain,
the root and manifest hash are read back with the view call ``getAnchor``.

Standard library only: the market builds bundles for query results and auditors verify them
without the pipeline installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from proofs.bundle_v2 import BUNDLE_V2_CHECKS, malformed_v2, shard_checks
from proofs.bundle_v2 import BUNDLE_VERSION as SHARDED_BUNDLE_VERSION
from proofs.device import device_check
from proofs.documents import MAX_DEPTH, nests_deeper
from proofs.jcs import canonicalize
from proofs.log import DatasetLog, LogRef
from proofs.merkle import HASH_SIZE, leaf_hash
from proofs.merkle_verify import verify_inclusion
from proofs.shards import HEAD_MEMBERS
from proofs.trust import Pin, TrustRoot
from proofs.verdict import BUNDLE_CHECKS, Check, Verdict

BUNDLE_VERSION = 1
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TX = re.compile(r"^0x[0-9a-fA-F]{64}$")


def build_bundles(
    log: DatasetLog | LogRef,
    leaf_indices: Sequence[int],
    rows: Sequence[bytes | Mapping[str, Any]],
    checkpoint: Mapping[str, Any],
    anchor_info: Mapping[str, Any] | None,
    dataset: str | None = None,
) -> list[dict[str, Any]]:
    """One bundle per row: ``rows[i]`` is leaf ``leaf_indices[i]`` of ``log``.

    ``rows`` are the published rows, either as their leaf bytes (``proofs.leaves``
    ``leaf_bytes_for_batch``) or as JSON objects (a leaf's bytes parsed back). ``checkpoint``
    has ``tree_size``, ``root`` and ``manifest_sha256`` (hex), as the driver records it;
    ``anchor_info`` has ``chain_id``, ``contract``, ``anchor_tx`` and ``anchor_block`` (None
    when not anchored). Raises ``ValueError`` when a row is not the leaf the log committed, or
    the checkpoint is not a size and root of this log: a bundle that would not verify is never
    written.
    """
    log = log if isinstance(log, DatasetLog) else DatasetLog(log)
    tree_size, root_hex = checkpoint["tree_size"], checkpoint["root"]
    if log.root(tree_size).hex() != root_hex:
        raise ValueError(f"log {log.log_id} has another root at size {tree_size}")
    if len(leaf_indices) != len(rows):
        raise ValueError(f"{len(leaf_indices)} leaf indices for {len(rows)} rows")
    committed_checkpoint = {
        "log": log.log_id,
        "tree_size": tree_size,
        "root": root_hex,
        "manifest_sha256": checkpoint["manifest_sha256"],
    }
    anchor = anchor_section(log.log_id, anchor_info)
    dataset = dataset or log.log_id.split("/", 1)[0]
    return [
        row_bundle(log, dataset, index, row, committed_checkpoint, anchor)
        for index, row in zip(leaf_indices, rows, strict=True)
    ]


def row_bundle(
    log: DatasetLog,
    dataset: str,
    index: int,
    row: bytes | Mapping[str, Any],
    checkpoint: dict[str, Any],
    anchor: dict[str, Any] | None,
) -> dict[str, Any]:
    """The bundle of one row, after checking it is the leaf the log committed at ``index``."""
    data = row if isinstance(row, bytes) else canonicalize(dict(row))
    digest = leaf_hash(data)
    if not 0 <= index < checkpoint["tree_size"] or log.leaf_hashes(index, index + 1)[0] != digest:
        raise ValueError(f"the row given for leaf {index} is not the leaf log {log.log_id} holds")
    return {
        "bundle_version": BUNDLE_VERSION,
        "dataset": dataset,
        "log": log.log_id,
        "row": json.loads(data),
        "leaf_index": index,
        "leaf_hash": digest.hex(),
        "audit_path": [h.hex() for h in log.inclusion_proof(index, checkpoint["tree_size"])],
        "checkpoint": checkpoint,
        "anchor": anchor,
    }


def anchor_section(log_id: str, info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not info or info.get("contract") is None:
        return None
    return {
        "chain_id": info["chain_id"],
        "contract": info["contract"],
        "dataset_id": hashlib.sha256(log_id.encode("utf-8")).hexdigest(),
        "transaction": info.get("anchor_tx"),
        "block": info.get("anchor_block"),
    }


SHARD_HEAD_AS_ROW = (
    "the row is a shard head (root, shard, tree_size), not a published row: no published row "
    "has exactly these members"
)


def verify_bundle(bundle: Mapping[str, Any], trust: TrustRoot | None = None) -> Verdict:
    """Verify one bundle: row → leaf hash → audit path → checkpoint root → anchor on the registry
    of the pinned publisher identity (``trust``; without it the verdict is at best INCOMPLETE).

    The registry and chain the bundle names are never used to look the anchor up: they must be
    the pinned identity's, or the bundle is NOT VERIFIED.
    """
    trust = trust or TrustRoot(Pin())
    problem = _malformed(bundle)
    if problem is not None:
        verdict = Verdict(str(_get(bundle, "dataset")), -1, "", required=BUNDLE_CHECKS)
        verdict.checks.append(Check("bundle", False, problem))
        return verdict
    checkpoint, version = bundle["checkpoint"], bundle["bundle_version"]
    verdict = Verdict(bundle["dataset"], checkpoint["tree_size"], checkpoint["root"])
    verdict.log = checkpoint["log"]
    verdict.required = BUNDLE_CHECKS if version == 1 else BUNDLE_V2_CHECKS
    verdict.checks.append(Check("bundle", True, f"well-formed (version {version})"))
    index = bundle["leaf_index"]
    if isinstance(bundle["row"], Mapping) and set(bundle["row"]) == set(HEAD_MEMBERS):
        # A sharded checkpoint's leaves are its shard heads: one would fold to its root as a
        # "row" wherever the row count and the head count give the same path (§5).
        verdict.checks.append(Check("leaf", False, f"leaf {index}: {SHARD_HEAD_AS_ROW}"))
        return verdict
    try:
        digest = leaf_hash(canonicalize(_as_doubles(bundle["row"])))
    except ValueError as error:
        verdict.checks.append(Check("leaf", False, f"leaf {index}: row is not I-JSON: {error}"))
        return verdict
    if digest.hex() != bundle["leaf_hash"]:
        verdict.checks.append(
            Check("leaf", False, f"leaf {index}: the row does not hash to leaf_hash")
        )
        return verdict
    verdict.checks.append(Check("leaf", True, f"leaf {index}: the row hashes to leaf_hash"))
    if version == 2:  # row -> shard root -> shard head -> dataset root
        verdict.checks += shard_checks(bundle, digest)
        if verdict.first_failure is not None:
            return verdict
        verdict.checks += [trust.identity_check(), _anchor_check(bundle, trust)]
        device = device_check(bundle["row"], trust)  # the node's signature of the row (§17)
        if device is not None:
            verdict.checks.append(device)
        return verdict
    path = [bytes.fromhex(h) for h in bundle["audit_path"]]
    root = bytes.fromhex(checkpoint["root"])
    if not verify_inclusion(digest, index, checkpoint["tree_size"], path, root):
        verdict.checks.append(
            Check(
                "inclusion",
                False,
                f"leaf {index}: the audit path does not lead to the root of the tree of size "
                f"{checkpoint['tree_size']}",
            )
        )
        return verdict
    verdict.checks.append(
        Check("inclusion", True, f"leaf {index} is in the tree of size {checkpoint['tree_size']}")
    )
    identity = trust.identity_check()
    verdict.checks.append(identity)
    verdict.checks.append(_anchor_check(bundle, trust))
    device = device_check(bundle["row"], trust)  # the node's signature of the row (§16)
    if device is not None:
        verdict.checks.append(device)
    return verdict


def _anchor_check(bundle: Mapping[str, Any], trust: TrustRoot) -> Check:
    """The checkpoint, as anchored on the pinned registry; the bundle's own anchor section may
    only name that registry and chain."""
    checkpoint, named = bundle["checkpoint"], bundle.get("anchor")  # a hint: null or missing
    identity = trust.identity
    if named is not None and identity is not None:
        contract = named["contract"].lower()
        if (named["chain_id"], contract) != (identity.chain_id, identity.registry.lower()):
            return Check(
                "anchor",
                False,
                f"the bundle names registry {named['contract']} on chain {named['chain_id']}; "
                f"the pinned publisher's registry is {identity.registry} on chain "
                f"{identity.chain_id}",
            )
    check, anchor = trust.anchor_check(
        checkpoint["log"],
        checkpoint["tree_size"],
        checkpoint["root"],
        checkpoint["manifest_sha256"],
    )
    if not check.ok or named is None or anchor is None:
        return check
    if named.get("block") is not None and named["block"] != anchor.block_number:
        return Check(
            "anchor", False, f"anchored in block {anchor.block_number}, not {named['block']}"
        )
    if named.get("transaction") is not None:
        problem = trust.transaction_problem(named["transaction"], anchor.block_number)
        if problem is not None:
            return problem
    return check


def _as_doubles(value: Any) -> Any:
    """JSON numbers are IEEE doubles (RFC 8785): a double of 2**53 or more is written in the
    leaf without a fraction (``36765266496611350``) and parses as a Python int; read it back as
    the nearest double, as RFC 8785 does (if that is not the leaf's value, the hash says so)."""
    if isinstance(value, Mapping):
        return {key: _as_doubles(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_doubles(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        try:
            return float(value)
        except OverflowError:  # beyond any double: no leaf holds it (the I-JSON range)
            raise ValueError(
                f"the row holds an integer of {len(str(abs(value)))} digits, "
                "beyond any JSON number a leaf holds"
            ) from None
    return value


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None


def _malformed(bundle: Any) -> str | None:
    """What makes ``bundle`` unusable, or None: types and hex lengths, nothing cryptographic."""
    if not isinstance(bundle, Mapping):
        return "a bundle must be a JSON object"
    version = bundle.get("bundle_version")
    if version not in (BUNDLE_VERSION, SHARDED_BUNDLE_VERSION) or isinstance(version, bool):
        return f"bundle_version must be {BUNDLE_VERSION} or {SHARDED_BUNDLE_VERSION}"
    checkpoint = bundle.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        return "checkpoint must be an object"
    for key, value in (
        ("dataset", bundle.get("dataset")),
        ("checkpoint.log", checkpoint.get("log")),
    ):
        if not isinstance(value, str) or not value:
            return f"{key} must be a non-empty string"
    log = checkpoint["log"]
    if version == SHARDED_BUNDLE_VERSION:
        problem = malformed_v2(bundle)
        if problem is not None:
            return problem
    elif bundle.get("log", log) != log:
        return "log must be checkpoint.log"
    elif log != bundle["dataset"] and not log.startswith(bundle["dataset"] + "/"):
        return "checkpoint.log must be the dataset id, or a shard of it (dataset/shard)"
    for key, value in (
        ("leaf_index", bundle.get("leaf_index")),
        ("checkpoint.tree_size", checkpoint.get("tree_size")),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be a non-negative integer"
    if not isinstance(bundle.get("row"), Mapping):
        return "row must be a JSON object"
    if nests_deeper(bundle["row"]):
        return f"row nests deeper than {MAX_DEPTH} levels"
    hashes = [
        ("leaf_hash", bundle.get("leaf_hash")),
        ("checkpoint.root", checkpoint.get("root")),
        ("checkpoint.manifest_sha256", checkpoint.get("manifest_sha256")),
    ]
    path = bundle.get("audit_path")
    if not isinstance(path, list):
        return "audit_path must be a list of hashes"
    hashes += [(f"audit_path[{i}]", h) for i, h in enumerate(path)]
    for key, value in hashes:
        if not _is_hex_hash(value):
            return f"{key} must be {2 * HASH_SIZE} lowercase hex digits"
    return _malformed_anchor(bundle.get("anchor"), checkpoint["log"])


def _malformed_anchor(anchor: Any, log: str) -> str | None:
    """What is wrong with the bundle's ``anchor`` section (null, or where it was anchored)."""
    if anchor is None:
        return None
    if not isinstance(anchor, Mapping):
        return "anchor must be null or an object"
    chain_id, block = anchor.get("chain_id"), anchor.get("block")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        return "anchor.chain_id must be a positive integer"
    if not isinstance(anchor.get("contract"), str) or not _ADDRESS.match(anchor["contract"]):
        return "anchor.contract must be an address: 0x and 40 hex digits"
    if anchor.get("dataset_id") != hashlib.sha256(log.encode("utf-8")).hexdigest():
        return "anchor.dataset_id must be SHA-256 of checkpoint.log, in lowercase hex"
    transaction = anchor.get("transaction")
    if transaction is not None and (not isinstance(transaction, str) or not _TX.match(transaction)):
        return "anchor.transaction must be null or 0x and 64 hex digits"
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 0):
        return "anchor.block must be null or a block number"
    return None


def _is_hex_hash(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 2 * HASH_SIZE
        and all(c in "0123456789abcdef" for c in value)
    )
