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

from infra.tools import REPO_ROOT, ensure_npm_package

SOLC_VERSION = "0.8.30"
CONTRACT = "AnchorRegistry"
SOURCE = REPO_ROOT / "proofs" / "contracts" / f"{CONTRACT}.sol"
ARTIFACT = REPO_ROOT / "proofs" / "contracts" / f"{CONTRACT}.json"

# Cancun is the newest EVM version that both the in-process EVM (py-evm 0.12) and anvil run by
# default; no newer opcode is needed. The metadata hash is left out of the bytecode so that it
# depends on the code, not on comments or file paths.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class CompileError(RuntimeError):
    """solc reported errors."""


def compile_anchor_registry(source_path: Path = SOURCE) -> dict:
    """Compile the contract; return the artifact (ABI, bytecode, compiler and source hash)."""
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


def artifact_text(artifact: dict) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main() -> None:
    ARTIFACT.write_text(artifact_text(compile_anchor_registry()))
    print(f"wrote {ARTIFACT.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
