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
import subprocess
import sys
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

    Built once per test run, under a lock, and copied into each worker's own directory: its
    tests write the marketplace's store in it. (Built by each worker, it was ~30 s of CPU twice
    on two cores.) A test worker started its build in the background when it collected a test
    that needs it (``pytest_collection_finish``); the first to need it waits for that build, or
    builds it here."""
    shared = _shared_root(tmp_path_factory.getbasetemp())
    _build_once(shared)
    copied = tmp_path_factory.mktemp("market-demo") / "data"
    shutil.copytree(shared / "data", copied)
    return copied


def _shared_root(basetemp: Path) -> Path:
    # Under xdist each worker's base is a folder of the run's: the run's is the one to share.
    root = (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / "market-demo"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _build_once(root: Path) -> None:
    with (root / "lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "built").exists():
            _run_demo(root)
            (root / "built").touch()


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


_background: list[subprocess.Popen] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under xdist, start building the demo in a process of its own as soon as a worker knows
    that a test of the run needs it: while it builds, both workers run other tests, where the
    second worker to reach a marketplace test used to wait ~30 s for the first's build, its
    core idle. One worker starts it (the first to create ``started``)."""
    basetemp = session.config.option.basetemp
    if not os.environ.get("PYTEST_XDIST_WORKER") or basetemp is None:
        return
    if not any("demo_dir" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    root = _shared_root(Path(basetemp))
    try:
        (root / "started").open("x").close()
    except FileExistsError:
        return
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])}
    with (root / "build.log").open("wb") as log:
        _background.append(
            subprocess.Popen(
                [sys.executable, __file__, str(root)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tests.parent,
            )
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A background build still running when the worker's tests end is waited for (it ends by
    itself: its broker stopped, nothing left behind)."""
    for build in _background:
        try:
            build.wait(timeout=300)
        except subprocess.TimeoutExpired:
            build.kill()
            build.wait()


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

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # the background build (``pytest_collection_finish``)
    _build_once(Path(sys.argv[1]))
