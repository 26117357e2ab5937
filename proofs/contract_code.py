"""Whether the code at an address is a contract compiled from this project's source.

A registry's answers (``latest``, ``getAnchor``, ``anchoredAt``…) prove something only if its
code is the AnchorRegistry's: a look-alike that answers ``registryVersion() = 2``, the right
``owner()`` and ``identityHash()`` could then say anything of anchors, roll a log back or date it
earlier. So the verifier compares the code the chain holds with the committed artifact's
``deployedBytecode`` (``infra.solc``: reproducible, recompiled by a test), byte for byte.

Only the contract's immutables differ between deployments: solc leaves 32 zero bytes at each
place the artifact's ``immutableReferences`` lists, and the constructor writes the value there.
AnchorRegistry has one immutable, its owner (the deployer), so the expected code is the
artifact's with the owner's address, left-padded to 32 bytes, at those places. NodeRegistry has
none: its code is the artifact's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proofs.anchor import load_artifact


def expected_code(artifact: Mapping[str, Any], immutables: Mapping[str, bytes]) -> bytes:
    """The artifact's deployed code with each immutable (by its AST id) written in its places."""
    code = bytearray.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
    references = artifact.get("immutableReferences", {})
    if set(references) != set(immutables):
        raise ValueError(f"immutables {sorted(immutables)} given for {sorted(references)}")
    for ast_id, places in references.items():
        for place in places:
            start, length = place["start"], place["length"]
            code[start : start + length] = immutables[ast_id].rjust(length, b"\x00")
    return bytes(code)


def code_problem(
    code: bytes, artifact: Mapping[str, Any], immutables: Mapping[str, bytes] | None = None
) -> str | None:
    """Why ``code`` is not ``artifact``'s contract with those immutables (None: it is)."""
    if bytes(code) == expected_code(artifact, immutables or {}):
        return None
    return (
        f"its code ({len(code):,} bytes) is not the {artifact['contractName']}'s compiled from "
        f"the source with SHA-256 {artifact['sourceSha256'][:16]}…"
    )


def registry_code_problem(code: bytes, owner: str) -> str | None:
    """Why ``code`` is not an AnchorRegistry deployed by ``owner`` (None: it is)."""
    artifact = load_artifact()
    (owner_id,) = artifact["immutableReferences"]  # the registry's one immutable: its owner
    problem = code_problem(code, artifact, {owner_id: bytes.fromhex(owner.removeprefix("0x"))})
    return problem and f"{problem} (owner {owner}): what it says of anchors proves nothing"
