"""Chained shard manifests (version 3): each lists only the files its checkpoint adds.

A stream's shard manifests then grow with a batch, not with the shard's age, and a verifier
reads a shard's earlier files through the ``previous`` chain, each link found by the hash its
successor names. The attacks are the publisher's own (it holds the key and anchors what it
likes): a link missing, swapped, of another shard, with another root, or adding nothing.
"""

from __future__ import annotations

import json

import pytest
from audit_dataset import first_failure, rows
from hypothesis import given
from hypothesis import strategies as st
from sharded_dataset import DATASET, Sharded

from proofs.audit import audit_log
from proofs.manifest import manifest_problem
from proofs.manifest_v2 import manifest_digest, shard_manifest_path
from proofs.shard_chain import ChainMemo, shard_files
from proofs.shard_chain import chain as shard_chain
from proofs.shard_log import manifest_loader, shard_log
from proofs.verdict import NOT_VERIFIED, VERIFIED
from streaming.chain import open_chain

P0 = f"{DATASET}/t.p0"


@pytest.fixture
def grown(tmp_path, chain) -> Sharded:
    """Shard p0 grown by four checkpoints (4, 3, 5 and 2 rows), p1 by one (6 rows)."""
    data = Sharded(tmp_path, chain)
    data.publish({"t.p0": rows(0, 4), "t.p1": rows(100, 6)})
    for first, count in ((4, 3), (7, 5), (12, 2)):
        data.publish({"t.p0": rows(first, count)})
    return data


def _link_path(manifest: dict) -> str:
    link = manifest["previous"]
    return shard_manifest_path(P0, link["tree_size"], link["manifest_sha256"])


def test_each_shard_manifest_lists_only_the_files_its_checkpoint_adds(grown):
    manifest = grown.shard_manifests[P0]
    assert manifest["manifest_version"] == 3
    assert [(f["leaf_start"], f["rows"]) for f in manifest["files"]] == [(12, 2)]
    assert [r["path"] for r in manifest["resources"]] == [manifest["files"][0]["path"]]
    assert manifest["previous"]["tree_size"] == 12
    files = shard_files(P0, manifest, manifest_loader(grown.dataset_dir))
    assert [(f["leaf_start"], f["rows"]) for f in files] == [(0, 4), (4, 3), (7, 5), (12, 2)]


def test_a_shard_manifests_bytes_do_not_grow_with_the_shards_age(tmp_path, chain):
    data = Sharded(tmp_path, chain)
    sizes = []
    for number in range(6):
        data.publish({"t.p0": rows(number * 3, 3)})
        sizes.append(len(manifest_digest(data.shard_manifests[P0])[0]))
    # The same members each time: only the numbers' digits and the frontier's hashes (one for
    # each bit of the size) differ, where a whole listing grew by a file's entry every time.
    entry = len(manifest_digest(data.shard_manifests[P0]["files"])[0])
    assert max(sizes[1:]) - min(sizes[1:]) < 3 * 70 < entry


def test_a_chained_shard_is_verified_through_every_link(tmp_path, chain):
    data = Sharded(tmp_path, chain)
    for first, count in ((0, 4), (4, 3), (7, 5), (12, 2)):
        data.publish({"t.p0": rows(first, count)})
    verdict = audit_log(data.dataset_dir, chain.trust_root())
    assert verdict.status == VERIFIED, verdict.as_dict()
    files = next(c for c in verdict.checks if c.name == "files")
    assert (
        files.detail
        == f"{P0}: 4 files in a chain of 4 manifests match their SHA-256 and row counts"
    )


def test_shards_published_with_whole_listings_before_stay_verified(tmp_path, chain):
    data = Sharded(tmp_path, chain, chained=False)  # version 2, as published before
    data.publish({"t.p0": rows(0, 4)})
    data.publish({"t.p0": rows(4, 3)})
    data.chained = True  # then this version: its first chained link follows a whole listing
    data.publish({"t.p0": rows(7, 5)})
    data.publish({"t.p0": rows(12, 2)})
    assert [m["manifest_version"] for m in _links(data)] == [2, 3, 3]
    verdict = audit_log(data.dataset_dir, chain.trust_root())
    assert verdict.status == VERIFIED, verdict.as_dict()
    files = shard_files(P0, data.shard_manifests[P0], manifest_loader(data.dataset_dir))
    assert [f["leaf_start"] for f in files] == [0, 4, 7, 12]


def _links(data: Sharded) -> list[dict]:
    return shard_chain(P0, data.shard_manifests[P0], manifest_loader(data.dataset_dir))


def test_a_missing_link_is_refused_by_name(grown, chain):
    path = _link_path(grown.shard_manifests[P0])
    (grown.dataset_dir / path).unlink()
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "shards"
    assert detail.startswith(f"{P0}: an earlier manifest of its chain: [Errno 2]")
    assert path in detail


def test_a_link_swapped_for_other_bytes_is_refused(grown, chain):
    target = grown.dataset_dir / _link_path(grown.shard_manifests[P0])
    target.write_bytes(target.read_bytes().replace(b'"rows":5', b'"rows":6'))
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "shards"
    assert "is not the manifest" in detail and "its successor names" in detail


def test_a_link_to_another_shards_manifest_is_refused(grown, chain):
    other = grown.heads[f"{DATASET}/t.p1"]  # p1 at size 6: a real, signed manifest

    def to_p1(manifest):
        manifest["previous"] = {k: other[k] for k in ("tree_size", "root", "manifest_sha256")}
        manifest["files"][0]["leaf_start"] = 6
        manifest["resources"][0]["path"] = manifest["files"][0]["path"]

    grown.forge_head(P0, to_p1)
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "shards"
    assert f"{P0}: an earlier manifest of its chain:" in detail  # not found in p0's folder
    linked = grown.dataset_dir / shard_manifest_path(P0, 6, other["manifest_sha256"])
    linked.write_bytes((grown.dataset_dir / other["manifest_path"]).read_bytes())  # put there
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert (name, detail.rsplit(": ", 1)[-1]) == ("shards", f"it is not a manifest of {P0}")


def test_a_link_naming_another_root_for_its_previous_checkpoint_is_refused(grown, chain):
    def other_root(manifest):
        manifest["previous"]["root"] = "0" * 64

    grown.forge_head(P0, other_root)
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert (name, detail.rsplit(": ", 1)[-1]) == (
        "shards",
        "its size and root are not those its successor names",
    )


def test_a_link_whose_rows_were_rewritten_is_refused_at_its_file(grown, chain):
    first = _links(grown)[1]["files"][0]  # leaves 4-6, listed by the second link
    target = grown.dataset_dir / first["path"]
    import pyarrow.parquet as pq

    pq.write_table(rows(500, 3), target)
    name, detail = first_failure(audit_log(grown.dataset_dir, chain.trust_root()))
    assert name == "files"
    assert detail.startswith(f"{P0}: {first['path']}")


def test_a_chained_manifest_that_adds_no_rows_is_refused():
    manifest = {
        "manifest_version": 3,
        "kind": "shard",
        "dataset": DATASET,
        "log": P0,
        "checkpoint": {"tree_size": 12, "root": "a" * 64},
        "previous": {"tree_size": 12, "root": "b" * 64, "manifest_sha256": "c" * 64},
        "files": [
            {"path": "shards/t.p0/data/x.parquet", "sha256": "d" * 64, "rows": 0, "leaf_start": 12}
        ],
    }
    assert (
        manifest_problem(manifest) == "a chained shard checkpoint must add rows to its previous one"
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.update(files=[]), "files[] must list the checkpoint's added files"),
        (lambda m: m["files"][0].update(leaf_start=0), "the first at leaf 12"),
        (lambda m: m.update(previous={"tree_size": 12}), "previous must be null or"),
        (
            lambda m: m.update(kind="dataset"),
            "manifest_version 3 is a shard manifest's (kind shard)",
        ),
        (lambda m: m.update(previous=None), "the first at leaf 0"),
    ],
)
def test_a_chained_manifests_own_listing_must_follow_its_previous_checkpoint(
    grown, change, problem
):
    manifest = json.loads(json.dumps(grown.shard_manifests[P0]))
    change(manifest)
    assert problem in (manifest_problem(manifest) or "")


def test_a_forged_head_listing_from_leaf_zero_again_is_not_verified(grown, chain):
    def restart(manifest):
        manifest["files"][0]["leaf_start"] = 0

    grown.forge_head(P0, restart)
    verdict = audit_log(grown.dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    name, detail = first_failure(verdict)
    assert name == "shards" and "the first at leaf 12" in detail


def test_a_stored_log_of_an_earlier_link_is_grown_by_the_later_links_only(grown, tmp_path):
    links = _links(grown)
    reads = []
    load = manifest_loader(grown.dataset_dir)

    def counting(relative, digest):
        reads.append(relative)
        return load(relative, digest)

    log = shard_log(grown.dataset_dir, links[1], tmp_path / "log")  # size 7
    assert log.size == 7
    assert shard_chain(P0, links[-1], counting, since=log.size) == links[2:]
    assert reads == [_link_path(links[-1])]
    grown_log = shard_log(grown.dataset_dir, links[-1], tmp_path / "log")
    fresh = shard_log(grown.dataset_dir, links[-1], tmp_path / "fresh")
    assert (grown_log.size, grown_log.root()) == (fresh.size, fresh.root()) == (14, fresh.root())


@given(st.lists(st.integers(1, 5), min_size=1, max_size=12), st.data())
def test_a_chains_files_from_any_leaf_are_those_holding_that_leaf_and_after(sizes, data):
    manifests, previous, start = {}, None, 0
    for number, size in enumerate(sizes):
        digest = f"{number:064x}"
        entry = {"path": f"f{number}", "sha256": digest, "rows": size, "leaf_start": start}
        manifest = {
            "manifest_version": 3,
            "kind": "shard",
            "dataset": DATASET,
            "log": P0,
            "checkpoint": {"tree_size": start + size, "root": f"{number + 1:064x}"},
            "previous": previous,
            "files": [entry],
        }
        manifests[shard_manifest_path(P0, start + size, digest)] = manifest
        previous = {"tree_size": start + size, "root": f"{number + 1:064x}"}
        previous["manifest_sha256"] = digest
        start += size
    since = data.draw(st.integers(0, start - 1))

    def load(relative, digest):
        return manifests[relative]

    found = shard_files(P0, manifest, load, since=since)
    expected = [
        m["files"][0]
        for m in manifests.values()
        if m["files"][0]["leaf_start"] + m["files"][0]["rows"] > since
    ]
    assert found == expected
    assert found[0]["leaf_start"] <= since < found[0]["leaf_start"] + found[0]["rows"]


def test_a_memo_reads_only_the_links_added_since_the_head_it_read_last(tmp_path, chain):
    data = Sharded(tmp_path, chain)
    for first in range(0, 12, 3):
        data.publish({"t.p0": rows(first, 3)})
    memo, reads = ChainMemo(), []
    load = manifest_loader(data.dataset_dir)

    def counting(relative, digest):
        reads.append(relative)
        return load(relative, digest)

    def through_memo():
        head = data.heads[P0]
        manifest = data.shard_manifests[P0]
        where = str(data.dataset_dir)
        return memo.shard_files(where, P0, head["manifest_sha256"], manifest, counting)

    assert [f["leaf_start"] for f in through_memo()] == [0, 3, 6, 9]
    assert len(reads) == 3  # the whole chain once
    data.publish({"t.p0": rows(12, 3)})
    data.publish({"t.p0": rows(15, 3)})
    reads.clear()
    files = through_memo()
    assert files == shard_files(P0, data.shard_manifests[P0], load)
    assert [f["leaf_start"] for f in files] == [0, 3, 6, 9, 12, 15]
    assert len(reads) == 1  # the link between the two new heads; the rest was known


def test_a_memo_given_a_head_off_its_known_chain_reads_that_chain_whole(tmp_path, chain):
    memo = ChainMemo()
    shards = []
    for name, first in (("a", 0), ("b", 500)):  # two data directories, same folder name
        data = Sharded(
            tmp_path / name, chain if name == "a" else open_chain("embedded", None, None)
        )
        for start in range(first, first + 9, 3):
            data.publish({"t.p0": rows(start, 3)})
        shards.append(data)
    for data in shards:
        head = data.heads[P0]
        found = memo.shard_files(
            "same",
            P0,
            head["manifest_sha256"],
            data.shard_manifests[P0],
            manifest_loader(data.dataset_dir),
        )
        assert found == shard_files(P0, data.shard_manifests[P0], manifest_loader(data.dataset_dir))
