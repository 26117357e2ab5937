"""Buyer SQL escape attempts, each refused with a clear error while the service keeps serving.

The buyer here is licensed to ``radio_kpi.v1`` only; ``node_heartbeat.v1`` and
``speed_test.v2`` exist in the same catalog and must stay out of reach, as must files, the
network, settings and the catalog's internals.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from market_support import Client, new_buyer

from market.assets import load_assets
from market.policy import QueryRefused
from market.sandbox import Limits, Sandbox

LIMITS = Limits(timeout_s=1.5, memory_limit="256MB", threads=2, max_rows=5_000)


@pytest.fixture(scope="module")
def market_limits() -> Limits:
    return LIMITS


@pytest.fixture(scope="module")
def attacker(server, demo_dir: Path) -> Client:
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(server.url, key)
    yield client
    client.close()


@pytest.fixture(scope="module")
def bystander(server, demo_dir: Path) -> Client:
    _name, key = new_buyer(demo_dir, "radio_kpi.v1", "speed_test.v2")
    client = Client(server.url, key)
    yield client
    client.close()


def _paths(demo_dir: Path) -> dict[str, str]:
    assets = load_assets(demo_dir)
    return {
        "unlicensed_file": str(assets["node_heartbeat.v1"].files[0]),
        "licensed_file": str(assets["radio_kpi.v1"].files[0]),
        "catalog": str(demo_dir / "catalog.duckdb"),
        "market": str(demo_dir / "private" / "market.duckdb"),
    }


# The refusal code a buyer gets → {the escape attempted (the case id): its SQL, with
# {placeholders} for real paths}.
REFUSALS: dict[str, dict[str, str]] = {
    "table_function_not_allowed": {
        "read /etc/passwd as CSV": "SELECT * FROM read_csv('/etc/passwd')",
        "read_csv_auto": "SELECT * FROM read_csv_auto('/etc/passwd')",
        "read_text": "SELECT * FROM read_text('/etc/passwd')",
        "read_blob": "SELECT * FROM read_blob('/etc/hostname')",
        "read_json": "SELECT * FROM read_json('/etc/passwd')",
        "an unlicensed dataset's Parquet file": "SELECT * FROM read_parquet('{unlicensed_file}')",
        "a licensed file by path": "SELECT count(*) FROM read_parquet('{licensed_file}')",
        "glob the file system": "SELECT * FROM glob('/*')",
        "a lateral table function": (
            "SELECT * FROM radio_kpi_v1, LATERAL (SELECT * FROM read_csv('/etc/passwd'))"
        ),
        "duckdb_tables()": "SELECT * FROM duckdb_tables()",
        "duckdb_views() reveals file paths": "SELECT sql FROM duckdb_views()",
        "query() runs text as SQL": "SELECT * FROM query('SELECT * FROM node_heartbeat_v1')",
    },
    "table_not_allowed": {
        "a file path as a table": "SELECT * FROM '{unlicensed_file}'",
        "/etc/passwd as a table": "SELECT * FROM '/etc/passwd'",
        "an unlicensed view": "SELECT * FROM node_heartbeat_v1",
        "an unlicensed view through a CTE": (
            "WITH h AS (SELECT * FROM node_heartbeat_v1) SELECT * FROM h"
        ),
        "an unlicensed view in a subquery": (
            "SELECT count(*) FROM radio_kpi_v1 WHERE node_id IN (SELECT node_id FROM speed_test_v2)"
        ),
        "an unlicensed view in a UNION": (
            "SELECT node_id FROM radio_kpi_v1 UNION ALL SELECT node_id FROM node_heartbeat_v1"
        ),
        "information_schema.tables": "SELECT * FROM information_schema.tables",
        "information_schema.columns": (
            "SELECT table_name, column_name FROM information_schema.columns"
        ),
        "pg_catalog": "SELECT * FROM pg_catalog.pg_class",
        "sqlite_master": "SELECT * FROM sqlite_master",
        "a qualified view name": "SELECT * FROM memory.main.radio_kpi_v1",
    },
    "statement_not_allowed": {
        "ATTACH the pipeline catalog": "ATTACH '{catalog}' AS c",
        "ATTACH the marketplace store": "ATTACH '{market}' (READ_ONLY)",
        "COPY a view to a file": "COPY radio_kpi_v1 TO '/tmp/rda-stolen.csv'",
        "COPY a query to a file": "COPY (SELECT 1) TO '/tmp/rda-stolen.parquet' (FORMAT parquet)",
        "EXPORT DATABASE": "EXPORT DATABASE '/tmp/rda-export'",
        "INSTALL an extension": "INSTALL httpfs",
        "LOAD an extension": "LOAD httpfs",
        "SET external access back on": "SET enable_external_access = true",
        "SET more threads": "SET threads = 64",
        "RESET the memory limit": "RESET memory_limit",
        "PRAGMA": "PRAGMA database_list",
        "CALL a table function": "CALL duckdb_settings()",
        "DROP a view": "DROP VIEW radio_kpi_v1",
        "CREATE a view": "CREATE VIEW mine AS SELECT * FROM radio_kpi_v1",
        "CREATE a macro": "CREATE MACRO leak() AS TABLE SELECT * FROM node_heartbeat_v1",
        "INSERT": "INSERT INTO radio_kpi_v1 SELECT * FROM radio_kpi_v1",
        "DESCRIBE": "DESCRIBE radio_kpi_v1",
        "SHOW TABLES": "SHOW TABLES",
        "SUMMARIZE": "SUMMARIZE radio_kpi_v1",
        "EXPLAIN ANALYZE": "EXPLAIN ANALYZE SELECT * FROM radio_kpi_v1",
        "DETACH": "DETACH memory",
        "USE another schema": "USE system.information_schema",
        "a string doubled by recursion": (
            "WITH RECURSIVE r(s, n) AS (SELECT 'x', 0 UNION ALL SELECT s || s, n + 1 FROM r "
            "WHERE n < 40) SELECT max(length(s)) FROM r"
        ),
    },
    "function_not_allowed": {
        "duckdb_settings() as a scalar": "SELECT duckdb_settings()",
        "current_setting()": "SELECT current_setting('memory_limit')",
        "getenv()": "SELECT getenv('HOME')",
        "a gigabyte from repeat()": "SELECT length(repeat('x', 1500000000))",
        "a gigabyte from lpad()": "SELECT lpad('x', 1500000000, 'y')",
        "a gigabyte from printf()": "SELECT printf('%1500000000d', 1)",
        "a huge list from range()": "SELECT len(range(3000000000))",
    },
    "multiple_statements": {
        "two statements": "SELECT 1; SELECT 2",
        "a SELECT then a DROP": "SELECT 1; DROP VIEW radio_kpi_v1",
    },
    "query_failed": {
        "the file name column of the view": "SELECT filename FROM radio_kpi_v1",
    },
    "syntax_error": {
        "not SQL at all": "SELEKT * FROM radio_kpi_v1",
    },
    "empty_query": {
        "an empty query": "   ",
    },
}
ESCAPES = [
    pytest.param(sql, code, id=attempt)
    for code, attempts in REFUSALS.items()
    for attempt, sql in attempts.items()
]


@pytest.mark.parametrize(("sql", "code"), ESCAPES)
def test_escape_attempt_is_refused_and_the_service_keeps_serving(
    sql, code, attacker, bystander, demo_dir
):
    status, body = attacker.query_json(sql.format(**_paths(demo_dir)))
    assert status in (400, 403)
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    status, result = bystander.query_json("SELECT count(*) AS n FROM speed_test_v2")
    assert status == 200
    assert result["rows"] == [{"n": load_assets(demo_dir)["speed_test.v2"].checkpoint.tree_size}]


def test_nothing_was_written_by_the_attempts():
    assert not Path("/tmp/rda-stolen.csv").exists()
    assert not Path("/tmp/rda-stolen.parquet").exists()
    assert not Path("/tmp/rda-export").exists()


def test_a_query_that_runs_forever_is_interrupted_while_others_are_served(attacker, bystander):
    import threading

    outcome = {}

    def run_forever():
        outcome["forever"] = attacker.query_json(
            "SELECT sum(a.rsrp_dbm * b.sinr_db * c.latency_ms * d.pci) "
            "FROM radio_kpi_v1 a, radio_kpi_v1 b, radio_kpi_v1 c, radio_kpi_v1 d"
        )

    thread = threading.Thread(target=run_forever)
    thread.start()
    served = [
        bystander.query_json("SELECT max(rsrp_dbm) AS m FROM radio_kpi_v1")[0] for _ in range(5)
    ]
    thread.join(timeout=30)
    assert served == [200] * 5
    status, body = outcome["forever"]
    assert status == 400
    assert body["error"]["code"] == "timeout"
    assert "1.5 s" in body["error"]["message"]


def test_a_result_that_outgrows_the_memory_limit_is_stopped(attacker):
    status, body = attacker.query_json(
        "SELECT list(a.node_id || b.node_id) FROM radio_kpi_v1 a, radio_kpi_v1 b, radio_kpi_v1 c"
    )
    assert status == 400
    assert body["error"]["code"] in {"timeout", "out_of_memory"}


def test_a_result_beyond_the_row_limit_is_refused(attacker):
    status, body = attacker.query_json("SELECT a.node_id FROM radio_kpi_v1 a, radio_kpi_v1 b")
    assert status == 413
    assert body["error"]["code"] == "too_many_rows"
    assert "5000 rows" in body["error"]["message"]


def test_a_buyer_may_ask_for_fewer_rows_but_not_more(attacker):
    assert attacker.query_json("SELECT * FROM radio_kpi_v1", max_rows=10)[1]["error"]["code"] == (
        "too_many_rows"
    )
    status, body = attacker.query_json("SELECT * FROM radio_kpi_v1 LIMIT 20", max_rows=10**9)
    assert status == 200 and body["row_count"] == 20


def test_an_over_long_query_is_refused(attacker):
    status, body = attacker.query_json("SELECT 1" + " + 1" * 6000)
    assert (status, body["error"]["code"]) == (400, "query_too_long")


# -- the second wall: the sandbox alone, without the parser's checks ------------------------


@pytest.fixture(scope="module")
def bare_sandbox(demo_dir: Path):
    sandbox = Sandbox(LIMITS)
    yield sandbox, [load_assets(demo_dir)["radio_kpi.v1"]]
    sandbox.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_the_sandbox_alone_denies_files_outside_the_licensed_ones(bare_sandbox, sql):
    sandbox, assets = bare_sandbox
    with pytest.raises(QueryRefused) as refused:
        sandbox.run(sql, assets)
    assert refused.value.code in {"access_denied", "query_failed"}
    assert "passwd" not in refused.value.message or "disabled" in refused.value.message


def test_the_sandbox_alone_cannot_reach_an_unlicensed_file(bare_sandbox, demo_dir):
    sandbox, assets = bare_sandbox
    other = load_assets(demo_dir)["node_heartbeat.v1"].files[0]
    with pytest.raises(QueryRefused) as refused:
        sandbox.run(f"SELECT * FROM read_parquet('{other}')", assets)
    assert refused.value.code == "access_denied"


@pytest.mark.parametrize(
    "sql",
    ["SET enable_external_access = true", "SET lock_configuration = false", "SET threads = 64"],
)
def test_the_sandbox_configuration_is_locked(bare_sandbox, sql):
    sandbox, assets = bare_sandbox
    with pytest.raises(QueryRefused) as refused:
        sandbox.run(sql, assets)
    assert "locked" in refused.value.message


def test_the_sandbox_holds_only_the_licensed_views(bare_sandbox):
    sandbox, assets = bare_sandbox
    names = sandbox.run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'", assets
    )
    assert names.column("table_name").to_pylist() == ["radio_kpi_v1"]


def test_a_query_over_its_memory_is_refused_without_spilling_to_disk(
    bare_sandbox, tmp_path, monkeypatch
):
    """DuckDB spilled what outgrew the memory limit to ``.tmp`` in the working directory, up to
    90 % of the free disk (365 MiB in 2 s, red team): refused as out of memory instead."""
    _sandbox, assets = bare_sandbox
    monkeypatch.chdir(tmp_path)
    sandbox = Sandbox(Limits(timeout_s=120, memory_limit="64MB"))  # memory comes first
    try:
        with pytest.raises(QueryRefused) as refused:
            sandbox.run(
                "SELECT count(*) FROM (SELECT DISTINCT md5(range::VARCHAR) || "
                "md5(range::VARCHAR) FROM range(30000000))",
                assets,
            )
    finally:
        sandbox.close()
    assert refused.value.code == "out_of_memory"
    assert list(tmp_path.iterdir()) == []
