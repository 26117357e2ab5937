"""The marketplace HTTP API: authentication everywhere, results in four formats, each naming
the anchored checkpoint it was computed on, entitlements applied on the next request."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from child_processes import spawn
from market_support import Client, new_buyer

from market import http as market_http
from market.assets import load_assets
from market.execution import QueryOutput
from market.store import MarketStore, market_path
from proofs.bundle import verify_bundle

SQL = "SELECT node_id, count(*) AS reports FROM radio_kpi_v1 GROUP BY node_id ORDER BY node_id"
ENDPOINTS = [
    ("GET", "/api/me"),
    ("GET", "/api/listings"),
    ("GET", "/api/listings/radio_kpi.v1"),
    ("GET", "/api/listings/radio_kpi.v1/datapackage.json"),
    ("GET", "/api/listings/radio_kpi.v1/croissant.json"),
    ("POST", "/api/query"),
    ("GET", "/api/publisher"),
    ("GET", "/api/nowhere"),
]


@pytest.fixture
def buyer(server, demo_dir):
    name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(server.url, key)
    yield name, client
    client.close()


def expected_counts(demo_dir: Path) -> list[dict]:
    files = [str(f) for f in load_assets(demo_dir)["radio_kpi.v1"].files]
    rows = duckdb.execute(
        "SELECT node_id, count(*) FROM read_parquet(?) GROUP BY 1 ORDER BY 1", [files]
    ).fetchall()
    return [{"node_id": n, "reports": c} for n, c in rows]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("key", [None, "", "rdak_not-a-key", "' OR 1=1 --"])
def test_every_api_endpoint_needs_a_valid_key(server, method, path, key):
    client = Client(server.url, None)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    body = {"sql": "SELECT 1"} if method == "POST" else None
    status, _headers, data = client.request(method, path, body, headers)
    client.close()
    assert status == 401
    assert json.loads(data)["error"]["code"] == "unauthorized"


def test_the_page_is_public_and_carries_no_data(server):
    client = Client(server.url, None)
    status, headers, page = client.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"RDA Marketplace" in page and b"radio_kpi" in page  # the console's example only
    for script in ("/static/app.js", "/static/verify.js", "/static/style.css"):
        assert client.request("GET", script)[0] == 200
    client.close()


def test_the_pages_policy_allows_its_own_images_and_the_users_chain_node(server):
    client = Client(server.url, None)
    _status, headers, _page = client.request("GET", "/")
    client.close()
    policy = [part.strip() for part in headers["Content-Security-Policy"].split(";")]
    assert policy == [
        "default-src 'self'",
        "img-src 'self' data: blob:",  # the map's and downloads' own URLs
        "connect-src 'self' http: https:",  # the proof tab reads anchors from the user's RPC URL
        "frame-ancestors 'none'",
    ]


def test_the_publisher_identity_is_offered_with_its_hash(buyer, demo_dir):
    _name, client = buyer
    status, headers, data = client.request("GET", "/api/publisher")
    raw = (demo_dir / "published" / "publisher-identity.json").read_bytes()
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(data) == {"identity": raw.decode(), "sha256": hashlib.sha256(raw).hexdigest()}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("POST", "/api/publisher", 405, "method_not_allowed"),
     ("GET", "/api/publisher/key", 404, "not_found")],
)  # fmt: skip
def test_the_publisher_route_answers_like_the_others(buyer, method, path, status, code):
    _name, client = buyer
    answer = client.request(method, path, {} if method == "POST" else None)
    assert (answer[0], answer[1]["Content-Type"]) == (status, "application/json")
    assert json.loads(answer[2])["error"]["code"] == code


def test_json_result_names_its_checkpoint(buyer, demo_dir):
    _name, client = buyer
    status, headers, body = client.query(SQL)
    result = json.loads(body)
    assert status == 200
    assert result["rows"] == expected_counts(demo_dir)
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    (checkpoint,) = result["checkpoints"]
    assert checkpoint == asset.checkpoint.as_dict()
    assert checkpoint["anchor_tx"].startswith("0x") and len(checkpoint["root"]) == 64
    assert json.loads(headers["RDA-Checkpoints"]) == result["checkpoints"]
    assert result["columns"] == [
        {"name": "node_id", "type": "string"},
        {"name": "reports", "type": "int64"},
    ]


def test_timestamps_in_json_are_written_as_in_leaf_bytes(buyer):
    _name, client = buyer
    status, result = client.query_json("SELECT event_time FROM radio_kpi_v1 LIMIT 1")
    assert status == 200
    (value,) = result["rows"][0].values()
    assert len(value) == len("2026-11-25T01:02:03.000000Z") and value.endswith("Z")


@pytest.mark.parametrize("fmt", ["csv", "arrow", "parquet"])
def test_other_formats_carry_the_same_rows(buyer, demo_dir, fmt):
    _name, client = buyer
    status, headers, body = client.query(SQL, format=fmt)
    assert status == 200
    if fmt == "csv":
        assert headers["Content-Type"].startswith("text/csv")
        table = pacsv.read_csv(io.BytesIO(body))
    elif fmt == "arrow":
        table = pa.ipc.open_stream(body).read_all()
    else:
        table = pq.read_table(io.BytesIO(body))
    assert table.to_pylist() == expected_counts(demo_dir)
    checkpoints = json.loads(headers["RDA-Checkpoints"])
    assert checkpoints[0]["dataset"] == "radio_kpi.v1"
    if fmt != "csv":
        assert json.loads(table.schema.metadata[b"rda.checkpoints"]) == checkpoints


def test_a_query_over_two_licensed_datasets_names_both_checkpoints(server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1", "speed_test.v2")
    client = Client(server.url, key)
    status, result = client.query_json(
        "SELECT count(*) AS n FROM radio_kpi_v1 r JOIN speed_test_v2 s USING (node_id)"
    )
    client.close()
    assert status == 200
    assert [c["dataset"] for c in result["checkpoints"]] == ["radio_kpi.v1", "speed_test.v2"]


def test_revoking_takes_effect_on_the_next_request(buyer, demo_dir):
    name, client = buyer
    assert client.query(SQL)[0] == 200
    MarketStore(market_path(demo_dir)).revoke(name, "radio_kpi.v1")
    status, result = client.query_json(SQL)
    assert status == 403
    assert result["error"]["code"] == "table_not_allowed"
    MarketStore(market_path(demo_dir)).grant(name, "radio_kpi.v1")
    assert client.query(SQL)[0] == 200


def test_listings_flag_what_the_buyer_licensed(buyer):
    name, client = buyer
    status, _h, body = client.request("GET", "/api/listings")
    listings = json.loads(body)["listings"]
    assert status == 200
    assert {item["dataset"]: item["licensed"] for item in listings} == {
        "node_heartbeat.v1": False,
        "link_kpi.v1": False,  # the hybrid fleet's links
        "radio_kpi.v1": True,
        "speed_test.v2": False,
        "subscriber_session.v1": False,
        "session_counts_dp.v1": False,
    }
    me = json.loads(client.request("GET", "/api/me")[2])
    assert me == {"buyer": name, "datasets": ["radio_kpi.v1"]}


def test_an_unknown_listing_is_a_404(buyer):
    _name, client = buyer
    status, _h, body = client.request("GET", "/api/listings/nope.v9")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"sql": 42}, "bad_request"),
        ({"sql": SQL, "format": "xml"}, "bad_request"),
        ({"sql": SQL, "max_rows": "ten"}, "bad_request"),
        ({"sql": SQL, "max_rows": 0}, "bad_request"),
    ],
)
def test_malformed_requests_get_a_clear_error(buyer, body, code):
    _name, client = buyer
    status, _h, data = client.request("POST", "/api/query", body)
    assert status == 400 and json.loads(data)["error"]["code"] == code


def test_a_body_that_is_not_json_is_refused(buyer):
    _name, client = buyer
    status, _h, data = client.request(
        "POST", "/api/query", None, {"Content-Type": "application/json", "Content-Length": "0"}
    )
    assert status == 400 and json.loads(data)["error"]["code"] == "bad_request"
    client.conn.request(
        "POST", "/api/query", body=b"{not json", headers={"Authorization": f"Bearer {client.key}"}
    )
    response = client.conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"]["code"] == "bad_request"


def test_proofs_come_with_one_verifiable_bundle_per_returned_row(buyer, demo_dir):
    _name, client = buyer
    status, result = client.query_json(
        "SELECT * FROM radio_kpi_v1 WHERE pci < 100 ORDER BY source_offset DESC LIMIT 7",
        proofs=True,
    )
    assert status == 200
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    assert "rda_leaf_index" not in [c["name"] for c in result["columns"]]
    assert len(result["proofs"]) == len(result["rows"]) == 7
    for row, bundle in zip(result["rows"], result["proofs"], strict=True):
        assert bundle["row"] == row  # the bundle proves exactly the row returned
        assert bundle["checkpoint"]["root"] == asset.checkpoint.root
        assert bundle["anchor"]["transaction"] == asset.checkpoint.anchor_tx
        verdict = verify_bundle(bundle)  # offline: row -> leaf -> path -> checkpoint root
        assert verdict.first_failure is None and verdict.status == "INCOMPLETE"


@pytest.mark.parametrize(
    ("sql", "options", "code"),
    [
        ("SELECT node_id, count(*) FROM radio_kpi_v1 GROUP BY 1", {}, "proofs_need_whole_rows"),
        ("SELECT node_id, rsrp_dbm FROM radio_kpi_v1 LIMIT 3", {}, "proofs_need_whole_rows"),
        ("SELECT * FROM radio_kpi_v1 LIMIT 3", {"format": "csv"}, "bad_request"),
    ],
)
def test_proofs_need_whole_rows_of_one_dataset_in_json(buyer, sql, options, code):
    _name, client = buyer
    status, result = client.query_json(sql, proofs=True, **options)
    assert status == 400 and result["error"]["code"] == code


def test_proofs_over_a_join_are_refused(server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1", "speed_test.v2")
    client = Client(server.url, key)
    status, result = client.query_json(
        "SELECT r.* FROM radio_kpi_v1 r JOIN speed_test_v2 s USING (node_id) LIMIT 2", proofs=True
    )
    client.close()
    assert status == 400 and result["error"]["code"] == "proofs_need_one_dataset"


def test_sixteen_concurrent_clients_are_all_served(server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    statuses: list[int] = []
    lock = threading.Lock()

    def client_loop():
        client = Client(server.url, key)
        for _ in range(5):
            status = client.query(SQL)[0]
            with lock:
                statuses.append(status)
        client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * 80


def test_a_locked_catalog_keeps_the_service_on_its_last_good_state(server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(server.url, key)
    assert client.query(SQL)[0] == 200
    expected = expected_counts(demo_dir)
    writer = spawn(  # another process holds the catalog's write lock, as `rda run` does
        [sys.executable, "-c", WRITER, str(demo_dir / "catalog.duckdb")],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        status, _h, body = client.query(SQL)
        assert status == 200 and json.loads(body)["rows"] == expected
    finally:
        writer.communicate("done\n", timeout=30)
        client.close()


WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS market_test_touch (x INTEGER)")
con.execute("INSERT INTO market_test_touch VALUES (1)")
print("locked", flush=True)
sys.stdin.readline()
con.execute("DROP TABLE market_test_touch")
con.close()
"""


def test_a_dataset_page_holds_what_a_buyer_decides_from(buyer):
    _name, client = buyer
    status, _h, body = client.request("GET", "/api/listings/subscriber_session.v1")
    page = json.loads(body)
    assert status == 200
    assert {"data_card", "checkpoints", "publisher", "profiles", "sample", "examples",
            "license_terms", "price", "quality_report", "access_request"} <= set(page)  # fmt: skip
    assert page["publisher"]["signature"]["status"] == "valid"
    assert page["price"]["label"] == "Free"
    assert page["coverage"]["time_column"] == "session_start"  # not "? → ?"
    imsi = next(p for p in page["profiles"] if p["name"] == "imsi")
    assert imsi["masked"] and "top" not in imsi and "min" not in imsi
    column = page["sample"]["columns"].index("imsi")
    assert {row[column] for row in page["sample"]["rows"]} == {"•••• hidden"}
    assert page["data_card"]["privacy"]["k_anonymity"]["k"] == 5


def test_a_speed_test_listing_covers_its_published_h3_cells(buyer):
    _name, client = buyer
    listing = json.loads(client.request("GET", "/api/listings/speed_test.v2")[2])
    assert listing["coverage"]["h3_cells"]
    assert all(len(c["boundary"]) == 6 for c in listing["coverage"]["h3_cells"])


def test_an_access_request_is_recorded_once_and_seen_by_the_seller(buyer, demo_dir):
    name, client = buyer
    for message in ("first", "second thoughts"):
        status, _h, body = client.request(
            "POST", "/api/access-requests", {"dataset": "speed_test.v2", "message": message}
        )
        assert status == 201 and json.loads(body)["request"]["status"] == "pending"
    pending = MarketStore(market_path(demo_dir)).access_requests("pending")
    assert [(r["dataset"], r["message"]) for r in pending if r["buyer"] == name] == [
        ("speed_test.v2", "second thoughts")
    ]
    mine = json.loads(client.request("GET", "/api/access-requests")[2])["requests"]
    assert [r["message"] for r in mine] == ["second thoughts"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"dataset": "radio_kpi.v1"}, 409, "already_licensed"),
        ({"dataset": "nope.v1"}, 404, "not_found"),
        ({"dataset": 3}, 400, "bad_request"),
        ({"dataset": "speed_test.v2", "extra": 1}, 400, "bad_request"),
    ],
)
def test_a_wrong_access_request_is_refused(buyer, body, status, code):
    _name, client = buyer
    answer = client.request("POST", "/api/access-requests", body)
    assert (answer[0], json.loads(answer[2])["error"]["code"]) == (status, code)


def test_a_spooled_result_gone_before_it_is_sent_is_answered_500(buyer, monkeypatch, tmp_path):
    # A server fault (the pool once deleted a result it had handed over): the buyer is told,
    # not left with a connection closed without an answer.
    gone = QueryOutput("application/json", 1, 10, None, str(tmp_path / "gone"), [])
    monkeypatch.setattr(market_http, "route", lambda *_args: (200, gone))
    _name, client = buyer
    status, _headers, body = client.query("SELECT 1")
    assert (status, json.loads(body)["error"]["code"]) == (500, "internal")


@contextlib.contextmanager
def _held_by_the_seller(demo_dir: Path) -> Iterator[None]:
    """The marketplace file open for writing in another process, as ``rda market`` holds it."""
    holder = spawn(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(market_path(demo_dir))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.communicate("", timeout=60)


def test_an_access_request_while_the_seller_holds_the_marketplace_file_is_answered_busy(
    buyer, demo_dir
):
    """The lock held by another process (the seller's ``rda market``) is worth a retry (503); no
    other fault of the store is (one such, a lone surrogate, used to be answered busy too)."""
    _name, client = buyer
    assert client.request("GET", "/api/me")[0] == 200  # the server knows the key already
    with _held_by_the_seller(demo_dir):
        status, _h, body = client.request(
            "POST", "/api/access-requests", {"dataset": "speed_test.v2", "message": "later"}
        )
    assert (status, json.loads(body)["error"]["code"]) == (503, "busy")


def test_a_key_holding_no_licence_runs_no_sql_but_is_told_how_to_get_one(server, demo_dir):
    """Fairness is per key and a wallet's sign-in makes keys for free: ten licence-less keys
    running SQL over VALUES lists held a licensed buyer's 6 ms query for 15 s (red team)."""
    _name, key = new_buyer(demo_dir)
    client = Client(server.url, key)
    try:
        heavy = "SELECT count(*) FROM (VALUES (1), (2)) a(x), (VALUES (1), (2)) b(y)"
        status, body = client.query_json(heavy)
        assert (status, body["error"]["code"]) == (403, "no_licence")
        assert "POST /api/access-requests" in body["error"]["message"]
        status, body = client.query_json("SELECT count(*) FROM radio_kpi_v1")
        assert (status, body["error"]["code"]) == (403, "table_not_allowed")
        assert client.request("GET", "/api/listings")[0] == 200  # browsing is still open
    finally:
        client.close()


def test_one_address_holding_idle_connections_leaves_the_others_served(server, buyer):
    """No key is needed to connect: one client holding ~140 idle sockets left a buyer 1 answer
    in 25 (red team). From another loopback address, it gets its 32 and then 503s at once."""
    _name, client = buyer
    idle = [
        socket.create_connection(("127.0.0.1", server.server_address[1]), 5, ("127.0.0.2", 0))
        for _ in range(40)
    ]
    try:
        for sock in idle:
            sock.sendall(b"POST /api/query HTTP/1.1\r\n")  # and then nothing
        time.sleep(0.5)  # a refusal is written at once
        answered = []
        for sock in idle:
            sock.setblocking(False)
            try:
                answered.append(sock.recv(12))
            except BlockingIOError:
                answered.append(b"")  # held open, waiting for the rest of its request
        assert answered.count(b"HTTP/1.1 503") == 8 and answered.count(b"") == 32
        assert client.request("GET", "/api/me")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_key_added_while_the_seller_holds_the_marketplace_file_is_busy_not_unknown(
    server, demo_dir
):
    """The server reads the file again when it changes; held by the seller, it cannot, and a
    key added meanwhile was answered 401 "unknown API key" (a lie): 503, retry."""
    stranger = Client(server.url, "rda_unknown")
    assert stranger.request("GET", "/api/me")[0] == 401  # the file is read
    stranger.close()
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    client = Client(server.url, key)
    with _held_by_the_seller(demo_dir):
        status, _h, body = client.request("GET", "/api/me")
    try:
        assert (status, json.loads(body)["error"]["code"]) == (503, "busy")
        assert client.request("GET", "/api/me")[0] == 200  # once the file is free
    finally:
        client.close()
