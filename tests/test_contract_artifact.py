"""The committed contract artifact is exactly what the pinned compiler makes of the source."""

from __future__ import annotations

import hashlib
import json

from infra.solc import ARTIFACT, SOURCE, artifact_text, compile_anchor_registry


def test_recompiling_the_source_reproduces_the_committed_artifact_byte_for_byte():
    assert artifact_text(compile_anchor_registry()) == ARTIFACT.read_text()


def test_the_artifact_names_the_source_it_was_compiled_from():
    artifact = json.loads(ARTIFACT.read_text())
    assert artifact["sourceSha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert artifact["compiler"]["version"] == "0.8.30"
    assert artifact["compiler"]["settings"]["evmVersion"] == "prague"
