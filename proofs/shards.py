"""Sharded datasets: one RFC 9162 log per shard, and a dataset checkpoint over the shard heads.

A **shard** is (dataset, topic, partition): its log id is ``<dataset>/<topic>.p<partition>``
(``radio_kpi.v1/node-telemetry.p3``) and it lives in ``shards/<topic>.p<partition>/`` of the
dataset folder. A dataset's own, unsharded log (manifest version 1) becomes the **legacy shard**
of the first sharded checkpoint: its id is the dataset id, its folder the dataset folder, and it
never grows again.

A **shard head** is ``{shard, tree_size, root}``: the shard's log at one size. A **dataset
checkpoint** (manifest version 2) lists every shard head, ordered by shard id (the ids' UTF-8
bytes, strictly increasing), each with the hash of the shard manifest that describes it, and
commits to the heads with an RFC 9162 root whose leaves are the heads' RFC 8785 bytes (exactly
the three members above: the root depends on the published rows only, so every runner and every
redo gives the same one). Its size is the sum of the shards' sizes: the dataset's published
rows. That root, the size and the dataset manifest's hash are what is anchored (the manifest
binds each shard manifest by its hash), so a row's proof is row → shard root (inclusion in the
shard) → shard head → dataset root (inclusion of the head) → anchor. Standard library only
(docs/proof-format.md §12).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from proofs.jcs import canonicalize
from proofs.merkle import leaf_hash, root
from proofs.merkle_proofs import inclusion_proof

HEAD_MEMBERS = ("root", "shard", "tree_size")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

Head = Mapping[str, Any]


def shard_id(dataset: str, topic: str, partition: int) -> str:
    """The log id of the shard of ``dataset`` fed by one Kafka partition."""
    if not _TOPIC.match(topic) or not isinstance(partition, int) or partition < 0:
        raise ValueError(f"no shard for topic {topic!r}, partition {partition!r}")
    return f"{dataset}/{topic}.p{partition}"


def shard_folder(shard: str) -> str:
    """The shard's folder relative to its dataset folder: ``shards/<topic>.p<partition>``, or
    ``""`` for the legacy shard (the dataset's own log, in the dataset folder itself)."""
    _dataset, slash, name = shard.partition("/")
    return f"shards/{name}" if slash else ""


def is_shard_of(shard: Any, dataset: str) -> bool:
    """Whether ``shard`` names a shard of ``dataset`` (a partition shard or the legacy one)."""
    if not isinstance(shard, str):
        return False
    if shard == dataset:
        return True
    prefix = dataset + "/"
    if not shard.startswith(prefix):
        return False
    topic, dot_p, partition = shard[len(prefix) :].rpartition(".p")
    return bool(dot_p) and bool(_TOPIC.match(topic)) and partition.isdigit() and partition.isascii()


def head(shard: str, tree_size: int, root_hex: str, manifest_sha256: str) -> dict[str, Any]:
    """A head as a dataset manifest lists it: the three head members and the manifest's hash."""
    return {
        "shard": shard,
        "tree_size": tree_size,
        "root": root_hex,
        "manifest_sha256": manifest_sha256,
    }


def head_bytes(entry: Head) -> bytes:
    """A head's leaf bytes: RFC 8785 of exactly its three members."""
    return canonicalize({name: entry[name] for name in HEAD_MEMBERS})


def head_hashes(heads: Sequence[Head]) -> list[bytes]:
    return [leaf_hash(head_bytes(h)) for h in heads]


def heads_root(heads: Sequence[Head]) -> bytes:
    """The dataset checkpoint's root: MTH over the heads' leaf bytes, in the listed order."""
    return root(head_hashes(heads))


def head_path(heads: Sequence[Head], index: int) -> list[bytes]:
    """The inclusion proof of head ``index`` in the tree of the heads."""
    return inclusion_proof(head_hashes(heads), index)


def total_size(heads: Sequence[Head]) -> int:
    return sum(h["tree_size"] for h in heads)


def heads_problem(heads: Any, dataset: str) -> str | None:
    """What makes ``heads`` unusable as a dataset checkpoint's list, or None."""
    if not isinstance(heads, list) or not heads:
        return "shards must be a non-empty list of shard heads"
    previous: bytes | None = None
    for number, entry in enumerate(heads):
        if not isinstance(entry, Mapping) or not set(HEAD_MEMBERS) <= set(entry):
            return f"shards[{number}] must have {', '.join(HEAD_MEMBERS)}"
        size = entry["tree_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            return f"shards[{number}].tree_size must be a positive integer"
        if not isinstance(entry["root"], str) or not _HEX64.match(entry["root"]):
            return f"shards[{number}].root must be 64 lowercase hex digits"
        if not is_shard_of(entry["shard"], dataset):
            return f"shards[{number}].shard {entry['shard']!r} is not a shard of {dataset}"
        key = entry["shard"].encode("utf-8")
        if previous is not None and key <= previous:
            return "shards must be ordered by shard id, each listed once"
        previous = key
    return None


def extension_problem(older: Sequence[Head], newer: Sequence[Head]) -> str | None:
    """Why the heads ``newer`` do not extend ``older``: a shard dropped, one whose log shrank,
    or one that changed at the same size; None when every shard kept or grew its log (whether it
    grew *consistently* is for a consistency proof per shard to say)."""
    later = {h["shard"]: h for h in newer}
    for entry in older:
        shard = entry["shard"]
        found = later.get(shard)
        if found is None:
            return f"shard {shard} (size {entry['tree_size']}) is missing from the later checkpoint"
        if found["tree_size"] < entry["tree_size"]:
            return (
                f"shard {shard} went back from size {entry['tree_size']} to "
                f"{found['tree_size']}: a log never shrinks"
            )
        same_size = found["tree_size"] == entry["tree_size"]
        if same_size and (found["root"], found.get("manifest_sha256")) != (
            entry["root"],
            entry.get("manifest_sha256"),
        ):
            return f"shard {shard} changed at the same size {entry['tree_size']}"
    return None
