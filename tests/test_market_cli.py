"""``rda market``, ``rda query`` and ``rda serve`` as a seller and a buyer run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from child_processes import spawn

from infra.tools import free_port, port_open, wait_until

pytestmark = pytest.mark.slow  # `rda market` and `rda serve` processes


def rda(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def add_buyer(demo_dir: Path, name: str) -> str:
    result = rda("market", "add-buyer", name, "--data-dir", str(demo_dir), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["api_key"]


def test_seller_adds_a_buyer_grants_and_lists(demo_dir):
    key = add_buyer(demo_dir, "cli-acme")
    grant = rda("market", "grant", "cli-acme", "radio_kpi.v1", "--data-dir", str(demo_dir))
    assert grant.returncode == 0 and "radio_kpi.v1 granted to cli-acme" in grant.stdout
    buyers = json.loads(rda("market", "buyers", "--data-dir", str(demo_dir), "--json").stdout)
    mine = next(b for b in buyers["buyers"] if b["name"] == "cli-acme")
    assert mine["datasets"] == ["radio_kpi.v1"] and key not in json.dumps(buyers)
    assert mine["key_hint"] == key[:9] + "…"


def test_grant_of_an_unknown_dataset_is_a_one_line_error(demo_dir):
    add_buyer(demo_dir, "cli-typo")
    result = rda("market", "grant", "cli-typo", "radio_kpi.v9", "--data-dir", str(demo_dir))
    assert result.returncode == 2
    assert "no anchored dataset 'radio_kpi.v9'" in result.stderr
    assert "Traceback" not in result.stderr


def test_terms_show_in_listings_and_exports(demo_dir):
    terms = rda(
        "market", "terms", "speed_test.v2", "--license", "CC-BY-NC-4.0", "--price", "12.5",
        "--data-dir", str(demo_dir), "--json",
    )  # fmt: skip
    assert terms.returncode == 0, terms.stderr
    listings = json.loads(rda("market", "list", "--data-dir", str(demo_dir), "--json").stdout)
    speed = next(item for item in listings["listings"] if item["dataset"] == "speed_test.v2")
    assert (speed["license"], speed["price_usd"]) == ("CC-BY-NC-4.0", 12.5)
    exported = rda(
        "market", "export", "speed_test.v2", "--format", "croissant", "--data-dir", str(demo_dir)
    )
    assert json.loads(exported.stdout)["license"] == "CC-BY-NC-4.0"


def test_buyer_queries_as_csv_with_the_checkpoint_on_stderr(demo_dir):
    key = add_buyer(demo_dir, "cli-csv")
    rda("market", "grant", "cli-csv", "speed_test.v2", "--data-dir", str(demo_dir))
    result = rda(
        "query", "SELECT count(*) AS n FROM speed_test_v2", "--format", "csv",
        "--data-dir", str(demo_dir), env={"RDA_API_KEY": key},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == '"n"'
    assert "computed on speed_test.v2 tree size" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SELECT 1"], "an API key is needed"),
        (["SELECT 1", "--key", "rdak_wrong"], "unauthorized: unknown API key"),
        (["SELECT 1", "--key", "k", "--format", "parquet"], "--output FILE"),
    ],
)
def test_query_mistakes_are_one_line_errors(demo_dir, args, message):
    result = rda("query", *args, "--data-dir", str(demo_dir), env={"RDA_API_KEY": ""})
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_query_proofs_are_verified_by_rda_verify(demo_dir, tmp_path):
    key = add_buyer(demo_dir, "cli-proofs")
    rda("market", "grant", "cli-proofs", "radio_kpi.v1", "--data-dir", str(demo_dir))
    bundles = tmp_path / "bundles"
    result = rda(
        "query", "SELECT * FROM radio_kpi_v1 WHERE pci > 400 LIMIT 3", "--proofs",
        "--bundles-dir", str(bundles), "--key", key, "--data-dir", str(demo_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["proofs"]) == 3
    assert len(list(bundles.glob("*.bundle.json"))) == 3
    verified = rda("verify", "--bundle", str(bundles), "--offline", "--json")
    assert verified.returncode == 3, verified.stdout + verified.stderr  # offline: INCOMPLETE
    report = json.loads(verified.stdout)
    assert report["verdict"] == "INCOMPLETE"
    assert [b["first_failure"] for b in report["bundles"]] == [None] * 3


def test_serve_answers_until_terminated(demo_dir):
    key = add_buyer(demo_dir, "cli-serve")
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(demo_dir)]
    server = spawn(
        [*command, "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 60, what="rda serve")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"buyer": "cli-serve", "datasets": []}
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
    assert json.loads(server.stdout.read())["url"] == f"http://127.0.0.1:{port}"


def test_serve_without_a_catalog_is_a_one_line_error(tmp_path):
    result = rda("serve", "--data-dir", str(tmp_path / "empty"), "--port", str(free_port()))
    assert result.returncode == 2
    assert "no catalog" in result.stderr and "Traceback" not in result.stderr


def test_query_json_with_an_output_file_reports_what_it_wrote(demo_dir, tmp_path):
    key = add_buyer(demo_dir, "cli-parquet")
    rda("market", "grant", "cli-parquet", "radio_kpi.v1", "--data-dir", str(demo_dir))
    target = tmp_path / "result.parquet"
    result = rda(
        "query", "SELECT node_id FROM radio_kpi_v1 LIMIT 3", "--format", "parquet",
        "--output", str(target), "--key", key, "--data-dir", str(demo_dir), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["row_count"] == 3 and report["checkpoints"][0]["dataset"] == "radio_kpi.v1"
    assert pq.read_table(target).num_rows == 3


def test_seller_answers_access_requests(demo_dir):
    from market.store import MarketStore, market_path

    add_buyer(demo_dir, "cli-asker")
    MarketStore(market_path(demo_dir)).request_access("cli-asker", "speed_test.v2", "a study")
    listed = rda("market", "requests", "--data-dir", str(demo_dir))
    assert listed.returncode == 0 and "cli-asker" in listed.stdout and "a study" in listed.stdout
    declined = rda("market", "decline", "cli-asker", "speed_test.v2", "--data-dir", str(demo_dir))
    assert declined.returncode == 0, declined.stderr
    again = rda("market", "decline", "cli-asker", "speed_test.v2", "--data-dir", str(demo_dir))
    assert again.returncode == 2 and "no pending request" in again.stderr
    report = rda(
        "market", "requests", "--status", "declined", "--json", "--data-dir", str(demo_dir)
    )
    assert [r["buyer"] for r in json.loads(report.stdout)["requests"]] == ["cli-asker"]


def test_a_buyers_message_gives_no_order_to_the_sellers_terminal(demo_dir):
    from market.store import MarketStore, market_path

    add_buyer(demo_dir, "cli-ansi")
    hostile = "ok\x1b]0;PWNED\x07\x1b[2J\n#99  2026-01-01 acme  radio_kpi.v1  granted"
    MarketStore(market_path(demo_dir)).request_access("cli-ansi", "radio_kpi.v1", hostile)
    listed = rda("market", "requests", "--data-dir", str(demo_dir))
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if "cli-ansi" in line]
    assert "\x1b" not in listed.stdout and "\\x1b]0;PWNED\\x07\\x1b[2J\\n#99" in line
    assert not any(line.startswith("#99") for line in listed.stdout.splitlines())


def test_terms_take_a_price_unit_and_a_licence_text(demo_dir, tmp_path):
    text = tmp_path / "terms.txt"
    text.write_text("Fleet data licence: research use only.\n")
    result = rda(
        "market", "terms", "session_counts_dp.v1", "--price", "9.5", "--price-unit", "per month",
        "--license-file", str(text), "--data-dir", str(demo_dir), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    terms = json.loads(result.stdout)
    assert (terms["price_unit"], terms["license_text"]) == ("per month", text.read_text())
    missing = rda("market", "terms", "session_counts_dp.v1", "--license-file",
                  str(tmp_path / "nope.txt"), "--data-dir", str(demo_dir))  # fmt: skip
    assert missing.returncode == 2 and "cannot read" in missing.stderr
