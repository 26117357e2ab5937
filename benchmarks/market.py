"""Buyer query latency through ``rda serve`` against plain DuckDB over the same Parquet.

One data directory from the demo pipeline, both sides measured in this run: the baseline runs
the buyer's SQL on a plain DuckDB connection with a view over the same anchored files; the
service answers the same SQL over HTTP (a separate ``rda serve`` process, keep-alive client):
authentication, the parser's checks, the worker process, encoding and the round trip included.
Three queries a buyer runs (``QUERIES``): an aggregate per node, a per-minute time series with a
quantile, and a fetch of raw rows. Then 32 concurrent clients (8 buyers, 4 connections each)
query for a bounded time; every response must be a 200.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from infra.tools import free_port, port_open, wait_until

QUERIES = {
    "aggregate per node": (
        "SELECT node_id, count(*) AS reports, avg(rsrp_dbm) AS rsrp, "
        "max(dl_throughput_mbps) AS dl FROM radio_kpi_v1 WHERE rsrp_dbm > -110 "
        "GROUP BY node_id ORDER BY node_id"
    ),
    "time series per minute and band": (
        "SELECT date_trunc('minute', event_time) AS minute, band, avg(sinr_db) AS sinr, "
        "quantile_cont(latency_ms, 0.95) AS latency_p95 FROM radio_kpi_v1 "
        "GROUP BY ALL ORDER BY ALL"
    ),
    "raw rows of one node": (
        "SELECT * FROM radio_kpi_v1 WHERE node_id = 'an-0007' AND rsrp_dbm < -95 "
        "ORDER BY event_time LIMIT 200"
    ),
}
SQL = QUERIES["aggregate per node"]  # the concurrent clients' query
GOAL_RATIO, GOAL_EXTRA_MS = 1.2, 2.0
CLIENTS, BUYERS = 32, 8


def _client(port: int, key: str) -> tuple[http.client.HTTPConnection, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return conn, headers


def _post(conn: http.client.HTTPConnection, headers: dict, fmt: str, sql: str = SQL) -> int:
    conn.request("POST", "/api/query", json.dumps({"sql": sql, "format": fmt}), headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"the service answered HTTP {status}")


def elapsed_ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _concurrent(port: int, keys: list[str], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(key: str) -> None:
        conn, headers = _client(port, key)
        mine, failed = [], []
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status = _post(conn, headers, "json")
                mine.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    failed.append(f"HTTP {status}")
        except OSError as error:
            failed.append(repr(error))
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=loop, args=(keys[i % len(keys)],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "buyers": len(keys),
        "seconds": seconds,
        "requests": len(ordered),
        "errors": len(errors),
        "p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
        "p95_ms": round(ordered[int(len(ordered) * 0.95)], 2) if ordered else None,
        "queries_per_s": round(len(ordered) / seconds, 1),
    }


def run(quick: bool = False) -> dict:
    from market.assets import load_assets
    from market.store import MarketStore, market_path
    from streaming.demo import DemoOptions, run_demo

    nodes, duration = (40, 300.0) if quick else (100, 600.0)
    with private_state() as workdir:
        data_dir = workdir / "data"
        run_demo(DemoOptions(data_dir=data_dir, nodes=nodes, duration_s=duration))
        asset = load_assets(data_dir)["radio_kpi.v1"]
        store = MarketStore(market_path(data_dir))
        keys = []
        for number in range(BUYERS):
            keys.append(store.add_buyer(f"bench-{number}"))
            store.grant(f"bench-{number}", "radio_kpi.v1")
        plain = duckdb.connect(":memory:", config={"threads": 2})
        plain.read_parquet([str(f) for f in asset.files]).create_view("radio_kpi_v1")
        with serving(data_dir) as port:
            samples = {
                name: _interleaved(plain, port, keys[0], sql, runs=30 if quick else 100)
                for name, sql in QUERIES.items()
            }
            load = _concurrent(port, keys, CLIENTS, 3.0 if quick else 10.0)
    if load["errors"]:
        raise RuntimeError(f"{load['errors']} of {load['requests']} concurrent queries failed")
    return _result(asset.checkpoint.tree_size, samples, load)


@contextlib.contextmanager
def private_state() -> Iterator[Path]:
    """A scratch folder, also used as ``RDA_STATE_DIR`` for as long as the benchmark runs."""
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-market-"))
    previous_state = os.environ.get("RDA_STATE_DIR")
    os.environ["RDA_STATE_DIR"] = str(workdir / "state")
    try:
        yield workdir
    finally:
        if previous_state is None:
            os.environ.pop("RDA_STATE_DIR", None)
        else:
            os.environ["RDA_STATE_DIR"] = previous_state
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def serving(data_dir: Path, *options: str) -> Iterator[int]:
    """``rda serve [OPTIONS]`` on a free port, in its own process, stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data_dir)]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--json", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 60, what="rda serve")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _interleaved(
    plain: duckdb.DuckDBPyConnection, port: int, key: str, sql: str, runs: int
) -> dict[str, list[float]]:
    """Milliseconds per query: plain DuckDB, and the service in Arrow and JSON, interleaved so
    drift from the neighbours' load falls on every side alike."""
    conn, headers = _client(port, key)
    plain.execute(sql).fetchall()  # warm the file cache on both sides alike
    for fmt in ("json", "arrow"):
        _ok(_post(conn, headers, fmt, sql))
    samples: dict[str, list[float]] = {"plain": [], "arrow": [], "json": []}
    work = {
        "plain": lambda: plain.execute(sql).fetchall(),
        "arrow": lambda: _ok(_post(conn, headers, "arrow", sql)),
        "json": lambda: _ok(_post(conn, headers, "json", sql)),
    }
    for _ in range(runs):
        for side, call in work.items():
            samples[side].append(elapsed_ms(call))
    conn.close()
    return samples


def _result(rows: int, samples: dict[str, dict[str, list[float]]], load: dict) -> dict:
    queries = {}
    for name, sides in samples.items():
        plain_ms = statistics.median(sides["plain"])
        arrow_ms, json_ms = statistics.median(sides["arrow"]), statistics.median(sides["json"])
        goal_ms = GOAL_RATIO * plain_ms + GOAL_EXTRA_MS
        queries[name] = {
            "sql": QUERIES[name],
            "plain_duckdb_ms": round(plain_ms, 3),
            "service_arrow_ms": round(arrow_ms, 3),
            "service_json_ms": round(json_ms, 3),
            "ratio_arrow": round(arrow_ms / plain_ms, 3),
            "ratio_json": round(json_ms / plain_ms, 3),
            "goal_ms": round(goal_ms, 3),
            "within_goal": arrow_ms <= goal_ms and json_ms <= goal_ms,
        }
    met = all(q["within_goal"] for q in queries.values())
    lines = "; ".join(
        f"{name}: plain {q['plain_duckdb_ms']:.2f} ms, Arrow {q['service_arrow_ms']:.2f} ms "
        f"({q['ratio_arrow']:.2f}x), JSON {q['service_json_ms']:.2f} ms ({q['ratio_json']:.2f}x)"
        for name, q in queries.items()
    )
    return {
        "name": "market_query",
        "rows": rows,
        "queries": queries,
        "goal": f"p50 <= {GOAL_RATIO} x plain DuckDB + {GOAL_EXTRA_MS:g} ms",
        "within_goal": met,
        "concurrent": load,
        "summary": (
            f"{lines} (goal ≤ {GOAL_RATIO}x + {GOAL_EXTRA_MS:g} ms: "
            f"{'met' if met else 'missed'}); {load['clients']} clients of {load['buyers']} "
            f"buyers for {load['seconds']:g}s: {load['requests']} queries, {load['errors']} "
            f"errors, p50 {load['p50_ms']} ms, p95 {load['p95_ms']} ms"
        ),
    }
