"""Shared set-up for the marketplace tests: one real demo data directory per test run (a copy
in each test worker) and one marketplace server per test module, loaded as a pytest plugin by
``conftest.py``.

The demo runs the whole pipeline (real broker, Beam, Parquet, DuckDB catalog, anchors on the
in-process EVM), so the marketplace is tested on exactly what the pipeline publishes.
"""

from __future__ import annotations

import fcntl
import http.client
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from market.http import MarketServer, ServerLimits, start_server
from market.pool import PoolLimits
from market.sandbox import Limits
from market.service import Marketplace
from market.store import MarketStore, market_path

_names = itertools.count(1)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory produced by ``rda demo`` (12 nodes, 60 s, two anchored waves).

    Built once per test run, under a lock, by the first test worker that needs it, and copied
    into each worker's own directory: its tests write the marketplace's store in it. (Built by
    each worker, it was ~30 s of CPU twice on two cores.)"""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is a folder of the run's: the run's is the one to share.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "market-demo"
    shared.mkdir(exist_ok=True)
    with (shared / "lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "built").exists():
            _run_demo(shared)
            (shared / "built").touch()
    copied = tmp_path_factory.mktemp("market-demo") / "data"
    shutil.copytree(shared / "data", copied)
    return copied


def _run_demo(root: Path) -> None:
    from streaming.demo import DemoOptions, run_demo

    previous = os.environ.get("RDA_STATE_DIR")
    os.environ["RDA_STATE_DIR"] = str(root / "state")
    try:
        summary = run_demo(DemoOptions(data_dir=root / "data", nodes=12, duration_s=60))
    finally:
        if previous is None:
            os.environ.pop("RDA_STATE_DIR", None)
        else:
            os.environ["RDA_STATE_DIR"] = previous
    assert summary["verified"] is True


@pytest.fixture(scope="module")
def market_limits() -> Limits | None:
    """The sandbox limits of the module's server (the service's defaults unless overridden)."""
    return None


@pytest.fixture(scope="module")
def pool_limits() -> PoolLimits:
    """The module's worker pool: two workers (the machine has two cores)."""
    return PoolLimits(workers=2, worker_memory_mb=1024)


@pytest.fixture(scope="module")
def server_limits() -> ServerLimits | None:
    return None


@pytest.fixture(scope="module")
def server(
    demo_dir: Path,
    market_limits: Limits | None,
    pool_limits: PoolLimits,
    server_limits: ServerLimits | None,
) -> Iterator[MarketServer]:
    """The marketplace HTTP API and page over the demo data, on a free loopback port, with
    queries in worker processes as ``rda serve`` runs them."""
    market = Marketplace(demo_dir, market_limits, pool_limits)
    running = start_server(market, limits=server_limits)
    yield running
    running.shutdown()
    running.server_close()
    market.close()


def new_buyer(data_dir: Path, *datasets: str) -> tuple[str, str]:
    """A fresh buyer licensed to ``datasets``; returns (name, API key)."""
    store = MarketStore(market_path(data_dir))
    name = f"buyer-{next(_names)}"
    key = store.add_buyer(name)
    for dataset in datasets:
        store.grant(name, dataset)
    return name, key


class Client:
    """A keep-alive HTTP client for the marketplace API."""

    def __init__(self, url: str, key: str | None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.key = key

    def request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        if self.key is not None:
            sent.setdefault("Authorization", f"Bearer {self.key}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=sent)
                response = self.conn.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once, as browsers do
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def query(self, sql: str, **options: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", "/api/query", {"sql": sql, **options})

    def query_json(self, sql: str, **options: Any) -> tuple[int, dict]:
        status, _headers, body = self.query(sql, **options)
        return status, json.loads(body)

    def close(self) -> None:
        self.conn.close()
