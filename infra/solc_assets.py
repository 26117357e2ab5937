"""Compiling the data-asset contracts (DataAsset, DataLicences, TestStablecoin) in one solcjs run.

The same pinned compiler, settings and OpenZeppelin release as ``infra.solc``; the three
contracts (and the security tests' hostile contracts, kept apart in ``tests/contracts``) go into
one standard-JSON request, so one compiler start builds them all (about 4 s). Each artifact
names the OpenZeppelin release and the SHA-256 of every library file compiled into it; a test
recompiles and compares them byte for byte.

Run ``python -m infra.solc_assets`` after changing one of them to rewrite the artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.solc import (
    OPENZEPPELIN,
    OPENZEPPELIN_UNITS,
    SETTINGS,
    _library_sources,
    artifact_text,
    contract_artifact,
    openzeppelin_dir,
    standard_json,
)
from infra.tools import REPO_ROOT

# contract name -> its source file; each artifact is written beside its source.
CONTRACTS = {
    "DataAsset": REPO_ROOT / "proofs" / "contracts" / "DataAsset.sol",
    "DataLicences": REPO_ROOT / "market" / "contracts" / "DataLicences.sol",
    "TestStablecoin": REPO_ROOT / "market" / "contracts" / "TestStablecoin.sol",
}
HOSTILE_SOURCE = REPO_ROOT / "tests" / "contracts" / "Hostile.sol"
HOSTILE_CONTRACTS = ("Reenterer", "FeeToken", "OpenNodes", "ForgedLicences", "NamedToken")
# AnchorRegistry's code and answers, plus setters to roll back and backdate (rda verify's tests)
LOOK_ALIKE = ("LookAlikeRegistry", REPO_ROOT / "tests" / "contracts" / "LookAlikeRegistry.sol")


def artifact_path(name: str) -> Path:
    return CONTRACTS[name].with_suffix(".json")


def compile_all() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(the data-asset artifacts, the hostile ones), from a single compiler run."""
    hostile = {**dict.fromkeys(HOSTILE_CONTRACTS, HOSTILE_SOURCE), LOOK_ALIKE[0]: LOOK_ALIKE[1]}
    both = compile_sources({**CONTRACTS, **hostile})
    return {n: both[n] for n in CONTRACTS}, {n: both[n] for n in hostile}


def compile_sources(contracts: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Compile ``contracts`` (name -> source file; several may share a file) in one request."""
    package = openzeppelin_dir()
    sources = {path.name: path.read_text() for path in set(contracts.values())}
    library: dict[str, str] = {}
    for source in sources.values():
        library.update(_library_sources(source, package))
    settings = {**SETTINGS, "remappings": [f"{OPENZEPPELIN}/={OPENZEPPELIN_UNITS}"]}
    request = {
        "language": "Solidity",
        "sources": {
            k: {"content": v} for k, v in {**sources, **dict(sorted(library.items()))}.items()
        },
        "settings": settings,
    }
    output = standard_json(request)
    return {
        name: contract_artifact(
            name,
            output["contracts"][path.name][name],
            sources[path.name],
            settings,
            _library_sources(sources[path.name], package),
        )
        for name, path in contracts.items()
    }


def hostile_artifact_path() -> Path:
    return HOSTILE_SOURCE.with_suffix(".json")


def main() -> None:
    """Rewrite the committed artifacts from the sources."""
    assets, hostile = compile_all()
    for name, artifact in assets.items():
        artifact_path(name).write_text(artifact_text(artifact))
        print(f"wrote {artifact_path(name).relative_to(REPO_ROOT)}")
    hostile_artifact_path().write_text(artifact_text(hostile))
    print(f"wrote {hostile_artifact_path().relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
