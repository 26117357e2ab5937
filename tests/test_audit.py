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
from audit_dataset import DATASET, first_failure, publish, rows

from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import (
    all_manifests,
    build_manifest,
    load_manifest,
    signature_path,
    table_schema,
    write_manifest,
)
from proofs.signing import publisher_key
from proofs.trust import Pin, TrustRoot
from proofs.verdict import VERIFIED
from proofs.verify import verify_dataset


def rewrite(path, table):
    pq.write_table(table, path)


def tamper_rows(dataset_dir, batch, change, chain):
    """Rewrite ``data/<batch>.parquet`` as ``change(table)``; return the first failed check."""
    path = dataset_dir / "data" / f"{batch}.parquet"
    rewrite(path, change(pq.read_table(path)))
    return first_failure(verify_dataset(dataset_dir, trust=chain.trust_root()))


# -- whole dataset ------------------------------------------------------------------------------


def test_an_untouched_dataset_verifies_every_check(published, chain):
    dataset_dir, _ = published
    verdict = verify_dataset(dataset_dir, trust=chain.trust_root())
    assert verdict.ok
    assert [(c.name, c.ok) for c in verdict.checks] == [
        ("files", True),
        ("root", True),
        ("manifest", True),
        ("signature", True),
        ("identity", True),
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
    verdict = verify_dataset(dataset_dir, trust=chain.trust_root())
    assert [c.name for c in verdict.checks if c.ok] == [
        "files", "root", "manifest", "signature", "identity",
    ]  # fmt: skip
    assert first_failure(verdict) == (
        "anchor",
        f"anchored root {checkpoints[-1]['root']} != checkpoint root {log.root().hex()}",
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


def test_an_auditor_can_pin_the_publisher_key(published, chain, tmp_path):
    """Pinned by key id: the data's copy of the identity document is used only because that
    key signed it; the registry it names is then checked on the chain."""
    dataset_dir, _ = published
    key_id = publisher_key(dataset_dir.parent.parent).key_id
    copy_of_identity = (dataset_dir.parent / "publisher-identity.json").read_bytes()

    def pinned(key: str) -> TrustRoot:
        return TrustRoot(Pin(key_id=key), chain.registry.w3, published_identity=copy_of_identity)

    assert verify_dataset(dataset_dir, trust=pinned(key_id)).status == VERIFIED
    other = publisher_key(tmp_path / "other").key_id
    verdict = verify_dataset(dataset_dir, trust=pinned(other))
    assert first_failure(verdict) == ("signature", f"signed by key {key_id}, not by {other}")
    assert verdict.checks[-2].detail == (
        f"the published identity document is not signed by the pinned key {other}"
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
    assert verify_dataset(dataset_dir).first_failure is None  # offline: INCOMPLETE at best
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
    with pytest.raises(ValueError, match="a report_path only with its report_sha256 or"):
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
            quality={"score": 1, "report_path": "quality/x.json"},  # neither hash nor attestation
        )


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


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
