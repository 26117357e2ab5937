"""Fairness and words under a hostile load (issue 16, items 4–5), against a real ``rda serve``.

Large results and bombs must not stall another buyer (within 2× of its quiet p95 on an idle
machine: ``rda bench``'s market_fairness; here, faster than the load beside it), a buyer
over its queue is told to wait (429), slow and numerous connections are cut and capped, and
every refusal names what the buyer wrote, with names compared as SQL compares them.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hostile_support import OPTIONS, attacker, bystander, served, threads_of
from market_support import Client, new_buyer

from benchmarks.market_fairness import SMALL, bystander_latency

pytestmark = pytest.mark.slow  # the served marketplace under load

__all__ = ["attacker", "bystander", "served"]  # module fixtures from hostile_support


# -- 4. large results and slow clients do not stall anyone -----------------------------------


def test_a_result_over_the_byte_limit_is_refused(served, demo_dir):
    # ~0.9 KB of text a row in one column: the limit is crossed after ~18,000 rows with little
    # encoding work (all the columns of both sides took seconds of it: near the 3 s timeout on
    # a busy machine, which then answered "timeout" instead)
    wide = "a.device_batch_path || a.device_signature || b.device_batch_path || b.device_signature"
    with Client(served.url, new_buyer(demo_dir, "radio_kpi.v1")[1]) as attacker:
        status, body = attacker.query_json(
            f"SELECT {wide} AS wide FROM radio_kpi_v1 a, radio_kpi_v1 b LIMIT 49000"
        )
    assert (status, body["error"]["code"]) == (413, "result_too_large")


def test_another_buyer_is_answered_faster_than_the_bombs_and_large_results_beside_it(
    served, demo_dir, bystander
):
    """Not made to wait for them: its small query's p95 while two other buyers send bombs and
    large results in a loop stays under a third of one large result's own time, measured in the
    same rounds (a bystander queued behind the load would wait about that long). How close it
    stays to its quiet p95 (within 2x on an idle machine) is `rda bench`'s market_fairness: with
    another test worker on the same two cores that ratio measured 2.6-4.5x."""
    report = bystander_latency(
        served.url,
        lambda: bystander.query_json(SMALL)[0],
        lambda: new_buyer(demo_dir, "radio_kpi.v1")[1],
        rounds=4,
    )
    print("bystander latency", report)
    assert report["load_answers"] and set(report["load_answers"]) <= {200, 400}, report
    assert report["loaded_p95_ms"] < report["large_result_median_ms"] / 3, report


def test_a_buyer_over_its_queue_gets_429_while_others_are_served(served, demo_dir, bystander):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    # ~0.3 s alone (1,195 x 1,195 x 200 rows): long enough for the burst to find one running
    # and four queued, short enough that the five end well before the 3-s timeout (a query
    # that ran into it made the test wait 5 x 3 s)
    slow = (
        "SELECT sum(a.rsrp_dbm * b.sinr_db * c.pci) "
        "FROM radio_kpi_v1 a, radio_kpi_v1 b, (SELECT pci FROM radio_kpi_v1 LIMIT 200) c"
    )
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        with Client(served.url, key) as client:
            status = client.query(slow)[0]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    answer = bystander.query_json(SMALL)
    assert answer[0] == 200, answer
    for t in threads:
        t.join(timeout=60)
    assert statuses.count(429) >= 3  # one runs, four wait, the rest are told to wait
    assert set(statuses) <= {200, 400, 429}  # 400: a timeout on a machine busy enough


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
