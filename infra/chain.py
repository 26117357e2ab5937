"""The chain: the in-process EVM (default, nothing to start) or anvil / any JSON-RPC node.

The embedded chain (eth-tester on py-evm) lives inside the Python process that creates it: it
needs no setup and is what ``rda demo`` uses. ``anvil`` (npm ``@foundry-rs/anvil``) is a real
node for integration tests and for anchors that must outlive a process.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from infra import processes
from infra.deferred_imports import defer, defer_together, forward
from infra.tools import ensure_npm_package, port_open

ANVIL_PACKAGE = "@foundry-rs/anvil@1.7.1"
ANVIL_CHAIN_ID = 31337  # fixed, so proof bundles name the same chain after a restart
ANVIL_HARDFORK = "prague"  # the EVM version the contract is compiled for (infra.solc)
RECENT_STATES = 64  # block states anvil keeps in memory (see start_anvil)
CHAIN_KINDS = ("embedded", "anvil", "rpc")
LOOPBACK = ("127.0.0.1", "localhost")


def redacted_url(url: str | None) -> str:
    """``url`` as a message or a report shows it: scheme, host and port, without the user and
    password it may carry, its path and query masked (hosted nodes take their API key there:
    ``https://mainnet.example/v3/<key>``)."""
    if not url:
        return str(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<a malformed URL>"
    if not parts.scheme or not host:
        return "<a URL without a host>"
    shown = f"[{host}]" if ":" in host else host
    if port is not None:
        shown += f":{port}"
    userinfo = "…@" if parts.username is not None or parts.password is not None else ""
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{userinfo}{shown}{rest}"


@dataclass(frozen=True)
class ChainConfig:
    """Which chain to anchor on.

    ``embedded``: the in-process EVM, nothing to start. ``anvil``: the node this project starts,
    always on loopback (``port`` alone is enough). ``rpc``: any JSON-RPC node the user names,
    e.g. their own; its URL is taken as given.
    """

    kind: str = "embedded"
    rpc_url: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in CHAIN_KINDS:
            raise ValueError(f"unknown chain kind {self.kind!r} (known: {', '.join(CHAIN_KINDS)})")
        if self.kind == "embedded":
            return
        if not self.rpc_url and self.port is not None:
            object.__setattr__(self, "rpc_url", f"http://127.0.0.1:{self.port}")
        if not self.rpc_url:
            raise ValueError(f"a {self.kind} chain needs an RPC URL or a port")
        url = urlsplit(self.rpc_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            shown = redacted_url(self.rpc_url)
            raise ValueError(f"RPC URL must be http(s)://HOST:PORT, not {shown}")
        if self.kind == "anvil" and url.hostname not in LOOPBACK:
            raise ValueError(f"anvil runs on 127.0.0.1 only, not {url.hostname}")
        if self.port is None and url.port is not None:
            object.__setattr__(self, "port", url.port)


def defer_key_files() -> None:
    """Import eth-keyfile only if a key file is read or written, which nothing here does.

    web3 imports eth-account, which imports eth-keyfile, which imports py_ecc's BLS12-381 for
    EIP-2335 validator keystores: ~0.85 s of tables built at import, half of web3's import, in
    every process that opens a chain. The names eth-keyfile's package and eth-account import
    from it are bound here without it; ``tests/test_deferred_imports.py`` holds them to the
    real ones.
    """
    keyfile = "eth_keyfile.keyfile"
    functions = ("create_keyfile_json", "decode_keyfile_json", "extract_key_from_keyfile",
                 "load_keyfile")  # fmt: skip
    known = {name: forward(keyfile, name) for name in functions}
    defer(keyfile, {**known, "KDFType": Literal["pbkdf2", "scrypt"]})


BLS_PRECOMPILES = "eth.precompiles.bls12_381"
# py-evm's EIP-2537 precompiles, by module of BLS_PRECOMPILES: the functions its package imports
BLS_PRECOMPILE_FUNCTIONS = {
    "bls12_381_g1": ("bls12_g1_add", "bls12_g1_msm", "bls12_map_fp_to_g1"),
    "bls12_381_g2": ("bls12_g2_add", "bls12_g2_msm", "bls12_map_fp2_to_g2"),
    "bls12_381_pairing": ("bls12_pairing_check",),
}


def defer_bls_precompiles() -> None:
    """Import the embedded EVM's BLS12-381 precompiles only if a contract calls one.

    py-evm's Prague fork (EIP-2537) imports them with the EVM, and they import py_ecc's
    BLS12-381, whose pairing tables take ~0.55 s to build, in every process with an embedded
    chain; no contract here calls addresses 0x0b-0x11. The package's ``__init__`` imports the
    functions of ``BLS_PRECOMPILE_FUNCTIONS`` from its three modules: they are bound here as
    forwarders, so a call still runs the real precompile (``tests/test_deferred_imports.py``
    calls one, and holds the table to py-evm's sources).
    """
    defer_together(
        {
            f"{BLS_PRECOMPILES}.{module}": {
                name: forward(f"{BLS_PRECOMPILES}.{module}", name) for name in functions
            }
            for module, functions in BLS_PRECOMPILE_FUNCTIONS.items()
        }
    )


def connect(config: ChainConfig, provider: Any = None) -> Any:
    """A ``Web3`` connected to the configured chain; ``provider``: the JSON-RPC provider to reach
    its node through (default: web3's ``HTTPProvider``, whose timeout is per socket read)."""
    defer_key_files()
    from web3 import Web3

    if config.kind == "embedded":
        defer_bls_precompiles()
        from web3 import EthereumTesterProvider

        return Web3(EthereumTesterProvider())
    w3 = Web3(provider or Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": 10}))
    if not w3.is_connected():
        raise ConnectionError(f"no JSON-RPC node answers at {redacted_url(config.rpc_url)}")
    return w3


@dataclass(frozen=True)
class AnvilProcess:
    pid: int
    port: int
    state_dir: Path

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> bool:
        return stop_anvil(self.state_dir)


def anvil_binary() -> Path:
    """anvil's native executable (installed from npm on first use).

    npm's ``.bin/anvil`` is a Node launcher that starts the platform package's binary as its
    child: recording the launcher's pid would leave anvil serving when the launcher is killed.
    The binary is started directly; the launcher only where no platform package is found.
    """
    launcher = ensure_npm_package(ANVIL_PACKAGE, "anvil")
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    native = (
        launcher.parent.parent / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / "anvil"
    )
    return native if native.is_file() and os.access(native, os.X_OK) else launcher


def start_anvil(port: int, state_dir: Path, timeout: float = 30.0) -> AnvilProcess:
    """Start anvil on ``127.0.0.1:port`` (installing it from npm on first use)."""
    binary = anvil_binary()
    if port_open("127.0.0.1", port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is already in use")
    rpc_url = f"http://127.0.0.1:{port}"
    # --prune-history: otherwise anvil keeps every block's state and grows by gigabytes. Bare, it
    # keeps only the newest state: a view call of one worker resolved to block N while another
    # worker's anchor mines N+1 then fails ("BlockOutOfRangeError") or reads an empty state (a
    # false "the chain was reset"). The last RECENT_STATES states are kept instead.
    command = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(ANVIL_CHAIN_ID),
        "--hardfork",
        ANVIL_HARDFORK,
        "--prune-history",
        str(RECENT_STATES),
    ]
    pid = processes.start_service(
        "anvil",
        command,
        state_dir,
        ready=lambda: _answers(rpc_url),
        timeout=timeout,
        what=f"anvil to answer eth_chainId on {rpc_url}",
    )
    return AnvilProcess(pid=pid, port=port, state_dir=state_dir)


def stop_anvil(state_dir: Path) -> bool:
    """Stop the anvil recorded in ``state_dir``; True if one was running."""
    return processes.stop_service(state_dir, "anvil")


def _answers(rpc_url: str) -> bool:
    import json
    import urllib.request

    request = urllib.request.Request(
        rpc_url,
        data=json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def chain_status(config: ChainConfig) -> dict[str, Any]:
    """Kind, RPC URL, whether it answers, chain id and block number."""
    status: dict[str, Any] = {"kind": config.kind, "rpc_url": config.rpc_url, "up": False}
    if config.kind == "embedded":
        status.update(up=True, note="in-process EVM: lives inside each rda process")
        return status
    if config.rpc_url and _answers(config.rpc_url):
        w3 = connect(config)
        status.update(up=True, chain_id=w3.eth.chain_id, block_number=w3.eth.block_number)
    return status
