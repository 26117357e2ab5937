"""The history builds consistency proofs only between checkpoints the publisher vouches for.

An outsider can plant unsigned, unanchored checkpoints that claim billions of rows over sparse
leaf files; a proof over them costs work in proportion to those rows (a shard's log is rebuilt
from its leaf files). The registry is read first: a checkpoint not anchored as it is — or, where
no anchor can be read (the newest, not anchored yet; any, offline), not signed by the publisher
— has no proof built and none of its leaf files read. Proofs between the publisher's own
checkpoints are built as before. Each test fails at once (not after gigabytes) if a forged leaf
file is read: the spy raises.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from audit_dataset import rows
from forged_history import FORGED_TOPIC, plant_growing_shard, sparse_file, write_document
from sharded_dataset import DATASET, Sharded, grown_twice

import proofs.shard_log
from proofs.history import verify_history
from proofs.merkle import HASH_SIZE
from proofs.shards import head, heads_root
from proofs.trust import Pin, TrustRoot
from proofs.verdict import INCOMPLETE, NOT_VERIFIED

HUGE = 1 << 28  # rows a forged shard claims: 8 GiB of leaf hashes


@pytest.fixture
def sharded(tmp_path, chain) -> Sharded:
    return grown_twice(tmp_path, chain)


@pytest.fixture
def read(monkeypatch) -> list[str]:
    """The files whose leaves the history reads; reading a forged one (the genuine files hold
    a few rows each, the forged ones 2^27 or more) fails the test before it is read."""
    seen: list[str] = []
    genuine = proofs.shard_log.file_leaf_slices

    def spy(dataset_dir: Path, entry: dict):
        seen.append(entry["path"])
        assert entry["rows"] < 1_000, f"the leaves of a forged file read: {entry['path']}"
        return genuine(dataset_dir, entry)

    monkeypatch.setattr(proofs.shard_log, "file_leaf_slices", spy)
    return seen


def _newest(sharded: Sharded) -> tuple[dict, str]:
    path = sharded.dataset_dir / "checkpoints" / "000000000025.manifest.json"
    return json.loads(path.read_bytes()), hashlib.sha256(path.read_bytes()).hexdigest()


def _consistency(verdict) -> list[tuple[bool | None, str]]:
    return [(c.ok, c.detail) for c in verdict.checks if c.name == "consistency"]


def test_planted_checkpoints_after_the_newest_have_no_proof_built(sharded, chain, read):
    """25 → 2^27+25 → 2^28+25, a new shard growing over sparse leaf files, all linked."""
    plant_growing_shard(sharded.dataset_dir, DATASET, *_newest(sharded), 1 << 27)
    verdict = verify_history(sharded.dataset_dir, chain.trust_root())
    half, full = 25 + (1 << 27), 25 + (1 << 28)
    assert verdict.status == NOT_VERIFIED
    assert _consistency(verdict) == [
        (True, "16 → 25: no shard dropped or rewound; 1 grown consistently, 1 new"),
        (None, f"25 → {half}: not built: checkpoint {half} is not anchored as it is"),
        (None, f"{half} → {full}: not built: checkpoint {half} is not anchored as it is"),
    ]
    assert read and not [path for path in read if FORGED_TOPIC in path]


def test_an_unsigned_newest_growing_a_genuine_shard_is_not_taken_as_not_anchored_yet(
    sharded, chain, read
):
    """One planted checkpoint, the newest: the shard p1 grows by 2^28 rows through a chained
    link naming its genuine head. A newest checkpoint without an anchor is one not anchored
    yet only when the publisher signed it (the pipeline signs before it anchors)."""
    newest, digest = _newest(sharded)
    p1 = next(h for h in newest["shards"] if h["shard"].endswith("t.p1"))
    forged_file = "shards/t.p1/data/forged.parquet"
    (sharded.dataset_dir / forged_file).write_bytes(b"PAR1")
    sparse_file(sharded.dataset_dir / "shards/t.p1/data/forged.leaves", HUGE * HASH_SIZE)
    size = p1["tree_size"] + HUGE
    link = {
        "manifest_version": 3, "kind": "shard", "dataset": DATASET, "log": p1["shard"],
        "checkpoint": {"tree_size": size, "root": "ab" * 32},
        "previous": {k: p1[k] for k in ("tree_size", "root", "manifest_sha256")},
        "files": [{"path": forged_file, "sha256": hashlib.sha256(b"PAR1").hexdigest(),
                   "bytes": 4, "rows": HUGE, "leaf_start": p1["tree_size"]}],
    }  # fmt: skip
    relative = "shards/t.p1/checkpoints/forged.manifest.json"
    grown = {**head(p1["shard"], size, "ab" * 32, "0" * 64), "manifest_path": relative}
    grown["manifest_sha256"] = write_document(sharded.dataset_dir, relative, link)
    heads = [grown if h is p1 else h for h in newest["shards"]]
    total = 25 + HUGE
    write_document(sharded.dataset_dir, f"checkpoints/{total:012d}.manifest.json", {
        "manifest_version": 2, "kind": "dataset", "dataset": DATASET, "log": DATASET,
        "checkpoint": {"tree_size": total, "shards": 3, "root": heads_root(heads).hex()},
        "shards": heads,
        "previous": {"tree_size": 25, "root": newest["checkpoint"]["root"],
                     "manifest_sha256": digest},
    })  # fmt: skip
    verdict = verify_history(sharded.dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    why = (
        f"checkpoint {total} is not anchored (yet), and its signature fails: no signature "
        f"beside the manifest ({total:012d}.manifest.sig.json)"
    )
    assert _consistency(verdict)[-1] == (None, f"25 → {total}: not built: {why}")
    anchored = [c for c in verdict.checks if c.name == "anchored"]
    assert (anchored[-1].ok, anchored[-1].detail) == (False, why)


def test_a_signed_newest_not_anchored_yet_still_has_its_proof_built(
    sharded, chain, read, monkeypatch
):
    """The publisher's batch between its manifest and its anchor: INCOMPLETE, its step
    checked (the shard p0 it grows is rebuilt from its leaf files)."""
    monkeypatch.setattr(sharded.chain, "anchor", lambda checkpoints: [{}])
    sharded.publish({"t.p0": rows(25, 3)})
    verdict = verify_history(sharded.dataset_dir, chain.trust_root())
    assert verdict.status == INCOMPLETE, verdict.as_dict()
    assert _consistency(verdict)[-1] == (
        True,
        "25 → 28: no shard dropped or rewound; 1 grown consistently, 0 new",
    )
    assert any(path.startswith("shards/t.p0/") for path in read)


def test_offline_only_the_publishers_signed_checkpoints_have_proofs_built(sharded, chain, read):
    """No chain to read: the anchors cannot vouch for any checkpoint, the pinned identity's
    signatures do. INCOMPLETE, as every offline history; the forgery's leaves left unread."""
    plant_growing_shard(sharded.dataset_dir, DATASET, *_newest(sharded), 1 << 27)
    offline = TrustRoot(Pin(identity=chain.identity), None)
    verdict = verify_history(sharded.dataset_dir, offline)
    assert verdict.status == INCOMPLETE and verdict.first_failure is None
    steps = _consistency(verdict)
    assert steps[0][0] is True and [ok for ok, _ in steps[1:]] == [None, None]
    assert "has no anchor that could be read, and its signature fails" in steps[1][1]
