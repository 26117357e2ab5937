"""A worker's catalog learns the files other workers added to a shard by reading the shard's
chain of manifests back to the head it was hydrated to last: a batch reads what was added
since, not the shard's whole history (streaming/hydration.py)."""

from __future__ import annotations

from audit_dataset import rows
from sharded_dataset import DATASET, Sharded

from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.storage import Store
from streaming.checkpoints import Checkpoints
from streaming.hydration import links_since

P0 = f"{DATASET}/t.p0"


def _files_since(checkpoints, dataset, head, mark) -> list[dict]:
    return [f for link in links_since(checkpoints, dataset, head, mark) for f in link["files"]]


def _grown(tmp_path, chain) -> Sharded:
    data = Sharded(tmp_path / "data", chain)
    for first in range(0, 15, 3):  # five checkpoints of three rows
        data.publish({"t.p0": rows(first, 3)})
    return data


class CountingStore:
    """The data directory's store, counting the manifests read from it."""

    def __init__(self, root) -> None:
        self.store, self.reads = Store.open(root), []
        self.uri = f"counting:{root}"

    def read_bytes(self, path: str) -> bytes:
        self.reads.append(path)
        return self.store.read_bytes(path)

    def exists(self, path: str) -> bool:
        return self.store.exists(path)


def test_without_a_mark_every_file_of_the_chain_is_read(tmp_path, chain):
    data = _grown(tmp_path, chain)
    checkpoints = Checkpoints(Store.open(data.root), chain.anchor)
    files = _files_since(checkpoints, DATASET, data.heads[P0], None)
    assert sorted(f["leaf_start"] for f in files) == [0, 3, 6, 9, 12]


def test_with_a_mark_only_the_links_after_it_are_read(tmp_path, chain):
    data = _grown(tmp_path, chain)
    marked = data.checkpoints[2]["manifest"]["shards"][0]  # p0 at size 9
    store = CountingStore(data.root)
    files = _files_since(
        Checkpoints(store, chain.anchor), DATASET, data.heads[P0], marked["manifest_sha256"]
    )
    assert sorted(f["leaf_start"] for f in files) == [9, 12]
    assert len(store.reads) == 2  # the head and the link between it and the mark


def test_a_mark_off_the_chain_reads_the_whole_chain(tmp_path, chain):
    data = _grown(tmp_path, chain)
    files = _files_since(
        Checkpoints(Store.open(data.root), chain.anchor), DATASET, data.heads[P0], "f" * 64
    )
    assert sorted(f["leaf_start"] for f in files) == [0, 3, 6, 9, 12]


def test_a_catalog_keeps_its_marks_and_a_catalog_made_anew_has_none(tmp_path):
    layout = DataLayout(tmp_path / "work")
    with Catalog(layout) as catalog:
        assert catalog.hydrated_heads([P0]) == {}
        catalog.mark_hydrated({P0: "a" * 64})
        catalog.mark_hydrated({P0: "b" * 64})
    with Catalog(layout) as catalog:
        assert catalog.hydrated_heads([P0, f"{DATASET}/t.p1"]) == {P0: "b" * 64}
    layout.catalog.unlink()
    with Catalog(layout) as catalog:
        assert catalog.hydrated_heads([P0]) == {}
