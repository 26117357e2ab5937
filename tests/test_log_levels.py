"""The on-disk log's stored levels give the same roots and proofs as the in-memory functions.

Proofs are read from the stored complete nodes (O(log n) reads) and must equal
``proofs.merkle_proofs``', computed from all leaves, for every tree size the log has had.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.log import DatasetLog, LogRef
from proofs.merkle import EMPTY_ROOT, leaf_hash, root
from proofs.merkle_proofs import consistency_proof, inclusion_proof
from proofs.merkle_verify import verify_inclusion


def leaves(count: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(count)]


batches = st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(batches)
def test_every_proof_from_the_stored_levels_equals_the_in_memory_proof(sizes):
    everything = leaves(sum(sizes))
    with tempfile.TemporaryDirectory() as directory:
        log = DatasetLog(Path(directory) / "log", "bench")
        position, checkpoints = 0, [0]
        for size in sizes:
            assert log.append_at(position, everything[position : position + size]) == (
                position + size,
                root(everything[: position + size]),
            )
            position += size
            checkpoints.append(position)
        for tree_size in checkpoints:
            prefix = everything[:tree_size]
            assert log.root(tree_size) == root(prefix)
            for index in range(tree_size):
                assert log.inclusion_proof(index, tree_size) == inclusion_proof(prefix, index)
            for old_size in range(tree_size + 1):
                assert log.consistency_proof(old_size, tree_size) == consistency_proof(
                    prefix, old_size
                )


@settings(max_examples=40, deadline=None)
@given(batches, st.data())
def test_a_positional_redo_gives_the_log_a_fresh_append_would(sizes, data):
    first = leaves(sum(sizes))
    with tempfile.TemporaryDirectory() as directory:
        log = DatasetLog(Path(directory) / "log", "redo")
        position = 0
        for size in sizes:
            log.append_at(position, first[position : position + size])
            position += size
        start = data.draw(st.integers(min_value=0, max_value=position))
        redo = leaves(data.draw(st.integers(min_value=0, max_value=30)), salt=1)
        log.append_at(start, redo)
        expected = first[:start] + redo
        assert log.size == len(expected)
        assert log.root() == root(expected)
        assert log.leaf_hashes() == expected
        for index in range(len(expected)):
            assert log.inclusion_proof(index) == inclusion_proof(expected, index)
        for old_size in range(len(expected) + 1):
            assert log.consistency_proof(old_size) == consistency_proof(expected, old_size)


def test_a_log_written_with_leaves_only_gets_its_levels_on_the_next_append(tmp_path):
    log = DatasetLog(tmp_path / "log", "legacy")
    log.append_at(0, leaves(37))
    for level in range(1, 6):
        log.level_path(level).unlink()
    log.append_at(37, leaves(5, salt=2))
    everything = leaves(37) + leaves(5, salt=2)
    assert log.root() == root(everything)
    assert log.inclusion_proof(3) == inclusion_proof(everything, 3)


def test_interior_levels_hold_one_node_per_complete_subtree(tmp_path):
    log = DatasetLog(tmp_path / "log", "shape")
    log.append_at(0, leaves(13))
    sizes = [log.level_path(level).stat().st_size // 32 for level in range(4)]
    assert sizes == [13, 6, 3, 1]
    assert not log.level_path(4).exists()


def test_a_proof_verifies_against_an_earlier_root_of_the_same_log(tmp_path):
    log = DatasetLog(tmp_path / "log", "earlier")
    hashes = leaves(1000)
    log.append_at(0, hashes[:600])
    old_root = log.root()
    log.append_at(600, hashes[600:])
    proof = log.inclusion_proof(599, 600)
    assert verify_inclusion(hashes[599], 599, 600, proof, old_root)


def test_sizes_outside_the_log_are_refused(tmp_path):
    log = DatasetLog(tmp_path / "log", "bounds")
    assert log.root() == EMPTY_ROOT
    log.append_at(0, leaves(4))
    with pytest.raises(ValueError, match="outside the log of size 4"):
        log.inclusion_proof(0, 5)
    with pytest.raises(ValueError, match="not in a tree of size 4"):
        log.inclusion_proof(4)
    with pytest.raises(ValueError, match="cannot append at 6"):
        log.append_at(6, leaves(1))
    with pytest.raises(ValueError, match="32 bytes"):
        log.append_at(4, [b"short"])
    assert log.size == 4


def test_a_dataset_log_is_named_by_its_dataset_and_a_shard_log_by_its_own_id(tmp_path):
    dataset_dir = tmp_path / "published" / "radio_kpi.v1"
    assert DatasetLog(dataset_dir / "log").log_id == "radio_kpi.v1"
    assert LogRef.for_dataset(dataset_dir) == LogRef("radio_kpi.v1", dataset_dir / "log")
    shard = LogRef("radio_kpi.v1/node-telemetry.p3", dataset_dir / "logs" / "node-telemetry.p3")
    assert DatasetLog(shard).log_id == "radio_kpi.v1/node-telemetry.p3"
