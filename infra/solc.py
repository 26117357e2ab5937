"""Compiling the AnchorRegistry contract with a pinned solc (npm ``solc``, i.e. solcjs).

Standard-JSON input with every setting pinned, so the output is a function of the source alone;
the compiled artifact is committed and a test recompiles and compares it byte for byte.

Run ``python -m infra.solc`` after changing the contract to rewrite the artifact.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from infra.tools import REPO_ROOT, ensure_npm_package

SOLC_VERSION = "0.8.30"
CONTRACT = "AnchorRegistry"
SOURCE = REPO_ROOT / "proofs" / "contracts" / f"{CONTRACT}.sol"
ARTIFACT = REPO_ROOT / "proofs" / "contracts" / f"{CONTRACT}.json"

# EVM version: Prague, the newest fork both chains we run execute. eth-tester 0.14 runs py-evm
# 0.12's PragueVM (py-evm has nothing newer); anvil 1.7.1 runs newer forks by default but is
# started with ``--hardfork prague`` (infra.chain) so both chains apply the same rules. Prague is
# also solc 0.8.30's own default. For this contract solc emits the same bytes for every target
# from shanghai to osaka (PUSH0 is the only newer opcode it uses), so the artifact also runs on
# chains that stop at Shanghai or Cancun. The CBOR metadata hash is switched off
# (bytecodeHash "none") so the bytecode depends on the code, not on comments or source paths;
# only the compiler version stays appended.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class CompileError(RuntimeError):
    """solc reported errors."""


def compile_anchor_registry(source_path: Path = SOURCE) -> dict[str, Any]:
    """Compile the contract; return the artifact (ABI, bytecode, compiler and source hash).

    solcjs is the npm ``solc`` package at the pinned version: its Emscripten build is the same
    compiler on every platform, so the artifact can be reproduced anywhere node runs.
    """
    solcjs = ensure_npm_package(f"solc@{SOLC_VERSION}", "solcjs")
    source = source_path.read_text()
    request = {
        "language": "Solidity",
        "sources": {f"{CONTRACT}.sol": {"content": source}},
        "settings": SETTINGS,
    }
    result = subprocess.run(
        [str(solcjs), "--standard-json"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CompileError(f"solcjs failed (exit {result.returncode}): {result.stderr.strip()}")
    output = json.loads(result.stdout[result.stdout.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("; ".join(e["formattedMessage"].strip() for e in errors))
    contract = output["contracts"][f"{CONTRACT}.sol"][CONTRACT]
    return {
        "contractName": CONTRACT,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        "compiler": {"name": "solc", "version": SOLC_VERSION, "settings": SETTINGS},
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
    }


def artifact_text(artifact: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, final newline (stable diffs)."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Rewrite the committed artifact from the source (run after changing the contract)."""
    ARTIFACT.write_text(artifact_text(compile_anchor_registry()))
    print(f"wrote {ARTIFACT.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
