"""Buyers' queries over runs of small published files read from compacted copies
(``market/compaction.py``): the same answers, the same leaves, only from bytes the manifests
state, with bounded work per view and bounded disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market import compaction
from market.assets import Asset, Checkpoint, load_assets
from market.execution import QueryJob, execute
from market.listings import coverage
from market.policy import QueryRefused
from market.profiles import column_profiles, sample_rows
from market.sandbox import LEAF_COLUMN, Limits, Sandbox, asset_parts
from market.service import latest_only
from proofs.jcs import canonicalize

DATASET = "t.v1"


@pytest.fixture
def runs_of_two(monkeypatch):
    monkeypatch.setattr(compaction, "RUN_FILES", 2)


def _published(root: Path, logs: dict[str, list[int]], extra_column_from: int = -1) -> Asset:
    """A dataset of ``logs`` (log -> each file's row count) as a checkpoint lists it; files from
    number ``extra_column_from`` on carry a later minor version's extra column."""
    dataset_dir = root / "published" / DATASET
    files, starts, ids, first, number = [], [], [], 0, 0
    for log, sizes in logs.items():
        in_log = 0
        for index, size in enumerate(sizes):
            columns = {"log": [log] * size, "file": [index] * size, "row": list(range(size))}
            if 0 <= extra_column_from <= number:
                columns["band"] = [number] * size
            key = f"shards/{log}/data/{index:04d}.parquet"
            path = dataset_dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(columns), path)
            files.append(path)
            starts.append(first)
            ids.append((log, key, hashlib.sha256(path.read_bytes()).hexdigest(), in_log))
            first, number, in_log = first + size, number + 1, in_log + size
    checkpoint = Checkpoint(DATASET, first, "00" * 32, None, None, None, None, "00" * 32)
    return Asset(
        DATASET, "t_v1", checkpoint, {}, tuple(files), tuple(starts), None,
        dataset_dir / "checkpoints" / "x.manifest.json", DATASET, (), tuple(ids),
    )  # fmt: skip


def _cache(root: Path) -> Path:
    return root / "private" / "market" / "compacted" / DATASET


def _answer(asset: Asset, leaf_index: bool) -> list[dict]:
    sandbox = Sandbox(Limits())
    try:
        order = LEAF_COLUMN if leaf_index else "log, file, row"
        sql = f"SELECT * FROM {asset.view} ORDER BY {order}"
        return sandbox.run(sql, [asset], None, leaf_index).to_pylist()
    finally:
        sandbox.close()


def _uncompacted(asset: Asset) -> Asset:
    return dataclasses.replace(asset, file_ids=())


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    logs=st.dictionaries(
        st.sampled_from(["p0", "p1", "p2"]),
        st.lists(st.integers(0, 4), max_size=11),
        min_size=1,
    ).filter(lambda logs: any(logs.values())),  # a checkpoint lists a file at least
    budget=st.integers(0, 12),
    extra_column_from=st.integers(-1, 20),
)
def test_a_view_over_compacted_runs_answers_as_the_files_do(
    tmp_path_factory, monkeypatch, runs_of_two, logs, budget, extra_column_from
):
    root = tmp_path_factory.mktemp("compaction")
    monkeypatch.setattr(compaction, "MAX_FILES_PER_VIEW", budget)
    asset = _published(root, logs, extra_column_from)
    expected = {leaf: _answer(_uncompacted(asset), leaf) for leaf in (False, True)}
    for _view in range(3):  # more of the runs compacted at each view, up to all of them
        for leaf in (False, True):
            assert _answer(asset, leaf) == expected[leaf]


def test_runs_of_runs_are_compacted_from_the_runs_below(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [3, 1, 2, 2, 1]})
    parts = asset_parts(asset)
    # 5 files: a run of 4 (two runs of 2 compacted first), then the fifth as published
    assert [len(held) for _, held in parts.compacted] == [4]
    assert [m.key for m in parts.loose] == ["shards/p0/data/0004.parquet"]
    assert len(list(_cache(tmp_path).glob("*.parquet"))) == 3
    held = pq.read_table(parts.compacted[0][0])
    assert held.column(compaction.LOG_LEAF_COLUMN).to_pylist() == list(range(8))
    assert set(held.column(compaction.LOG_COLUMN).to_pylist()) == {"p0"}
    assert held.column("row").to_pylist() == [0, 1, 2, 0, 0, 1, 0, 1]


def test_a_file_whose_bytes_are_not_the_ones_its_manifest_states_is_never_copied(
    tmp_path, runs_of_two
):
    asset = _published(tmp_path, {"p0": [2, 2, 2, 2]})
    changed = asset.files[1]
    pq.write_table(pa.table({"log": ["p0"], "file": [1], "row": [999]}), changed)
    parts = asset_parts(asset)
    assert [m.key for _, held in parts.compacted for m in held] == [
        "shards/p0/data/0002.parquet", "shards/p0/data/0003.parquet",
    ]  # fmt: skip
    assert {m.path for m in parts.loose} == {asset.files[0], changed}
    for path in _cache(tmp_path).glob("*.parquet"):
        assert 999 not in pq.read_table(path).column("row").to_pylist()


def test_a_view_reads_no_more_than_its_budget_and_the_next_one_goes_on(
    tmp_path, monkeypatch, runs_of_two
):
    monkeypatch.setattr(compaction, "MAX_FILES_PER_VIEW", 2)  # a run's two files, or two runs
    asset = _published(tmp_path, {"p0": [1] * 8})
    made, held = [], []
    for _view in range(10):
        parts = asset_parts(asset)
        made.append(len(list(_cache(tmp_path).glob("*.parquet"))))
        held.append(sum(len(files) for _, files in parts.compacted))
        if not parts.pending:
            break
    # four runs of 2, two runs of 2 runs, one of those: one compacted file a view
    assert made == [1, 2, 3, 4, 5, 6, 7]
    assert held == [2, 4, 4, 6, 8, 8, 8] and len(parts.compacted) == 1


def test_a_compacted_file_unused_for_longer_than_its_keep_is_removed(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [1, 1, 1, 1]})
    asset_parts(asset)  # the two runs of 2, then their run of 4
    old = time.time() - compaction.UNUSED_S - 1
    for path in _cache(tmp_path).glob("*.parquet"):
        os.utime(path, (old, old))
    parts = asset_parts(asset)
    # the run of 4 is read (touched, kept); the runs of 2 it was made from are removed
    assert sorted(_cache(tmp_path).glob("*.parquet")) == [parts.compacted[0][0]]


def test_a_checkpoint_listing_a_file_twice_is_read_as_published(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [2, 1, 3]})
    twice = dataclasses.replace(
        asset,
        files=asset.files + asset.files[:1],
        leaf_starts=(*asset.leaf_starts, 6),
        file_ids=asset.file_ids + asset.file_ids[:1],
    )
    leaves = [row[LEAF_COLUMN] for row in _answer(twice, True)]
    assert leaves == list(range(8))
    assert not _cache(tmp_path).exists()


def test_a_run_whose_file_is_gone_is_left_to_be_read_as_published(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [1, 1, 1, 1]})
    asset.files[3].unlink()
    parts = asset_parts(asset)
    assert [m.path for _, held in parts.compacted for m in held] == list(asset.files[:2])
    assert [m.path for m in parts.loose] == list(asset.files[2:])


def test_runs_of_large_files_are_read_as_published(tmp_path, monkeypatch, runs_of_two):
    monkeypatch.setattr(compaction, "MAX_RUN_BYTES", 1)
    parts = asset_parts(_published(tmp_path, {"p0": [1, 1]}))
    assert parts.compacted == [] and len(parts.loose) == 2


def test_queries_with_proofs_over_compacted_runs_of_a_pipelines_data(
    demo_dir, tmp_path, runs_of_two
):
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    asset = load_assets(data)["radio_kpi.v1"]
    sql = f"SELECT * FROM {asset.view} WHERE rsrp_dbm < -95 ORDER BY rsrp_dbm, node_id LIMIT 7"
    sandbox = Sandbox(Limits())
    try:
        output = execute(QueryJob(sql, (asset,), proofs=True), sandbox)
        before = execute(QueryJob(sql, (_uncompacted(asset),), proofs=True), sandbox)
    finally:
        sandbox.close()
    assert list(_cache_of(data, asset).glob("*.parquet"))  # it read compacted runs
    assert output.read_body() == before.read_body()
    result = json.loads(output.read_body())
    assert len(result["rows"]) == len(result["proofs"]) == 7
    for row, bundle in zip(result["rows"], result["proofs"], strict=True):
        assert canonicalize(row) == canonicalize(bundle["row"])


def _cache_of(data: Path, asset: Asset) -> Path:
    return data / "private" / "market" / "compacted" / asset.dataset


def test_listings_and_profiles_read_compacted_runs_and_say_the_same(
    demo_dir, tmp_path, runs_of_two
):
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    asset = load_assets(data)["radio_kpi.v1"]
    published = _uncompacted(asset)
    assert coverage(asset) == coverage(published)
    assert sample_rows(asset) == sample_rows(published)
    assert column_profiles(asset) == column_profiles(published)
    assert list(_cache_of(data, asset).glob("*.parquet"))


def test_a_market_keeps_one_listing_per_dataset_as_checkpoints_come():
    cache: dict[tuple, object] = {}
    for size in (10, 20, 30):
        assert latest_only(cache, ("radio_kpi.v1", size, None), lambda s=size: s) == size
        latest_only(cache, ("node_heartbeat.v1", 5, None), lambda: 5)
    assert cache == {("radio_kpi.v1", 30, None): 30, ("node_heartbeat.v1", 5, None): 5}


def test_a_view_whose_file_is_gone_is_made_again_at_the_next_query(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [1, 1, 1, 1, 2]})
    sandbox = Sandbox(Limits())
    try:
        sql = f"SELECT count(*) AS n FROM {asset.view}"
        assert sandbox.run(sql, [asset]).to_pylist() == [{"n": 6}]
        for copy in _cache(tmp_path).glob("*.parquet"):
            copy.unlink()  # removed under the view (by hand, or a collection racing it)
        with pytest.raises(QueryRefused):
            sandbox.run(sql, [asset])
        assert sandbox.run(sql, [asset]).to_pylist() == [{"n": 6}]  # copies made again
    finally:
        sandbox.close()


def test_a_data_directory_that_cannot_be_written_is_read_as_published(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [1, 1, 1, 1]})
    (tmp_path / "private").write_text("not a folder")  # no cache folder can be made there
    parts = asset_parts(asset)
    assert parts.compacted == [] and len(parts.loose) == 4


def test_views_made_at_once_by_several_workers_read_the_same_rows(tmp_path, runs_of_two):
    asset = _published(tmp_path, {"p0": [3, 1, 2, 2, 1, 4, 1, 1], "p1": [2, 2, 2]})
    expected = _answer(_uncompacted(asset), True)
    with ThreadPoolExecutor(4) as pool:  # as workers of `rda serve` each making its view
        answers = list(pool.map(lambda _: _answer(asset, True), range(8)))
    assert all(answer == expected for answer in answers)
    assert not list(_cache(tmp_path).glob("*.partial"))
