"""A hostile buyer against a real ``rda serve`` process with low limits (issue 16, items 1–5).

Memory bombs build single values of gigabytes; request bodies lie about their length or nest
JSON 50,000 deep; methods and paths the API does not have; huge results; slow and numerous
connections. Each must end in a JSON error with a stable code, while the server's memory stays
under its documented cap and another buyer keeps being served.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostile_support import (
    RssSampler,
    error_code,
    percentile,
    serving,
    threads_of,
    timed,
    tree_rss,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from market_support import Client, new_buyer

WORKERS, WORKER_MB = 3, 512
OPTIONS = {
    "timeout": "3",
    "memory-limit": "128MB",
    "workers": str(WORKERS),
    "worker-memory-mb": str(WORKER_MB),
    "per-buyer": "1",
    "queued-per-buyer": "4",
    "max-connections": "48",
    "receive-timeout": "1",
    "max-rows": "50000",
    "max-result-mb": "16",
}
# docs/marketplace.md: the server process, plus the forkserver and each worker at its cap.
MAIN_MB = 512
MEMORY_CAP = (MAIN_MB + (WORKERS + 1) * WORKER_MB) * 1024 * 1024

BOMBS = {
    "a string doubled 31 times by list_reduce": (
        "SELECT length(list_reduce([" + ", ".join(["'x'"] * 31) + "], lambda a, b: a || a))"
    ),
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
    "a list of lists by list_reduce": (
        "SELECT len(flatten(list_reduce(["
        + ", ".join(["[[1, 2, 3]]"] * 30)
        + "], lambda a, b: list_concat(a, a))))"
    ),
}
FAST_BOMBS = [
    BOMBS["a string doubled 31 times by list_reduce"],
    BOMBS["a list of lists by list_reduce"],
]
SMALL = "SELECT max(rsrp_dbm) AS m FROM radio_kpi_v1"
LARGE = "SELECT a.*, b.node_id AS other FROM radio_kpi_v1 a, radio_kpi_v1 b LIMIT 25000"


@pytest.fixture(scope="module")
def served(demo_dir: Path):
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


# -- 1. memory bombs -------------------------------------------------------------------------


@pytest.mark.parametrize("sql", BOMBS.values(), ids=BOMBS.keys())
def test_a_memory_bomb_is_stopped_and_the_server_stays_under_its_memory_cap(
    served, demo_dir, bystander, sql
):
    attacker = Client(served.url, new_buyer(demo_dir, "radio_kpi.v1")[1])
    with RssSampler(served.pid) as rss:
        status, body = attacker.query_json(sql)
    assert (status, body["error"]["code"]) in {(400, "out_of_memory"), (400, "timeout")}
    assert rss.samples > 0 and rss.peak < MEMORY_CAP
    assert bystander.query_json(SMALL)[0] == 200


def test_bombs_running_together_stay_under_the_cap(served, demo_dir, bystander):
    keys = [new_buyer(demo_dir, "radio_kpi.v1")[1] for _ in BOMBS]
    outcomes: list[tuple[int, str]] = []

    def bomb(key: str, sql: str) -> None:
        client = Client(served.url, key)
        status, body = client.query_json(sql)
        outcomes.append((status, body["error"]["code"]))
        client.close()

    threads = [
        threading.Thread(target=bomb, args=pair) for pair in zip(keys, BOMBS.values(), strict=True)
    ]
    with RssSampler(served.pid) as rss:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(set(outcomes)) <= [(400, "out_of_memory"), (400, "timeout")]
    assert len(outcomes) == len(BOMBS)
    assert rss.peak < MEMORY_CAP, f"peak {rss.peak >> 20} MiB"
    assert tree_rss(served.pid) < MEMORY_CAP
    assert bystander.query_json(SMALL)[0] == 200


# -- 2. bodies that lie about their length ---------------------------------------------------


def _post(key: str, headers: str, body: bytes = b"") -> bytes:
    return (
        f"POST /api/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    ("length", "status", "code"),
    [
        ("-1", 400, "bad_request"),
        ("+12", 400, "bad_request"),
        ("1e3", 400, "bad_request"),
        ("12, 12", 400, "bad_request"),
        ("99999999999999999999", 400, "bad_request"),
        ("262145", 413, "request_too_large"),
    ],
)
def test_a_content_length_that_lies_is_refused_without_reading_the_body(
    served, attacker, length, status, code
):
    big = b'{"sql": "SELECT 1", "pad": "' + b"x" * 300_000 + b'"}'
    answer = served.raw(_post(attacker.key, f"Content-Length: {length}\r\n", big))
    assert answer[0] == status and error_code(answer[2]) == code
    assert answer[1].get("Connection") == "close"


def test_a_chunked_body_is_refused(served, attacker):
    chunked = _post(attacker.key, "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    status, _headers, body = served.raw(chunked)
    assert (status, error_code(body)) == (411, "length_required")


def test_the_key_is_checked_before_the_body_is_read(served):
    # 200 MB announced, nothing sent: an unknown key is answered at once, the body never read
    request = _post("rdak_wrong", "Content-Length: 209715200\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(request)
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 401 Unauthorized"


def test_a_body_shorter_than_announced_is_cut_off_at_the_receive_deadline(served, attacker):
    started = time.monotonic()
    answer = served.raw(_post(attacker.key, "Content-Length: 100\r\n", b'{"sql": '), 10)
    assert answer[0] in (0, 400)  # cut off (no answer), or told the body ended early
    assert time.monotonic() - started < 5


# -- 3. statements, bodies, methods and paths the API does not have ---------------------------


def test_update_extensions_is_refused_in_the_buyers_words(attacker):
    status, body = attacker.query_json("UPDATE EXTENSIONS")
    assert (status, body["error"]["code"]) == (400, "statement_not_allowed")
    assert body["error"]["message"].startswith("UPDATE statements are not allowed")


def test_a_json_body_nested_50000_deep_is_a_400(served, attacker):
    nested = b'{"sql": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    request = _post(attacker.key, f"Content-Length: {len(nested)}\r\n", nested)
    status, _headers, body = served.raw(request)
    assert (status, error_code(body)) == (400, "bad_request")
    assert "nested deeper" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "TRACE"])
def test_other_methods_get_a_json_405(served, attacker, method):
    request = f"{method} /api/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {attacker.key}"
    status, headers, body = served.raw((request + "\r\n\r\n").encode())
    assert status == 405 and headers["Content-Type"] == "application/json"
    assert error_code(body) == "method_not_allowed"


@pytest.mark.parametrize(
    "path",
    ["/api/listings/../../x", "/api/listings/%2e%2e/%2e%2e/x", "/static/../market.duckdb",
     "/api//listings", "/static/app.js/..", "/api/listings/radio_kpi.v1/../../../etc/passwd"],
)  # fmt: skip
def test_paths_that_step_outside_are_404(attacker, path):
    status, _headers, body = attacker.request("GET", path)
    assert (status, error_code(body)) == (404, "not_found")


@pytest.mark.parametrize(
    ("field", "value"),
    [("proofs", "true"), ("proofs", 1), ("max_rows", True), ("format", 3), ("sql", None)],
)
def test_request_fields_of_the_wrong_type_are_refused(attacker, field, value):
    status, body = (
        attacker.query_json(SMALL, **{field: value})
        if field != "sql"
        else (
            attacker.request("POST", "/api/query", {"sql": value})[0],
            json.loads(attacker.request("POST", "/api/query", {"sql": value})[2]),
        )
    )
    assert (status, body["error"]["code"]) == (400, "bad_request")


def test_an_unknown_request_field_is_named(attacker):
    status, body = attacker.query_json(SMALL, max_row=5)
    assert status == 400 and "unknown field max_row" in body["error"]["message"]


def test_oversized_headers_are_a_431(served, attacker):
    request = f"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {attacker.key}\r\n"
    padding = "".join(f"X-Pad-{i}: {'y' * 1000}\r\n" for i in range(40))
    status, _headers, body = served.raw((request + padding + "\r\n").encode())
    assert (status, error_code(body)) == (431, "headers_too_large")


# -- 4. large results and slow clients do not stall anyone -----------------------------------


def test_a_result_over_the_byte_limit_is_refused(served, demo_dir):
    attacker = Client(served.url, new_buyer(demo_dir, "radio_kpi.v1")[1])
    status, body = attacker.query_json(
        "SELECT a.*, b.* FROM radio_kpi_v1 a, radio_kpi_v1 b LIMIT 49000"
    )
    assert (status, body["error"]["code"]) == (413, "result_too_large")


def test_another_buyer_is_served_within_twice_its_latency_during_bombs_and_large_results(
    served, demo_dir, bystander
):
    def latencies(n: int) -> list[float]:
        return [timed(lambda: _ok(bystander.query_json(SMALL))) for _ in range(n)]

    latencies(5)  # warm
    quiet: list[float] = []
    loaded: list[float] = []
    answers: set[int] = set()
    large_key = new_buyer(demo_dir, "radio_kpi.v1")[1]
    for _round in range(4):  # alternate, so the neighbours' load falls on both alike
        quiet += latencies(30)
        # a fresh bomber each round: one who keeps bombing is made to wait (market.pool)
        load = [_Load(served.url, new_buyer(demo_dir, "radio_kpi.v1")[1], FAST_BOMBS),
                _Load(served.url, large_key, [LARGE])]  # fmt: skip
        time.sleep(0.2)
        try:
            loaded += latencies(30)
        finally:
            for each in load:
                answers |= each.stop()
    assert answers and answers <= {200, 400}, answers
    quiet_p95, loaded_p95 = percentile(quiet, 0.95), percentile(loaded, 0.95)
    report = {"quiet_p95_ms": round(quiet_p95, 2), "loaded_p95_ms": round(loaded_p95, 2)}
    print("bystander latency", report)
    # The ratio is the goal; 3 ms absorb the timer noise of a shared two-core machine.
    assert loaded_p95 <= 2 * quiet_p95 + 3, report


def _ok(answer: tuple[int, dict]) -> None:
    assert answer[0] == 200, answer


class _Load:
    """A buyer sending ``queries`` in a loop, from its own process (a thread here would share
    this process's interpreter lock with the buyer being measured), until stopped."""

    def __init__(self, url: str, key: str, queries: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOAD_SCRIPT, url, key, json.dumps(queries)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> set[int]:
        """Stop after the query in flight; the statuses it got."""
        out, _err = self.process.communicate("stop\n", timeout=60)
        return set(json.loads(out))


_LOAD_SCRIPT = """
import http.client, json, sys, threading
url, key, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
host, port = url.removeprefix("http://").split(":")
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
statuses = set()
while not stop.is_set():
    for sql in queries:
        if stop.is_set():
            break
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/api/query", json.dumps({"sql": sql}),
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        statuses.add(response.status)
        conn.close()
print(json.dumps(sorted(statuses)))
"""


def test_a_buyer_over_its_queue_gets_429_while_others_are_served(served, demo_dir, bystander):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    slow = (
        "SELECT sum(a.rsrp_dbm * b.sinr_db * c.pci * d.pci) "
        "FROM radio_kpi_v1 a, radio_kpi_v1 b, radio_kpi_v1 c, radio_kpi_v1 d"
    )
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        client = Client(served.url, key)
        status = client.query(slow)[0]
        with lock:
            statuses.append(status)
        client.close()

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    answer = bystander.query_json(SMALL)
    assert answer[0] == 200, answer
    for t in threads:
        t.join(timeout=60)
    assert statuses.count(429) >= 3  # one runs, four wait, the rest are told to wait
    assert set(statuses) <= {400, 429}


def test_slow_clients_are_cut_off_and_connections_are_capped(served, bystander):
    base_threads = threads_of(served.pid)
    cap = int(OPTIONS["max-connections"])
    sockets = []
    for _ in range(201):  # each sends half a request line and then nothing
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        sock.sendall(b"POST /api/query HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    time.sleep(0.3)
    during = threads_of(served.pid)
    started = time.monotonic()
    answers = []
    for sock in sockets:  # every one is answered 503 at once, or closed at the deadline
        sock.settimeout(5)
        try:
            answers.append(sock.recv(4096)[:12])
        except (TimeoutError, ConnectionResetError) as error:
            answers.append(type(error).__name__.encode())
        sock.close()
    assert during <= base_threads + cap
    assert set(answers) <= {b"HTTP/1.1 503", b""}, set(answers)
    assert answers.count(b"HTTP/1.1 503") >= 201 - 2 * cap
    assert time.monotonic() - started < 5
    time.sleep(1.2)  # past the receive deadline every slow connection was closed
    assert threads_of(served.pid) <= base_threads + 2
    assert bystander.query_json(SMALL)[0] == 200


# -- 5. names and words a buyer understands --------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    ["SELECT count(*) FROM RADIO_KPI_V1", 'SELECT count(*) FROM "Radio_KPI_v1"',
     "WITH R AS (SELECT * FROM radio_kpi_v1) SELECT count(*) FROM r",
     "PIVOT radio_kpi_v1 ON band IN ('B3', 'B7') USING count(*)"],
)  # fmt: skip
def test_identifiers_are_case_insensitive_as_in_sql(attacker, sql):
    assert attacker.query_json(sql)[0] == 200


@pytest.mark.parametrize(
    ("sql", "words"),
    [("INSTALL httpfs", "INSTALL statements"), ("USE memory", "USE statements"),
     ("TRUNCATE radio_kpi_v1", "TRUNCATE statements"), ("DESCRIBE radio_kpi_v1", "DESCRIBE"),
     ("/* x */ -- y\n load httpfs", "LOAD statements")],
)  # fmt: skip
def test_refusals_name_what_the_buyer_wrote(attacker, sql, words):
    status, body = attacker.query_json(sql)
    assert (status, body["error"]["code"]) == (400, "statement_not_allowed")
    assert body["error"]["message"].startswith(words)


def test_a_pivot_without_its_values_says_what_to_write(attacker):
    status, body = attacker.query_json("PIVOT radio_kpi_v1 ON node_id USING count(*)")
    assert (status, body["error"]["code"]) == (400, "pivot_values_required")
    assert "IN (" in body["error"]["message"]


@pytest.mark.parametrize(
    "sql",
    [
        # a CTE inside a subquery does not hide the real view outside it
        "SELECT * FROM (WITH node_heartbeat_v1 AS (SELECT 1 AS x) "
        "SELECT * FROM node_heartbeat_v1) s, node_heartbeat_v1",
        # a CTE's own body reads the real view of the same name
        "WITH node_heartbeat_v1 AS (SELECT * FROM node_heartbeat_v1) "
        "SELECT * FROM node_heartbeat_v1",
        # a CTE cannot see the ones defined after it
        "WITH a AS (SELECT * FROM node_heartbeat_v1), node_heartbeat_v1 AS (SELECT 1) "
        "SELECT * FROM a",
    ],
    ids=["outside the subquery", "its own body", "defined later"],
)
def test_cte_names_hide_views_only_in_their_scope(attacker, sql):
    status, body = attacker.query_json(sql)
    assert (status, body["error"]["code"]) == (403, "table_not_allowed")
    assert body["error"]["message"].startswith("node_heartbeat_v1 is not one of your licensed")


@pytest.mark.parametrize(
    "sql",
    ["SELECT generate_subscripts([1, 2], 1)", "SELECT get_block_size('memory')",
     "SELECT format_type(23, NULL)", "SELECT unnest(generate_subscripts([1], 1))"],
)  # fmt: skip
def test_built_in_macros_that_reach_refused_functions_are_refused(attacker, sql):
    status, body = attacker.query_json(sql)
    assert (status, body["error"]["code"]) == (400, "function_not_allowed")


# -- no input gives a 500 --------------------------------------------------------------------

_PATH_PIECES = st.sampled_from(
    ["api", "listings", "query", "me", "access-requests", "radio_kpi.v1", "..", ".", "%2e%2e",
     "", "static", "app.js", "croissant.json", "x" * 300, "%00", "ü", "?a=1", "#f"]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "FOO"]),
    pieces=st.lists(_PATH_PIECES, max_size=5),
    body=st.one_of(st.binary(max_size=300), st.just(b'{"sql": "SELECT 1"}')),
)
def test_no_request_gets_a_500(served, attacker, method, pieces, body):
    path = "/" + "/".join(pieces)
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {attacker.key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, headers, answer = served.raw(request)
    assert 200 <= status < 500 or status == 503, (status, answer[:200])
    if status >= 400 and method != "HEAD":
        assert headers["Content-Type"] == "application/json" and error_code(answer)


@settings(max_examples=80, deadline=None)
@given(sql=st.text(max_size=120) | st.sampled_from(["SELECT", "WITH", "PIVOT", "FROM"]).map(
    lambda k: k + " radio_kpi_v1 ON node_id USING count(*)"))  # fmt: skip
def test_no_sql_gets_a_500(attacker, sql):
    status, body = attacker.query_json(sql)
    assert status in (200, 400, 403, 413), body
    assert status == 200 or body["error"]["code"]
