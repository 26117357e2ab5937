"""The committed contract artifact is exactly what the pinned compiler makes of the source."""

from __future__ import annotations

import hashlib
import json

from infra.solc import (
    ARTIFACT,
    NODE_REGISTRY_ARTIFACT,
    SOURCE,
    artifact_text,
    compile_anchor_registry,
    compile_node_registry,
)


def test_recompiling_the_source_reproduces_the_committed_artifact_byte_for_byte():
    assert artifact_text(compile_anchor_registry()) == ARTIFACT.read_text()


def test_recompiling_the_node_registry_with_the_pinned_openzeppelin_reproduces_its_artifact():
    assert artifact_text(compile_node_registry()) == NODE_REGISTRY_ARTIFACT.read_text()


def test_the_artifact_names_the_source_it_was_compiled_from():
    artifact = json.loads(ARTIFACT.read_text())
    assert artifact["sourceSha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert artifact["compiler"]["version"] == "0.8.30"
    assert artifact["compiler"]["settings"]["evmVersion"] == "prague"


def test_the_artifact_is_version_2_with_identity_and_links_and_v1_reads_unchanged():
    artifact = json.loads(ARTIFACT.read_text())
    functions = {f["name"]: f for f in artifact["abi"] if f["type"] == "function"}
    assert {"publishIdentity", "identityDocument", "identityHash", "previousTreeSize"} <= set(
        functions
    )
    assert [i["name"] for i in functions["anchor"]["inputs"]][-1] == "previousTreeSize"
    v1 = json.loads((ARTIFACT.parents[2] / "tests" / "data" / "AnchorRegistry.v1.json").read_text())
    v1_functions = {f["name"]: f for f in v1["abi"] if f["type"] == "function"}
    for read in ("getAnchor", "latest"):  # what a verifier reads on a registry of either version
        assert functions[read] == v1_functions[read]


def test_recompiling_the_data_asset_contracts_reproduces_their_artifacts():
    """One solcjs run builds DataAsset, DataLicences, TestStablecoin (and the security tests'
    hostile contracts); each committed artifact is exactly what it makes."""
    from infra.solc_assets import artifact_path, compile_all, hostile_artifact_path

    assets, hostile = compile_all()  # as `python -m infra.solc_assets` writes them
    for name, artifact in assets.items():
        assert artifact_text(artifact) == artifact_path(name).read_text(), name
        assert artifact["libraries"]["@openzeppelin/contracts"]["version"] == "5.7.0"
    assert artifact_text(hostile) == hostile_artifact_path().read_text()
