"""Proof bundles (one row → checkpoint → anchor), history between checkpoints, batched anchors.

Like ``test_audit.py``, each tamper changes what a dishonest seller could change and expects
the verdict to name what was caught.
"""

from __future__ import annotations

import copy

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, first_failure, publish, rows

from proofs.bundle import build_bundles, verify_bundle
from proofs.history import verify_history
from proofs.leaves import leaf_bytes_for_batch, leaf_hashes_for_batch
from proofs.log import DatasetLog, LogRef
from proofs.manifest import (
    all_manifests,
    load_manifest,
    write_manifest,
)
from proofs.signing import publisher_key
from proofs.verdict import INCOMPLETE, VERIFIED
from streaming.chain import open_chain

# -- proof bundles ------------------------------------------------------------------------------


@pytest.fixture
def bundles(published):
    dataset_dir, checkpoints = published
    table = pq.read_table(dataset_dir / "data" / "batch-0001.parquet").slice(5, 3)
    log = LogRef.for_dataset(dataset_dir)
    return build_bundles(
        log, [35, 36, 37], leaf_bytes_for_batch(table), checkpoints[-1], checkpoints[-1]
    )


def test_every_bundle_is_incomplete_offline_and_verified_against_the_pinned_chain(bundles, chain):
    for bundle in bundles:
        offline = verify_bundle(bundle)
        assert offline.status == INCOMPLETE
        assert [(c.name, c.ok) for c in offline.checks] == [
            ("bundle", True),
            ("leaf", True),
            ("inclusion", True),
            ("identity", None),
            ("anchor", None),
        ]
        assert verify_bundle(bundle, chain.trust_root()).status == VERIFIED


def test_a_bundle_carries_row_path_checkpoint_and_anchor(bundles, published, chain):
    _, checkpoints = published
    bundle = bundles[0]
    assert bundle["row"]["node_id"] == "node-00035"
    assert bundle["leaf_index"] == 35 and len(bundle["audit_path"]) == 6
    assert bundle["checkpoint"] == {
        "log": DATASET,
        "tree_size": 50,
        "root": checkpoints[-1]["root"],
        "manifest_sha256": checkpoints[-1]["manifest_sha256"],
    }
    assert bundle["anchor"]["contract"] == chain.contract
    assert bundle["anchor"]["transaction"] == checkpoints[-1]["anchor_tx"]


@pytest.mark.parametrize(
    ("change", "check", "detail"),
    [
        (lambda b: b["row"].update(rsrp_dbm=-1.0), "leaf", "leaf 35: the row does not hash"),
        (lambda b: b.update(leaf_index=34), "leaf", None),
        (lambda b: b["audit_path"].reverse(), "inclusion", "leaf 35: the audit path does not"),
        (lambda b: b["audit_path"].pop(), "inclusion", None),
        (lambda b: b["checkpoint"].update(root="ab" * 32), "inclusion", None),
        (lambda b: b["checkpoint"].update(tree_size=30), "inclusion", None),
        (lambda b: b.update(audit_path=["xyz"]), "bundle", "audit_path[0] must be 64"),
        (lambda b: b.pop("row"), "bundle", "row must be a JSON object"),
    ],
)
def test_any_change_to_a_bundle_fails_and_names_the_check(bundles, change, check, detail):
    bundle = copy.deepcopy(bundles[0])
    change(bundle)
    if check == "leaf" and detail is None:  # a leaf index change: the row no longer fits the path
        check, detail = "inclusion", "leaf 34: the audit path does not"
    name, found = first_failure(verify_bundle(bundle))
    assert name == check
    assert detail is None or found.startswith(detail)


@pytest.mark.parametrize("left_out", [("anchor",), ("anchor", "block"), ("anchor", "transaction")])
def test_a_bundle_without_its_anchor_hints_is_verified_as_with_them_null(bundles, chain, left_out):
    # The anchor is looked up on the pinned registry; the bundle's section only names where.
    bundle = copy.deepcopy(bundles[0])
    section = bundle
    for key in left_out[:-1]:
        section = section[key]
    del section[left_out[-1]]  # was a KeyError out of verify_bundle
    assert verify_bundle(bundle, chain.trust_root()).status == VERIFIED


def test_a_bundle_against_a_checkpoint_the_chain_does_not_hold_fails_its_anchor(
    published, tmp_path
):
    dataset_dir, checkpoints = published
    other_chain = open_chain("embedded", None, None)
    trust = other_chain.trust_root(dataset_dir.parent.parent)  # same publisher, nothing anchored
    table = pq.read_table(dataset_dir / "data" / "batch-0000.parquet").slice(0, 1)
    (bundle,) = build_bundles(
        LogRef.for_dataset(dataset_dir), [0], leaf_bytes_for_batch(table), checkpoints[0], None
    )
    assert bundle["anchor"] is None
    assert first_failure(verify_bundle(bundle, trust)) == (
        "anchor",
        f"no anchor of {DATASET} at size 30 in registry {other_chain.contract}",
    )


def test_build_bundles_refuses_a_row_that_is_not_the_committed_leaf(published):
    dataset_dir, checkpoints = published
    with pytest.raises(ValueError, match=r"not the leaf log probe\.v1 holds"):
        build_bundles(
            LogRef.for_dataset(dataset_dir),
            [3],
            leaf_bytes_for_batch(rows(4, 1)),
            checkpoints[-1],
            None,
        )


# -- history ------------------------------------------------------------------------------------


def test_successive_checkpoints_are_consistent_and_anchored(tmp_path, chain):
    publish(tmp_path, [rows(0, 7), rows(7, 9), rows(16, 1), rows(17, 40)], chain)
    verdict = verify_history(tmp_path / "published" / DATASET, chain.trust_root())
    assert verdict.ok
    consistency = [c.detail for c in verdict.checks if c.name == "consistency"]
    assert [d.split(":")[0] for d in consistency] == ["7 → 16", "16 → 17", "17 → 57"]
    assert [c.name for c in verdict.checks].count("anchored") == 4


def test_history_rewritten_after_an_anchor_is_caught_and_the_pair_named(tmp_path, chain):
    """A later checkpoint whose tree does not extend the anchored earlier one: the chain accepts
    it (the size grows), the history check does not."""
    (first,) = publish(tmp_path, [rows(0, 10)], chain)
    dataset_dir = tmp_path / "published" / DATASET
    rewritten = rows(0, 10).set_column(2, "rsrp_dbm", pa.array([-70.0] * 10))
    log = DatasetLog(dataset_dir / "log")
    log.append_at(0, leaf_hashes_for_batch(rewritten) + leaf_hashes_for_batch(rows(10, 5)))
    first_manifest, _ = load_manifest(all_manifests(dataset_dir)[0])
    forged = copy.deepcopy(first_manifest)
    forged["checkpoint"].update(tree_size=15, root=log.root().hex())
    forged["files"][0]["rows"] = 15
    forged["previous"] = {k: first[k] for k in ("tree_size", "root", "manifest_sha256")}
    _, digest = write_manifest(dataset_dir, forged, publisher_key(tmp_path))
    chain.anchor(
        [
            {
                "dataset": DATASET,
                "tree_size": 15,
                "root": log.root().hex(),
                "manifest_sha256": digest.hex(),
                "previous_tree_size": 10,
            }
        ]
    )
    verdict = verify_history(dataset_dir, chain.trust_root())
    assert first_failure(verdict) == (
        "consistency",
        "10 → 15: the tree of size 15 does not extend the tree of size 10 "
        "(history rewritten after the earlier checkpoint)",
    )


def test_a_broken_previous_link_is_named(tmp_path):
    publish(tmp_path, [rows(0, 3), rows(3, 3)], None)
    dataset_dir = tmp_path / "published" / DATASET
    manifest_file = all_manifests(dataset_dir)[-1]
    manifest, _ = load_manifest(manifest_file)
    manifest["previous"]["manifest_sha256"] = "00" * 32
    write_manifest(dataset_dir, manifest, publisher_key(tmp_path))
    assert first_failure(verify_history(dataset_dir)) == (
        "previous",
        "checkpoint 6: previous does not name checkpoint 3",
    )


def test_history_of_another_log_id_finds_no_checkpoint(published):
    dataset_dir, _ = published
    shard = LogRef(f"{DATASET}/t.p3", dataset_dir / "logs" / "t.p3")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of log probe\.v1/t\.p3"):
        verify_history(dataset_dir, log=shard)


# -- chain --------------------------------------------------------------------------------------


def test_a_batch_of_checkpoints_goes_in_one_transaction_with_gas_shared(chain):
    checkpoints = [
        {
            "dataset": f"d{i}",
            "tree_size": 10,
            "root": f"{i + 1:064x}",
            "manifest_sha256": "cd" * 32,
            "previous_tree_size": 0,
        }
        for i in range(3)
    ]
    anchored = chain.anchor(checkpoints)
    assert len({a["anchor_tx"] for a in anchored}) == 1
    assert all(a["gas_used"] * 3 == pytest.approx(a["anchor_tx_gas"], abs=3) for a in anchored)
    again = chain.anchor(checkpoints)  # a redo after a crash: nothing sent, blocks still known
    assert [a["anchor_tx"] for a in again] == [None] * 3
    assert [a["anchor_block"] for a in again] == [a["anchor_block"] for a in anchored]


def test_batched_anchoring_costs_less_gas_per_checkpoint_than_one_per_transaction():
    from benchmarks.proofs import _gas

    gas = _gas()
    assert gas["gas_per_checkpoint_batched_10"] < gas["gas_per_checkpoint_batched"]
    assert gas["gas_per_checkpoint_batched"] < gas["gas_single"]
