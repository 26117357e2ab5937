"""Published and private Parquet files: written whole, renamed into place, hashed as written."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sinks.layout import DataLayout
from sinks.parquet import (
    _PRIVATE_OPTIONS,
    _WRITER_OPTIONS,
    discard_landed,
    write_parquet,
    write_private_parquet,
)

ROWS = pa.RecordBatch.from_pydict(
    {
        "node_id": ["an-1", "an-2", None],
        "rsrp_dbm": [-90.5, -101.25, -80.0],
        "event_time": pa.array([1, 2, 3], pa.timestamp("us", tz="UTC")),
    }
)


def test_a_published_file_s_digest_is_that_of_the_bytes_at_its_path(tmp_path):
    path = tmp_path / "published" / "a.parquet"
    digest = write_parquet(ROWS, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["a.parquet"]  # no partial file left
    assert pq.read_table(path).to_batches() == [ROWS]


def test_files_are_byte_for_byte_what_pyarrow_writes_to_a_path_with_their_options(tmp_path):
    write_parquet(ROWS, tmp_path / "published.parquet")
    private_digest = write_private_parquet(ROWS, tmp_path / "state.parquet")
    pq.write_table(pa.Table.from_batches([ROWS]), tmp_path / "direct.parquet", **_WRITER_OPTIONS)
    pq.write_table(
        pa.Table.from_batches([ROWS]), tmp_path / "direct-state.parquet", **_PRIVATE_OPTIONS
    )
    published, state = (tmp_path / "published.parquet"), (tmp_path / "state.parquet")
    assert published.read_bytes() == (tmp_path / "direct.parquet").read_bytes()
    assert state.read_bytes() == (tmp_path / "direct-state.parquet").read_bytes()
    assert private_digest == hashlib.sha256(state.read_bytes()).hexdigest()


def test_writing_a_file_again_replaces_it_with_the_same_bytes(tmp_path):
    path = tmp_path / "a.parquet"
    first = write_parquet(ROWS, path)
    assert write_parquet(ROWS, path) == first
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first


def test_a_receipt_naming_a_file_outside_the_staging_folder_removes_nothing(tmp_path):
    layout = DataLayout(tmp_path / "work")
    staged = layout.staging_file("radio_kpi.v1", "t-p0000-000000000000-000000000010")
    elsewhere = tmp_path / "work" / "published" / "radio_kpi.v1" / "data.parquet"
    for path in (staged, elsewhere):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"rows")
    receipt = layout.receipt_file("t-p0000-000000000000-000000000010")
    receipt.parent.mkdir(parents=True)
    files = {"radio_kpi.v1": {"path": layout.relative(staged)}}
    forged = {
        "files": files,
        "staged_rejects": {"radio_kpi.v1": "published/radio_kpi.v1/../radio_kpi.v1/data.parquet"},
    }
    receipt.write_text(json.dumps(forged))
    with pytest.raises(ValueError, match="names files outside"):
        discard_landed(layout, receipt)
    assert staged.exists() and elsewhere.exists() and receipt.exists()
