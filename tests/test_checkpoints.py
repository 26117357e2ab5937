"""Manifests a batch wrote or read are known to the next one by their hash: not read and
parsed again, yet only where the store still has them."""

from __future__ import annotations

import hashlib
import json

import pytest

from sinks.storage import Store
from streaming import checkpoints as checkpoints_module
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


def test_the_least_recently_used_go_first_past_the_limit():
    known = _KnownManifests(limit=10)
    known.put("a", {"n": "a"}, 4)
    known.put("b", {"n": "b"}, 4)
    assert known.get("a") == {"n": "a"}  # now the most recent
    known.put("c", {"n": "c"}, 4)
    assert (known.get("a"), known.get("b"), known.get("c")) == ({"n": "a"}, None, {"n": "c"})
    known.put("huge", {}, 11)
    assert known.get("huge") is None
