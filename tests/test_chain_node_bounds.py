"""The pipeline's own chain node, read within bounds: an answer that drips or never ends is an
outage like a node that does not answer (retried), never a stream held for good.

web3's timeout applies to each socket read, so a node sending a byte every few seconds kept a
request going for as long as it liked; ``streaming.chain.connect_node`` reads through
``proofs.rpc.BoundedHTTPProvider`` without its verifier's stickiness: the node is asked again.
"""

from __future__ import annotations

import threading
import time

import pytest
from rpc_proxy import rpc_proxy

import streaming.chain
from proofs.rpc import MAX_STUCK_THREADS, AnswerRefused, BoundedHTTPProvider
from streaming.chain import connect_node, open_chain
from streaming.retry import is_transient

ANSWER = {"jsonrpc": "2.0", "id": 0, "result": "0x7"}


def headers_dripping_for(seconds: float):
    """An answer whose status line and headers come a byte every 0.1 s for ``seconds``."""

    def write(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-: ")
        for _ in range(int(seconds * 10)):
            time.sleep(0.1)
            try:
                handler.wfile.write(b"z")
                handler.wfile.flush()
            except OSError:
                return

    return write


def first_dripping(method: str, seconds: float = 3.0):
    """A node hook: the first ``method`` request drips, every other request is answered."""
    asked = []

    def hook(request, upstream):
        asked.append(request["method"])
        if request["method"] == method and asked.count(method) == 1:
            return headers_dripping_for(seconds)
        return {**ANSWER, "id": request["id"]}

    return hook


def test_after_an_answer_that_dripped_the_node_is_asked_again(monkeypatch):
    monkeypatch.setattr(streaming.chain, "NODE_ANSWER_S", 0.5)
    with rpc_proxy("http://127.0.0.1:9", first_dripping("eth_blockNumber")) as node:
        w3 = connect_node("rpc", node.url)
        started = time.monotonic()
        with pytest.raises(AnswerRefused, match="did not answer eth_blockNumber") as refused:
            _ = w3.eth.block_number
        assert time.monotonic() - started < 3
        assert is_transient(refused.value)  # retried by the driver, as a node that is away
        assert w3.eth.block_number == 7
        assert node.requests.count("eth_blockNumber") == 2


def test_a_request_whose_caller_gave_up_behind_a_stuck_one_is_never_sent():
    with rpc_proxy("http://127.0.0.1:9", first_dripping("eth_blockNumber", 2.0)) as node:
        provider = BoundedHTTPProvider(node.url, total_s=0.3, sticky=False)
        errors = []

        def ask_first() -> None:
            try:
                provider.make_request("eth_blockNumber", [])
            except AnswerRefused as error:
                errors.append(error)

        stuck = threading.Thread(target=ask_first)
        stuck.start()
        time.sleep(0.1)  # queued behind the dripping answer, on the same thread
        with pytest.raises(AnswerRefused):
            provider.make_request("eth_chainId", [])
        stuck.join()
        assert len(errors) == 1
        time.sleep(2.2)  # the dripping answer over: its thread takes its queue again
        assert "eth_chainId" not in node.requests
        assert provider.make_request("eth_gasPrice", [])["result"] == "0x7"


def test_a_node_dripping_every_answer_holds_a_bounded_number_of_threads():
    # Each answer given up on leaves its thread (and connection) until the node stops sending.
    def hook(request, upstream):
        return headers_dripping_for(3.0)

    def asking() -> int:
        return sum(t.name == "rda-rpc" and t.is_alive() for t in threading.enumerate())

    before = asking()  # other tests' providers
    with rpc_proxy("http://127.0.0.1:9", hook) as node:
        provider = BoundedHTTPProvider(node.url, total_s=0.2, sticky=False)
        for _ in range(MAX_STUCK_THREADS):
            with pytest.raises(AnswerRefused, match="did not answer"):
                provider.make_request("eth_blockNumber", [])
        with pytest.raises(AnswerRefused, match=f"still sending {MAX_STUCK_THREADS} answers"):
            provider.make_request("eth_blockNumber", [])
        assert asking() <= before + MAX_STUCK_THREADS
        assert node.requests.count("eth_blockNumber") == MAX_STUCK_THREADS


@pytest.mark.anvil
def test_the_pipeline_reads_its_node_through_the_bounded_provider(anvil):
    chain = open_chain("anvil", anvil.rpc_url, None)
    provider = chain.registry.w3.provider
    assert isinstance(provider, BoundedHTTPProvider) and provider.sticky is False
    assert chain.registry.latest("radio_kpi.v1") is None
