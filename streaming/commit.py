"""A batch joins its shards' logs and the dataset checkpoints, and is anchored: with no lock.

Each Kafka partition of a dataset is a shard with its own RFC 9162 log (proofs/shards.py), and
only the worker the consumer group gives the partition to appends to it. For every dataset the
batch published rows in, the worker reads the dataset's newest anchored checkpoint
(``streaming/checkpoints.py``), appends its rows to its shards from the heads listed there (the
frontier in each shard's head manifest is all it needs), writes the new shard manifests and a
dataset checkpoint listing every shard head, and anchors all of the batch's dataset checkpoints
in one ``anchorMany`` transaction, each naming the checkpoint it follows.

That transaction is the only point where workers meet, and the registry decides: it accepts a
checkpoint only if it follows the dataset's latest one (``PreviousMismatch`` otherwise), so of
two workers that built on the same checkpoint one wins, and the other reads the new latest
checkpoint, rebuilds its own on it (its shards' heads there are unchanged: they are its
shards) and sends again. Every checkpoint thus lists every shard head, no shard ever goes back,
and ``latest()`` is the whole dataset's newest state. A worker that finds one of its shards moved
past the head it appended to has lost that partition (a rebalance): its batch is built again on
the new head, a redo of the same ranges is recognised by its files, and nothing is appended
twice.

The manifests are written before the anchor under names that cannot collide (a shard
manifest's name carries its hash; a dataset manifest waits in ``checkpoints/pending/``) and an
anchored dataset manifest gets its final name, ``checkpoints/<size>.manifest.json``, after.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.protect import Protection
from proofs import schema_docs
from proofs.jcs import canonicalize
from proofs.manifest_v2 import (
    build_dataset_manifest,
    build_shard_manifest,
    checkpoint_manifest_path,
    manifest_digest,
    pending_manifest_path,
    shard_manifest_path,
)
from proofs.merkle import MerkleFrontier
from proofs.shards import head
from proofs.signing import PublisherKey
from schemas.published import published_schema_for_dataset
from sinks.layout import DataLayout
from sinks.quality_report import checkpoint_quality
from sinks.storage import Store
from streaming import quality_queue
from streaming.assets import checkpoint_sections, promote_table
from streaming.batch import Progress
from streaming.batch_files import ShardRows, added_files, shard_rows
from streaming.chain import AnchorContention, ChainChanged
from streaming.checkpoints import Base, ChainView, Checkpoints, dataset_path, promote
from streaming.dataset_sections import dataset_quality, merged_privacy
from streaming.records_lost import LOST

PIPELINE_VERSION = "0.2.0"
MAX_ATTEMPTS = 40  # compare-and-swap rounds lost in a row before the batch fails (and is retried)
log = logging.getLogger("rda.run")


@dataclass
class CommitContext:
    store: Store
    work: DataLayout  # where the batch's files were landed
    chain: ChainView
    signer: PublisherKey
    protection: Protection
    progress: Progress = lambda _m: None
    on_committed: Callable[[list[dict]], None] = lambda _c: None  # journal, before the anchor
    checkpoints: Checkpoints | None = None  # what is anchored, read once per batch
    seconds: dict[str, float] = field(default_factory=dict)  # anchor: seconds in it


@dataclass
class _Built:
    checkpoint: dict[str, Any]  # dataset, tree_size, root, manifest_sha256, previous_tree_size
    data: bytes
    signature: bytes
    base: Base
    files: list[dict[str, Any]]  # the rows it added: path from the work root, sha256


def commit_and_anchor(
    ctx: CommitContext,
    plan: dict,
    receipts: list[dict],
) -> list[dict]:
    """Append the batch's rows to its shards, write and anchor the dataset checkpoints; the
    anchored checkpoints (empty when the batch published nothing, or was anchored before).

    Great Expectations does not run here: each anchored dataset checkpoint is queued for the
    quality worker, whose report and attestation come after (``streaming/quality_worker.py``).
    """
    by_dataset = shard_rows(ctx.work, receipts)
    for rows in (r for shards in by_dataset.values() for r in shards):
        for entry in rows.files:
            entry["batch_id"] = plan["batch_id"]
    checkpoints = ctx.checkpoints or Checkpoints(ctx.store, ctx.chain)
    lost: AnchorContention | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        built = []
        for dataset, shards in by_dataset.items():
            base = checkpoints.base(dataset, fresh=attempt > 1)
            one = _build(ctx, checkpoints, plan, base, shards)
            if one is not None:
                built.append(one)
        if not built:  # every row is in already: anchored before a crash (or by an adopter)
            recorded = plan.get("checkpoints") or []
            _same_landing(plan, recorded, by_dataset)
            anchored = ctx.chain(recorded) if recorded else []
            # Queued again: the crash may have come before they were (a job is idempotent).
            _enqueue(ctx, [(c, added_files(by_dataset[c["dataset"]])) for c in recorded])
            return [finish(ctx.store, c, r) for c, r in zip(recorded, anchored, strict=True)]
        ctx.on_committed([b.checkpoint for b in built])
        ctx.progress(
            f"batch {plan['batch_id']}: anchoring {len(built)} dataset checkpoints in one tx"
        )
        started = time.monotonic()
        try:
            anchored = ctx.chain([b.checkpoint for b in built])
        except AnchorContention as refused:
            ctx.seconds["anchor"] = ctx.seconds.get("anchor", 0.0) + time.monotonic() - started
            lost = refused
            if not _moved(ctx.chain, built):
                raise ChainChanged(str(lost)) from None
            log.info(
                "batch %d: another worker anchored first (%s); building on its checkpoint "
                "(attempt %d)", plan["batch_id"], lost.refused.error, attempt,
                extra={"event": "anchor_contention", "batch_id": plan["batch_id"]},
            )  # fmt: skip
            time.sleep(random.uniform(0, min(0.05 * attempt, 1.0)))
            continue
        ctx.seconds["anchor"] = ctx.seconds.get("anchor", 0.0) + time.monotonic() - started
        _enqueue(ctx, [(b.checkpoint, b.files) for b in built])
        return [
            finish(ctx.store, {**b.checkpoint, "anchor_attempts": attempt}, r)
            for b, r in zip(built, anchored, strict=True)
        ]
    assert lost is not None
    raise AnchorContention(
        f"batch {plan['batch_id']}: other workers anchored first {MAX_ATTEMPTS} times in a row",
        lost.refused,
    )


def _enqueue(ctx: CommitContext, checkpoints: list[tuple[dict, list[dict]]]) -> None:
    """GE's reports of anchored checkpoints (each with the files it added), for the worker."""
    local = ctx.store.local is not None and Path(ctx.store.local).absolute() == ctx.work.root
    shared = None if local else ctx.store.uri
    for checkpoint, files in checkpoints:
        quality_queue.enqueue(ctx.work, checkpoint, files, shared)


def finish(store: Store, checkpoint: dict, anchored: dict) -> dict:
    """After the anchor: the dataset manifest's final name, and where it was anchored (a
    convenience for readers, never trusted: verifiers read the chain)."""
    dataset, size = checkpoint["dataset"], checkpoint["tree_size"]
    final = checkpoint_manifest_path(size)
    # The table first: a reader that finds the manifest under its final name finds it too.
    promote_table(store, dataset, size, checkpoint.get("contributions_sha256"))
    promote(store, dataset, pending_manifest_path(checkpoint["manifest_sha256"]), final)
    checkpoint = {**checkpoint, **anchored, "manifest_path": dataset_path(dataset, final)}
    sidecar = {k: checkpoint.get(k) for k in ("chain_id", "contract", "anchor_tx", "anchor_block")}
    sidecar.update(gas_used=checkpoint.get("gas_used"), batch_id=checkpoint.get("batch_id"))
    store.write_json(dataset_path(dataset, f"checkpoints/{size:012d}.anchor.json"), sidecar)
    return checkpoint


def _moved(chain: ChainView, built: list[_Built]) -> bool:
    """Whether some dataset's latest checkpoint is no longer the one the batch built on."""
    for one in built:
        latest = chain.latest(one.checkpoint["dataset"])
        now = latest.manifest_hash.hex() if latest is not None else None
        if now != one.base.digest:
            return True
    return False


class RedoMismatch(RuntimeError):
    """A batch redone landed other rows than the attempt that built its checkpoints."""


def _same_landing(plan: dict, recorded: list[dict], by_dataset: dict[str, Any]) -> None:
    """The checkpoints recorded for the batch are of the datasets this landing has rows in: a
    redo is a function of its plan, and one that is not (settings the plan does not record)
    must stop here, not anchor checkpoints of other files."""
    built_for = {c["dataset"] for c in recorded}
    if built_for != set(by_dataset):
        raise RedoMismatch(
            f"batch {plan['batch_id']} was redone with rows of {sorted(by_dataset) or 'no dataset'}"
            f" but its checkpoints were built of {sorted(built_for) or 'none'}: its first attempt "
            "ran under other settings"
        )


def _build(
    ctx: CommitContext,
    checkpoints: Checkpoints,
    plan: dict,
    base: Base,
    shards: list[ShardRows],
) -> _Built | None:
    """The dataset's next checkpoint on ``base`` with the batch's shards grown; None when every
    shard already holds the batch's files (anchored before a crash)."""
    heads = _grow_shards(ctx, checkpoints, plan, base, shards)
    if heads is None:
        return None
    dataset, schema = base.dataset, published_schema_for_dataset(base.dataset)
    manifests = [
        checkpoints.manifest(dataset, h["manifest_path"], h["manifest_sha256"])
        for h in heads.values()
    ]
    size = sum(h["tree_size"] for h in heads.values())
    added = added_files(shards)
    manifest = build_dataset_manifest(
        dataset=dataset,
        heads=list(heads.values()),
        previous=base.link,
        schema=schema.describe(),
        fingerprint=schema.fingerprint(),
        batch=_batch_section(plan),
        pipeline_version=PIPELINE_VERSION,
        publisher=ctx.signer.describe(),
        quality=dataset_quality(size, manifests, [w for r in shards for w in r.windows]),
        schema_by_reference=True,  # its document published with the shards' (_grow_shards)
    )
    table = base.contributions_sha256
    manifest.update(
        checkpoint_sections(ctx.store, ctx.work, dataset, size, base.size, added, table)
    )
    privacy = merged_privacy(ctx.protection, schema, manifests)
    if privacy is not None:
        manifest["privacy"] = privacy
    data, digest = manifest_digest(manifest)
    signature = _write_signed(ctx, dataset, pending_manifest_path(digest), data)
    checkpoints.remember(digest, manifest, len(data))
    checkpoint = {
        "dataset": dataset,
        "tree_size": size,
        "root": manifest["checkpoint"]["root"],
        "manifest_sha256": digest,
        "previous_tree_size": base.size,
        "shards": len(heads),
        "batch_id": plan["batch_id"],
        "quality_score": manifest["quality"]["score"],
    }
    if "contributions" in manifest:  # its table is promoted with it (``finish``)
        checkpoint["contributions_sha256"] = manifest["contributions"]["sha256"]
    return _Built(checkpoint, data, signature, base, added)


def _grow_shards(
    ctx: CommitContext,
    checkpoints: Checkpoints,
    plan: dict,
    base: Base,
    shards: list[ShardRows],
) -> dict[str, dict[str, Any]] | None:
    """Every shard head of the dataset once the batch's shards have grown (their signed shard
    manifests written); None when every shard already holds the batch's files."""
    dataset = base.dataset
    schema = published_schema_for_dataset(dataset)
    _publish_schema(ctx.store, dataset, schema)
    heads = dict(base.heads)
    grown = False
    for rows in shards:
        current = heads.get(rows.shard)
        previous = None
        if current is not None:
            previous = checkpoints.manifest(
                dataset, current["manifest_path"], current["manifest_sha256"]
            )
            if _holds(previous, rows):
                continue
        manifest = _shard_manifest(ctx, plan, schema, rows, previous, current)
        data, digest = manifest_digest(manifest)
        size, root = manifest["checkpoint"]["tree_size"], manifest["checkpoint"]["root"]
        path = shard_manifest_path(rows.shard, size, digest)
        _write_signed(ctx, dataset, path, data)
        checkpoints.remember(digest, manifest, len(data))
        heads[rows.shard] = {**head(rows.shard, size, root, digest), "manifest_path": path}
        grown = True
    return heads if grown else None


def _holds(manifest: dict[str, Any], rows: ShardRows) -> bool:
    """Whether a shard manifest already lists the batch's files of that shard (a redo of a
    batch whose checkpoint was made: the files it added are the head's own)."""
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    return all(listed.get(f["path"]) == f["sha256"] for f in rows.files)


def _shard_manifest(
    ctx: CommitContext,
    plan: dict,
    schema: Any,
    rows: ShardRows,
    previous: dict[str, Any] | None,
    current: dict[str, Any] | None,
) -> dict[str, Any]:
    """The shard's next checkpoint: the batch's files, its log grown by them, linked to the
    previous one (a chained shard manifest lists only what its checkpoint adds)."""
    frontier = MerkleFrontier()
    if previous is not None:
        frontier = MerkleFrontier.from_dict(
            {
                "size": previous["checkpoint"]["tree_size"],
                "hashes": previous["checkpoint"]["frontier"],
            }
        )
    added = []
    for entry in rows.files:
        leaves = _leaves(ctx.work, rows.dataset, entry)
        added.append({**entry, "leaf_start": frontier.size})
        frontier.extend(leaves)
    return build_shard_manifest(
        shard=rows.shard,
        frontier=frontier,
        dataset=rows.dataset,
        schema=schema.describe(),
        fingerprint=schema.fingerprint(),
        files=added,
        batch=_batch_section(plan),
        previous=_link(previous, current),
        pipeline_version=PIPELINE_VERSION,
        publisher=ctx.signer.describe(),
        # The shard's score; GE's report is the dataset checkpoint's (quality_attestation).
        quality=checkpoint_quality(rows.stats, (previous or {}).get("quality"), rows.windows),
        privacy=ctx.protection.manifest_section(
            schema, rows.stats, (previous or {}).get("privacy")
        ),
        schema_by_reference=True,  # its documents: _publish_schema
    )


def _publish_schema(store: Store, dataset: str, schema: Any) -> None:
    """The schema documents the shard and dataset manifests name, in the dataset folder before
    any of them (each written once: its name is its content's hash)."""
    for path, data in schema_docs.documents(schema.describe(), schema.fingerprint()).items():
        where = dataset_path(dataset, path)
        if not store.exists(where):
            store.create(where, data)


def _leaves(work: DataLayout, dataset: str, entry: dict[str, Any]) -> list[bytes]:
    """The file's leaf hashes, from the ``.leaves`` landed beside it (else from its rows)."""
    from proofs.shard_log import file_leaves

    return file_leaves(work.dataset_dir(dataset), entry)


def _link(previous: dict[str, Any] | None, current: dict[str, Any] | None) -> dict | None:
    if previous is None or current is None:
        return None
    return {k: current[k] for k in ("tree_size", "root", "manifest_sha256")}


def _write_signed(ctx: CommitContext, dataset: str, relative: str, data: bytes) -> bytes:
    """A manifest's bytes and, beside them, its signature (signature first: a manifest never
    stands without one)."""
    signature = canonicalize(ctx.signer.sign(data))
    ctx.store.write_bytes(
        dataset_path(dataset, relative.removesuffix(".json") + ".sig.json"), signature
    )
    ctx.store.write_bytes(dataset_path(dataset, relative), data)
    return signature


def _batch_section(plan: dict) -> dict:
    return {
        "id": plan["batch_id"],
        "planned_at": plan["planned_at"],
        "ranges": plan.get("ranges", []),
        "kind": plan.get("kind", "stream"),
        # Offsets retention deleted before they were read, skipped (streaming/records_lost.py).
        **({LOST: plan[LOST]} if plan.get(LOST) else {}),
    }
