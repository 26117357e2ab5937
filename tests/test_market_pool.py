"""The query pool's workers: replacing one never takes a result it has handed over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from market.execution import QueryJob
from market.policy import QueryRefused
from market.pool import PoolLimits, QueryPool, _Worker
from market.results import INLINE_BYTES
from market.sandbox import Limits

# ~70 bytes a row in JSON: well past what travels in memory, so the result is spooled.
ROWS = 20_000
SPOOLED = f"SELECT range AS n, repeat('x', 40) AS s FROM range({ROWS})"


@pytest.fixture
def pool():
    running = QueryPool(Limits(timeout_s=30), PoolLimits(workers=1))
    yield running
    running.close()


def test_a_spooled_result_reaches_its_reader_when_its_worker_is_replaced_after_it(
    pool, monkeypatch
):
    # A worker holding a third of its cap after a query is replaced (market.pool): here, all.
    monkeypatch.setattr(_Worker, "rss_bytes", lambda _worker: 1 << 40)
    before = pool.worker_pids()
    output = pool.run("buyer", QueryJob(SPOOLED, ()))
    assert pool.worker_pids() != before  # the worker that ran it is gone
    assert output.path is not None and output.size > INLINE_BYTES
    rows = json.loads(output.read_body())["rows"]
    assert [row["n"] for row in rows] == list(range(ROWS))


def test_a_replaced_worker_leaves_no_other_spool_file(pool, monkeypatch):
    monkeypatch.setattr(_Worker, "rss_bytes", lambda _worker: 1 << 40)
    pid = pool.worker_pids()[0]
    leftover = pool.spool_dir / f"result-{pid}-half-written"
    leftover.write_bytes(b"[{")  # as a worker killed mid-write leaves it
    output = pool.run("buyer", QueryJob(SPOOLED, ()))
    assert not leftover.exists()
    assert list(pool.spool_dir.iterdir()) == [Path(output.path)]
    output.read_body()
    assert list(pool.spool_dir.iterdir()) == []


def test_a_buyers_unsent_spooled_results_count_against_its_running_queries():
    """Twelve slow readers of one buyer held 284 MiB of spool while the pool counted none of
    them running (red team): a result holds its buyer's place until it is released."""
    pool = QueryPool(Limits(timeout_s=30), PoolLimits(workers=2, per_buyer=1, queue_timeout_s=1))
    try:
        unsent = pool.run("buyer", QueryJob(SPOOLED, ()))
        with pytest.raises(QueryRefused) as waited:
            pool.run("buyer", QueryJob(SPOOLED, ()))
        assert (waited.value.code, waited.value.status) == ("busy", 503)
        assert pool.run("other", QueryJob("SELECT 1 AS n", ())).row_count == 1
        unsent.release()
        assert not Path(str(unsent.path)).exists()
        again = pool.run("buyer", QueryJob(SPOOLED, ()))
        assert json.loads(again.read_body())["row_count"] == ROWS
        assert list(pool.spool_dir.iterdir()) == []
    finally:
        pool.close()
