"""A data directory being verified is untrusted: the documents the verifier reads from it
(manifests, signatures, leaf files, reports, tables) are read no further than a bound, so a
huge one gets a verdict instead of being loaded whole. The huge files here are sparse (1 GiB
of zeros after the real bytes, no disk used). A Parquet file's rows are counted from its footer
before they are read, and read a slice at a time: a few KB of Parquet can hold millions of rows."""

from __future__ import annotations

import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, first_failure, publish, rows

from proofs.leaves import (
    MAX_FOOTER_BYTES,
    MAX_ROW_GROUP_VALUES,
    MAX_VALUES_PER_ROW,
    decoding_problem,
    leaf_hashes_for_batch,
    open_parquet,
    parquet_leaf_hashes,
)
from proofs.manifest import MAX_DOCUMENT_BYTES, all_manifests, read_document, signature_path
from proofs.shard_log import file_leaves
from proofs.verdict import NOT_VERIFIED, VERIFIED
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


def test_a_small_document_costs_its_own_size_to_read_not_the_bound(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b"{}")
    assert python_peak_bytes(lambda: read_document(path)) < 2**20  # the bound is 64 MiB


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


def repeated_rows(count: int) -> pa.Table:
    """``count`` rows of one repeated row: a Parquet file of a few KB holds millions of them
    (dictionary and run-length encoding)."""
    one = rows(0, 1)
    return one.take(pa.array([0] * count, pa.int64()))


def python_peak_bytes(work) -> int:
    """The peak of Python's allocations while ``work()`` runs (leaf bytes and hashes are
    Python objects: reading a file's rows whole shows here)."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def verified_with_peak(dataset_dir, trust):
    """``verify_dataset``'s verdict, and the peak of Python's allocations while it ran."""
    verdicts = []
    peak = python_peak_bytes(lambda: verdicts.append(verify_dataset(dataset_dir, trust=trust)))
    return verdicts[0], peak


def test_a_small_file_holding_millions_of_rows_more_than_listed_is_refused_unread(published, chain):
    # 5,000,000 rows in ~60 KB: read whole and hashed, 1.3 GB of memory and 6 s.
    dataset_dir, _ = published
    path = dataset_dir / "data" / "batch-0001.parquet"
    pq.write_table(repeated_rows(5_000_000), path, compression="zstd")
    assert path.stat().st_size < 200_000
    verdict, peak = verified_with_peak(dataset_dir, chain.trust_root())
    name, detail = first_failure(verdict)
    assert (name, detail) == (
        "files",
        "data/batch-0001.parquet: SHA-256 differs from the manifest "
        "(5000000 rows, manifest says 20)",
    )
    assert peak < 20 * 2**20, peak


def test_a_published_file_of_many_rows_is_hashed_a_slice_at_a_time(tmp_path, chain):
    many = 300_000  # several of the 65,536-row slices the rows are hashed in
    publish(tmp_path, [repeated_rows(many)], chain)
    dataset_dir = tmp_path / "published" / DATASET
    verdict, peak = verified_with_peak(dataset_dir, chain.trust_root(tmp_path))
    assert verdict.status == VERIFIED and verdict.tree_size == many
    # One slice's leaf bytes and hashes (~17 MB here), not the whole file's (57 MB before).
    assert peak < 40 * 2**20, peak


def test_the_leaf_hashes_of_a_file_read_in_slices_are_those_of_its_rows_read_whole(tmp_path):
    table = pa.concat_tables([rows(i * 40_000, 40_000) for i in range(4)])  # 160,000 rows
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=50_000)
    with open_parquet(path) as parquet:
        sliced = [leaf for hashes in parquet_leaf_hashes(parquet) for leaf in hashes]
        assert parquet.metadata.num_rows == 160_000
    assert sliced == leaf_hashes_for_batch(table)


def test_a_shard_file_holding_more_rows_than_listed_is_refused_before_its_rows_are_read(tmp_path):
    # Rebuilding a shard's log for a consistency proof, without the file's leaf hashes.
    path = tmp_path / "data" / "bomb.parquet"
    path.parent.mkdir()
    pq.write_table(repeated_rows(5_000_000), path, compression="zstd")
    entry = {"path": "data/bomb.parquet", "rows": 20}
    with pytest.raises(ValueError, match="holds 5000000 rows, its manifest says 20"):
        file_leaves(tmp_path, entry)


def test_a_parquet_file_whose_footer_is_over_the_bound_is_unreadable_unparsed(published, chain):
    dataset_dir, _ = published
    path = dataset_dir / "data" / "batch-0001.parquet"
    size = MAX_FOOTER_BYTES + 4096
    with path.open("wb") as file:  # sparse: a footer of zeros claimed whole, no disk used
        file.write(b"PAR1")
        file.truncate(size - 8)
        file.seek(size - 8)
        file.write((size - 12).to_bytes(4, "little") + b"PAR1")
    name, detail = first_failure(verify_dataset(dataset_dir, trust=chain.trust_root()))
    assert name == "files"
    assert detail == (
        f"data/batch-0001.parquet: unreadable (ValueError: its footer is {size - 12:,} bytes, "
        f"over {MAX_FOOTER_BYTES:,}: not read)"
    )


def rows_of_zeros(count: int, each: int) -> pa.Table:
    """``count`` rows of one list of ``each`` int8 zeros: a few KB of Parquet, however many."""
    zeros = pa.array(memoryview(bytes(count * each)).cast("b"), pa.int8())
    offsets = pa.array(range(0, count * each + 1, each), pa.int32())
    return pa.table({"x": pa.ListArray.from_arrays(offsets, zeros)})


def test_a_changed_file_of_huge_rows_is_named_changed_without_decoding_them(published, chain):
    # The manifest's 20 rows, of a million list elements each: leaf-encoded to name the first
    # changed row, ~30 bytes a value (953 bytes of Parquet took the verifier to 1.5 GB).
    dataset_dir, _ = published
    path = dataset_dir / "data" / "batch-0001.parquet"
    pq.write_table(rows_of_zeros(20, 1_000_000), path, compression="zstd")
    assert path.stat().st_size < 100_000
    verdict, peak = verified_with_peak(dataset_dir, chain.trust_root())
    name, detail = first_failure(verdict)
    assert name == "files"
    assert detail.startswith(
        "data/batch-0001.parquet: SHA-256 differs from the manifest; its rows not compared "
        "(row group 0 holds 20,000,000 values ("
    )
    assert detail.endswith(
        f"in 20 rows, over the verifier's bound of {20 * 4096:,} values "
        "and 1,073,741,824 bytes: not decoded)"
    )
    assert peak < 5 * 2**20, peak


def test_a_file_is_decoded_only_within_the_values_its_footer_may_hold(tmp_path):
    path = tmp_path / "rows.parquet"

    def problem(table: pa.Table, **options) -> str | None:
        pq.write_table(table, path, **options)
        with open_parquet(path) as parquet:
            return decoding_problem(parquet.metadata)

    assert problem(rows_of_zeros(10, MAX_VALUES_PER_ROW)) is None  # the average allowed
    assert "holds 40,970 values" in problem(rows_of_zeros(10, MAX_VALUES_PER_ROW + 1))
    # Every row group on its own: the second's rows are the large ones.
    assert problem(pa.concat_tables([rows(0, 100), rows(100, 100)]), row_group_size=100) is None
    lists = pa.concat_tables([rows_of_zeros(100, 1), rows_of_zeros(100, 5000)])
    assert problem(lists, row_group_size=100).startswith("row group 1 holds 500,000 values")
    # However many rows, no more than MAX_ROW_GROUP_VALUES.
    assert MAX_ROW_GROUP_VALUES < 131_072 * MAX_VALUES_PER_ROW


def test_published_rows_of_a_few_hundred_values_each_are_within_the_bound(tmp_path):
    path = tmp_path / "traceroutes.parquet"
    pq.write_table(rows_of_zeros(50_000, 255), path)  # a chunk of traceroutes, hops as lists
    with open_parquet(path) as parquet:
        assert decoding_problem(parquet.metadata) is None
