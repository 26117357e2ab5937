"""The page's verifier against a real chain: headless Chromium reads the anchors from anvil.

The demo's checkpoints are re-anchored on anvil (``rda anchor --reanchor``'s code path), served
by the marketplace, and verified in the page against what the user pins (the publisher's
identity document, or its registry) and the anchor the page reads itself from the RPC URL the
user gives. Attacks 1, 2, 5 and 6 of issue 14 are replayed in the page.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from audit_dataset import fabricated_bundle
from market_support import new_buyer
from test_market_web import TIMEOUT_MS, browser, shot  # noqa: F401  (browser: a fixture)

from infra.chain import ChainConfig, connect
from infra.solc_assets import hostile_artifact_path
from market.assets import load_assets
from market.http import start_server
from market.proving import bundles_for
from market.service import Marketplace
from proofs.anchor import AnchorRegistry, deploy_receipt
from proofs.bundle import SHARD_HEAD_AS_ROW
from proofs.merkle import leaf_hash
from proofs.shards import head_bytes
from streaming.chain import ChainContext
from streaming.chain_binding import reanchor_data_dir

DATASET = "radio_kpi.v1"


@pytest.fixture(scope="module")
def anchored(tmp_path_factory, demo_dir, anvil):
    """A copy of the demo data, every checkpoint re-anchored on anvil, served."""
    data = tmp_path_factory.mktemp("anvil-market") / "data"
    shutil.copytree(demo_dir, data, ignore=shutil.ignore_patterns("market.duckdb*", "*.lock"))
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    chain = ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, AnchorRegistry.deploy(w3))
    reanchor_data_dir(chain, data)
    market = Marketplace(data)
    server = start_server(market)
    yield SimpleNamespace(
        data=data,
        chain=chain,
        server=server,
        identity=(data / "published" / "publisher-identity.json").read_text(),
        rpc_url=anvil.rpc_url,
    )
    server.shutdown()
    server.server_close()
    market.close()


@pytest.fixture
def page(browser, anchored):  # noqa: F811
    _name, key = new_buyer(anchored.data, DATASET)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(anchored.server.url + "/")
    page.fill("#api-key", key)
    page.click("#signin button")
    page.wait_for_selector(".card")
    yield page
    context.close()


def pin(page, identity: str = "", registry: str = "", chain_id: str = "", rpc_url: str = ""):
    page.click("nav button[data-tab='proof']")
    page.fill("#pin-identity", identity)
    page.fill("#pin-registry", registry)
    page.fill("#pin-chain-id", chain_id)
    page.fill("#rpc-url", rpc_url)
    page.click("#pin-save")


def verdict_of(page, bundles: list[dict]) -> tuple[str, str]:
    """Paste ``bundles``, verify, and return the verdict line and the whole verdict text."""
    page.click("nav button[data-tab='proof']")
    page.evaluate("document.getElementById('verdict').replaceChildren()")
    page.fill("#bundle", json.dumps({"bundles": bundles}))
    page.click("#verify")
    page.wait_for_selector("#verdict-line")
    return page.inner_text("#verdict-line"), page.inner_text("#verdict")


def real_bundles(anchored, *leaves: int) -> list[dict]:
    return bundles_for(load_assets(anchored.data)[DATASET], list(leaves))


def test_query_proofs_are_verified_against_the_anchor_the_page_reads(page, anchored):
    pin(page, identity=anchored.identity, rpc_url=anchored.rpc_url)
    assert "Identity document pinned. Anchors are read from" in page.inner_text("#pin-status")
    page.click("nav button[data-tab='console']")
    page.fill("#sql", "SELECT * FROM radio_kpi_v1 WHERE pci < 250 LIMIT 3")
    page.check("#with-proofs")
    page.click("#run")
    page.wait_for_selector("#check-proofs:not([hidden])")
    page.click("#check-proofs")
    page.wait_for_selector("#verdict-line")
    assert page.inner_text("#verdict-line") == "VERIFIED — 3 bundle(s)"
    text = page.inner_text("#verdict")
    assert f"anchored in registry {anchored.chain.contract}, block" in text
    shot(page, "proofs-verified-on-anvil")


def test_the_registry_alone_can_be_pinned_and_the_identity_is_read_from_it(page, anchored):
    pin(page, registry=anchored.chain.contract.lower(), chain_id="31337", rpc_url=anchored.rpc_url)
    line, _text = verdict_of(page, real_bundles(anchored, 0, 9))
    assert line == "VERIFIED — 2 bundle(s)"


def test_nothing_pinned_or_no_rpc_url_is_incomplete_never_verified(page, anchored):
    line, text = verdict_of(page, real_bundles(anchored, 4))
    assert (line, "no pinned publisher identity" in text) == ("INCOMPLETE", True)
    pin(page, identity=anchored.identity)
    line, text = verdict_of(page, real_bundles(anchored, 4))
    assert line == "INCOMPLETE"
    assert "give an RPC URL" in text and "the checkpoint is the one the listing shows" in text
    shot(page, "proof-incomplete")


@pytest.mark.parametrize("rpc", [True, False], ids=["rpc", "no-rpc"])
def test_attack_6_a_made_up_row_with_a_real_anchor_tx_is_not_verified(page, anchored, rpc):
    (real,) = real_bundles(anchored, 0)
    pin(page, identity=anchored.identity, rpc_url=anchored.rpc_url if rpc else "")
    line, text = verdict_of(page, [fabricated_bundle(DATASET, real["anchor"])])
    assert line == "NOT VERIFIED"
    if rpc:
        assert f"no anchor of {DATASET} at size 1 in registry {anchored.chain.contract}" in text
    else:
        assert "not the listing's anchored checkpoint" in text
    shot(page, f"attack-6-{'rpc' if rpc else 'no-rpc'}")


def test_attack_1_a_fabricated_unanchored_bundle_is_not_verified(page, anchored):
    pin(page, identity=anchored.identity, rpc_url=anchored.rpc_url)
    line, text = verdict_of(page, [fabricated_bundle(DATASET)])
    assert line == "NOT VERIFIED" and "no anchor of radio_kpi.v1 at size 1" in text


def test_attack_2_a_bundle_naming_another_registry_is_not_verified(page, anchored):
    """Someone's own AnchorRegistry holds a fabricated root; the bundle names it."""
    w3 = anchored.chain.registry.w3
    rogue = AnchorRegistry.deploy(w3, sender=w3.eth.accounts[1])
    bundle = fabricated_bundle(DATASET)
    rogue.anchor(DATASET, 1, bytes.fromhex(bundle["checkpoint"]["root"]), b"\x00" * 32)
    bundle["anchor"] = {
        "chain_id": 31337, "contract": rogue.address, "transaction": None, "block": None,
        "dataset_id": hashlib.sha256(DATASET.encode()).hexdigest(),
    }  # fmt: skip
    pin(page, identity=anchored.identity, rpc_url=anchored.rpc_url)
    line, text = verdict_of(page, [bundle])
    assert line == "NOT VERIFIED"
    assert f"the bundle names registry {rogue.address} on chain 31337" in text
    pin(page, registry=rogue.address, chain_id="31337", rpc_url=anchored.rpc_url)
    line, text = verdict_of(page, [bundle])  # pinning the rogue registry does not help either
    assert line == "NOT VERIFIED" and "binds no publisher identity" in text


def test_a_forged_identity_document_is_not_verified(page, anchored):
    forged = anchored.identity.replace('"chain_id":31337', '"chain_id":31338')
    pin(page, identity=forged, rpc_url=anchored.rpc_url)
    line, text = verdict_of(page, real_bundles(anchored, 2))
    assert line == "NOT VERIFIED" and "pinned identity: an Ed25519 signature" in text


def test_a_shard_head_passed_off_as_a_row_is_not_verified_in_the_page(page, anchored):
    (real,) = real_bundles(anchored, 0)
    head = real["shard"]  # a leaf of the anchored checkpoint's tree, but no row
    bundle = {
        **{k: real[k] for k in ("dataset", "checkpoint", "anchor")},
        "bundle_version": 1,
        "log": DATASET,
        "row": head,
        "leaf_index": real["head_index"],
        "leaf_hash": leaf_hash(head_bytes(head)).hex(),
        "audit_path": real["head_path"],
    }
    pin(page, identity=anchored.identity, rpc_url=anchored.rpc_url)
    line, text = verdict_of(page, [bundle])
    assert line == "NOT VERIFIED" and f"leaf {real['head_index']}: {SHARD_HEAD_AS_ROW}" in text


def test_attack_5_a_replaced_column_gets_no_proofs_in_the_page(page):
    page.click("nav button[data-tab='console']")
    page.fill("#sql", "SELECT * REPLACE (rsrp_dbm + 10 AS rsrp_dbm) FROM radio_kpi_v1 LIMIT 1")
    page.check("#with-proofs")
    page.click("#run")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "proofs_need_unmodified_rows" in error.inner_text()
    assert page.locator("#check-proofs").is_hidden()
    shot(page, "attack-5-refused")


def test_the_page_offers_the_sites_identity_with_its_hash_to_compare(page, anchored):
    page.click("nav button[data-tab='proof']")
    page.click("#pin-offered")
    page.wait_for_selector("#pin-status:has-text('compare it')")
    assert page.input_value("#pin-identity") == anchored.identity
    assert re.search(r"SHA-256 [0-9a-f]{64}: compare it", page.inner_text("#pin-status"))


def test_the_pages_selectors_are_the_contracts():
    from eth_utils import keccak

    from infra.tools import REPO_ROOT

    script = (REPO_ROOT / "market" / "web" / "verify.js").read_text()
    selectors = re.findall(r'(\w+): "([0-9a-f]{8})", // (\S+)', script)
    assert len(selectors) == 5
    for name, selector, signature in selectors:
        assert signature.startswith(name + "(")
        assert keccak(text=signature)[:4].hex() == selector, signature


def test_the_pages_registry_code_is_the_artifacts():
    from proofs.anchor import load_artifact

    script = (Path(__file__).parent.parent / "market" / "web" / "verify.js").read_text()
    constants = re.search(r"REGISTRY_CODE = \{\s*bytes: (\d+),\s*ownerAt: \[([\d, ]+)\],\s*"
                          r'sha256: "([0-9a-f]{64})"', script)  # fmt: skip
    artifact = load_artifact()
    code = bytes.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
    (places,) = artifact["immutableReferences"].values()  # the owner's
    assert int(constants[1]) == len(code)
    assert [int(at) for at in constants[2].split(",")] == [p["start"] for p in places]
    assert constants[3] == hashlib.sha256(code).hexdigest()


def test_a_look_alike_registry_is_not_verified_in_the_page(page, anchored, anvil, tmp_path):
    """The publisher's own look-alike of the AnchorRegistry, which could answer anything of its
    anchors: the identity bound there, every checkpoint anchored there, real bundles."""
    data = tmp_path / "data"
    shutil.copytree(anchored.data, data, ignore=shutil.ignore_patterns("market.duckdb*", "*.lock"))
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    look_alike = json.loads(hostile_artifact_path().read_text())["LookAlikeRegistry"]
    address = deploy_receipt(w3, look_alike, w3.eth.accounts[0])["contractAddress"]
    registry = AnchorRegistry(w3, address, w3.eth.accounts[0])
    reanchor_data_dir(ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, registry), data)
    identity = (data / "published" / "publisher-identity.json").read_text()
    pin(page, identity=identity, rpc_url=anvil.rpc_url)
    line, text = verdict_of(page, bundles_for(load_assets(data)[DATASET], [0]))
    assert line.startswith("NOT VERIFIED")
    assert "is not the AnchorRegistry's" in text
