"""A real ``rda serve`` process with low limits, and what a hostile test measures about it:
the resident memory of its whole process tree (server, forkserver, query workers), its
threads, and raw sockets for requests no well-behaved client would send."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from child_processes import reap
from market_support import Client, new_buyer

from benchmarks.market_fairness import FAST_BOMBS, SERVE_OPTIONS
from infra.tools import free_port, port_open, wait_until

_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (workers are children of the forkserver)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                stack.extend(int(c) for c in children)
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(p) for p in tree_pids(pid))


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


@dataclass
class RssSampler:
    """Samples the tree's RSS every 20 ms in a thread until stopped; keeps the peak."""

    pid: int
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))
            self.samples += 1


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    options: dict[str, str]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def raw(self, data: bytes, read_timeout: float = 10.0) -> tuple[int, dict, bytes]:
        """Send ``data`` as is on a new connection; the status, headers and body back."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout) as sock:
            sock.sendall(data)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            return parse_response(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_response(data: bytes) -> tuple[int, dict, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers, body


def post_query(key: str, headers: str, body: bytes = b"") -> bytes:
    """The bytes of a ``POST /api/query`` with ``key``, the extra ``headers`` lines and
    ``body`` as given (a Content-Length, true or not, is the caller's)."""
    return (
        f"POST /api/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n"
    ).encode() + body


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


@contextlib.contextmanager
def serving(data_dir: Path, **options: str) -> Iterator[Served]:
    """``rda serve`` over ``data_dir`` with ``options`` (``--name value``), stopped after."""
    port = free_port()
    args = [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    command = [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--json", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 60, what="rda serve")
        yield Served(process, port, options)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        reap(process)  # killed if it took longer, and its stderr pipe closed


# -- the server the hostile modules attack, with low limits -----------------------------

OPTIONS = SERVE_OPTIONS  # the limits the fairness benchmark measures under, too
WORKERS, WORKER_MB = int(OPTIONS["workers"]), int(OPTIONS["worker-memory-mb"])
# docs/marketplace.md: the server process, plus the forkserver and each worker at its cap.
MAIN_MB = 512
MEMORY_CAP = (MAIN_MB + (WORKERS + 1) * WORKER_MB) * 1024 * 1024

BOMBS = {
    **FAST_BOMBS,
    "nested replace(), 10^10 characters": (
        "SELECT length(" + "replace(" * 9 + "'xxxxxxxxxx'" + ", 'x', 'xxxxxxxxxx')" * 9 + ")"
    ),
    "nested regexp_replace(…, 'g')": (
        "SELECT length("
        + "regexp_replace(" * 9
        + "'xxxxxxxxxx'"
        + ", 'x', 'xxxxxxxxxx', 'g')" * 9
        + ")"
    ),
}


@pytest.fixture(scope="module")
def served(demo_dir: Path):
    """A real `rda serve` process with the low limits of OPTIONS, for one test module."""
    with serving(demo_dir, **OPTIONS) as running:
        yield running


@pytest.fixture(scope="module")
def attacker(served, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(served.url, key)
    yield client
    client.close()


@pytest.fixture(scope="module")
def bystander(served, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(served.url, key)
    yield client
    client.close()
