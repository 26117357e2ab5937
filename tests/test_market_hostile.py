"""A hostile buyer against a real ``rda serve`` process with low limits (issue 16, items 1–3).

Memory bombs build single values of gigabytes; request bodies lie about their length or nest
JSON 50,000 deep; methods and paths the API does not have; random requests and SQL. Each must
end in a JSON error with a stable code, never a 500, while the server's memory stays under its
documented cap and another buyer keeps being served. Fairness under load is in
``test_market_fairness.py``.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hostile_support import (
    BOMBS,
    MEMORY_CAP,
    RssSampler,
    attacker,
    bystander,
    error_code,
    post_query,
    served,
    tree_rss,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from market_support import Client, new_buyer

from benchmarks.market_fairness import SMALL

__all__ = ["attacker", "bystander", "served"]  # module fixtures, shared with the fairness tests


# -- 1. memory bombs -------------------------------------------------------------------------


@pytest.mark.parametrize("sql", BOMBS.values(), ids=BOMBS.keys())
def test_a_memory_bomb_is_stopped_and_the_server_stays_under_its_memory_cap(
    served, demo_dir, bystander, sql
):
    key = new_buyer(demo_dir, "radio_kpi.v1")[1]
    with Client(served.url, key) as attacker, RssSampler(served.pid) as rss:
        status, body = attacker.query_json(sql)
    assert (status, body["error"]["code"]) in {(400, "out_of_memory"), (400, "timeout")}
    assert rss.samples > 0 and rss.peak < MEMORY_CAP
    assert bystander.query_json(SMALL)[0] == 200


def test_bombs_running_together_stay_under_the_cap(served, demo_dir, bystander):
    keys = [new_buyer(demo_dir, "radio_kpi.v1")[1] for _ in BOMBS]
    outcomes: list[tuple[int, str]] = []

    def bomb(key: str, sql: str) -> None:
        with Client(served.url, key) as client:
            status, body = client.query_json(sql)
        outcomes.append((status, body["error"]["code"]))

    threads = [
        threading.Thread(target=bomb, args=pair) for pair in zip(keys, BOMBS.values(), strict=True)
    ]
    with RssSampler(served.pid) as rss:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert set(outcomes) <= {(400, "out_of_memory"), (400, "timeout")}
    assert len(outcomes) == len(BOMBS)
    print(f"server tree RSS peak {rss.peak >> 20} MiB, cap {MEMORY_CAP >> 20} MiB")
    assert rss.peak < MEMORY_CAP, f"peak {rss.peak >> 20} MiB"
    assert tree_rss(served.pid) < MEMORY_CAP
    assert bystander.query_json(SMALL)[0] == 200


# -- 2. bodies that lie about their length ---------------------------------------------------


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
    answer = served.raw(post_query(attacker.key, f"Content-Length: {length}\r\n", big))
    assert answer[0] == status and error_code(answer[2]) == code
    assert answer[1].get("Connection") == "close"


def test_a_chunked_body_is_refused(served, attacker):
    chunked = post_query(attacker.key, "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    status, _headers, body = served.raw(chunked)
    assert (status, error_code(body)) == (411, "length_required")


def test_the_key_is_checked_before_the_body_is_read(served):
    # 200 MB announced, nothing sent: an unknown key is answered at once, the body never read
    request = post_query("rdak_wrong", "Content-Length: 209715200\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(request)
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 401 Unauthorized"


def test_a_body_shorter_than_announced_is_cut_off_at_the_receive_deadline(served, attacker):
    started = time.monotonic()
    answer = served.raw(post_query(attacker.key, "Content-Length: 100\r\n", b'{"sql": '), 10)
    assert answer[0] in (0, 400)  # cut off (no answer), or told the body ended early
    assert time.monotonic() - started < 5


# -- 3. statements, bodies, methods and paths the API does not have ---------------------------


def test_update_extensions_is_refused_in_the_buyers_words(attacker):
    status, body = attacker.query_json("UPDATE EXTENSIONS")
    assert (status, body["error"]["code"]) == (400, "statement_not_allowed")
    assert body["error"]["message"].startswith("UPDATE statements are not allowed")


def test_a_json_body_nested_50000_deep_is_a_400(served, attacker):
    nested = b'{"sql": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    request = post_query(attacker.key, f"Content-Length: {len(nested)}\r\n", nested)
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


def test_a_query_nested_hundreds_of_subqueries_deep_is_refused_as_too_complex(attacker):
    """260 nested subqueries, 2.3 KB of SQL: reading its syntax tree raised RecursionError."""
    status, body = attacker.query_json("SELECT " + "(SELECT " * 260 + "1" + ")" * 260)
    assert (status, body["error"]["code"]) == (400, "query_too_complex")
    assert body["error"]["message"].startswith("the query nests too deeply (1047 levels")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/query", {"sql": "SELECT 1 -- \ud800"}),
        ("/api/access-requests", {"dataset": "radio_kpi.v1", "message": "for \udfff"}),
    ],
)
def test_a_lone_surrogate_in_a_request_is_a_400_not_a_500_or_a_retry(attacker, path, body):
    """Valid JSON ("\\ud800"), no text: a query got a 500, an access request a 503 to retry."""
    status, _headers, answer = attacker.request("POST", path, body)
    assert (status, error_code(answer)) == (400, "bad_request")
    assert "lone surrogate" in json.loads(answer)["error"]["message"]


def _strict_json(body: bytes) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_nan_and_infinity_in_a_json_result_are_null_as_json_stringify_writes_them(attacker):
    """Bare NaN / Infinity made the whole answer unreadable to strict JSON parsers."""
    status, _headers, body = attacker.query(
        "SELECT 'nan'::DOUBLE AS a, '-inf'::DOUBLE AS b, 1.5::FLOAT AS c"
    )
    assert status == 200
    assert _strict_json(body)["rows"] == [{"a": None, "b": None, "c": 1.5}]


def test_nan_inside_a_nested_json_value_is_refused_with_the_formats_that_keep_it(attacker):
    status, _headers, body = attacker.query("SELECT [1.0, 'nan'::DOUBLE] AS l")
    assert (status, error_code(body)) == (400, "query_failed")
    assert "format=parquet or arrow" in _strict_json(body)["error"]["message"]
