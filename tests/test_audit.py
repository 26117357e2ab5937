"""The auditor's three verifications, and tampering with a published dataset in every way.

Each tamper test changes what a dishonest seller could change on disk (rows, files, logs,
manifests, signatures) after anchoring, and expects the verdict to name what was caught.
"""

from __future__ import annotations

import copy
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, publish, rows

from proofs.bundle import build_bundles, verify_bundle
from proofs.history import verify_history
from proofs.leaves import leaf_bytes_for_batch, leaf_hashes_for_batch
from proofs.log import DatasetLog, LogRef
from proofs.manifest import (
    all_manifests,
    build_manifest,
    load_manifest,
    signature_path,
    table_schema,
    write_manifest,
)
from proofs.signing import publisher_key
from proofs.verify import verify_dataset
from streaming.chain import open_chain


@pytest.fixture
def chain():
    return open_chain("embedded", None, None)


@pytest.fixture
def published(tmp_path, chain):
    """Two anchored checkpoints: 30 rows, then 50."""
    checkpoints = publish(tmp_path, [rows(0, 30), rows(30, 20)], chain)
    return tmp_path / "published" / DATASET, checkpoints


def first_failure(verdict):
    failure = verdict.first_failure
    assert failure is not None, verdict.as_dict()
    return failure.name, failure.detail


def rewrite(path, table):
    pq.write_table(table, path)


def tamper_rows(dataset_dir, batch, change, chain):
    """Rewrite ``data/<batch>.parquet`` as ``change(table)``; return the first failed check."""
    path = dataset_dir / "data" / f"{batch}.parquet"
    rewrite(path, change(pq.read_table(path)))
    return first_failure(verify_dataset(dataset_dir, anchor_lookup=chain.lookup))


# -- whole dataset ------------------------------------------------------------------------------


def test_an_untouched_dataset_verifies_every_check(published, chain):
    dataset_dir, _ = published
    verdict = verify_dataset(dataset_dir, anchor_lookup=chain.lookup)
    assert verdict.ok
    assert [(c.name, c.ok) for c in verdict.checks] == [
        ("files", True),
        ("root", True),
        ("manifest", True),
        ("signature", True),
        ("anchor", True),
    ]


def test_a_changed_value_is_caught_and_the_row_named(published, chain):
    def change_row_7(table):
        values = table.column("rsrp_dbm").to_pylist()
        values[7] = -60.0
        return table.set_column(2, "rsrp_dbm", pa.array(values))

    dataset_dir, _ = published
    assert tamper_rows(dataset_dir, "batch-0001", change_row_7, chain) == (
        "files",
        "data/batch-0001.parquet: SHA-256 differs from the manifest; "
        "row 7 (leaf 37) differs from the committed leaf",
    )


def test_a_deleted_row_is_caught(published, chain):
    def delete_row_4(table):
        return pa.concat_tables([table.slice(0, 4), table.slice(5)])

    dataset_dir, _ = published
    assert tamper_rows(dataset_dir, "batch-0000", delete_row_4, chain) == (
        "files",
        "data/batch-0000.parquet: SHA-256 differs from the manifest (29 rows, manifest says 30)",
    )


def test_an_inserted_row_is_caught(published, chain):
    def insert_a_row_at_2(table):
        return pa.concat_tables([table.slice(0, 2), rows(999, 1), table.slice(2)])

    dataset_dir, _ = published
    assert tamper_rows(dataset_dir, "batch-0001", insert_a_row_at_2, chain) == (
        "files",
        "data/batch-0001.parquet: SHA-256 differs from the manifest (21 rows, manifest says 20)",
    )


def test_reordered_rows_are_caught_at_the_first_moved_row(published, chain):
    def swap_rows_3_and_4(table):
        order = list(range(table.num_rows))
        order[3], order[4] = order[4], order[3]
        return table.take(order)

    dataset_dir, _ = published
    name, detail = tamper_rows(dataset_dir, "batch-0000", swap_rows_3_and_4, chain)
    assert name == "files"
    assert detail.endswith("row 3 (leaf 3) differs from the committed leaf")


def test_a_deleted_file_is_caught(published, chain):
    dataset_dir, _ = published
    (dataset_dir / "data" / "batch-0001.parquet").unlink()
    assert first_failure(verify_dataset(dataset_dir)) == (
        "files",
        "data/batch-0001.parquet: missing",
    )


def test_a_manifest_rewritten_to_match_changed_rows_fails_its_anchor(published, chain):
    """The seller rewrites a row and re-signs a manifest for the new root: only the chain knows."""
    dataset_dir, checkpoints = published
    path = dataset_dir / "data" / "batch-0001.parquet"
    table = pq.read_table(path).set_column(2, "rsrp_dbm", pa.array([-50.0] * 20))
    rewrite(path, table)
    log = DatasetLog(dataset_dir / "log")
    log.append_at(30, leaf_hashes_for_batch(table))
    manifest_file = all_manifests(dataset_dir)[-1]
    manifest, _ = load_manifest(manifest_file)
    forged = copy.deepcopy(manifest)
    forged["checkpoint"]["root"] = log.root().hex()
    entry = forged["files"][1]
    entry["sha256"] = _sha256(path)
    entry["bytes"] = path.stat().st_size
    forged["resources"][1].update(hash=f"sha256:{entry['sha256']}", bytes=entry["bytes"])
    write_manifest(dataset_dir, forged, publisher_key(dataset_dir.parent.parent))
    verdict = verify_dataset(dataset_dir, anchor_lookup=chain.lookup)
    assert [c.name for c in verdict.checks if c.ok] == ["files", "root", "manifest", "signature"]
    assert first_failure(verdict) == (
        "anchor",
        f"anchored root {checkpoints[-1]['root']} != manifest root {log.root().hex()}",
    )


def test_a_signature_by_another_key_is_caught(published, tmp_path):
    dataset_dir, _ = published
    manifest_file = all_manifests(dataset_dir)[-1]
    stranger = publisher_key(tmp_path / "stranger")
    signature = signature_path(manifest_file)
    signature.write_text(json.dumps(stranger.sign(manifest_file.read_bytes())))
    assert first_failure(verify_dataset(dataset_dir)) == (
        "signature",
        "signed by a key other than the manifest's publisher",
    )


def test_an_auditor_can_pin_the_publisher_key(published, tmp_path):
    dataset_dir, _ = published
    key_id = publisher_key(dataset_dir.parent.parent).key_id
    assert verify_dataset(dataset_dir, publisher_key_id=key_id).ok
    other = publisher_key(tmp_path / "other").key_id
    assert first_failure(verify_dataset(dataset_dir, publisher_key_id=other)) == (
        "signature",
        f"signed by key {key_id}, not by {other}",
    )


def test_a_corrupted_signature_is_caught(published):
    dataset_dir, _ = published
    manifest_file = all_manifests(dataset_dir)[-1]
    path = signature_path(manifest_file)
    signature = json.loads(path.read_text())
    signature["signature"] = ("00" if signature["signature"][:2] != "00" else "11") + signature[
        "signature"
    ][2:]
    path.write_text(json.dumps(signature))
    assert first_failure(verify_dataset(dataset_dir)) == (
        "signature",
        "the Ed25519 signature does not match the manifest bytes",
    )


def test_a_missing_signature_is_caught(published):
    dataset_dir, _ = published
    manifest_file = all_manifests(dataset_dir)[-1]
    signature_path(manifest_file).unlink()
    name, detail = first_failure(verify_dataset(dataset_dir))
    assert name == "signature" and detail.startswith("no signature beside the manifest")


def test_the_quality_report_is_verified_when_the_manifest_names_it(tmp_path):
    report = tmp_path / "published" / DATASET / "quality" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text('{"score": 0.98}')
    quality = {
        "report_path": "quality/report.json",
        "report_sha256": _sha256(report),
        "score": 0.98,
    }
    publish(tmp_path, [rows(0, 5)], None, quality=quality)
    dataset_dir = tmp_path / "published" / DATASET
    assert verify_dataset(dataset_dir).ok
    report.write_text('{"score": 1.0}')
    assert first_failure(verify_dataset(dataset_dir)) == (
        "manifest",
        "quality report quality/report.json: SHA-256 differs",
    )


def test_manifests_are_data_packages_with_signed_publisher_and_byte_identical_on_redo(published):
    dataset_dir, _ = published
    manifest_file = all_manifests(dataset_dir)[-1]
    manifest, _ = load_manifest(manifest_file)
    assert manifest["profile"] == "data-package" and manifest["name"] == DATASET
    resource = manifest["resources"][1]
    assert resource["path"] == "data/batch-0001.parquet"
    assert resource["format"] == "parquet"
    assert resource["hash"] == f"sha256:{manifest['files'][1]['sha256']}"
    assert resource["bytes"] == (dataset_dir / resource["path"]).stat().st_size
    assert [f["type"] for f in resource["schema"]["fields"]] == ["string", "datetime", "number"]
    assert resource["schema"]["primaryKey"] == ["node_id", "ts"]
    key = publisher_key(dataset_dir.parent.parent)
    assert manifest["publisher"]["key_id"] == key.key_id
    published_key = json.loads((dataset_dir.parent / "publisher.json").read_text())
    assert published_key == key.describe()
    signature_file = signature_path(manifest_file)
    before = manifest_file.read_bytes(), signature_file.read_bytes()
    write_manifest(dataset_dir, manifest, key)  # a redo after a crash
    assert (manifest_file.read_bytes(), signature_file.read_bytes()) == before


def test_the_private_key_stays_private_and_is_reused(tmp_path):
    key = publisher_key(tmp_path)
    path = tmp_path / "private" / "keys" / "publisher-ed25519.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert publisher_key(tmp_path).key_id == key.key_id
    assert key.key_id == hashlib.sha256(key.public_key).hexdigest()
    assert "PRIVATE" not in (tmp_path / "published" / "publisher.json").read_text()


def test_build_manifest_refuses_a_malformed_quality_section():
    with pytest.raises(ValueError, match="report_path, report_sha256 and score"):
        build_manifest(
            dataset="d",
            tree_size=0,
            root=b"\x00" * 32,
            schema={"fields": []},
            fingerprint="",
            files=[],
            batch={},
            previous=None,
            pipeline_version="x",
            quality={"score": 1},
        )


# -- proof bundles ------------------------------------------------------------------------------


@pytest.fixture
def bundles(published):
    dataset_dir, checkpoints = published
    table = pq.read_table(dataset_dir / "data" / "batch-0001.parquet").slice(5, 3)
    log = LogRef.for_dataset(dataset_dir)
    return build_bundles(
        log, [35, 36, 37], leaf_bytes_for_batch(table), checkpoints[-1], checkpoints[-1]
    )


def test_every_bundle_verifies_offline_and_against_the_chain(bundles, chain):
    for bundle in bundles:
        offline = verify_bundle(bundle)
        assert offline.ok
        assert [(c.name, c.ok) for c in offline.checks] == [
            ("leaf", True),
            ("inclusion", True),
            ("anchor", None),
        ]
        assert verify_bundle(bundle, chain.lookup).checks[-1].ok is True


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


def test_a_bundle_against_a_checkpoint_the_chain_does_not_hold_fails_its_anchor(
    published, tmp_path
):
    dataset_dir, checkpoints = published
    other_chain = open_chain("embedded", None, None)
    table = pq.read_table(dataset_dir / "data" / "batch-0000.parquet").slice(0, 1)
    (bundle,) = build_bundles(
        LogRef.for_dataset(dataset_dir), [0], leaf_bytes_for_batch(table), checkpoints[0], None
    )
    assert bundle["anchor"] is None
    assert first_failure(verify_bundle(bundle, other_chain.lookup)) == (
        "anchor",
        f"no anchor on chain for {DATASET} at size 30",
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
    verdict = verify_history(tmp_path / "published" / DATASET, chain.lookup)
    assert verdict.ok
    consistency = [c.detail for c in verdict.checks if c.name == "consistency"]
    assert [d.split(":")[0] for d in consistency] == ["7 → 16", "16 → 17", "17 → 57"]
    assert [c.name for c in verdict.checks].count("anchor") == 4


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
            }
        ]
    )
    verdict = verify_history(dataset_dir, chain.lookup)
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
        }
        for i in range(3)
    ]
    anchored = chain.anchor(checkpoints)
    assert len({a["anchor_tx"] for a in anchored}) == 1
    assert all(a["gas_used"] * 3 == pytest.approx(a["anchor_tx_gas"], abs=3) for a in anchored)
    again = chain.anchor(checkpoints)  # a redo after a crash: nothing sent, blocks still known
    assert [a["anchor_tx"] for a in again] == [None] * 3
    assert [a["anchor_block"] for a in again] == [a["anchor_block"] for a in anchored]


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("arrow_type", "table_type"),
    [
        ("timestamp[us, tz=UTC]", "datetime"),
        ("int16", "integer"),
        ("uint64", "integer"),
        ("float", "number"),
        ("decimal128(10, 2)", "number"),
        ("bool", "boolean"),
        ("date32[day]", "date"),
        ("large_string", "string"),
        ("fixed_size_binary[16]", "binary"),
        ("list<item: string>", "array"),
        ("struct<a: int8>", "object"),
        ("duration[s]", "any"),
    ],
)
def test_resource_schemas_give_each_arrow_type_its_table_schema_type(arrow_type, table_type):
    schema = {"fields": [{"name": "x", "type": arrow_type}], "natural_key": []}
    assert table_schema(schema)["fields"][0]["type"] == table_type


def test_batched_anchoring_costs_less_gas_per_checkpoint_than_one_per_transaction():
    from benchmarks.proofs import _gas

    gas = _gas()
    assert gas["gas_per_checkpoint_batched_10"] < gas["gas_per_checkpoint_batched"]
    assert gas["gas_per_checkpoint_batched"] < gas["gas_single"]
