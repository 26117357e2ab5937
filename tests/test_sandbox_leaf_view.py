"""The sandbox's view with leaf indexes (queries with proofs): one scan of every file, each row
numbered from its file's first leaf, whatever the files' sizes and schemas."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.assets import Asset, Checkpoint
from market.sandbox import LEAF_COLUMN, Limits, Sandbox


def _asset(files: list[Path], leaf_starts: list[int], folder: Path) -> Asset:
    size = leaf_starts[-1] + pq.read_metadata(files[-1]).num_rows
    checkpoint = Checkpoint("t.v1", size, "00" * 32, None, None, None, None, "00" * 32)
    return Asset(
        "t.v1", "t_v1", checkpoint, {}, tuple(files), tuple(leaf_starts), None,
        folder / "checkpoints" / "x.manifest.json", "t.v1/log",
    )  # fmt: skip


def _write(folder: Path, name: str, table: pa.Table) -> Path:
    path = folder / name
    pq.write_table(table, path)
    return path


def _leaves(asset: Asset) -> pa.Table:
    sandbox = Sandbox(Limits())
    try:
        return sandbox.run(
            f"SELECT * FROM {asset.view} ORDER BY {LEAF_COLUMN}", [asset], None, True
        )
    finally:
        sandbox.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=7))
def test_each_row_is_numbered_from_its_files_first_leaf(tmp_path_factory, sizes):
    folder = tmp_path_factory.mktemp("leaves")
    files, starts, first = [], [], 0
    for number, size in enumerate(sizes):
        # each row says where it is: file and row; files listed out of name order
        table = pa.table({"file": [number] * size, "row": list(range(size))})
        files.append(_write(folder, f"{len(sizes) - number:03d}.parquet", table))
        starts.append(first)
        first += size
    result = _leaves(_asset(files, starts, folder))
    assert result.column_names == ["file", "row", LEAF_COLUMN]
    assert result.schema.field(LEAF_COLUMN).type == pa.int64()
    numbered = zip(result["file"].to_pylist(), result["row"].to_pylist(), strict=True)
    expected = [starts[file] + row for file, row in numbered]
    assert result[LEAF_COLUMN].to_pylist() == expected == list(range(sum(sizes)))


def test_files_of_two_minor_versions_read_by_name_with_their_leaves(tmp_path):
    old = _write(tmp_path, "a.parquet", pa.table({"node": ["n1", "n2"], "v": [1, 2]}))
    new = _write(tmp_path, "b.parquet", pa.table({"node": ["n3"], "v": [3], "band": [7]}))
    result = _leaves(_asset([old, new], [0, 2], tmp_path))
    assert set(result.column_names) == {"node", "v", "band", LEAF_COLUMN}
    assert result.select(["node", "v", "band", LEAF_COLUMN]).to_pylist() == [
        {"node": "n1", "v": 1, "band": None, LEAF_COLUMN: 0},
        {"node": "n2", "v": 2, "band": None, LEAF_COLUMN: 1},
        {"node": "n3", "v": 3, "band": 7, LEAF_COLUMN: 2},
    ]


def test_a_path_with_a_quote_is_read_as_a_literal(tmp_path):
    folder = tmp_path / "it's here"
    folder.mkdir()
    path = _write(folder, "x'); DROP TABLE t; --.parquet", pa.table({"v": [5, 6]}))
    result = _leaves(_asset([path], [10], folder))
    assert result.to_pylist() == [{"v": 5, LEAF_COLUMN: 10}, {"v": 6, LEAF_COLUMN: 11}]


def test_a_file_listed_twice_is_numbered_from_both_of_its_places(tmp_path):
    twice = _write(tmp_path, "a.parquet", pa.table({"v": [1, 2]}))
    once = _write(tmp_path, "b.parquet", pa.table({"v": [3]}))
    result = _leaves(_asset([twice, once, twice], [0, 2, 3], tmp_path))
    assert result.to_pylist() == [
        {"v": 1, LEAF_COLUMN: 0}, {"v": 2, LEAF_COLUMN: 1}, {"v": 3, LEAF_COLUMN: 2},
        {"v": 1, LEAF_COLUMN: 3}, {"v": 2, LEAF_COLUMN: 4},
    ]  # fmt: skip
