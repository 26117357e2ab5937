"""Great Expectations after the anchor: a checkpoint's report, attested and verified.

A batch anchors its checkpoints without running GE; the quality worker then validates exactly
the files each checkpoint added and signs an attestation binding the report to the manifest.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time

from hypothesis import given
from hypothesis import strategies as st
from quality_support import RADIO

from proofs import quality_attestation
from proofs.signing import publisher_key
from proofs.verdict import NOT_VERIFIED, VERIFIED
from proofs.verify import verify_dataset
from sinks.layout import DataLayout
from streaming.quality_pool import drain
from streaming.quality_queue import pending
from validators.expectations import report_bytes, validate


def _radio(summary) -> dict:
    (checkpoint,) = [c for c in summary.checkpoints if c["dataset"] == RADIO]
    return checkpoint


def _verify(data_dir, chain):
    return verify_dataset(data_dir / "published" / RADIO, trust=chain.trust_root(data_dir))


def test_the_anchored_manifest_names_the_report_to_come_and_no_hash(anchored):
    data_dir, summary, _ = anchored
    checkpoint = _radio(summary)
    quality = json.loads((data_dir / checkpoint["manifest_path"]).read_text())["quality"]
    size = checkpoint["tree_size"]
    assert quality["report_path"] == f"quality/{size:012d}.validation.json"
    assert quality["attestation_path"] == f"quality/{size:012d}.attestation.json"
    assert "report_sha256" not in quality and "expectations" not in quality
    assert not (data_dir / "published" / RADIO / quality["report_path"]).exists()
    queued = [p.name for p in pending(DataLayout(data_dir))]
    assert f"{RADIO}.{size:012d}.json" in queued


def test_before_its_report_a_checkpoint_verifies_and_says_the_report_is_pending(anchored):
    data_dir, _, chain = anchored
    verdict = _verify(data_dir, chain)
    assert verdict.status == VERIFIED
    (manifest,) = [c for c in verdict.checks if c.name == "manifest"]
    assert manifest.detail.endswith("GE report pending (it runs after the anchor)")
    assert "quality" not in [c.name for c in verdict.checks]


def test_the_worker_writes_the_report_of_exactly_the_added_rows_and_signs_it(copy_of):
    data_dir, summary, chain = copy_of
    layout = DataLayout(data_dir)
    assert drain(layout) == len(summary.checkpoints)
    assert pending(layout) == []
    checkpoint = _radio(summary)
    dataset_dir = layout.dataset_dir(RADIO)
    size = checkpoint["tree_size"]
    report = (dataset_dir / quality_attestation.report_name(size)).read_bytes()
    document = json.loads((dataset_dir / quality_attestation.attestation_name(size)).read_bytes())
    claim = document["statement"]
    assert claim["manifest_sha256"] == checkpoint["manifest_sha256"]
    assert claim["report_sha256"] == hashlib.sha256(report).hexdigest()
    assert json.loads(report)["rows_validated"] == size
    assert document["signature"]["key_id"] == publisher_key(data_dir).key_id
    assert (dataset_dir / "quality" / "docs" / "index.html").exists()
    verdict = _verify(data_dir, chain)
    assert verdict.status == VERIFIED
    assert [c.ok for c in verdict.checks if c.name == "quality"] == [True]


def test_the_report_is_what_great_expectations_says_of_those_rows_and_a_redo_is_identical(
    copy_of,
):
    data_dir, summary, _ = copy_of
    layout = DataLayout(data_dir)
    size = _radio(summary)["tree_size"]
    job = layout.private / "quality-queue" / f"{RADIO}.{size:012d}.json"
    saved = job.read_bytes()
    drain(layout)
    dataset_dir = layout.dataset_dir(RADIO)
    files = [dataset_dir / quality_attestation.report_name(size)]
    files.append(dataset_dir / quality_attestation.attestation_name(size))
    first = [f.read_bytes() for f in files]
    job.write_bytes(saved)  # as if the worker had died before removing the job
    drain(layout)
    assert [f.read_bytes() for f in files] == first
    import pyarrow.parquet as pq

    from schemas.published import published_schema_for_dataset

    attested = json.loads(first[1])["statement"]["files"]
    rows = pq.read_table([dataset_dir / f["path"] for f in attested])
    expected, _ = validate(published_schema_for_dataset(RADIO), rows)
    assert report_bytes(expected) == first[0]


def test_a_changed_report_is_refused(copy_of):
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    report = (
        data_dir
        / "published"
        / RADIO
        / quality_attestation.report_name(_radio(summary)["tree_size"])
    )
    report.write_bytes(report.read_bytes().replace(b'"success": true', b'"success": false', 1))
    verdict = _verify(data_dir, chain)
    assert verdict.status == NOT_VERIFIED
    assert verdict.first_failure.name == "quality"
    assert verdict.first_failure.detail.endswith("SHA-256 differs")


def test_an_attestation_signed_by_another_key_is_refused(copy_of, tmp_path):
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    path = (
        data_dir
        / "published"
        / RADIO
        / quality_attestation.attestation_name(_radio(summary)["tree_size"])
    )
    document = json.loads(path.read_bytes())
    forged = quality_attestation.sign(publisher_key(tmp_path / "other"), document["statement"])
    path.write_text(json.dumps(forged))
    verdict = _verify(data_dir, chain)
    assert verdict.first_failure.name == "quality"
    assert "not by the manifests' publisher" in verdict.first_failure.detail


def test_a_failed_validation_attested_verifies_and_says_it_failed(copy_of):
    # Authentic, and a fact about the rows a buyer must see: the check said only "attested".
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    dataset_dir = data_dir / "published" / RADIO
    path = dataset_dir / quality_attestation.attestation_name(_radio(summary)["tree_size"])
    claim = json.loads(path.read_bytes())["statement"]
    assert "expectations met)" in _quality_detail(data_dir, chain)
    report = json.loads((dataset_dir / claim["report_path"]).read_bytes())
    report["success"] = False
    report["statistics"]["successful_expectations"] -= 1
    data = report_bytes(report)
    (dataset_dir / claim["report_path"]).write_bytes(data)
    said = {**claim["expectations"], "success": False}
    said["successful"] -= 1
    failed = quality_attestation.statement(
        dataset=claim["dataset"], tree_size=claim["tree_size"],
        manifest_sha256=claim["manifest_sha256"], files=claim["files"], report=data,
        expectations=said,
    )  # fmt: skip
    path.write_text(json.dumps(quality_attestation.sign(publisher_key(data_dir), failed)))
    detail = _quality_detail(data_dir, chain)
    met = f"({said['successful']} of {said['evaluated']} expectations met"
    assert detail.endswith(f"{met}: the report says FAILED)")


def _quality_detail(data_dir, chain) -> str:
    verdict = _verify(data_dir, chain)
    assert verdict.status == VERIFIED
    return next(c.detail for c in verdict.checks if c.name == "quality")


def test_an_attestation_larger_than_its_files_need_is_refused_unread(copy_of):
    # 64 MiB of empty "files" took the verifier 31 s and 2.9 GB, read and canonicalized.
    data_dir, summary, chain = copy_of
    drain(DataLayout(data_dir))
    size = _radio(summary)["tree_size"]
    path = data_dir / "published" / RADIO / quality_attestation.attestation_name(size)
    document = json.loads(path.read_bytes())
    document["statement"]["files"] += [{}] * 100_000
    path.write_text(json.dumps(document))
    started = time.monotonic()
    verdict = _verify(data_dir, chain)
    assert time.monotonic() - started < 10
    assert verdict.first_failure.name == "quality"
    assert verdict.first_failure.detail.endswith("bytes: not read")


# -- the attestation alone -----------------------------------------------------------------------

_KEY = None


def _key():
    global _KEY
    if _KEY is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from proofs.signing import PublisherKey

        _KEY = PublisherKey(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    return _KEY


def _claim(report: bytes) -> dict:
    summary = json.loads(report)
    return quality_attestation.statement(
        dataset="d.v1",
        tree_size=12,
        manifest_sha256="ab" * 32,
        files=[{"path": "data/b1.parquet", "sha256": "cd" * 32}],
        report=report,
        expectations={
            "evaluated": summary["statistics"]["evaluated_expectations"],
            "successful": summary["statistics"]["successful_expectations"],
            "success": summary["success"],
        },
    )


def _check(document, report: bytes) -> str | None:
    return quality_attestation.check(
        document,
        dataset="d.v1",
        tree_size=12,
        manifest_sha256="ab" * 32,
        added_files={"data/b1.parquet": "cd" * 32},
        report=report,
        trusted_key_id=_key().key_id,
    )


def _report(evaluated: int, successful: int) -> bytes:
    statistics = {"evaluated_expectations": evaluated, "successful_expectations": successful}
    return json.dumps({"statistics": statistics, "success": evaluated == successful}).encode()


@given(evaluated=st.integers(0, 99), failed=st.integers(0, 99))
def test_a_signed_statement_verifies(evaluated, failed):
    report = _report(evaluated, max(0, evaluated - failed))
    assert _check(quality_attestation.sign(_key(), _claim(report)), report) is None


_CHANGES = {
    "dataset": "e.v1",
    "tree_size": 13,
    "manifest_sha256": "ac" * 32,
    "files": [{"path": "data/b2.parquet", "sha256": "cd" * 32}],
    "report_path": "quality/x.json",
    "report_sha256": "00" * 32,
    "expectations": {"evaluated": 3, "successful": 2, "success": False},
}


@given(field=st.sampled_from(sorted(_CHANGES)), resign=st.booleans())
def test_any_changed_field_is_refused_signed_again_or_not(field, resign):
    report = _report(3, 3)
    changed = quality_attestation.sign(_key(), _claim(report))
    changed["statement"][field] = copy.deepcopy(_CHANGES[field])
    if resign:  # the publisher's own key, signing what is not so
        changed = quality_attestation.sign(_key(), changed["statement"])
    assert _check(changed, report) is not None


# -- hostile attestations: a reason, never an exception -------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


def _as_read(document: dict) -> dict:
    """As an auditor's JSON reader gets it back (NaN and Infinity included)."""
    return json.loads(json.dumps(document))


def test_a_statement_with_no_canonical_form_is_refused_with_its_reason():
    report = _report(3, 3)
    for value in (float("inf"), 2**53):  # JSON has them, I-JSON (RFC 8785's input) does not
        forged = quality_attestation.sign(_key(), _claim(report))
        forged["statement"]["tree_size"] = value
        assert _check(_as_read(forged), report).startswith("the statement has no canonical form")


def test_a_publisher_signed_statement_whose_files_are_not_objects_is_refused():
    report = _report(3, 3)
    for files in ([["data/b1.parquet", "cd" * 32]], [{"path": ["data/b1.parquet"]}]):
        claim = {**_claim(report), "files": files}
        forged = quality_attestation.sign(_key(), claim)  # the publisher's own key
        assert (
            _check(_as_read(forged), report) == "its files are not the files the checkpoint added"
        )


def test_a_statement_of_more_files_than_were_added_is_refused_before_it_is_canonicalized(
    monkeypatch,
):
    report = _report(3, 3)
    claim = {**_claim(report), "files": [{}] * 1_000}
    forged = _as_read(quality_attestation.sign(_key(), claim))
    monkeypatch.setattr(quality_attestation, "canonicalize", None)  # never reached
    assert _check(forged, report) == "its files are not the files the checkpoint added"


@given(field=st.sampled_from(quality_attestation._FIELDS), value=_JSON, resign=st.booleans())
def test_any_json_value_in_any_field_gets_a_reason_signed_again_or_not(field, value, resign):
    report = _report(3, 3)
    forged = _as_read(quality_attestation.sign(_key(), _claim(report)))
    forged["statement"][field] = value
    if resign:
        with contextlib.suppress(ValueError):  # no canonical form: nothing can sign it
            forged = quality_attestation.sign(_key(), _as_read(forged)["statement"])
    forged = _as_read(forged)
    reason = _check(forged, report)
    if forged["statement"] == _claim(report):  # the value it had: the attestation stands
        assert reason is None
    else:
        assert isinstance(reason, str)
