"""The marketplace page in a real browser: Debian's Chromium, headless, driven by Playwright.

Sign in, browse and filter the catalog, open a dataset (schema with units, coverage, anchor,
sample rows), run SQL, and paste a real inclusion proof bundle to get a verdict computed in
the page with WebCrypto. Screenshots go to ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from market_support import new_buyer

from infra.tools import REPO_ROOT, ensure_chromium
from market.assets import load_assets
from market.proving import bundles_for
from proofs.jcs import canonicalize
from proofs.leaves import row_to_jcs_value

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server, demo_dir):
    _name, key = new_buyer(demo_dir, "radio_kpi.v1")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url + "/")
    page.fill("#api-key", key)
    page.click("#signin button")
    page.wait_for_selector(".card")
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"market-{name}.png"), full_page=True)


def real_bundle(demo_dir: Path, leaf_index: int) -> dict:
    """The proof bundle the service returns for one published row (``proofs=true``)."""
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    (bundle,) = bundles_for(asset, [leaf_index])
    return bundle


def test_signed_in_buyer_sees_the_catalog_and_can_search_and_filter(page):
    cards = page.locator(".card")
    assert cards.count() == 5  # radio, heartbeats, speed tests, sessions, noisy session counts
    shot(page, "catalog")
    page.fill("#search", "download")  # a field description of speed_test only
    assert page.locator(".card").count() == 1
    assert page.locator(".card h3").inner_text() == "speed_test.v2"
    page.fill("#search", "")
    page.select_option("#filter", "licensed")
    assert page.locator(".card h3").all_inner_texts() == ["radio_kpi.v1"]


def test_dataset_page_shows_schema_units_coverage_anchor_and_samples(page, demo_dir):
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    page.click(".card[data-dataset='radio_kpi.v1']")
    article = page.locator("article#dataset")
    article.locator("#sample table").wait_for()
    text = article.inner_text()
    assert "dBm" in text and "rsrp_dbm" in text
    assert asset.checkpoint.root in text and asset.checkpoint.anchor_tx in text
    assert "Validation report (Great Expectations)" in text and "completeness" in text
    assert article.locator("svg.map circle").count() >= 1
    assert article.locator("#sample tbody tr").count() == 5
    shot(page, "dataset")


def test_sql_console_runs_a_query_and_names_the_checkpoint(page, demo_dir):
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    page.click("nav button[data-tab='console']")
    page.click("#run")
    page.wait_for_selector("#query-result tbody tr")
    assert page.locator("#query-result tbody tr").count() == 10
    checkpoint = page.inner_text("#query-checkpoints")
    assert f"radio_kpi.v1 at tree size {asset.checkpoint.tree_size}" in checkpoint
    assert asset.checkpoint.anchor_tx in checkpoint
    shot(page, "console")


def test_console_proofs_are_verified_in_the_browser(page):
    page.click("nav button[data-tab='console']")
    page.fill("#sql", "SELECT * FROM radio_kpi_v1 WHERE pci < 250 LIMIT 4")
    page.check("#with-proofs")
    page.click("#run")
    page.wait_for_selector("#check-proofs:not([hidden])")
    assert page.inner_text("#query-status") == "4 rows, 4 proof bundles"
    page.click("#check-proofs")
    page.wait_for_selector("#verdict-line")
    assert page.inner_text("#verdict-line") == "VERIFIED — 4 bundle(s)"
    assert "its anchor is tx 0x" in page.inner_text("#verdict")
    shot(page, "console-proofs-verified")


def test_sql_console_shows_a_refusal_clearly(page):
    page.click("nav button[data-tab='console']")
    page.fill("#sql", "SELECT * FROM read_csv('/etc/passwd')")
    page.click("#run")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "table_function_not_allowed" in error.inner_text()
    shot(page, "console-refused")


def test_a_real_proof_bundle_is_verified_in_the_browser(page, demo_dir):
    bundles = [real_bundle(demo_dir, i) for i in (0, 7, 1000)]
    page.click("nav button[data-tab='proof']")
    page.fill("#bundle", json.dumps({"bundles": bundles}, indent=2))
    page.click("#verify")
    page.wait_for_selector("#verdict-line")
    assert page.inner_text("#verdict-line") == "VERIFIED — 3 bundle(s)"
    shot(page, "proof-verified")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b["row"].update(rsrp_dbm=b["row"]["rsrp_dbm"] + 1),
        lambda b: b.update(leaf_hash="00" * 32),
        lambda b: b.update(leaf_index=b["leaf_index"] + 1),
        lambda b: b["audit_path"].pop(),
        lambda b: b["checkpoint"].update(root="00" * 32),
    ],
    # Not "another tree size": a path does not authenticate the size (docs/proof-format.md
    # section 5); the verdict names the checkpoint, whose size and root the anchor fixes.
    ids=["row changed", "leaf hash changed", "other index", "short path", "other root"],
)
def test_a_tampered_bundle_is_not_verified(page, demo_dir, tamper):
    bundle = real_bundle(demo_dir, 5)
    tamper(bundle)
    page.click("nav button[data-tab='proof']")
    page.fill("#bundle", json.dumps(bundle))
    page.click("#verify")
    page.wait_for_selector("#verdict-line")
    assert page.inner_text("#verdict-line") == "NOT VERIFIED"


def test_the_page_canonicalizes_rows_exactly_like_the_proof_core(page, demo_dir):
    asset = load_assets(demo_dir)["radio_kpi.v1"]
    table = pq.read_table(asset.files[0]).slice(0, 20)
    rows = [row_to_jcs_value(r, table.schema) for r in table.to_pylist()]
    rows += [
        {"é": "\u2028", "a\u0000": [1e21, 1e-7, -0.0, 0.1, None, True]},
        {"€": 1, "\U0001f600": 2},
    ]
    in_browser = page.evaluate("rows => rows.map(RDA.canonicalize)", rows)
    assert in_browser == [canonicalize(r).decode() for r in rows]
