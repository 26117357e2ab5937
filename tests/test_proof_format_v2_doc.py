"""docs/proof-format.md's worked example of a sharded dataset (section 12): every value in it is
computed here from section 13's three rows, split over two shards, and a version-2 bundle made
of them is verified. ``python tests/test_proof_format_v2_doc.py`` prints the values.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_proof_format_doc import example_rows

from proofs.bundle import verify_bundle
from proofs.leaves import leaf_bytes_for_batch
from proofs.merkle import leaf_hash, root
from proofs.merkle_proofs import inclusion_proof
from proofs.shards import head_bytes, head_path, heads_root, shard_id

DOC = Path(__file__).resolve().parents[1] / "docs" / "proof-format.md"
DATASET = "radio_kpi.v1"
MANIFEST_SHA256 = "00" * 32  # stands for the shard and dataset manifests' hashes here


def sharded_example() -> dict[str, str]:
    data = leaf_bytes_for_batch(example_rows())
    hashes = [leaf_hash(d) for d in data]
    # Rows 0 and 1 came from partition 0 of node-telemetry, row 2 from partition 1.
    shards = {shard_id(DATASET, "node-telemetry", 0): hashes[:2]}
    shards[shard_id(DATASET, "node-telemetry", 1)] = hashes[2:]
    heads = [
        {"shard": shard, "tree_size": len(leaves), "root": root(leaves).hex()}
        for shard, leaves in sorted(shards.items(), key=lambda kv: kv[0].encode())
    ]
    head_hashes = [leaf_hash(head_bytes(h)) for h in heads]
    dataset_root = heads_root(heads)
    bundle = {
        "bundle_version": 2,
        "dataset": DATASET,
        "log": heads[1]["shard"],
        "row": json.loads(data[2]),
        "leaf_index": 0,
        "leaf_hash": hashes[2].hex(),
        "audit_path": [h.hex() for h in inclusion_proof(hashes[2:], 0)],
        "shard": heads[1],
        "head_index": 1,
        "head_path": [h.hex() for h in head_path(heads, 1)],
        "checkpoint": {
            "log": DATASET,
            "tree_size": 3,
            "root": dataset_root.hex(),
            "manifest_sha256": MANIFEST_SHA256,
            "shards": 2,
        },
        "anchor": None,
    }
    verdict = verify_bundle(bundle)  # INCOMPLETE: no anchor, nothing pinned; nothing fails
    assert verdict.first_failure is None, verdict.as_dict()
    assert {c.name for c in verdict.checks if c.ok} >= {"leaf", "inclusion", "shard"}
    return {
        "head_0": head_bytes(heads[0]).decode(),
        "head_1": head_bytes(heads[1]).decode(),
        "head_hash_0": head_hashes[0].hex(),
        "head_hash_1": head_hashes[1].hex(),
        "shard_root_0": heads[0]["root"],
        "shard_root_1": heads[1]["root"],
        "dataset_root": dataset_root.hex(),
    }


def test_the_documented_sharded_example_is_what_the_code_computes():
    doc = DOC.read_text()
    missing = {name: value for name, value in sharded_example().items() if value not in doc}
    assert not missing, f"docs/proof-format.md lacks: {missing}"


def test_a_head_moved_to_another_index_is_refused():
    heads = [{"shard": f"{DATASET}/t.p{i}", "tree_size": 1, "root": f"{i:064x}"} for i in (1, 2)]
    path = head_path(heads, 1)
    from proofs.merkle_verify import verify_inclusion

    one = leaf_hash(head_bytes(heads[1]))
    assert verify_inclusion(one, 1, 2, path, heads_root(heads))
    assert not verify_inclusion(one, 0, 2, path, heads_root(heads))


if __name__ == "__main__":
    for key, value in sharded_example().items():
        print(f"{key:14} {value}")
