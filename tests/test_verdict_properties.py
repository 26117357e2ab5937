"""Property: one changed field anywhere is never VERIFIED.

For random datasets (random batch sizes, hence random checkpoints, tree shapes and anchors on the
in-process EVM) and a random single-field change of a proof bundle, a checkpoint manifest
(re-signed with the publisher's own key: the strongest forger), the pinned publisher identity
(re-signed too), the on-chain anchor of the newest checkpoint, or a row returned with
``proofs=true``, the verdict is never VERIFIED (the row is refused). The unchanged data is
checked to be VERIFIED first, so every example tests something.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DESCRIBED, publish, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.assets import Asset, Checkpoint
from market.policy import QueryRefused
from market.proving import prove_returned_rows
from market.sandbox import LEAF_COLUMN
from proofs.audit import audit_log
from proofs.bundle import build_bundles, verify_bundle
from proofs.identity import FILE_NAME
from proofs.jcs import canonicalize
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.manifest import all_manifests, load_manifest, write_manifest
from proofs.signing import KEY_FILE, publisher_key
from proofs.trust import Pin, TrustRoot
from proofs.verdict import VERIFIED
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.chain_binding import publish_identity

_names = itertools.count()
HEX = "0123456789abcdef"
KINDS = ("bundle", "manifest", "identity", "anchor", "returned row")


@pytest.fixture(scope="module")
def publisher(tmp_path_factory):
    """One chain and one publisher (key and identity) for every example; datasets differ."""
    chain = open_chain("embedded", None, None)
    root = tmp_path_factory.mktemp("publisher")
    publish_identity(chain, DataLayout(root))
    return chain, root


def new_data_root(publisher_root: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="rda-prop-"))
    for relative in (Path("private") / KEY_FILE, Path("published") / FILE_NAME):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(publisher_root / relative, root / relative)
    return root


def scalar_paths(value, path=()):
    """Every path to a scalar (string, number, boolean, null) in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from scalar_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from scalar_paths(item, (*path, index))
    else:
        yield path


def changed(value, rng: random.Random):
    """A different value of the same kind (never null: a removed hint is not a forgery)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([1, -1, 7, 2**20])
    if isinstance(value, float):
        return value + rng.choice([0.5, -1.0, 1e-3])
    if isinstance(value, str) and value:
        at = rng.randrange(len(value))
        other = rng.choice([c for c in HEX + "xz-" if c != value[at].lower()])
        return value[:at] + other + value[at + 1 :]
    return rng.choice(["x", 0, True])


def mutate(document, rng: random.Random):
    """``document`` with one scalar changed; the path changed."""
    paths = list(scalar_paths(document))
    path = rng.choice(paths)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = changed(target[path[-1]], rng)
    return document, path


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=3),
    kind=st.sampled_from(KINDS),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_single_changed_field_is_never_verified(publisher, sizes, kind, seed):
    # Which field, and how, is chosen from ``seed``: the choices depend on the example's bytes
    # (transaction hashes, paths), which Hypothesis must not see vary between its replays.
    data = random.Random(seed)
    chain, publisher_root = publisher
    root = new_data_root(publisher_root)
    dataset = f"prop{next(_names)}.v1"
    batches, first = [], 0
    for size in sizes:
        batches.append(rows(first, size))
        first += size
    try:
        checkpoints = publish(root, batches, None, dataset=dataset)
        dataset_dir = root / "published" / dataset
        trust = TrustRoot(Pin(identity=chain.identity), chain.registry.w3)
        if kind == "anchor":
            assert_forged_anchor_fails(chain, trust, dataset_dir, checkpoints, data)
            return
        for checkpoint, anchored in zip(checkpoints, chain.anchor(checkpoints), strict=True):
            checkpoint.update(anchored)  # all in one transaction: the examples stay fast
        assert audit_log(dataset_dir, trust).status == VERIFIED
        {
            "bundle": assert_changed_bundle_fails,
            "manifest": assert_changed_manifest_fails,
            "identity": assert_changed_identity_fails,
            "returned row": assert_changed_row_is_refused,
        }[kind](chain, trust, dataset_dir, checkpoints, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def assert_changed_bundle_fails(chain, trust, dataset_dir, checkpoints, data):
    last = checkpoints[-1]
    leaf = data.randrange(last["tree_size"])
    table = pq.read_table([f for f in sorted((dataset_dir / "data").glob("*.parquet"))])
    (bundle,) = build_bundles(
        LogRef.for_dataset(dataset_dir),
        [leaf],
        leaf_bytes_for_batch(table.slice(leaf, 1)),
        last,
        last,
    )
    assert verify_bundle(bundle, trust).status == VERIFIED
    forged, path = mutate(json.loads(json.dumps(bundle)), data)
    verdict = verify_bundle(forged, trust)
    assert verdict.status != VERIFIED, (path, verdict.as_dict())


def assert_changed_manifest_fails(chain, trust, dataset_dir, checkpoints, data):
    manifest_file = data.choice(all_manifests(dataset_dir))
    manifest, _ = load_manifest(manifest_file)
    forged, path = mutate(manifest, data)
    try:
        bytes_ = canonicalize(forged)
    except ValueError:
        return  # not I-JSON (e.g. an integer past 2**53): no manifest can hold it
    signer = publisher_key(dataset_dir.parent.parent)
    if forged.get("publisher") == signer.describe():
        write_manifest(dataset_dir, forged, signer)  # re-signed by the publisher's own key
    else:
        manifest_file.write_bytes(bytes_)
    verdict = audit_log(dataset_dir, trust)
    assert verdict.status != VERIFIED, (path, verdict.as_dict())


def assert_changed_identity_fails(chain, trust, dataset_dir, checkpoints, data):
    envelope = json.loads(chain.identity)
    forged, path = mutate(envelope, data)
    if path[0] == "identity" and data.random() < 0.5:  # re-signed with the real key
        signer = publisher_key(dataset_dir.parent.parent)
        forged["signatures"] = [signer.sign(canonicalize(forged["identity"]))]
    try:
        raw = canonicalize(forged)
    except ValueError:
        return
    pinned = TrustRoot(Pin(identity=raw), chain.registry.w3)
    assert audit_log(dataset_dir, pinned).status != VERIFIED, path


def assert_forged_anchor_fails(chain, trust, dataset_dir, checkpoints, data):
    """Every checkpoint anchored as published but the newest, anchored with one field changed."""
    *honest, last = checkpoints
    if honest:
        chain.anchor(honest)
    field = data.choice(["root", "manifest_sha256", "tree_size", "none"])
    if field == "tree_size":
        last = {**last, "tree_size": last["tree_size"] + data.randint(1, 5)}
    elif field != "none":  # another 32-byte value (the contract takes nothing else)
        last = {**last, field: f"{data.getrandbits(256) | 1:064x}"}
    if field != "none":
        chain.anchor([last])
    assert audit_log(dataset_dir, trust).status != VERIFIED, field


def assert_changed_row_is_refused(chain, trust, dataset_dir, checkpoints, data):
    manifest, _ = load_manifest(all_manifests(dataset_dir)[-1])
    files = tuple(dataset_dir / f["path"] for f in manifest["files"])
    last = checkpoints[-1]
    asset = Asset(
        dataset=manifest["dataset"],
        view="prop_v1",
        checkpoint=Checkpoint(
            manifest["dataset"],
            last["tree_size"],
            last["root"],
            last["anchor_tx"],
            last["anchor_block"],
            last["chain_id"],
            last["contract"],
            last["manifest_sha256"],
        ),
        schema=DESCRIBED,
        files=files,
        leaf_starts=tuple(f["leaf_start"] for f in manifest["files"]),
        quality=None,
        manifest_path=all_manifests(dataset_dir)[-1],
        log_id=manifest["dataset"],
    )
    table = pq.read_table(list(files))
    table = table.append_column(LEAF_COLUMN, pa.array(range(table.num_rows), pa.int64()))
    shown, bundles = prove_returned_rows(table, [asset])
    assert len(bundles) == shown.num_rows  # the honest result is proven
    row = data.randrange(table.num_rows)
    column = data.choice(table.column_names)
    values = table.column(column).to_pylist()
    values[row] = _changed_cell(values[row], data)
    forged = table.set_column(
        table.column_names.index(column),
        table.schema.field(column),
        pa.array(values, table.schema.field(column).type),
    )
    with pytest.raises(QueryRefused) as refused:
        prove_returned_rows(forged, [asset])
    assert refused.value.code == "proofs_need_unmodified_rows"


def _changed_cell(value, data):
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(seconds=data.randint(1, 10**6))
    if value is None:
        return -71.5
    return changed(value, data)
