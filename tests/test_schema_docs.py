"""Chained shard manifests name their schema by documents instead of carrying it twice.

The schema document's path is fixed by the schema's fingerprint, the Table Schema document's by
the SHA-256 of its bytes; a verifier reads both. The attacks are the publisher's own (it holds
the key and anchors what it likes) and a storage's: a document missing, changed, or swapped.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from audit_dataset import DESCRIBED, first_failure, rows
from sharded_dataset import DATASET, FINGERPRINT, Sharded

from proofs import schema_docs
from proofs.audit import audit_log
from proofs.jcs import canonicalize
from proofs.manifest import table_schema
from proofs.manifest_v2 import manifest_digest
from proofs.shard_chain import chain as shard_chain
from proofs.shard_log import manifest_loader
from proofs.verdict import VERIFIED

P0 = f"{DATASET}/t.p0"
SCHEMA_DOC = f"schemas/{FINGERPRINT}.schema.json"


@pytest.fixture
def grown(tmp_path, chain) -> Sharded:
    """Shard p0 grown by three checkpoints, p1 by one: every link names its schema."""
    data = Sharded(tmp_path, chain)
    data.publish({"t.p0": rows(0, 4), "t.p1": rows(100, 6)})
    for first, count in ((4, 3), (7, 5)):
        data.publish({"t.p0": rows(first, count)})
    return data


def _table_doc(data: Sharded) -> str:
    return data.shard_manifests[P0]["resources"][0]["schema"]


def test_a_chained_link_names_its_schema_and_the_documents_hold_it(grown):
    manifest = grown.shard_manifests[P0]
    assert manifest["schema"] == {"fingerprint": FINGERPRINT, "path": SCHEMA_DOC}
    table_path = _table_doc(grown)
    assert {r["schema"] for r in manifest["resources"]} == {table_path}
    document = (grown.dataset_dir / SCHEMA_DOC).read_bytes()
    assert document == canonicalize({"fingerprint": FINGERPRINT, **DESCRIBED})
    table = (grown.dataset_dir / table_path).read_bytes()
    assert json.loads(table) == table_schema(DESCRIBED)
    assert table_path == f"schemas/{hashlib.sha256(table).hexdigest()}.table-schema.json"


def test_a_link_naming_its_schema_is_a_fraction_of_one_carrying_it(tmp_path, chain):
    sizes = {}
    for by_reference in (False, True):
        dataset = f"probe{int(by_reference)}.v1"  # one chain: a dataset of each kind
        data = Sharded(tmp_path, chain, dataset, schema_by_reference=by_reference)
        data.publish({"t.p0": rows(0, 4)})
        data.publish({"t.p0": rows(4, 3)})
        sizes[by_reference] = len(manifest_digest(data.shard_manifests[f"{dataset}/t.p0"])[0])
    carried = len(canonicalize(DESCRIBED)) + len(canonicalize(table_schema(DESCRIBED)))
    assert sizes[False] - sizes[True] > carried - 300  # both copies gone, a reference each left


def test_the_dataset_manifest_names_the_same_schema_document(grown):
    (checkpoint,) = grown.checkpoints[-1:]
    assert checkpoint["manifest"]["schema"] == {"fingerprint": FINGERPRINT, "path": SCHEMA_DOC}
    assert schema_docs.resolved(grown.dataset_dir, checkpoint["manifest"]) == {
        "fingerprint": FINGERPRINT,
        **DESCRIBED,
    }


def test_a_chain_of_links_naming_their_schema_is_verified(grown, chain):
    verdict = audit_log(grown.dataset_dir, chain.trust_root())
    assert verdict.status == VERIFIED, verdict.as_dict()


def test_links_made_before_with_the_schema_inline_stay_verified(tmp_path, chain):
    data = Sharded(tmp_path, chain, schema_by_reference=False)  # as the first chained links
    data.publish({"t.p0": rows(0, 4)})
    data.schema_by_reference = True
    data.publish({"t.p0": rows(4, 3)})
    links = shard_chain(P0, data.shard_manifests[P0], manifest_loader(data.dataset_dir))
    assert [schema_docs.by_reference(m) for m in links] == [False, True]
    verdict = audit_log(data.dataset_dir, chain.trust_root())
    assert verdict.status == VERIFIED, verdict.as_dict()


def test_a_missing_schema_document_is_refused_by_name(grown, chain):
    (grown.dataset_dir / SCHEMA_DOC).unlink()
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    # The dataset manifest names it too: the first a verifier reads
    assert detail == f"{DATASET}: schema document {SCHEMA_DOC} is missing"


def test_a_changed_schema_document_is_refused(grown, chain):
    document = grown.dataset_dir / SCHEMA_DOC
    described = json.loads(document.read_bytes())
    described["fields"][0]["description"] = "something else"
    document.write_bytes(canonicalize(described))
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    assert (
        detail == f"{DATASET}: schema document {SCHEMA_DOC} is not the schema of that fingerprint"
    )


def test_a_changed_table_schema_document_is_refused(grown, chain):
    path = _table_doc(grown)
    table = json.loads((grown.dataset_dir / path).read_bytes())
    table["fields"][0]["constraints"] = {}
    (grown.dataset_dir / path).write_bytes(canonicalize(table))
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    assert detail == (
        f"{P0}: Table Schema document {path} does not hash to its name (its checkpoint of size 4)"
    )


def test_a_table_schema_of_other_fields_is_refused_though_it_hashes_to_its_name(grown, chain):
    other = dict(DESCRIBED, fields=list(reversed(DESCRIBED["fields"])))
    table = canonicalize(table_schema(other))
    path = f"schemas/{hashlib.sha256(table).hexdigest()}.table-schema.json"
    (grown.dataset_dir / path).write_bytes(table)

    def to_other(manifest):
        for resource in manifest["resources"]:
            resource["schema"] = path

    grown.forge_head(P0, to_other)
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    assert detail.endswith(f"Table Schema document {path} does not describe the schema's fields")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda m: m["schema"].update(path="schemas/../../elsewhere.json"),
            "schema.path must be schemas/<fingerprint>.schema.json",
        ),
        (
            lambda m: m["schema"].update(fingerprint="0" * 64),
            "schema.path must be schemas/<fingerprint>.schema.json",
        ),
        (
            lambda m: m["schema"].update(name="probe"),
            "schema by reference must be exactly {fingerprint, path}",
        ),
        (
            lambda m: m["resources"][0].update(schema=table_schema(DESCRIBED)),
            "resources[].schema must name schemas/<sha256>.table-schema.json",
        ),
        (
            lambda m: m["resources"][0].update(schema="/etc/passwd"),
            "resources[].schema must name schemas/<sha256>.table-schema.json",
        ),
    ],
)
def test_a_schema_reference_of_another_shape_is_refused(grown, chain, change, problem):
    grown.forge_head(P0, change)
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    assert detail.endswith(problem)


def test_a_reader_of_a_checkpoint_whose_schema_document_is_gone_is_told_which(grown):
    (grown.dataset_dir / SCHEMA_DOC).unlink()
    with pytest.raises(ValueError, match=f"schema document {SCHEMA_DOC} is missing"):
        schema_docs.resolved(grown.dataset_dir, grown.checkpoints[-1]["manifest"])


def test_a_schema_document_too_large_to_be_one_is_refused_unread(grown, chain):
    with (grown.dataset_dir / SCHEMA_DOC).open("wb") as bomb:
        bomb.truncate(schema_docs.MAX_DOCUMENT_BYTES * 64)  # 64 MiB, sparse: never read whole
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "manifest"
    assert (
        detail == f"{DATASET}: schema document {SCHEMA_DOC} is not the schema of that fingerprint"
    )
