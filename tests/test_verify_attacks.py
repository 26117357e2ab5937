"""Issue 14's attacks 1–4 and 7 on ``rda verify``, as an auditor runs it against a real node.

Each test replays what used to print VERIFIED (exit 0) for data the publisher never anchored,
and expects the verdict now given: NOT VERIFIED (exit 1) naming the failed link, or INCOMPLETE
(exit 3) naming what could not be checked. The publisher's data is anchored on anvil; the
auditor pins the publisher's identity document (a copy made once, outside the data directory).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, fabricated_bundle, publish, rows
from test_cli import rda

from cli.main import main
from infra.chain import ChainConfig, connect
from infra.tools import free_port
from proofs.anchor import AnchorRegistry
from proofs.bundle import build_bundles
from proofs.identity import FILE_NAME
from proofs.leaves import leaf_bytes_for_batch, leaf_hashes_for_batch
from proofs.log import DatasetLog, LogRef
from proofs.manifest import all_manifests, load_manifest, signature_path, write_manifest
from proofs.signing import publisher_key
from streaming.chain import ChainContext

pytestmark = pytest.mark.anvil


def _world(tmp_path: Path, anvil) -> SimpleNamespace:
    """Three anchored checkpoints (12, 20, 25 rows) on a registry of their own, and the
    auditor's pinned copy of the publisher's identity document."""
    w3 = connect(ChainConfig("anvil", port=anvil.port))
    chain = ChainContext("anvil", anvil.rpc_url, w3.eth.chain_id, AnchorRegistry.deploy(w3))
    data = tmp_path / "data"
    checkpoints = publish(data, [rows(0, 12), rows(12, 8), rows(20, 5)], chain)
    pinned = tmp_path / "pinned-identity.json"
    pinned.write_bytes((data / "published" / FILE_NAME).read_bytes())
    return SimpleNamespace(
        data=data,
        dataset_dir=data / "published" / DATASET,
        chain=chain,
        checkpoints=checkpoints,
        pinned=pinned,
        rpc_url=anvil.rpc_url,
        state=tmp_path / "state",
        tmp=tmp_path,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil):
    """The published data, shared by the tests that only read it."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("attacks")
        patch.setenv("RDA_STATE_DIR", str(root / "state"))  # no `infra up` chain
        patch.delenv("RDA_PUBLISHER", raising=False)
        yield _world(root, anvil)


@pytest.fixture
def own_world(tmp_path, anvil, monkeypatch):
    """The same, for a test that changes the data (its own registry too)."""
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RDA_PUBLISHER", raising=False)
    return _world(tmp_path, anvil)


def verify(world, *args: str, pin: bool = True, rpc: bool = True) -> tuple[int, dict]:
    """``rda verify ARGS --json`` in this process (``cli.main.main``, as the console script
    runs it; a few tests below start real processes)."""
    extra = (["--publisher", str(world.pinned)] if pin else []) + (
        ["--rpc-url", world.rpc_url] if rpc else []
    )
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["verify", *args, *extra, "--json"])
    return code, json.loads(stdout.getvalue())


def audit(world, *args: str, **kwargs) -> tuple[int, dict]:
    """``rda verify`` on the data directory (every log: rows, history, anchors, latest())."""
    code, report = verify(world, "--data-dir", str(world.data), *args, **kwargs)
    (dataset,) = report["datasets"]
    return code, dataset


def write_bundle(world, bundle: dict, name: str = "forged.bundle.json") -> Path:
    path = world.tmp / name
    path.write_text(json.dumps(bundle))
    return path


def real_bundle(world, leaf: int = 21) -> dict:
    table = pq.read_table(world.dataset_dir / "data" / "batch-0002.parquet").slice(leaf - 20, 1)
    last = world.checkpoints[-1]
    (bundle,) = build_bundles(
        LogRef.for_dataset(world.dataset_dir), [leaf], leaf_bytes_for_batch(table), last, last
    )
    return bundle


# -- the honest case -----------------------------------------------------------------------------


def test_the_untouched_data_is_verified_with_every_check(world):
    code, dataset = audit(world)
    assert (code, dataset["verdict"]) == (0, "VERIFIED")
    assert [c["check"] for c in dataset["checks"]] == [
        "files", "root", "manifest", "signature", "identity", "anchor",
        "previous", "consistency", "anchored", "latest", "links",
    ]  # fmt: skip
    code, report = verify(world, "--bundle", str(write_bundle(world, real_bundle(world))))
    assert (code, report["verdict"]) == (0, "VERIFIED")


# -- attack 1: "not checked" counted as a pass ---------------------------------------------------


def test_attack_1_a_fabricated_unanchored_bundle_is_not_verified(world):
    path = write_bundle(world, fabricated_bundle())
    code, report = verify(world, "--bundle", str(path))
    assert (code, report["verdict"]) == (1, "NOT VERIFIED")
    assert report["bundles"][0]["first_failure"] == {
        "check": "anchor",
        "ok": False,
        "detail": f"no anchor of {DATASET} at size 1 in registry {world.chain.contract}",
    }
    code, report = verify(world, "--bundle", str(path), pin=False)  # nothing pinned
    assert (code, report["verdict"]) == (3, "INCOMPLETE")


# -- attack 2: the registry taken from the bundle ----------------------------------------------


def test_attack_2_a_registry_of_ones_own_named_in_the_bundle_is_not_verified(world):
    w3 = world.chain.registry.w3
    rogue = AnchorRegistry.deploy(w3, sender=w3.eth.accounts[1])
    bundle = fabricated_bundle()
    rogue.anchor(DATASET, 1, bytes.fromhex(bundle["checkpoint"]["root"]), b"\x00" * 32)
    bundle["anchor"] = {
        "chain_id": 31337, "contract": rogue.address, "transaction": None, "block": None,
        "dataset_id": hashlib.sha256(DATASET.encode()).hexdigest(),
    }  # fmt: skip
    path = write_bundle(world, bundle)
    code, report = verify(world, "--bundle", str(path))
    assert code == 1
    assert report["bundles"][0]["first_failure"]["detail"] == (
        f"the bundle names registry {rogue.address} on chain 31337; the pinned publisher's "
        f"registry is {world.chain.contract} on chain 31337"
    )
    code, report = verify(world, "--bundle", str(path), "--registry", rogue.address, pin=False)
    assert code == 1  # pinning the rogue registry instead: it binds no publisher identity
    assert report["bundles"][0]["first_failure"]["detail"] == (
        f"the pinned registry {rogue.address} binds no publisher identity"
    )


# -- attack 3: a rewritten history, re-signed and re-anchored ----------------------------------


def _rewrite_history(world, keep_old_manifests: bool) -> None:
    """Change row 3 (covered by every anchored checkpoint), rebuild the log over 30 rows, sign
    a new checkpoint with the publisher's key and anchor it (the chain accepts: it grows)."""
    dataset_dir = world.dataset_dir
    table = pa.concat_tables([rows(0, 25), rows(25, 5)])
    changed = table.column("rsrp_dbm").to_pylist()
    changed[3] = -43.0
    table = table.set_column(2, "rsrp_dbm", pa.array(changed))
    last_manifest, last_digest = load_manifest(all_manifests(dataset_dir)[-1])
    if not keep_old_manifests:
        for path in all_manifests(dataset_dir):
            signature_path(path).unlink()
            path.unlink()
        for path in (dataset_dir / "data").glob("*.parquet"):
            path.unlink()
    data_file = dataset_dir / "data" / "rewritten.parquet"
    pq.write_table(table, data_file)
    log = DatasetLog(dataset_dir / "log")
    size, root = log.append_at(0, leaf_hashes_for_batch(table))
    forged = copy.deepcopy(last_manifest)
    entry = {**forged["files"][0], "path": "data/rewritten.parquet", "rows": 30, "leaf_start": 0}
    entry.update(sha256=hashlib.sha256(data_file.read_bytes()).hexdigest())
    entry.update(bytes=data_file.stat().st_size)
    forged["files"] = [entry]
    resource = {**forged["resources"][0], "path": entry["path"], "bytes": entry["bytes"]}
    forged["resources"] = [{**resource, "hash": f"sha256:{entry['sha256']}"}]
    forged["checkpoint"].update(tree_size=size, root=root.hex())
    forged["previous"] = (
        {"tree_size": 25, "root": last_manifest["checkpoint"]["root"],
         "manifest_sha256": last_digest.hex()} if keep_old_manifests else None
    )  # fmt: skip
    _, digest = write_manifest(dataset_dir, forged, publisher_key(world.data))
    world.chain.registry.anchor(DATASET, size, root, digest, previous=25)


def test_attack_3_a_rewritten_history_kept_beside_the_old_one_is_not_verified(own_world):
    _rewrite_history(own_world, keep_old_manifests=True)
    code, dataset = audit(own_world)
    assert (code, dataset["verdict"]) == (1, "NOT VERIFIED")
    failed = {c["check"]: c["detail"] for c in dataset["checks"] if c["ok"] is False}
    assert failed["consistency"] == (  # the first pair whose later tree holds the new row 3
        "12 → 20: the tree of size 20 does not extend the tree of size 12 "
        "(history rewritten after the earlier checkpoint)"
    )


def test_attack_3_a_rewritten_history_with_the_old_one_deleted_is_not_verified(own_world):
    _rewrite_history(own_world, keep_old_manifests=False)
    code, dataset = audit(own_world)
    assert (code, dataset["verdict"]) == (1, "NOT VERIFIED")
    assert dataset["first_failure"] == {
        "check": "links",
        "ok": False,
        "detail": f"anchored checkpoint 12 of {DATASET} is missing from the data "
        "(history deleted or rewritten)",
    }


# -- attack 4: a withheld newest checkpoint ------------------------------------------------------


def test_attack_4_a_withheld_newest_checkpoint_is_not_verified(own_world):
    newest = all_manifests(own_world.dataset_dir)[-1]
    signature_path(newest).unlink()
    newest.unlink()
    (own_world.dataset_dir / "data" / "batch-0002.parquet").unlink()
    DatasetLog(own_world.dataset_dir / "log").append_at(20, [])  # the leaves, cut back to 20
    expected = (
        f"the registry's latest checkpoint of {DATASET} has size 25 (block "
        f"{own_world.checkpoints[-1]['anchor_block']}); the data's newest has 20: a newer "
        "checkpoint is withheld, or the data was rolled back"
    )
    code, dataset = audit(own_world)
    assert (code, dataset["first_failure"]) == (
        1,
        {"check": "latest", "ok": False, "detail": expected},
    )
    code, report = verify(own_world, "--history", "--data-dir", str(own_world.data))
    assert code == 1 and report["histories"][0]["first_failure"]["detail"] == expected


# -- attack 7: no chain, no pin, odd addresses ---------------------------------------------------


def test_attack_7_without_a_chain_the_data_folders_own_key_verifies_nothing(world):
    code, dataset = audit(world, pin=False, rpc=False)
    assert (code, dataset["verdict"]) == (3, "INCOMPLETE")
    assert [c["check"] for c in dataset["not_checked"]] == [
        "identity", "anchor", "anchored", "latest", "links",
    ]  # fmt: skip
    code, dataset = audit(world, "--offline")  # pinned, but told not to read the chain
    assert (code, dataset["verdict"], dataset["first_failure"]) == (3, "INCOMPLETE", None)


def test_attack_7_an_rpc_url_without_a_pin_is_incomplete_not_embedded(world):
    result = rda(
        "verify", "--data-dir", str(world.data), "--rpc-url", world.rpc_url, state=world.state
    )
    assert result.returncode == 3
    assert "embedded" not in result.stdout
    assert "no pinned publisher identity" in result.stdout
    assert result.stdout.endswith("verdict: INCOMPLETE\n")


def test_attack_7_a_chain_that_does_not_answer_is_incomplete(world):
    result = rda(
        "verify", "--data-dir", str(world.data), "--publisher", str(world.pinned),
        "--rpc-url", f"http://127.0.0.1:{free_port()}", "--json", state=world.state,
    )  # fmt: skip
    assert result.returncode == 3 and "Traceback" not in result.stderr
    (dataset,) = json.loads(result.stdout)["datasets"]
    assert dataset["not_checked"][0]["detail"].endswith("does not answer")


@pytest.mark.parametrize(
    ("contract", "code", "detail"),
    [
        ("lower", 0, None),
        ("upper", 0, None),
        ("0x123", 1, "anchor.contract must be an address: 0x and 40 hex digits"),
        ("0x" + "zz" * 20, 1, "anchor.contract must be an address: 0x and 40 hex digits"),
    ],
)
def test_attack_7_any_address_form_gets_a_verdict_never_a_traceback(world, contract, code, detail):
    bundle = real_bundle(world)
    address = bundle["anchor"]["contract"]
    bundle["anchor"]["contract"] = {
        "lower": address.lower(),
        "upper": "0x" + address[2:].upper(),
    }.get(contract, contract)
    returncode, report = verify(world, "--bundle", str(write_bundle(world, bundle)))
    assert returncode == code
    failure = report["bundles"][0]["first_failure"]
    assert (failure or {}).get("detail") == detail


def test_a_lowercase_registry_pin_reads_the_identity_from_the_registry(world):
    code, dataset = audit(world, "--registry", world.chain.contract.lower(), pin=False)
    assert (code, dataset["verdict"]) == (0, "VERIFIED")


def test_a_key_id_pin_accepts_only_the_identity_that_key_signed(world):
    key_id = publisher_key(world.data).key_id
    code, dataset = audit(world, "--publisher-key-id", key_id, pin=False)
    assert (code, dataset["verdict"]) == (0, "VERIFIED")
    stranger = publisher_key(world.tmp / "stranger").key_id
    code, dataset = audit(world, "--publisher-key-id", stranger, pin=False)
    assert code == 1 and dataset["first_failure"]["detail"] == (
        f"signed by key {key_id}, not by {stranger}"
    )


def test_a_tampered_pinned_identity_is_not_verified(own_world):
    text = own_world.pinned.read_text().replace('"valid_from":0', '"valid_from":1')
    own_world.pinned.write_text(text)
    code, dataset = audit(own_world)
    assert code == 1
    assert dataset["first_failure"]["check"] == "identity"
    assert dataset["first_failure"]["detail"].startswith("pinned identity document: signature by")


def test_a_data_directory_copied_elsewhere_verifies_against_the_pin_alone(world):
    """The auditor's copy of the data: nothing in it is trusted, the pin and chain are."""
    copied = world.tmp / "copy"
    shutil.copytree(world.data, copied)
    (copied / "published" / FILE_NAME).unlink()  # the data's own identity copy is not needed
    result = rda(
        "verify", "--data-dir", str(copied), "--publisher", str(world.pinned),
        "--rpc-url", world.rpc_url, "--json", state=world.state,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
