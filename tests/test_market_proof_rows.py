"""Attack 5 of issue 14 over the HTTP API: ``proofs=true`` never returns a bundle that proves
another value than the one shown. Every returned row must be the published row its bundle
proves; a computed, replaced or renamed column (or a forged leaf index) is refused, never a 500.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from market_support import Client, new_buyer

from proofs.jcs import canonicalize

REPLACED = "proofs_need_unmodified_rows"


@pytest.fixture
def client(server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(server.url, key)
    yield client
    client.close()


@pytest.mark.parametrize(
    "sql",
    [
        # the attack: -92.3 shown beside a bundle proving -102.3
        "SELECT * REPLACE (rsrp_dbm + 10 AS rsrp_dbm) FROM radio_kpi_v1 LIMIT 1",
        "SELECT * REPLACE ('node-99999' AS node_id) FROM radio_kpi_v1 LIMIT 1",
        "SELECT * REPLACE (-5 AS rda_leaf_index) FROM radio_kpi_v1 LIMIT 1",  # was a 500
        "SELECT * REPLACE (rda_leaf_index + 1 AS rda_leaf_index) FROM radio_kpi_v1 LIMIT 1",
        "SELECT * REPLACE (NULL AS rda_leaf_index) FROM radio_kpi_v1 LIMIT 1",
        "SELECT * REPLACE (10 ** 12 AS rda_leaf_index) FROM radio_kpi_v1 LIMIT 1",
        "SELECT *, rsrp_dbm * 2 AS doubled FROM radio_kpi_v1 LIMIT 1",
        "SELECT * REPLACE (INTERVAL 1 DAY AS rsrp_dbm) FROM radio_kpi_v1 LIMIT 1",
        "SELECT a.* REPLACE (b.rda_leaf_index AS rda_leaf_index) FROM radio_kpi_v1 a, "
        "radio_kpi_v1 b WHERE b.rda_leaf_index = a.rda_leaf_index + 3 LIMIT 2",
    ],
    ids=["plus-10", "renamed-node", "leaf-minus-5", "leaf-shifted", "leaf-null", "leaf-huge",
         "extra-column", "interval", "self-join-swap"],
)  # fmt: skip
def test_a_result_that_is_not_the_published_rows_gets_no_proofs(client, sql):
    status, result = client.query_json(sql, proofs=True)
    assert status == 400, result
    assert result["error"]["code"] == REPLACED


def test_every_row_shown_is_the_row_its_bundle_proves(client):
    status, result = client.query_json(
        "SELECT * FROM radio_kpi_v1 WHERE rsrp_dbm < -95 ORDER BY rsrp_dbm LIMIT 5", proofs=True
    )
    assert status == 200
    assert len(result["rows"]) == len(result["proofs"]) == 5
    for row, bundle in zip(result["rows"], result["proofs"], strict=True):
        assert canonicalize(row) == canonicalize(bundle["row"])


def test_rebuilt_shard_logs_are_kept_in_the_data_directory_not_the_shared_tmp(client, demo_dir):
    shared = Path(tempfile.gettempdir()) / f"rda-shard-logs-{os.getuid()}"
    before = sorted(shared.iterdir()) if shared.is_dir() else []
    status, result = client.query_json("SELECT * FROM radio_kpi_v1 LIMIT 3", proofs=True)
    assert status == 200 and len(result["proofs"]) == 3
    kept = demo_dir / "private" / "shard-logs" / "radio_kpi.v1"
    assert [p for p in kept.iterdir() if p.is_dir()]
    assert (sorted(shared.iterdir()) if shared.is_dir() else []) == before


def test_the_same_computed_query_without_proofs_is_answered(client):
    status, result = client.query_json(
        "SELECT * REPLACE (rsrp_dbm + 10 AS rsrp_dbm) FROM radio_kpi_v1 LIMIT 1"
    )
    assert status == 200 and "proofs" not in result and result["row_count"] == 1
