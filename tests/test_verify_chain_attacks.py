"""Attacks on ``rda verify`` from the chain's side (stop 68's red team): a publisher's look-alike
registry, and a node that answers slowly, hugely, with errors, or with links that never end.

A registry's answers prove something only when its code is the AnchorRegistry's; a node is only
a way to read it, so a misbehaving one makes a verdict INCOMPLETE, in bounded time and memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from audit_dataset import DATASET, publish, rows
from rpc_proxy import is_call_of, rpc_proxy
from test_verify_attacks import verify
from web3 import Web3

from infra.chain import ChainConfig, connect
from infra.solc_assets import hostile_artifact_path
from proofs.anchor import AnchorRegistry, dataset_key, deploy_receipt
from proofs.contract_code import registry_code_problem
from proofs.identity import FILE_NAME
from proofs.rpc import AnswerRefused, BoundedHTTPProvider
from proofs.trust import ChainUnreadable, Pin, TrustRoot
from streaming.chain import ChainContext
from streaming.chain_binding import registry_for_reanchor

VERSION = "0x" + Web3.keccak(text="registryVersion()")[:4].hex()
PREVIOUS = "0x" + Web3.keccak(text="previousTreeSize(bytes32,uint64)")[:4].hex()


def look_alike() -> dict:
    return json.loads(hostile_artifact_path().read_text())["LookAlikeRegistry"]


@pytest.fixture
def dishonest(tmp_path, anvil, monkeypatch):
    """probe.v1 (12, 20, 25 rows) published and anchored through the publisher's look-alike of
    the AnchorRegistry, its identity bound there, and the auditor's pin of that identity."""
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RDA_PUBLISHER", raising=False)
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    sender = w3.eth.accounts[0]
    address = deploy_receipt(w3, look_alike(), sender)["contractAddress"]
    registry = AnchorRegistry(w3, address, sender)
    chain = ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, registry)
    data = tmp_path / "data"
    publish(data, [rows(0, 12), rows(12, 8), rows(20, 5)], chain)
    pinned = tmp_path / "pinned-identity.json"
    pinned.write_bytes((data / "published" / FILE_NAME).read_bytes())
    contract = w3.eth.contract(address=address, abi=look_alike()["abi"])
    return w3, contract, type("World", (), {"data": data, "pinned": pinned,
                                            "rpc_url": anvil.rpc_url, "tmp": tmp_path})  # fmt: skip


@pytest.mark.anvil
def test_a_look_alike_registry_is_not_verified_whatever_it_answers(dishonest):
    _w3, _contract, world = dishonest
    code, report = verify(world, "--data-dir", str(world.data))
    assert (code, report["verdict"]) == (1, "NOT VERIFIED")
    identity = report["publisher"]["check"]
    assert identity["ok"] is False
    assert "is not the AnchorRegistry's" in identity["detail"]


@pytest.mark.anvil
def test_a_log_rolled_back_on_a_look_alike_registry_is_not_verified(dishonest):
    """The attack: the newest checkpoint deleted, latest() set back to the one before."""
    _w3, contract, world = dishonest
    sender = _w3.eth.accounts[0]
    checkpoints = world.data / "published" / DATASET / "checkpoints"
    for newest in checkpoints.glob("000000000025.*"):
        newest.unlink()
    roll_back = contract.functions.setLatest(dataset_key(DATASET), 20).transact({"from": sender})
    _w3.eth.wait_for_transaction_receipt(roll_back)
    code, report = verify(world, "--data-dir", str(world.data))
    assert (code, report["verdict"]) == (1, "NOT VERIFIED")


@pytest.mark.anvil
def test_only_the_registry_s_own_code_deployed_by_its_owner_passes_the_code_check(anvil):
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    owner, other = w3.eth.accounts[:2]
    genuine = AnchorRegistry.deploy(w3).address
    fake = deploy_receipt(w3, look_alike(), owner)["contractAddress"]
    assert registry_code_problem(w3.eth.get_code(genuine), owner) is None
    assert registry_code_problem(w3.eth.get_code(genuine), other) is not None
    assert registry_code_problem(w3.eth.get_code(fake), owner) is not None
    assert registry_code_problem(w3.eth.get_code(genuine) + b"\x00", owner) is not None


@pytest.mark.anvil
def test_an_error_answering_the_version_is_no_version_and_is_not_remembered(anvil):
    """A rate-limited node once made the publisher's registry "version 1" for good, and
    `rda anchor --reanchor` then deployed a new registry instead of using it."""
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    address = AnchorRegistry.deploy(w3).address
    refused = []

    def rate_limited_once(request, upstream):
        if is_call_of(request, VERSION) and not refused:
            refused.append(request)
            return {"jsonrpc": "2.0", "id": request["id"],
                    "error": {"code": -32005, "message": "rate limited, retry later"}}  # fmt: skip
        return None

    with rpc_proxy(anvil.rpc_url, rate_limited_once) as node:
        flaky = Web3(Web3.HTTPProvider(node.url))
        registry = AnchorRegistry(flaky, address, w3.eth.accounts[0])
        with pytest.raises(Exception, match="rate limited"):
            registry.version  # noqa: B018 - the read is the test
        assert registry.version == 2
        refused.clear()
        with pytest.raises(Exception, match="rate limited"):
            registry_for_reanchor(flaky, address)
        assert registry_for_reanchor(flaky, address).address == address


@pytest.mark.anvil
def test_links_that_never_get_smaller_end_the_walk_at_once(anvil, tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    chain = ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, AnchorRegistry.deploy(w3))
    publish(tmp_path / "data", [rows(0, 3), rows(3, 2)], chain)
    identity = (tmp_path / "data" / "published" / FILE_NAME).read_bytes()

    def loops(request, upstream):
        if is_call_of(request, PREVIOUS):
            size = int(
                request["params"][0].get("data", request["params"][0].get("input"))[-64:], 16
            )
            return {"jsonrpc": "2.0", "id": request["id"], "result": "0x" + f"{size:064x}"}
        return None

    with rpc_proxy(anvil.rpc_url, loops) as node:
        trust = TrustRoot.over_rpc(Pin(identity=identity), node.url)
        assert trust.identity_check().ok is True
        with pytest.raises(ChainUnreadable, match="follows anchor 5"):
            trust.anchored_sizes(DATASET, 5)
        assert node.requests.count("eth_call") < 10


def dripping(start: Callable, byte: bytes) -> Callable:
    """A node's hook that starts an answer (``start(handler)``), then sends ``byte`` every
    0.1 s for 5 s, or until the client hangs up."""

    def drip(request, upstream):
        def write(handler):
            start(handler)
            for _ in range(50):
                time.sleep(0.1)
                try:
                    handler.wfile.write(byte)
                    handler.wfile.flush()
                except OSError:
                    return

        return write

    return drip


def test_an_answer_that_arrives_too_slowly_is_refused_and_the_node_not_asked_again():
    drip = dripping(lambda handler: handler.send_body(b" ", length=1_000), b" ")
    with rpc_proxy("http://127.0.0.1:9", drip) as node:
        provider = BoundedHTTPProvider(node.url, total_s=0.5)
        started = time.monotonic()
        with pytest.raises(AnswerRefused, match=r"within 0\.5 s"):
            provider.make_request("eth_chainId", [])
        assert time.monotonic() - started < 3
        with pytest.raises(AnswerRefused, match="not asked"):
            provider.make_request("eth_blockNumber", [])
        assert node.requests == ["eth_chainId"]


def test_headers_that_arrive_too_slowly_are_refused_too():
    """``requests`` reads the status line and headers with no overall clock."""
    drip_headers = dripping(lambda handler: handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-: "), b"z")
    with rpc_proxy("http://127.0.0.1:9", drip_headers) as node:
        provider = BoundedHTTPProvider(node.url, total_s=0.5)
        started = time.monotonic()
        with pytest.raises(AnswerRefused, match="did not answer eth_chainId"):
            provider.make_request("eth_chainId", [])
        assert time.monotonic() - started < 3


def test_an_answer_larger_than_the_bound_is_refused_before_it_is_all_read():
    sent = threading.Event()

    def huge(request, upstream):
        def write(handler):
            handler.send_body(b'{"jsonrpc":"2.0","id":0,"result":"0x', length=64 << 20)
            try:
                for _ in range(64):
                    handler.wfile.write(b"00" * (1 << 19))
            except OSError:
                sent.set()  # the client closed the connection: it stopped reading

        return write

    with rpc_proxy("http://127.0.0.1:9", huge) as node:
        provider = BoundedHTTPProvider(node.url, max_bytes=2 << 20)
        with pytest.raises(AnswerRefused, match="more than 2,097,152 bytes"):
            provider.make_request("eth_getCode", ["0x" + "00" * 20, "latest"])
        assert sent.wait(10)


@pytest.mark.anvil
def test_the_verifier_reads_the_chain_through_the_bounded_provider_as_before(anvil):
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    address = AnchorRegistry.deploy(w3).address
    trust = TrustRoot.over_rpc(Pin(), anvil.rpc_url)
    assert isinstance(trust.w3.provider, BoundedHTTPProvider)
    assert trust.w3.eth.chain_id == w3.eth.chain_id
    assert registry_code_problem(trust.w3.eth.get_code(address), w3.eth.accounts[0]) is None


def deploy_code(w3: Web3, runtime: bytes) -> str:
    """A contract whose code is ``runtime``, whatever it is: init code that copies it and
    returns it (CODECOPY, RETURN)."""
    n = len(runtime)
    init = bytes.fromhex(f"61{n:04x}600e60003961{n:04x}6000f3") + runtime  # 14 bytes, then it
    sent = w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": init})
    return w3.eth.wait_for_transaction_receipt(sent)["contractAddress"]


@pytest.mark.anvil
def test_a_node_registry_is_read_only_with_the_artifacts_code(anvil):
    from proofs.node_registry import NodeRegistry, load_artifact

    w3 = connect(ChainConfig("anvil", port=anvil.port))
    runtime = bytes.fromhex(load_artifact()["deployedBytecode"].removeprefix("0x"))
    assert NodeRegistry.at(w3, deploy_code(w3, runtime)).address
    with pytest.raises(ValueError, match="is not a NodeRegistry: its code"):
        NodeRegistry.at(w3, deploy_code(w3, runtime + b"\x00"))  # the same, and a byte more


@pytest.mark.anvil
@pytest.mark.parametrize(
    "receipt",
    [
        {"status": "0x1", "to": "0x12"},
        {"status": "0x1", "blockNumber": "0x1", "to": 7},
        {"blockNumber": "0x1"},
        ["not", "a", "receipt"],
        "0x00",
    ],
    ids=["short-to", "numeric-to", "no-status", "list", "string"],
)
def test_a_malformed_transaction_receipt_is_an_unchecked_anchor_not_a_traceback(
    anvil, tmp_path, monkeypatch, receipt
):
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    chain = ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, AnchorRegistry.deploy(w3))
    publish(tmp_path / "data", [rows(0, 3)], chain)
    identity = (tmp_path / "data" / "published" / FILE_NAME).read_bytes()

    def malformed(request, upstream):
        if request["method"] == "eth_getTransactionReceipt":
            return {"jsonrpc": "2.0", "id": request["id"], "result": receipt}
        return None

    with rpc_proxy(anvil.rpc_url, malformed) as node:
        trust = TrustRoot.over_rpc(Pin(identity=identity), node.url)
        assert trust.identity_check().ok is True
        check = trust.transaction_problem("0x" + "ab" * 32, 1)
    assert check is not None and check.ok is None
    assert check.detail.startswith("not checked: transaction 0x")


def test_an_answer_sent_in_chunks_is_read_whole():
    """Nodes behind a proxy often answer with ``Transfer-Encoding: chunked``."""

    def chunked(request, upstream):
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"}).encode()

        def write(handler):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for part in (body[:10], body[10:], b""):
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            handler.wfile.flush()

        return write

    with rpc_proxy("http://127.0.0.1:9", chunked) as node:
        provider = BoundedHTTPProvider(node.url)
        assert provider.make_request("eth_chainId", [])["result"] == "0x7a69"
        assert provider.make_request("eth_chainId", [])["result"] == "0x7a69"


def test_requests_keep_their_connection_to_the_node():
    """An auditor reads a long history over HTTPS: a connection (and its handshake) per request
    would cost more than the reads."""
    ports = []

    def answer(request, upstream):
        def write(handler):
            ports.append(handler.client_address[1])
            body = {"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"}
            handler.send_body(json.dumps(body).encode())

        return write

    with rpc_proxy("http://127.0.0.1:9", answer) as node:
        provider = BoundedHTTPProvider(node.url)
        for _ in range(3):
            assert provider.make_request("eth_chainId", [])["result"] == "0x7a69"
    assert len(ports) == 3 and len(set(ports)) == 1
