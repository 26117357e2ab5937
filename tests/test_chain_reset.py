"""Issue 15 item 7: a chain reset or a different chain stops ``rda run``; nothing is lost.

A real anvil node is stopped and started again empty on the same port, and the registry
redeployed at the same address (what a reset looks like from the outside). ``rda run`` then
refuses to start, says why and what to do; ``rda anchor`` names what the chain lost;
``rda anchor --reanchor`` anchors every existing checkpoint again, in order; the next run goes
on and the auditor's verdict, pinned to the publisher's identity, is VERIFIED.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

import pytest
from test_cli import rda

from infra.chain import ChainConfig, connect, start_anvil
from infra.tools import free_port, port_open, wait_until
from proofs.anchor import AnchorRegistry
from streaming.chain import ChainChanged, ChainContext
from streaming.chain_binding import bind

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def fresh_anvil(port: int, directory):
    """An empty anvil on ``port`` with a registry deployed by its first account."""
    node = start_anvil(port, directory)
    w3 = connect(ChainConfig("anvil", port=port))
    return node, w3, AnchorRegistry.deploy(w3)


def stop_for_good(node) -> None:
    """Stop the node and its whole process group (the npm launcher and anvil under it), and
    wait for its port to be free, so that the next node can take it."""
    node.stop()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.pid, signal.SIGKILL)  # the group this test started (start_new_session)
    wait_until(lambda: not port_open("127.0.0.1", node.port), 15, what="anvil's port to close")


def test_a_reset_chain_stops_rda_run_until_the_checkpoints_are_reanchored(
    broker, topic, publish, tmp_path
):
    port, state, data = free_port(), tmp_path / "state", tmp_path / "data"
    node, _w3, registry = fresh_anvil(port, tmp_path / "anvil-1")
    run = (
        "run", "--once", "--bootstrap", broker.bootstrap, "--topic", topic, "--group",
        f"g-{topic}", "--data-dir", str(data), "--chain", "rpc", "--rpc-url", node.rpc_url,
        "--registry", registry.address, "--json", "--quality", "queue",
    )  # fmt: skip
    try:
        publish(broker, topic, nodes=3, duration_s=10, seed=1)
        first = rda(*run, state=state)
        assert first.returncode == 0, first.stderr
        anchored = {c["dataset"]: c["tree_size"] for b in json.loads(first.stdout)["batches"]
                    for c in b["checkpoints"]}  # fmt: skip
    finally:
        stop_for_good(node)
    node, _w3, again = fresh_anvil(port, tmp_path / "anvil-2")  # reset: same port, same address
    try:
        assert again.address == registry.address
        publish(broker, topic, nodes=3, duration_s=10, seed=2)
        stopped = rda(*run, state=state)
        assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
        message = " ".join(stopped.stderr.split())
        assert (
            f"registry {registry.address} on chain 31337 no longer holds the anchor of" in message
        )
        assert "the chain was reset or replaced" in message
        assert f"rda anchor --reanchor --data-dir {data}" in message
        check = ("anchor", "--data-dir", str(data), "--rpc-url", node.rpc_url, "--registry",
                 registry.address, "--json")  # fmt: skip
        status = rda(*check, state=state)
        assert status.returncode == 1
        assert json.loads(status.stdout)["holds_every_anchor"] is False
        moved = rda(*check, "--reanchor", state=state)
        assert moved.returncode == 0, moved.stderr
        report = json.loads(moved.stdout)
        assert report["checkpoints"] == report["newly_anchored"] == len(anchored)
        assert report["chain"]["contract"] == registry.address  # the redeployed one, reused
        for dataset, size in anchored.items():
            assert again.get(dataset, size) is not None
        assert rda(*check, state=state).returncode == 0
        resumed = rda(*run, state=state)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["totals"]["published"] > 0
        pinned = tmp_path / "pinned.json"  # the auditor's copy of the publisher identity
        pinned.write_bytes((data / "published" / "publisher-identity.json").read_bytes())
        verdict = rda("verify", "--data-dir", str(data), "--publisher", str(pinned),
                      "--rpc-url", node.rpc_url, "--json", state=state)  # fmt: skip
        assert verdict.returncode == 0, verdict.stdout
    finally:
        node.stop()


def test_a_reset_while_running_stops_the_next_anchor(tmp_path, anvil):
    """The guard before each anchor: same genesis block, same bound identity."""
    from audit_dataset import publish as publish_rows
    from audit_dataset import rows

    port = free_port()
    node, w3, registry = fresh_anvil(port, tmp_path / "anvil-1")
    chain = ChainContext("rpc", node.rpc_url, w3.eth.chain_id, registry)
    data = tmp_path / "data"
    try:
        bind(chain, data)
        publish_rows(data, [rows(0, 5)], chain)
    finally:
        stop_for_good(node)
    node, _w3, _again = fresh_anvil(port, tmp_path / "anvil-2")
    try:
        later = {"dataset": "probe.v1", "tree_size": 9, "root": "ab" * 32,
                 "manifest_sha256": "cd" * 32, "previous_tree_size": 5}  # fmt: skip
        # the genesis block (when anvil started in another second) or the registry's identity
        with pytest.raises(ChainChanged, match="reset"):
            chain.anchor([later])
    finally:
        node.stop()


def test_a_reset_chain_without_the_registry_is_one_clear_error(tmp_path):
    from streaming.chain import open_chain

    port = free_port()
    node, _w3, registry = fresh_anvil(port, tmp_path / "anvil-1")
    stop_for_good(node)
    node = start_anvil(port, tmp_path / "anvil-2")  # reset, and nothing deployed again
    try:
        with pytest.raises(ChainChanged, match=f"no contract at {registry.address} on chain"):
            open_chain("rpc", node.rpc_url, registry.address)
    finally:
        node.stop()


def test_another_registry_stops_rda_run_and_names_both(tmp_path, anvil):
    from audit_dataset import publish as publish_rows
    from audit_dataset import rows

    from sinks.catalog import Catalog
    from sinks.layout import DataLayout

    w3 = connect(ChainConfig("anvil", port=anvil.port))
    first = ChainContext("rpc", anvil.rpc_url, 31337, AnchorRegistry.deploy(w3))
    data = tmp_path / "data"
    (checkpoint,) = publish_rows(data, [rows(0, 5)], first)
    with Catalog(DataLayout(data)) as catalog:
        catalog.record_checkpoint(0, checkpoint)
    other = ChainContext("rpc", anvil.rpc_url, 31337, AnchorRegistry.deploy(w3))
    with pytest.raises(ChainChanged) as stopped:
        bind(other, data)
    assert str(stopped.value).startswith(
        f"{data}'s checkpoints are anchored in registry {first.contract} on chain 31337, not in "
        f"{other.contract} on chain 31337; point --rpc-url/--registry at the chain"
    )
