"""Manifests of another shape, signed by the publisher's own key (the strongest forger): an
auditor's ``rda verify --data-dir`` (``audit_log``: the newest checkpoint and the history of its
shards) gives a verdict naming what is wrong, never a traceback, and never VERIFIED.

The data is a real sharded dataset: two backlogs of a small fleet through ``run_batch`` on the
in-process EVM, several checkpoints over several shards; and a version-1 (single log) dataset of
three anchored checkpoints, as ``rda verify`` still reads them.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from audit_dataset import DATASET as V1_DATASET
from audit_dataset import publish, rows

from pipelines.kafka_source import open_source
from proofs.audit import audit_log
from proofs.jcs import canonicalize
from proofs.signing import publisher_key
from proofs.verdict import VERIFIED
from simulator.fleet import generate
from simulator.producer import produce
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch

DATASET = "radio_kpi.v1"
# Values of every JSON kind, and paths: a hostile manifest may hold any of them anywhere.
HOSTILE = [None, True, 0, -1, 2**53 - 1, 1.5, "", "x", "0" * 64, [], {}, [1], {"a": 1}, "../x"]
DELETED = object()  # a value that removes the member


@pytest.fixture(scope="module")
def published(broker, tmp_path_factory):
    """(data directory, trust root) of a dataset published and anchored in several batches."""
    data = tmp_path_factory.mktemp("hostile-manifests") / "data"
    chain, source = open_chain("embedded", None, None), open_source(broker.bootstrap)
    config = RunConfig(broker.bootstrap, "hostile-manifests", "g", data, max_batch_records=60)
    for start_ms in (1_764_000_000_000, 1_764_000_100_000):
        produce(broker.bootstrap, "hostile-manifests", generate(4, 20, 1, start_ms, 3))
        while run_batch(config, source, chain.anchor) is not None:
            pass
    trust = chain.trust_root(data)
    assert audit_log(data / "published" / DATASET, trust).status == VERIFIED
    return data, trust


def _manifests(data: Path) -> list[Path]:
    """The dataset's checkpoint manifests and its shards' (not their signatures)."""
    found = (data / "published" / DATASET).rglob("*.manifest*.json")
    return sorted(p for p in found if not p.name.endswith(".sig.json"))


def _signature(manifest: Path) -> Path:
    return manifest.with_name(manifest.name.removesuffix(".json") + ".sig.json")


def _audit_with(
    published, manifest: Path, path: tuple, value, dataset: str = DATASET
) -> tuple[str, dict]:
    """The audit's status with ``manifest``'s member at ``path`` set to ``value`` (or removed)
    and signed again by the publisher (the files put back after); and the changed manifest."""
    data, trust = published
    original, signature = manifest.read_bytes(), _signature(manifest).read_bytes()
    document = json.loads(original)
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is DELETED:
        del target[path[-1]]
    else:
        target[path[-1]] = copy.deepcopy(value)
    raw = canonicalize(document)
    try:
        manifest.write_bytes(raw)
        _signature(manifest).write_bytes(canonicalize(publisher_key(data).sign(raw)))
        return audit_log(data / "published" / dataset, trust).status, document
    finally:
        manifest.write_bytes(original)
        _signature(manifest).write_bytes(signature)


def _newest(data: Path) -> Path:
    return sorted((data / "published" / DATASET / "checkpoints").glob("*.manifest.json"))[-1]


def _a_grown_shard_head(data: Path) -> Path:
    """The newest checkpoint's head manifest of a shard that grew since the one before: the
    history rebuilds that shard's log from it, for the consistency proof."""
    checkpoints = data / "published" / DATASET / "checkpoints"
    older, newest = sorted(checkpoints.glob("*.manifest.json"))[-2:]
    before = {h["shard"]: h["tree_size"] for h in json.loads(older.read_bytes())["shards"]}
    grown = next(
        head
        for head in json.loads(newest.read_bytes())["shards"]
        if before.get(head["shard"], head["tree_size"]) != head["tree_size"]
    )
    return data / "published" / DATASET / grown["manifest_path"]


@pytest.mark.parametrize(
    ("which", "path", "value"),
    [
        ("newest", ("publisher",), "x"),  # was AttributeError in the signature check
        ("newest", ("quality",), True),  # was TypeError: the report pending, or not
        ("newest", ("quality", "attestation_path"), {"a": 1}),  # was TypeError
        ("shard", ("checkpoint",), "0" * 20),  # was TypeError rebuilding the shard's log
        ("shard", ("files", 0, "path"), 0),  # was AttributeError naming its leaf file
        ("shard", ("log",), {}),  # was AttributeError naming its folder
    ],
)
def test_a_signed_manifest_of_another_shape_is_not_verified_and_raises_nothing(
    published, which, path, value
):
    data, _ = published
    manifest = _newest(data) if which == "newest" else _a_grown_shard_head(data)
    status, _ = _audit_with(published, manifest, path, value)
    assert status != VERIFIED


def _member_paths(value, path=()):
    """Every path to a member or an item (the first three of a list) of a JSON value."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _member_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _member_paths(item, (*path, index))


def test_any_member_of_any_manifest_set_to_any_kind_of_value_is_never_verified(published):
    data, _ = published
    rng = random.Random(62)  # the fuzzing that found the cases above, kept small and fixed
    manifests = _manifests(data)
    for _ in range(40):
        manifest = rng.choice(manifests)
        path = rng.choice(list(_member_paths(json.loads(manifest.read_bytes()))))
        status, changed = _audit_with(published, manifest, path, rng.choice(HOSTILE))
        if changed != json.loads(manifest.read_bytes()):
            assert status != VERIFIED, (manifest.name, path)


@pytest.fixture(scope="module")
def published_v1(tmp_path_factory):
    """(data directory, trust root) of a version-1 dataset: three checkpoints of one log, the
    newest naming a GE attestation to come."""
    data, chain = tmp_path_factory.mktemp("hostile-v1"), open_chain("embedded", None, None)
    quality = {"score": 1.0, "report_path": "q/r.json", "attestation_path": "q/r.att.json"}
    publish(data, [rows(0, 30), rows(30, 20), rows(50, 5)], chain, quality=quality)
    trust = chain.trust_root(data)
    assert audit_log(data / "published" / V1_DATASET, trust).status == VERIFIED
    return data, trust


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("previous", "tree_size"), [1]),  # was TypeError listing the files it added
        (("previous",), "x"),  # was AttributeError
        (("quality", "score"), DELETED),  # was KeyError saying the score
    ],
)
def test_a_signed_version_1_manifest_of_another_shape_is_not_verified_and_raises_nothing(
    published_v1, path, value
):
    data, _ = published_v1
    newest = sorted((data / "published" / V1_DATASET / "checkpoints").glob("*.manifest.json"))[-1]
    status, _ = _audit_with(published_v1, newest, path, value, dataset=V1_DATASET)
    assert status != VERIFIED
