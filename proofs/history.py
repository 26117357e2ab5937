"""History of a log: every checkpoint extends the one before it, as anchored, and none is withheld.

For each successive pair of checkpoints ``(m, R1)``, ``(n, R2)`` of a log, the auditor takes a
consistency proof from the published log and checks it against the two roots (RFC 9162 2.1.4),
and checks the later manifest's ``previous`` link. On the pinned registry it then checks that
every checkpoint is the one anchored, that the registry's ``latest()`` is the data's newest
checkpoint (a newer anchored one means a checkpoint was withheld, or the data rolled back), and
that the anchors' own chain of links (``previousTreeSize``, walked back from ``latest()``) names
exactly the data's checkpoints (an anchored checkpoint missing from the data means history was
deleted and rewritten). Rewriting, removing or reordering a row that an earlier checkpoint
covered makes the later root inconsistent with the earlier anchored one, and the verdict names
the pair.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from proofs.anchor import Anchor
from proofs.history_v2 import ShardLogs, sharded_consistency
from proofs.log import DatasetLog, LogRef
from proofs.manifest import all_manifests, load_manifest, manifest_problem, misnamed
from proofs.merkle_verify import verify_consistency
from proofs.skipped_offsets import with_skipped
from proofs.trust import ChainUnreadable, Pin, TrustRoot
from proofs.verdict import HISTORY_CHECKS, Check, Verdict

NOT_ANCHORED_YET = "is not anchored (yet)"
# (manifest path, manifest, SHA-256 of its bytes)
Entry = tuple[Path, dict[str, Any], bytes]


def log_checkpoints(dataset_dir: Path, log_id: str) -> list[Entry]:
    """Every well-formed manifest of ``log_id`` in the dataset folder, by tree size."""
    found = []
    for path in all_manifests(dataset_dir):
        try:
            manifest, digest = load_manifest(path)
        except ValueError:
            continue  # not JSON: not a checkpoint of anything (the anchors then show a gap)
        if (
            manifest_problem(manifest) is None
            and manifest.get("log", manifest["dataset"]) == log_id
            and misnamed(manifest, path) is None  # a copy under another size's name
        ):
            found.append((path, manifest, digest))
    return found


def verify_history(
    dataset_dir: Path, trust: TrustRoot | None = None, log: LogRef | None = None
) -> Verdict:
    """Links, consistency and anchors of every checkpoint of ``log`` (default: the dataset's own
    log), the registry's ``latest()`` and its anchored history."""
    trust = trust or TrustRoot(Pin())
    log = log or LogRef.for_dataset(dataset_dir)
    checkpoints = log_checkpoints(dataset_dir, log.log_id)
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint of log {log.log_id} under {dataset_dir}")
    last = checkpoints[-1][1]
    verdict = Verdict(last["dataset"], _size(last), last["checkpoint"]["root"])
    verdict.log, verdict.required = log.log_id, HISTORY_CHECKS
    shard_logs = ShardLogs(dataset_dir, [manifest for _, manifest, _ in checkpoints])
    try:
        verdict.checks += _links_in_the_data(DatasetLog(log), checkpoints, shard_logs)
    finally:
        shard_logs.close()
    verdict.checks += _on_chain(trust, log.log_id, checkpoints)
    return verdict


def _links_in_the_data(
    stored: DatasetLog, checkpoints: list[Entry], shard_logs: ShardLogs
) -> list[Check]:
    first = checkpoints[0][1]
    checks = []
    if first.get("previous") is not None:
        checks.append(
            Check(
                "previous",
                False,
                f"checkpoint {_size(first)} names a previous checkpoint the data does not have",
            )
        )
    for (_, older, older_digest), (_, newer, _) in pairwise(checkpoints):
        checks.append(_link_check(older, older_digest, newer))
        if newer.get("kind") == "dataset":  # version 2: shard by shard
            step = sharded_consistency(shard_logs, older, older_digest, newer)
            checks.append(with_skipped(step, newer))  # what the step's batch says it skipped
        elif older.get("kind") == "dataset":
            after = _size(newer)
            checks.append(
                Check(
                    "consistency",
                    False,
                    f"{_size(older)} → {after}: a version-1 checkpoint "
                    "cannot follow a checkpoint over shards",
                )
            )
        else:
            checks.append(_consistency_check(stored, older, newer))
    if len(checkpoints) == 1:
        only = f"one checkpoint ({_size(first)}): nothing before it"
        checks += [Check("previous", True, only), Check("consistency", True, only)]
    return checks


def _on_chain(trust: TrustRoot, log_id: str, checkpoints: list[Entry]) -> list[Check]:
    """Each checkpoint as anchored, ``latest()``, and the registry's own list of anchors."""
    newest = _size(checkpoints[-1][1])
    latest = trust.latest(log_id)
    if isinstance(latest, Check):  # not readable: the registry is not pinned, or offline
        why = latest.detail
        return [Check(name, None, why) for name in ("anchored", "links", "latest")]
    pending = newest if latest is None or latest.tree_size < newest else None
    checks = []
    for _, manifest, digest in checkpoints:
        size = _size(manifest)
        check, _anchor = trust.anchor_check(
            log_id, size, manifest["checkpoint"]["root"], digest.hex()
        )
        if size == pending and check.ok is False and _anchor is None:
            check = Check("anchored", None, f"not checked: {NOT_ANCHORED_YET}")
        checks.append(Check("anchored", check.ok, f"checkpoint {size}: {check.detail}"))
    checks.append(_latest_check(log_id, latest, newest))
    anchored_sizes = [_size(m) for _, m, _ in checkpoints if _size(m) != pending]
    checks.append(_links_check(trust, log_id, latest, anchored_sizes))
    return checks


def _latest_check(log_id: str, latest: Anchor | None, newest: int) -> Check:
    if latest is None:
        return Check("latest", False, f"the registry holds no anchor of {log_id}")
    if latest.tree_size > newest:
        return Check(
            "latest",
            False,
            f"the registry's latest checkpoint of {log_id} has size {latest.tree_size} (block "
            f"{latest.block_number}); the data's newest has {newest}: a newer checkpoint is "
            "withheld, or the data was rolled back",
        )
    if latest.tree_size < newest:
        return Check(
            "latest",
            None,
            f"the data's newest checkpoint ({newest}) {NOT_ANCHORED_YET}: the registry's "
            f"latest is {latest.tree_size}",
        )
    return Check("latest", True, f"the registry's latest checkpoint is the data's newest, {newest}")


def _links_check(
    trust: TrustRoot, log_id: str, latest: Anchor | None, local_sizes: list[int]
) -> Check:
    if latest is None:
        return Check("links", False, f"the registry holds no anchor of {log_id}")
    try:
        anchored = trust.anchored_sizes(log_id, latest.tree_size)
    except ChainUnreadable as error:
        return Check("links", None, f"not checked: {error}")
    if anchored is None:
        return Check(
            "links", None, "not checked: a version-1 registry keeps no links between anchors"
        )
    anchored.reverse()
    if anchored == local_sizes:
        return Check("links", True, f"the registry's {len(anchored)} anchors are the data's")
    missing = sorted(set(anchored) - set(local_sizes))
    if missing:
        return Check(
            "links",
            False,
            f"anchored checkpoint {missing[0]} of {log_id} is missing from the data "
            "(history deleted or rewritten)",
        )
    extra = sorted(set(local_sizes) - set(anchored))
    return Check(
        "links",
        False,
        f"checkpoint {extra[0]} is not in the registry's anchored history of {log_id}"
        if extra
        else f"the data's checkpoints of {log_id} are not the registry's anchored history",
    )


def _link_check(older: dict[str, Any], older_digest: bytes, newer: dict[str, Any]) -> Check:
    m, n = _size(older), _size(newer)
    expected = {
        "tree_size": m,
        "root": older["checkpoint"]["root"],
        "manifest_sha256": older_digest.hex(),
    }
    if newer.get("previous") != expected:
        return Check("previous", False, f"checkpoint {n}: previous does not name checkpoint {m}")
    return Check("previous", True, f"checkpoint {n} names checkpoint {m} as its previous")


def _consistency_check(log: DatasetLog, older: dict[str, Any], newer: dict[str, Any]) -> Check:
    m, n = _size(older), _size(newer)
    old_root = bytes.fromhex(older["checkpoint"]["root"])
    new_root = bytes.fromhex(newer["checkpoint"]["root"])
    try:
        proof = log.consistency_proof(m, n)
    except (OSError, ValueError) as error:
        return Check("consistency", False, f"{m} → {n}: the log gives no proof ({error})")
    if not verify_consistency(m, n, old_root, new_root, proof):
        return Check(
            "consistency",
            False,
            f"{m} → {n}: the tree of size {n} does not extend the tree of size {m} "
            "(history rewritten after the earlier checkpoint)",
        )
    return Check("consistency", True, f"{m} → {n}: consistency proof of {len(proof)} hashes")


def _size(manifest: dict[str, Any]) -> int:
    return manifest["checkpoint"]["tree_size"]
