"""Dataset checkpoints over shard heads (manifest version 2): what a verifier accepts and refuses.

Every attack here is the publisher's own (it holds the key and owns the registry): anchoring a
checkpoint that drops a shard or rewinds one, rewriting a shard's rows, or rolling the data back
behind ``latest()``. A row's bundle proves row → shard root → shard head → dataset root →
anchor, and a bundle changed at any of those links is refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
from audit_dataset import first_failure, rows
from sharded_dataset import DATASET, Sharded, grown_twice

from proofs.audit import audit_log
from proofs.bundle import SHARD_HEAD_AS_ROW, verify_bundle
from proofs.bundle_v2 import build_shard_bundles
from proofs.history import verify_history
from proofs.leaves import leaf_bytes_for_batch
from proofs.merkle import leaf_hash
from proofs.shard_chain import shard_files
from proofs.shard_log import manifest_loader, shard_log
from proofs.shards import HEAD_MEMBERS, head_bytes, head_path
from proofs.verdict import INCOMPLETE, NOT_VERIFIED, VERIFIED
from streaming.chain import open_chain


@pytest.fixture
def sharded(tmp_path, chain) -> Sharded:
    return grown_twice(tmp_path, chain)


def test_an_untouched_sharded_dataset_and_its_history_are_verified(sharded, chain):
    verdict = audit_log(sharded.dataset_dir, chain.trust_root())
    assert verdict.status == VERIFIED, verdict.as_dict()
    assert (verdict.tree_size, verdict.log) == (25, DATASET)
    names = [c.name for c in verdict.checks]
    assert names[:7] == ["files", "root", "manifest", "shards", "signature", "identity", "anchor"]
    consistency = next(c for c in verdict.checks if c.name == "consistency")
    assert "no shard dropped or rewound; 1 grown consistently, 1 new" in consistency.detail


def test_a_checkpoint_that_drops_a_shard_is_refused(sharded, chain):
    heads = [h for s, h in sharded.heads.items() if not s.endswith("t.p1")]  # p1 vanishes
    sharded.heads = {h["shard"]: h for h in heads}
    sharded.publish({"t.p2": rows(25, 9)})  # the total still grows: the registry accepts it
    verdict = verify_history(sharded.dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    assert first_failure(verdict) == (
        "consistency",
        f"25 → 28: shard {DATASET}/t.p1 (size 6) is missing from the later checkpoint",
    )


def test_a_checkpoint_that_rewinds_a_shard_is_refused(sharded, chain):
    rewound = dict(sharded.heads[f"{DATASET}/t.p0"])
    first = sharded.checkpoints[0]["manifest"]["shards"][0]  # p0 at size 10
    rewound.update({k: first[k] for k in ("tree_size", "root", "manifest_sha256", "manifest_path")})
    sharded.heads[f"{DATASET}/t.p0"] = rewound
    sharded.publish({"t.p1": rows(25, 9)})
    name, detail = first_failure(verify_history(sharded.dataset_dir, chain.trust_root()))
    assert (name, detail) == (
        "consistency",
        f"25 → 29: shard {DATASET}/t.p0 went back from size 15 to 10: a log never shrinks",
    )


def test_a_shard_whose_anchored_rows_were_rewritten_is_refused(tmp_path, chain):
    data = Sharded(tmp_path, chain)
    data.publish({"t.p0": rows(0, 8)})
    fork = Sharded(tmp_path / "fork", open_chain("embedded", None, None))  # other rows, then 4
    fork._files = 100  # its own file names
    fork.publish({"t.p0": rows(100, 8)})
    fork_head = fork.publish({"t.p0": rows(8, 4)})["manifest"]["shards"][0]
    for path in (fork.dataset_dir / "shards").rglob("*"):  # the forked shard's objects here
        target = data.dataset_dir / path.relative_to(fork.dataset_dir)
        if path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    data.anchor_dataset([fork_head])
    name, detail = first_failure(verify_history(data.dataset_dir, chain.trust_root()))
    assert name == "consistency"
    assert detail == (
        f"8 → 12: shard {DATASET}/t.p0: the tree of size 12 does not extend the tree of size 8 "
        "(history rewritten after the earlier checkpoint)"
    )


def test_data_rolled_back_behind_the_registrys_latest_is_refused(sharded, chain):
    newest = sharded.dataset_dir / "checkpoints" / "000000000025.manifest.json"
    newest.unlink()
    verdict = verify_history(sharded.dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    name, detail = first_failure(verdict)
    assert name == "latest"
    assert "a newer checkpoint is withheld, or the data was rolled back" in detail


def _bundles(sharded: Sharded, shard: str, leaves: list[int], tmp_path) -> list[dict]:
    checkpoint = sharded.checkpoints[-1]
    manifest = sharded.shard_manifests[shard]
    log = shard_log(sharded.dataset_dir, manifest, tmp_path / "log")
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = shard_files(shard, manifest, manifest_loader(sharded.dataset_dir))
    table = pa.concat_tables([pq.read_table(sharded.dataset_dir / f["path"]) for f in files])
    row_bytes = leaf_bytes_for_batch(table.take(leaves))
    anchor = {
        "chain_id": checkpoint["chain_id"],
        "contract": checkpoint["contract"],
        "dataset_id": __import__("hashlib").sha256(DATASET.encode()).hexdigest(),
        "transaction": checkpoint["anchor_tx"],
        "block": checkpoint["anchor_block"],
    }
    return build_shard_bundles(
        log, leaves, row_bytes, checkpoint["manifest"]["shards"], checkpoint, anchor, DATASET
    )


def test_a_rows_bundle_proves_it_up_to_the_anchored_dataset_checkpoint(sharded, chain, tmp_path):
    shard = f"{DATASET}/t.p0"
    bundle, last = _bundles(sharded, shard, [3, 14], tmp_path)
    trust = chain.trust_root()
    assert verify_bundle(bundle, trust).status == VERIFIED
    assert [c.name for c in verify_bundle(last, trust).checks] == [
        "bundle", "leaf", "inclusion", "shard", "identity", "anchor",
    ]  # fmt: skip
    assert (bundle["log"], bundle["checkpoint"]["log"], bundle["shard"]["tree_size"]) == (
        shard,
        DATASET,
        15,
    )
    assert verify_bundle(json.loads(json.dumps(bundle))).status == INCOMPLETE  # nothing pinned


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda b: b["shard"].update(tree_size=14), "shard"),  # same path shape: §5
        (lambda b: b["shard"].update(root="ab" * 32), "inclusion"),
        (lambda b: b.update(head_index=1), "shard"),
        (lambda b: b["head_path"].reverse(), "shard"),
        (lambda b: b["checkpoint"].update(shards=2), "shard"),
        (lambda b: b["checkpoint"].update(tree_size=24), "anchor"),
        (lambda b: b["row"].update(rsrp_dbm=-50.0), "leaf"),
        (lambda b: b.update(log=f"{DATASET}/t.p1"), "bundle"),
    ],
)
def test_a_bundle_changed_at_any_link_is_refused(sharded, chain, tmp_path, change, check):
    (bundle,) = _bundles(sharded, f"{DATASET}/t.p0", [3], tmp_path)
    change(bundle)
    verdict = verify_bundle(bundle, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    assert first_failure(verdict)[0] == check


def test_a_shard_head_passed_off_as_a_row_in_a_version_1_bundle_is_refused(tmp_path, chain):
    # Two rows in two shards: the checkpoint's tree of two heads has the path shape of a tree
    # of two rows, so the head folded to the anchored root and was VERIFIED as a "row".
    checkpoint = Sharded(tmp_path, chain).publish({"t.p0": rows(0, 1), "t.p1": rows(1, 1)})
    heads = checkpoint["manifest"]["shards"]
    head = {name: heads[0][name] for name in HEAD_MEMBERS}
    bundle = {
        "bundle_version": 1,
        "dataset": DATASET,
        "log": DATASET,
        "row": head,
        "leaf_index": 0,
        "leaf_hash": leaf_hash(head_bytes(head)).hex(),
        "audit_path": [h.hex() for h in head_path(heads, 0)],
        "checkpoint": {key: checkpoint[key] for key in ("tree_size", "root", "manifest_sha256")}
        | {"log": DATASET},
        "anchor": None,
    }
    verdict = verify_bundle(bundle, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    assert first_failure(verdict) == ("leaf", f"leaf 0: {SHARD_HEAD_AS_ROW}")
