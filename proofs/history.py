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

The registry is read first: a consistency proof costs work in proportion to the rows its
checkpoints claim (a shard's log is rebuilt from its leaf files), and a checkpoint planted in
the folder can claim billions over sparse files. So proofs are built only between checkpoints
the publisher vouches for: anchored as they are, or, where no anchor can be had (the newest,
not anchored yet; any, when the registry cannot be read), signed by a key of the pinned
identity — the pipeline writes a manifest's signature before the manifest.
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
WALK_PAST = 1024  # anchors walked beyond the data's own checkpoints, at most
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
    on_chain, refused = _on_chain(trust, log.log_id, checkpoints)  # before any proof
    vouched = [
        manifest for (_, manifest, _), why in zip(checkpoints, refused, strict=True) if why is None
    ]
    shard_logs = ShardLogs(dataset_dir, vouched)  # a refused head's log is never rebuilt
    try:
        verdict.checks += _links_in_the_data(DatasetLog(log), checkpoints, shard_logs, refused)
    finally:
        shard_logs.close()
    verdict.checks += on_chain
    return verdict


def _links_in_the_data(
    stored: DatasetLog, checkpoints: list[Entry], shard_logs: ShardLogs, refused: list[str | None]
) -> list[Check]:
    """``previous`` for every successive pair; ``consistency`` for each pair of checkpoints the
    publisher vouches for (``refused[i]``: why checkpoint ``i`` is not, else None)."""
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
    for ((_, older, older_digest), (_, newer, _)), whys in zip(
        pairwise(checkpoints), pairwise(refused), strict=True
    ):
        checks.append(_link_check(older, older_digest, newer))
        why = whys[0] or whys[1]
        if why is not None:  # its anchor (or signature) failed: no leaf of it is read
            step = f"{_size(older)} → {_size(newer)}: not built: {why}"
            checks.append(Check("consistency", None, step))
        elif newer.get("kind") == "dataset":  # version 2: shard by shard
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


def _on_chain(
    trust: TrustRoot, log_id: str, checkpoints: list[Entry]
) -> tuple[list[Check], list[str | None]]:
    """Each checkpoint as anchored, ``latest()``, and the registry's own list of anchors; and,
    for each checkpoint, why no proof may be built for it (None: the publisher's)."""
    newest = _size(checkpoints[-1][1])
    latest = trust.latest(log_id)
    if isinstance(latest, Check):  # not readable: the registry is not pinned, or offline
        why = latest.detail
        unread = "has no anchor that could be read"
        refused = [_unsigned(trust, entry, unread) for entry in checkpoints]
        return [Check(name, None, why) for name in ("anchored", "links", "latest")], refused
    pending = newest if latest is None or latest.tree_size < newest else None
    checks, refused = [], []
    for entry in checkpoints:
        check, why = _anchored(trust, log_id, entry, pending)
        checks.append(check)
        refused.append(why)
    checks.append(_latest_check(log_id, latest, newest))
    anchored_sizes = [_size(m) for _, m, _ in checkpoints if _size(m) != pending]
    checks.append(_links_check(trust, log_id, latest, anchored_sizes))
    return checks, refused


def _anchored(
    trust: TrustRoot, log_id: str, entry: Entry, pending: int | None
) -> tuple[Check, str | None]:
    """The ``anchored`` check of one checkpoint, and why no proof may be built for it."""
    _, manifest, digest = entry
    size = _size(manifest)
    check, anchor = trust.anchor_check(log_id, size, manifest["checkpoint"]["root"], digest.hex())
    if check.ok:
        return Check("anchored", True, f"checkpoint {size}: {check.detail}"), None
    if check.ok is None:  # the chain did not answer: the signature alone vouches for it
        why = _unsigned(trust, entry, "has no anchor that could be read")
        return Check("anchored", None, f"checkpoint {size}: {check.detail}"), why
    if size == pending and anchor is None:  # the newest: not anchored yet, if the publisher's
        why = _unsigned(trust, entry, NOT_ANCHORED_YET)
        if why is None:
            return Check(
                "anchored", None, f"checkpoint {size}: not checked: {NOT_ANCHORED_YET}"
            ), None
        return Check("anchored", False, why), why
    return Check("anchored", False, f"checkpoint {size}: {check.detail}"), (
        f"checkpoint {size} is not anchored as it is"
    )


def _unsigned(trust: TrustRoot, entry: Entry, unanchored: str) -> str | None:
    """Why a checkpoint without an anchor to check is not the publisher's (its signature,
    section 7, by a key of the pinned identity), or None when the publisher signed it."""
    from proofs.verify import signature_check  # cryptography: only when a signature is read

    path, manifest, _ = entry
    signature = signature_check(path, manifest, trust, None)
    if signature.ok is False:
        size = _size(manifest)
        return f"checkpoint {size} {unanchored}, and its signature fails: {signature.detail}"
    return None


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
        # A node can answer links without end: the walk stops 1,024 past the data's count,
        # far enough to name the earliest missing checkpoint of any real history.
        anchored = trust.anchored_sizes(log_id, latest.tree_size, len(local_sizes) + WALK_PAST)
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
