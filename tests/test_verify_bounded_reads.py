"""A data directory being verified is untrusted: the documents the verifier reads from it
(manifests, signatures, leaf files, reports, tables) are read no further than a bound, so a
huge one gets a verdict instead of being loaded whole. The huge files here are sparse (1 GiB
of zeros after the real bytes, no disk used)."""

from __future__ import annotations

import pytest
from audit_dataset import first_failure

from proofs.manifest import MAX_DOCUMENT_BYTES, all_manifests, read_document, signature_path
from proofs.verdict import NOT_VERIFIED
from proofs.verify import verify_dataset

GIB = 2**30


def grown(path, size: int = GIB) -> None:
    """``path`` extended to ``size`` bytes (sparse)."""
    with path.open("r+b") as file:
        file.truncate(size)


def test_a_document_within_the_bound_is_read_whole(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b"x" * 1000)
    assert read_document(path, limit=1000) == b"x" * 1000


def test_a_document_over_the_bound_is_refused_after_reading_one_byte_past_it(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b"{}")
    grown(path)
    with pytest.raises(ValueError, match=f"doc.json is over {MAX_DOCUMENT_BYTES:,} bytes"):
        read_document(path)


def test_a_huge_manifest_is_a_failed_manifest_check(published, chain):
    dataset_dir, _ = published
    grown(all_manifests(dataset_dir)[-1])
    verdict = verify_dataset(dataset_dir, trust=chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    name, detail = first_failure(verdict)
    assert name == "manifest" and "bytes: not read" in detail


def test_a_huge_signature_is_a_failed_signature_check(published, chain):
    dataset_dir, _ = published
    path = signature_path(all_manifests(dataset_dir)[-1])
    grown(path)
    name, detail = first_failure(verify_dataset(dataset_dir, trust=chain.trust_root()))
    assert name == "signature" and f"{path.name} is not a signature" in detail
