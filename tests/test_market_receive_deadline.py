"""The receive deadline is the client's time: a request sent at once is answered even when the
server's own work before its body (the key's check, waiting for the marketplace file to be read
again) outlasts the deadline, and a client that trickles its request is still cut off when its
own time is up.

Found under load: a buyer added while others were querying made the next requests wait for the
marketplace file to be read again; under a busy machine that took longer than the 1 s deadline of
the hostile tests, and the server cut clients that had sent their whole request.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from hostile_support import parse_response, post_query, read_all
from market_support import new_buyer

from market.http import ServerLimits

DEADLINE_S = 1.0
RELOAD_S = 1.5  # past the deadline


@pytest.fixture(scope="module")
def server_limits() -> ServerLimits:
    return ServerLimits(receive_timeout_s=DEADLINE_S)


@pytest.fixture
def slow_reload(server, monkeypatch):
    """The marketplace file takes ``RELOAD_S`` to be read again (a busy machine's disk)."""
    store = server.market.store
    read = store.snapshot

    def slowly():
        time.sleep(RELOAD_S)
        return read()

    monkeypatch.setattr(store, "snapshot", slowly)


def _exchange(server, request: bytes) -> tuple[int, dict, bytes]:
    """One request on a connection of its own, and its answer (a client that does not retry:
    a connection cut off is status 0)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return parse_response(read_all(sock))


def _query(key: str, sql: str) -> bytes:
    body = json.dumps({"sql": sql}).encode()
    return post_query(key, f"Content-Length: {len(body)}\r\n", body)


def test_a_request_sent_at_once_is_answered_while_the_marketplace_file_is_read_again(
    server, demo_dir, slow_reload
):
    # A new buyer changes the marketplace file: the next key check reads it again.
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    started = time.monotonic()
    status, _headers, body = _exchange(server, _query(key, "SELECT 1 AS one"))
    assert status == 200, body[:200]
    assert time.monotonic() - started >= RELOAD_S  # it did wait for the file


def test_the_time_before_the_key_check_counts_against_the_client(server, demo_dir, slow_reload):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    request = _query(key, "SELECT 1")
    head, body = request.split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head[:20])
        time.sleep(0.8 * DEADLINE_S)  # most of its time spent on the request line
        sock.sendall(head[20:] + b"\r\n\r\n" + body[:3])  # the rest of the body never comes
        answer = sock.recv(4096)
        elapsed = time.monotonic() - started
    # Cut off when its own second is up (plus the server's reload), not given a second again.
    assert answer == b""
    assert elapsed < RELOAD_S + 1.6 * DEADLINE_S, elapsed
