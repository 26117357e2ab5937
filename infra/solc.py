"""Compiling the project's contracts with a pinned solc (npm ``solc``, i.e. solcjs).

Standard-JSON input with every setting pinned, so the output is a function of the sources alone;
the compiled artifacts are committed and a test recompiles and compares them byte for byte.

``AnchorRegistry`` stands alone. ``NodeRegistry`` builds on OpenZeppelin Contracts (npm
``@openzeppelin/contracts``, pinned below, installed like solc under ``.tools/``): its imports are
resolved here, every source goes into the standard-JSON input under a versioned name
(``openzeppelin-contracts@5.7.0/…``), and a remapping sends the contract's
``@openzeppelin/contracts/`` imports there, so the artifact names the exact library release and
records the SHA-256 of each of its files.

Run ``python -m infra.solc`` after changing a contract to rewrite the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from infra.tools import REPO_ROOT, ensure_npm_file, ensure_npm_package

SOLC_VERSION = "0.8.30"
CONTRACTS_DIR = REPO_ROOT / "proofs" / "contracts"
CONTRACT = "AnchorRegistry"
SOURCE = CONTRACTS_DIR / f"{CONTRACT}.sol"
ARTIFACT = CONTRACTS_DIR / f"{CONTRACT}.json"
NODE_REGISTRY = "NodeRegistry"
NODE_REGISTRY_SOURCE = CONTRACTS_DIR / f"{NODE_REGISTRY}.sol"
NODE_REGISTRY_ARTIFACT = CONTRACTS_DIR / f"{NODE_REGISTRY}.json"

OPENZEPPELIN = "@openzeppelin/contracts"
OPENZEPPELIN_VERSION = "5.7.0"
# SHA-256 of the release's package.json: a substituted or different release is refused.
OPENZEPPELIN_PACKAGE_SHA256 = "e3e0121956d938f085920cc0ffe0d8ceebafa95dc39b58ec0c219d902de37294"
OPENZEPPELIN_UNITS = f"openzeppelin-contracts@{OPENZEPPELIN_VERSION}/"

# EVM version: Prague, the newest fork both chains we run execute. eth-tester 0.14 runs py-evm
# 0.12's PragueVM (py-evm has nothing newer); anvil 1.7.1 runs newer forks by default but is
# started with ``--hardfork prague`` (infra.chain) so both chains apply the same rules. Prague is
# also solc 0.8.30's own default. For AnchorRegistry solc emits the same bytes for every target
# from shanghai to osaka (PUSH0 is the only newer opcode it uses), so that artifact also runs on
# chains that stop at Shanghai or Cancun. The CBOR metadata hash is switched off
# (bytecodeHash "none") so the bytecode depends on the code, not on comments or source paths;
# only the compiler version stays appended.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                # where the code holds its immutables: a verifier compares a deployed contract's
                # code with the artifact's, these 32-byte words filled from the constructor's
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    },
}
_IMPORT = re.compile(r'^\s*import\s+(?:[^"\';]*\s+from\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)


class CompileError(RuntimeError):
    """solc reported errors."""


def compile_anchor_registry(source_path: Path = SOURCE) -> dict[str, Any]:
    """Compile AnchorRegistry; return the artifact (ABI, bytecode, compiler and source hash)."""
    return compile_contract(CONTRACT, source_path)


def compile_node_registry(source_path: Path = NODE_REGISTRY_SOURCE) -> dict[str, Any]:
    """Compile NodeRegistry with the pinned OpenZeppelin release; the artifact also lists the
    release and the SHA-256 of every library file compiled into it."""
    return compile_contract(NODE_REGISTRY, source_path, openzeppelin_dir())


def openzeppelin_dir() -> Path:
    """The pinned OpenZeppelin Contracts release (npm), installed on first use."""
    package = ensure_npm_file(
        f"{OPENZEPPELIN}@{OPENZEPPELIN_VERSION}", "package.json", OPENZEPPELIN_PACKAGE_SHA256
    )
    return package.parent


def compile_contract(
    name: str, source_path: Path, openzeppelin: Path | None = None
) -> dict[str, Any]:
    """Compile ``name`` from ``source_path`` (imports of ``@openzeppelin/contracts/`` resolved in
    ``openzeppelin``). solcjs is the npm ``solc`` package at the pinned version: its Emscripten
    build is the same compiler on every platform, so artifacts can be reproduced anywhere node
    runs."""
    source = source_path.read_text()
    unit = f"{name}.sol"
    library = _library_sources(source, openzeppelin) if openzeppelin is not None else {}
    settings = dict(SETTINGS)
    if library:
        settings["remappings"] = [f"{OPENZEPPELIN}/={OPENZEPPELIN_UNITS}"]
    request = {
        "language": "Solidity",
        "sources": {unit: {"content": source}, **{k: {"content": v} for k, v in library.items()}},
        "settings": settings,
    }
    output = standard_json(request)
    return contract_artifact(name, output["contracts"][unit][name], source, settings, library)


def standard_json(request: dict[str, Any]) -> dict[str, Any]:
    """solcjs's answer to a standard-JSON ``request``; ``CompileError`` on any error.

    Request and answer go through files, not pipes: solcjs reads stdin with one read (node
    gets EAGAIN while a large request is still arriving in a pipe) and exits right after
    writing, which cuts an answer of more than 64 KiB written to a pipe short.
    """
    solcjs = ensure_npm_package(f"solc@{SOLC_VERSION}", "solcjs")
    with tempfile.TemporaryFile("w+") as stdin, tempfile.TemporaryFile("w+") as stdout:
        stdin.write(json.dumps(request))
        stdin.seek(0)
        result = subprocess.run(
            [str(solcjs), "--standard-json"],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        stdout.seek(0)
        answer = stdout.read()
    if result.returncode != 0:
        raise CompileError(f"solcjs failed (exit {result.returncode}): {result.stderr.strip()}")
    output = json.loads(answer[answer.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("; ".join(e["formattedMessage"].strip() for e in errors))
    return output


def contract_artifact(
    name: str,
    compiled: dict[str, Any],
    source: str,
    settings: dict[str, Any],
    library: dict[str, str],
) -> dict[str, Any]:
    """The committed artifact of one compiled contract: ABI, bytecodes, compiler, the SHA-256
    of its source and of every OpenZeppelin file compiled into it (``library``)."""
    artifact = {
        "contractName": name,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        "immutableReferences": compiled["evm"]["deployedBytecode"].get("immutableReferences", {}),
        "compiler": {"name": "solc", "version": SOLC_VERSION, "settings": settings},
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
    }
    if library:
        artifact["libraries"] = {
            OPENZEPPELIN: {
                "version": OPENZEPPELIN_VERSION,
                "sources": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in library.items()},
            }
        }
    return artifact


def _library_sources(source: str, package: Path) -> dict[str, str]:
    """Every OpenZeppelin file ``source`` needs, transitively, by its versioned unit name."""
    found: dict[str, str] = {}
    pending = [_unit_of(path, None) for path in _IMPORT.findall(source)]
    while pending:
        unit = pending.pop()
        if unit in found:
            continue
        relative = unit.removeprefix(OPENZEPPELIN_UNITS)
        path = (package / relative).resolve()
        if not unit.startswith(OPENZEPPELIN_UNITS) or not path.is_relative_to(package.resolve()):
            raise CompileError(f"import {unit!r} is not a file of {OPENZEPPELIN}")
        found[unit] = path.read_text()
        pending.extend(_unit_of(p, unit) for p in _IMPORT.findall(found[unit]))
    return dict(sorted(found.items()))


def _unit_of(imported: str, importer: str | None) -> str:
    """The source unit an import names: relative to its importer, or the remapped package."""
    if imported.startswith("."):
        if importer is None:
            raise CompileError(f"the contract imports {imported!r}: only {OPENZEPPELIN} is allowed")
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), imported))
    if imported.startswith(OPENZEPPELIN + "/"):
        return OPENZEPPELIN_UNITS + imported.removeprefix(OPENZEPPELIN + "/")
    raise CompileError(f"import {imported!r}: only {OPENZEPPELIN} is available")


def artifact_text(artifact: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, final newline (stable diffs)."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Rewrite the committed artifacts from the sources (run after changing a contract)."""
    for path, compile_ in (
        (ARTIFACT, compile_anchor_registry),
        (NODE_REGISTRY_ARTIFACT, compile_node_registry),
    ):
        path.write_text(artifact_text(compile_()))
        print(f"wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
