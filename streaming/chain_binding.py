"""A data directory and the chain it anchors on: identity, resets, and re-anchoring.

At ``rda run`` start (``bind_data_dir``) the chain must be the one the data directory's
checkpoints are anchored on: the same chain id and registry, still holding the latest anchored
checkpoint of every dataset. Then the publisher identity document (``proofs.identity``: chain,
registry, owner, the data directory's signing key) is published in the registry if it is not
there yet, and written to ``published/publisher-identity.json``. Before each batch is anchored
(``ChainContext.before_anchor``) the chain's genesis block and bound identity are checked again,
and the registry itself refuses a checkpoint whose previous anchor it does not hold.

A reset or a different chain stops the run (``ChainChanged``, one ``rda: error:`` line) and
says what to do: point at the original chain, or ``rda anchor --reanchor`` to anchor the
existing checkpoints, in order, on the new chain (``reanchor``). The embedded EVM lives inside
one process, so on it every start re-anchors the earlier checkpoints by itself (logged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.chain import redacted_url
from proofs.anchor import AnchorRegistry
from proofs.history import log_checkpoints
from proofs.identity import (
    FILE_NAME,
    IdentityError,
    PublisherIdentity,
    build_identity,
    key_entry,
    parse_identity,
    read_identity_file,
)
from proofs.log import DatasetLog
from proofs.shards import heads_root
from proofs.signing import PublisherKey, publisher_key
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.assets import committer
from streaming.chain import ChainChanged, ChainContext
from streaming.errors import SettingsError
from streaming.keys import shared_keys
from streaming.store import Workspace, as_workspace, writing

log = logging.getLogger("rda.run")
REANCHOR_HINT = (
    "point --rpc-url/--registry at the chain that holds them, or run "
    "`rda anchor --reanchor --data-dir {data_dir}` to anchor the existing checkpoints on this "
    "chain (docs/pipeline.md, 'When the chain is reset')"
)


class IdentityDamaged(SettingsError):
    """``published/publisher-identity.json`` is there but is not a valid document: the keys it
    lists (with their validity) cannot be told, so no identity is built as if there were none."""


@dataclass(frozen=True)
class Anchored:
    """A dataset's latest checkpoint as the catalog recorded its anchor."""

    dataset: str
    tree_size: int
    root: str
    manifest_sha256: str
    chain_id: int | None
    contract: str | None


def bind(chain: ChainContext, place: Workspace | Path) -> dict:
    """``bind_data_dir`` for a worker's workspace (what ``rda run`` calls): the data directory's
    keys first (shared by its workers), and the identity document published in the store."""
    space = as_workspace(place)
    shared_keys(space)
    with writing(space) as store:
        done = bind_data_dir(chain, space.work, store.catalog)
    identity = f"published/{FILE_NAME}"
    if space.separate and (space.work.root / identity).exists():
        space.store.put_file(space.work.root / identity, identity)
    return done


def bind_data_dir(chain: ChainContext, layout: DataLayout, catalog: Catalog) -> dict:
    """Check the chain against the data directory, publish the identity, arm the guard.

    Returns what was done: ``{"identity": sha256 hex, "published": bool, "reanchored": n}``.
    """
    if chain.registry.version < 2:
        raise ChainChanged(
            f"registry {chain.contract} is a version-1 AnchorRegistry: it cannot hold the "
            "publisher identity nor link anchors; run `rda anchor --reanchor --data-dir "
            f"{layout.root}` to anchor every checkpoint in a new registry"
        )
    latest = _latest_anchored(catalog)
    problem = _chain_problem(chain, layout, latest)
    reanchored = 0
    if problem is not None:
        if chain.kind != "embedded":
            raise ChainChanged(f"{problem}; {REANCHOR_HINT.format(data_dir=layout.root)}")
        # The embedded chain is new in every process: carry the anchors over, and say so.
        reanchored = len(reanchor(chain, layout, catalog))
        log.info(
            "embedded chain: re-anchored %d earlier checkpoints (%s)",
            reanchored,
            problem,
            extra={"event": "reanchor", "checkpoints": reanchored},
        )
    published = publish_identity(chain, layout)
    chain.after_anchor = committer(chain, layout)
    if chain.kind != "embedded":
        chain.before_anchor = _guard(chain, layout)
    digest = hashlib.sha256(chain.identity or b"").hexdigest()
    return {"identity": digest, "published": published, "reanchored": reanchored}


def publish_identity(chain: ChainContext, layout: DataLayout) -> bool:
    """Publish the data directory's identity in the registry unless it is there; True if sent.

    A registry bound to another identity that lists this directory's key (another worker of
    the same publisher) is adopted, unless it names another node registry than this run checks
    device signatures against (then this run's replaces it); one bound to another publisher
    stops the run.
    """
    signer = publisher_key(layout.root)
    raw = identity_document(chain, layout, signer)
    bound = chain.registry.identity_hash()
    sent = False
    if bound is None:
        chain.registry.publish_identity(raw)
        sent = True
    elif bound != hashlib.sha256(raw).digest():
        adopted = _adoptable(chain, signer)
        nodes = parse_identity(raw).node_registry
        if nodes is not None and parse_identity(adopted).node_registry != nodes:
            chain.registry.publish_identity(raw)
            sent = True
        else:
            raw = adopted
    _write_identity(layout, raw)
    chain.identity = raw
    return sent


def identity_document(chain: ChainContext, layout: DataLayout, signer: PublisherKey) -> bytes:
    """This chain's identity document for the data directory's key: the published one when it
    already names this chain, registry and owner (so its bytes, and hash, stay the same)."""
    owner = chain.registry.owner()
    keys = [key_entry(signer)]
    nodes = chain.nodes.address if chain.nodes is not None else None
    existing = _known_identity(chain, layout, signer)
    if existing is not None and existing.key(signer.key_id) is not None:
        same = (
            existing.chain_id,
            existing.registry,
            existing.registry_owner,
            existing.node_registry,
        ) == (chain.chain_id, chain.contract, owner, nodes)
        if same:
            return existing.raw
        keys = [dataclasses.asdict(k) for k in existing.keys]  # every key, with its validity
    return build_identity(chain.chain_id, chain.contract, owner, keys, [signer], nodes)


def reanchor(
    chain: ChainContext,
    layout: DataLayout,
    catalog: Catalog,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[dict]:
    """Anchor every checkpoint of every dataset on ``chain``, in order, and record the anchors.

    Each manifest must be one of this data directory's checkpoints (its root is the log's root
    at that size): nothing else is ever anchored. Checkpoints already anchored identically are
    kept; a registry holding other anchors for a dataset refuses the batch (``PreviousMismatch``
    or ``ConflictingAnchor``) and nothing is recorded.
    """
    publish_identity(chain, layout)
    checkpoints = []
    for dataset_dir in sorted(p for p in layout.published.iterdir() if p.is_dir()):
        checkpoints += _dataset_checkpoints(layout, dataset_dir)
    progress(f"anchoring {len(checkpoints)} checkpoints on chain {chain.chain_id}")
    anchored = chain.anchor(checkpoints) if checkpoints else []
    rows = {(c["dataset"], c["tree_size"]): c for c in catalog.checkpoints()}
    for checkpoint, result in zip(checkpoints, anchored, strict=True):
        recorded = rows.get((checkpoint["dataset"], checkpoint["tree_size"]))
        batch_id = checkpoint.pop("batch_id")
        if recorded is not None:
            batch_id = recorded["batch_id"]
            if result["anchor_tx"] is None and _same_anchor(recorded, result):
                result = {**result, "anchor_tx": recorded["anchor_tx"]}  # anchored before
        checkpoint.update(result)
        catalog.record_checkpoint(batch_id, checkpoint)
    return checkpoints


def _same_anchor(recorded: dict, result: dict) -> bool:
    keys = ("chain_id", "anchor_block")
    same_contract = (recorded["contract"] or "").lower() == result["contract"].lower()
    return same_contract and all(recorded[k] == result[k] for k in keys)


def _dataset_checkpoints(layout: DataLayout, dataset_dir: Path) -> list[dict]:
    """The dataset's own-log checkpoints in order, each checked against the stored log."""
    stored = DatasetLog(dataset_dir / "log")
    result, previous = [], 0
    for path, manifest, digest in log_checkpoints(dataset_dir, dataset_dir.name):
        size, root = manifest["checkpoint"]["tree_size"], manifest["checkpoint"]["root"]
        if manifest.get("kind") == "dataset":  # over shard heads: the heads give the root
            mine = heads_root(manifest["shards"]).hex() == root
        else:
            mine = size <= stored.size and stored.root(size).hex() == root
        if not mine:
            raise ChainChanged(
                f"{layout.relative(path)}: its root is not the log's at size {size}; "
                "refusing to anchor it"
            )
        result.append(
            {
                "dataset": dataset_dir.name,
                "tree_size": size,
                "root": root,
                "manifest_sha256": digest.hex(),
                "manifest_path": layout.relative(path),
                "previous_tree_size": previous,
                "batch_id": (manifest.get("batch") or {}).get("id"),
            }
        )
        previous = size
    return result


def _latest_anchored(catalog: Catalog) -> list[Anchored]:
    latest: dict[str, Anchored] = {}
    for c in catalog.checkpoints():  # by dataset, then tree size
        if c["contract"] is not None:
            latest[c["dataset"]] = Anchored(
                c["dataset"],
                c["tree_size"],
                c["root"],
                c["manifest_sha256"],
                c["chain_id"],
                c["contract"],
            )
    return list(latest.values())


def _chain_problem(chain: ChainContext, layout: DataLayout, latest: list[Anchored]) -> str | None:
    """Why ``chain`` is not where the data directory's checkpoints are anchored, or None."""
    for anchored in latest:
        here = (anchored.chain_id, (anchored.contract or "").lower())
        if here != (chain.chain_id, chain.contract.lower()):
            return (
                f"{layout.root}'s checkpoints are anchored in registry {anchored.contract} on "
                f"chain {anchored.chain_id}, not in {chain.contract} on chain {chain.chain_id}"
            )
    for anchored in latest:
        on_chain = chain.registry.get(anchored.dataset, anchored.tree_size)
        if on_chain is None or (on_chain.root.hex(), on_chain.manifest_hash.hex()) != (
            anchored.root,
            anchored.manifest_sha256,
        ):
            return (
                f"registry {chain.contract} on chain {chain.chain_id} no longer holds the anchor "
                f"of {anchored.dataset} at size {anchored.tree_size}: the chain was reset or "
                "replaced"
            )
    return None


def _guard(chain: ChainContext, layout: DataLayout) -> Callable[[list[dict]], None]:
    """Before each anchor: the same chain (genesis block) and the same bound identity."""
    w3 = chain.registry.w3
    genesis = bytes(w3.eth.get_block(0)["hash"])
    identity = hashlib.sha256(chain.identity or b"").digest()

    def before_anchor(_checkpoints: list[dict]) -> None:
        if bytes(w3.eth.get_block(0)["hash"]) != genesis:
            raise ChainChanged(
                f"the chain at {redacted_url(chain.rpc_url)} was reset while running (its genesis "
                f"block changed); {REANCHOR_HINT.format(data_dir=layout.root)}"
            )
        if chain.registry.identity_hash() != identity:
            raise ChainChanged(
                f"registry {chain.contract} no longer holds this publisher's identity: the chain "
                f"was reset or replaced; {REANCHOR_HINT.format(data_dir=layout.root)}"
            )

    return before_anchor


def _adoptable(chain: ChainContext, signer: PublisherKey) -> bytes:
    """The registry's current identity, when it is this publisher's; else ``ChainChanged``."""
    raw = chain.registry.identity_document() or b""
    try:
        identity = parse_identity(raw)
    except IdentityError as error:
        invalid = f"registry {chain.contract} holds an invalid identity: {error}"
        raise ChainChanged(invalid) from None
    if identity.key(signer.key_id) is None or identity.registry != chain.contract:
        raise ChainChanged(
            f"registry {chain.contract} on chain {chain.chain_id} is bound to another "
            f"publisher (identity {identity.sha256.hex()[:16]}…, keys "
            f"{', '.join(k.key_id[:16] + '…' for k in identity.keys)}); use your own registry"
        )
    return raw


def _known_identity(
    chain: ChainContext, layout: DataLayout, signer: PublisherKey
) -> PublisherIdentity | None:
    """The data directory's identity document; None only when it has none yet.

    A damaged copy is replaced by the one the registry holds, when that is this publisher's
    (the damaged file is kept beside it when the new one is written); with none there the run
    stops (``IdentityDamaged``): the keys it listed, with their validity, are not guessed."""
    path = layout.published / FILE_NAME
    try:
        return read_identity_file(path)
    except IdentityError as error:
        damaged = error
    if chain.registry.identity_hash() is None:
        raise IdentityDamaged(
            f"{damaged}; registry {chain.contract} holds no copy to restore it from: put back a "
            "good copy (a backup, or the shared store's published/)"
        )
    identity = parse_identity(_adoptable(chain, signer))
    log.warning("%s; replaced by the copy registry %s holds", damaged, chain.contract)
    return identity


def _write_identity(layout: DataLayout, raw: bytes) -> None:
    """``published/publisher-identity.json``; a replaced document is kept beside it."""
    path = layout.published / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = path.read_bytes()
        if old == raw:
            return
        digest = hashlib.sha256(old).hexdigest()[:16]
        os.replace(path, path.with_name(f"publisher-identity.superseded-{digest}.json"))
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(raw)
    os.replace(partial, path)


def check_data_dir(chain: ChainContext, data_dir: Path) -> str | None:
    """Why ``chain`` does not hold the data directory's anchors, or None (``rda anchor``)."""
    layout = DataLayout(data_dir)
    with writing(layout) as store:
        return _chain_problem(chain, layout, _latest_anchored(store.catalog))


def reanchor_data_dir(
    chain: ChainContext, data_dir: Path, progress: Callable[[str], None] = lambda _m: None
) -> dict:
    """``rda anchor --reanchor``: every checkpoint of ``data_dir`` anchored on ``chain``."""
    layout = DataLayout(data_dir)
    with writing(layout) as store:
        problem = _chain_problem(chain, layout, _latest_anchored(store.catalog))
        checkpoints = reanchor(chain, layout, store.catalog, progress)
    fresh = [c for c in checkpoints if c.get("anchor_tx") and c.get("gas_used")]
    return {
        "chain": chain.describe(),
        "identity_sha256": hashlib.sha256(chain.identity or b"").hexdigest(),
        "checkpoints": len(checkpoints),
        "newly_anchored": len(fresh),
        "before": problem or "the chain already held every anchor",
        "datasets": sorted({c["dataset"] for c in checkpoints}),
    }


def registry_for_reanchor(w3, address: str | None) -> AnchorRegistry:
    """The given registry when this publisher can use it (version 2, owned by the node's first
    account); otherwise (none given, no code any more, another owner) a new one is deployed."""
    if address:
        try:
            registry = AnchorRegistry.at(w3, address)
        except ValueError:  # no code at the address: the chain was reset
            registry = None
        if registry is not None and registry.version >= 2 and registry.owner() == registry.sender:
            return registry
    return AnchorRegistry.deploy(w3)
