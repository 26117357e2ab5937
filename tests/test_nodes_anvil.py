"""``rda nodes`` on a real node (anvil): register, list, rotate, revoke and transfer nodes through
JSON-RPC, the registry's refusals as one clear line, and the ingest cache's event fold read over
JSON-RPC. (The whole path — `infra up` deploying the NodeRegistry, `simulate` registering and
signing, `run` verifying, `verify --bundle` checking device signatures — runs on anvil in
``tests/test_audit_cli.py``.)"""

from __future__ import annotations

import json

import pytest

from cli.main import main
from infra.chain import ChainConfig, connect
from simulator.signing import simulated_signer
from streaming.node_cache import NodeRegistryCache
from streaming.nodes import connect_registry

pytestmark = pytest.mark.anvil
T0 = 1_764_000_000_000


@pytest.fixture
def cli(anvil, tmp_path, monkeypatch, capsys):
    """``rda nodes …`` in this process, against anvil, with its own state directory."""
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))

    registry: list[str] = []  # once deployed, every later command names it

    def run(*args: str) -> tuple[int, dict | str]:
        named = ["--node-registry", registry[0]] if registry and args[0] != "deploy" else []
        code = main(["nodes", *args, "--rpc-url", anvil.rpc_url, *named, "--json"])
        captured = capsys.readouterr()
        result = json.loads(captured.out) if code == 0 else captured.err
        if args[0] == "deploy" and code == 0:
            registry.append(result["node_registry"])
        return code, result

    return run


def key(node: str, number: int = 0) -> str:
    return simulated_signer(node, 3, number).public_key.hex()


def test_nodes_are_registered_rotated_revoked_and_transferred_through_json_rpc(anvil, cli):
    code, deployed = cli("deploy")
    assert code == 0
    address = deployed["node_registry"]
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    owner, buyer = w3.eth.accounts[1], w3.eth.accounts[2]
    code, registered = cli(
        "register", "an-0042", "--public-key", key("an-0042"), "--class", "ground_airnode",
        "--lat", "52.52", "--lon", "13.405", "--valid-from", str(T0), "--owner", owner,
    )  # fmt: skip
    assert code == 0 and 150_000 < registered["gas_used"] < 300_000
    assert (registered["node"]["owner"], registered["node"]["class"]) == (owner, "ground_airnode")
    rotate = ("rotate", "an-0042", "--public-key", key("an-0042", 1), "--from", str(T0 + 60_000))
    code, refused = cli(*rotate)  # the registrar is not the node's owner
    assert code == 2 and "NotNodeController" in refused and "--account OWNER" in refused
    code, rotated = cli(*rotate, "--account", owner)
    assert code == 0 and [k["valid_until_ms"] for k in rotated["node"]["keys"]] == [
        T0 + 60_000,
        None,
    ]
    code, transferred = cli("transfer", "an-0042", "--to", buyer, "--account", owner)
    assert code == 0 and transferred["node"]["owner"] == buyer
    code, revoked = cli("revoke", "an-0042", "--key", "1", "--from", "2025-11-24T17:00:00Z")
    assert code == 0  # the registrar revokes a compromised key, whoever owns the node
    assert revoked["node"]["keys"][1]["valid_until_ms"] == T0 + 3_600_000
    code, listed = cli("list")
    assert code == 0 and [n["node_id"] for n in listed["nodes"]] == ["an-0042"]
    assert listed["node_registry"] == address
    cache = NodeRegistryCache(connect_registry(anvil.rpc_url, address))
    node = cache.snapshot().nodes["an-0042"]
    assert sorted(k.valid_until_ms for k in node.keys.values()) == [T0 + 60_000, T0 + 3_600_000]


def test_mistakes_are_one_clear_line(cli):
    code, _ = cli("deploy")
    code, error = cli("register", "an 1", "--public-key", key("x"), "--lat", "0", "--lon", "0")
    assert code == 2 and "node id 'an 1'" in error
    code, error = cli("register", "an-1", "--public-key", "abcd", "--lat", "0", "--lon", "0")
    assert code == 2 and "64 hex digits" in error
    code, error = cli("revoke", "an-404", "--from", "yesterday")
    assert code == 2 and "neither epoch milliseconds nor an ISO 8601 time" in error
    code, error = cli("revoke", "an-404", "--from", "0")
    assert code == 2 and "ERC721NonexistentToken" in error and "no such node" in error
