"""The run's chain, opened in a thread beside the first landing (``streaming/chain_opening.py``)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from streaming.chain_opening import ChainOpening


def test_what_the_opening_raises_is_raised_to_whoever_asks_for_the_chain():
    def refuse() -> None:
        raise ConnectionRefusedError("no node at http://127.0.0.1:9")

    opening = ChainOpening(refuse)
    opening.start(background=True)
    with pytest.raises(ConnectionRefusedError, match="no node"):
        opening.ready()


def test_the_chain_opened_in_the_background_is_the_one_ready_returns():
    opening = ChainOpening(lambda: "the chain")
    opening.start(background=True)
    assert opening.ready() == opening.ready() == "the chain"


def test_a_fork_while_the_chain_is_being_opened_waits_for_the_opening_to_end():
    started, ended = threading.Event(), threading.Event()

    def slow_open() -> str:
        started.set()
        time.sleep(0.3)  # e.g. importing web3: a child forked now could inherit a held lock
        ended.set()
        return "the chain"

    opening = ChainOpening(slow_open)
    opening.start(background=True)
    assert started.wait(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only exits
        os._exit(0)
    assert ended.is_set()
    assert os.waitpid(pid, 0)[1] == 0
    assert opening.ready() == "the chain"
