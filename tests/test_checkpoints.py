"""Manifests a batch wrote or read are known to the next one by their hash: not read and
parsed again, yet only where the store still has them."""

from __future__ import annotations

import hashlib
import json

import pytest

from sinks.storage import Store
from streaming import checkpoints as checkpoints_module
from streaming.chain import ChainChanged
from streaming.checkpoints import Checkpoints, _KnownManifests

DATASET = "radio_kpi.v1"


def write_manifest(store: Store, relative: str, manifest: dict) -> str:
    data = json.dumps(manifest).encode()
    store.write_bytes(f"published/{DATASET}/{relative}", data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(counting_store, monkeypatch) -> Store:
    monkeypatch.setattr(checkpoints_module, "_KNOWN", _KnownManifests())  # a process of its own
    return counting_store


def test_a_manifest_read_by_one_batch_is_not_read_again_by_the_next(store):
    digest = write_manifest(store, "checkpoints/a.manifest.json", {"files": [1, 2]})
    first = Checkpoints(store, chain=None).manifest(DATASET, "checkpoints/a.manifest.json", digest)
    again = Checkpoints(store, chain=None).manifest(DATASET, "checkpoints/a.manifest.json", digest)
    assert first == again == {"files": [1, 2]}
    assert store.reads == 1


def test_a_known_manifest_is_not_answered_where_the_store_has_none(store):
    digest = write_manifest(store, "checkpoints/pending/a.manifest.json", {"files": []})
    Checkpoints(store, chain=None).manifest(DATASET, "checkpoints/pending/a.manifest.json", digest)
    with pytest.raises(FileNotFoundError):  # so an anchored pending manifest is still promoted
        Checkpoints(store, chain=None).manifest(DATASET, "checkpoints/a.manifest.json", digest)


def test_a_manifest_known_in_one_store_is_read_in_another(store, tmp_path):
    digest = write_manifest(store, "checkpoints/a.manifest.json", {"files": [1]})
    Checkpoints(store, chain=None).manifest(DATASET, "checkpoints/a.manifest.json", digest)
    other = Store.open(tmp_path / "other")
    other.write_bytes(f"published/{DATASET}/checkpoints/a.manifest.json", b'{"files": [2]}')
    with pytest.raises(ChainChanged):  # the other store's file is not the manifest named
        Checkpoints(other, chain=None).manifest(DATASET, "checkpoints/a.manifest.json", digest)


def test_the_least_recently_used_go_first_past_the_limit():
    known = _KnownManifests(limit=10)
    known.put(("s", "a"), {"n": "a"}, 4)
    known.put(("s", "b"), {"n": "b"}, 4)
    assert known.get(("s", "a")) == {"n": "a"}  # now the most recent
    known.put(("s", "c"), {"n": "c"}, 4)
    assert [known.get(("s", k)) for k in "abc"] == [{"n": "a"}, None, {"n": "c"}]
    known.put(("s", "huge"), {}, 11)
    assert known.get(("s", "huge")) is None


def test_an_adopted_anchored_manifest_is_promoted_with_its_contribution_table(store):
    """The worker that anchored it stopped before giving both their final names: whoever reads
    the anchored checkpoint next does, the table included (auditors read it by its size)."""
    table = b'{"table": 1}'
    sha256 = hashlib.sha256(table).hexdigest()
    store.write_bytes(f"published/{DATASET}/checkpoints/pending/{sha256}.contributions.json", table)
    manifest = {"files": [], "contributions": {"sha256": sha256}}
    data = json.dumps(manifest).encode()
    digest = hashlib.sha256(data).hexdigest()  # as commit names it, by its digest
    store.write_bytes(f"published/{DATASET}/checkpoints/pending/{digest}.manifest.json", data)
    found = Checkpoints(store, chain=None)._anchored_manifest(DATASET, 7, digest)
    assert found == manifest
    assert store.read_bytes(f"published/{DATASET}/checkpoints/000000000007.contributions.json") == (
        table
    )
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"published/{DATASET}/checkpoints/pending/{sha256}.contributions.json")
