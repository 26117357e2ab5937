"""An outsider's attacks on ``rda verify`` (stop 67's red team), as an auditor runs it on anvil.

The attacker can write to the data directory or a bundle, not sign as the publisher nor anchor.
Each attack used to print VERIFIED for rows nobody anchored, or to hang or crash the verifier;
each now gets a verdict naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, fabricated_bundle, publish, rows
from forged_history import plant_growing_shard
from test_verify_attacks import _world, verify, write_bundle

from cli.main import main
from proofs.jcs import canonicalize
from proofs.manifest import signature_path
from proofs.merkle import leaf_hash
from proofs.shards import heads_root

pytestmark = pytest.mark.anvil
DECOY = "decoy.v1"


@pytest.fixture(scope="module")
def published(tmp_path_factory, anvil):
    """probe.v1 (12, 20, 25 rows) and decoy.v1 (3 rows), signed and anchored on one registry;
    each test works on a copy of the data directory."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("outsider")
        patch.setenv("RDA_STATE_DIR", str(root / "state"))
        patch.delenv("RDA_PUBLISHER", raising=False)
        world = _world(root, anvil)
        publish(world.data, [rows(500, 3)], world.chain, dataset=DECOY)
        yield world


@pytest.fixture
def world(published, tmp_path):
    """A copy of the published data (anchored all the same), the pin and chain unchanged."""
    copied = tmp_path / "data"
    shutil.copytree(published.data, copied)
    return SimpleNamespace(**{**vars(published), "data": copied, "tmp": tmp_path})


def _datasets(world, *args: str) -> tuple[int, dict[str, dict]]:
    code, report = verify(world, "--data-dir", str(world.data), *args)
    verdicts = report["datasets"] if "datasets" in report else report["histories"]
    return code, {d["dataset"]: d for d in verdicts}


def _folder(world, dataset: str = DATASET) -> Path:
    return world.data / "published" / dataset


def _plant(world, source: Path, name: str) -> None:
    """Copy the manifest ``source`` and its signature into probe.v1's checkpoints as ``name``."""
    target = _folder(world) / "checkpoints" / name
    shutil.copy(source, target)
    shutil.copy(signature_path(source), signature_path(target))


def _tamper_first_file(world) -> None:
    fake = rows(0, 12).set_column(2, "rsrp_dbm", pa.array([-44.0] * 12))
    pq.write_table(fake, _folder(world) / "data" / "batch-0000.parquet")


def test_another_datasets_checkpoint_planted_as_the_newest_does_not_vouch_for_changed_rows(world):
    """decoy.v1's genuine, signed, anchored checkpoint (and its file) under probe.v1's largest
    name: it used to be verified as probe.v1's newest, and probe.v1's changed rows never read."""
    _tamper_first_file(world)
    decoy = _folder(world, DECOY)
    _plant(world, decoy / "checkpoints" / "000000000003.manifest.json", "999.manifest.json")
    shutil.copy(decoy / "data" / "batch-0000.parquet", _folder(world) / "data" / "decoy.parquet")
    code, datasets = _datasets(world, "--dataset", DATASET)
    assert code == 1
    assert datasets["999.manifest.json"]["first_failure"] == {
        "check": "manifest",
        "ok": False,
        "detail": "999.manifest.json: a checkpoint of 'decoy.v1', not of 'probe.v1' "
        "(the folder it is in)",
    }


def test_a_folder_holding_another_datasets_checkpoints_and_files_is_not_verified(world):
    folder = _folder(world)
    shutil.rmtree(folder)
    shutil.copytree(_folder(world, DECOY), folder)
    code, datasets = _datasets(world)
    assert code == 1 and datasets[DECOY]["verdict"] == "VERIFIED"
    assert datasets["000000000003.manifest.json"]["first_failure"]["detail"] == (
        "000000000003.manifest.json: a checkpoint of 'decoy.v1', not of 'probe.v1' "
        "(the folder it is in)"
    )


def test_an_older_checkpoint_copied_under_a_larger_size_is_not_taken_for_the_newest(world):
    checkpoints = _folder(world) / "checkpoints"
    _plant(world, checkpoints / "000000000012.manifest.json", "000000000099.manifest.json")
    code, datasets = _datasets(world)
    assert code == 1
    assert datasets["000000000099.manifest.json"]["first_failure"]["detail"] == (
        "000000000099.manifest.json: named for tree size 99, but its checkpoint is of size 12"
    )


def test_a_misnamed_stray_checkpoint_among_older_ones_is_left_out_of_the_history(world):
    """A copy of the newest named for size 1, with a ``shards`` member no version-1 manifest
    has: the history read its heads (a TypeError) and then counted size 25 twice (IndexError)."""
    newest = _folder(world) / "checkpoints" / "000000000025.manifest.json"
    stray = json.loads(newest.read_text()) | {"shards": 5}
    (newest.parent / "000000000001.manifest.json").write_text(json.dumps(stray))
    for args in ([], ["--history"]):
        code, datasets = _datasets(world, *args)
        assert (code, datasets[DATASET]["verdict"]) == (0, "VERIFIED")


def test_a_directory_named_as_the_newest_manifest_is_not_verified(world):
    (_folder(world) / "checkpoints" / "000000000099.manifest.json").mkdir()
    code, datasets = _datasets(world, "--dataset", DATASET)
    assert code == 1
    assert datasets["000000000099.manifest.json"]["first_failure"]["detail"] == (
        "000000000099.manifest.json: not a manifest "
        "(000000000099.manifest.json is not a regular file: not read)"
    )


@pytest.mark.parametrize(
    "replaced",
    ["data/batch-0002.parquet", "checkpoints/000000000025.manifest.sig.json"],
)
def test_a_named_pipe_in_the_folder_is_not_read_and_does_not_hang_the_verifier(world, replaced):
    """A FIFO blocks its opening until someone writes to it: ``rda verify`` waited forever. The
    console script, in its own process, must answer within the timeout."""
    path = _folder(world) / replaced
    path.unlink()
    os.mkfifo(path)
    command = [sys.executable, "-m", "cli.main", "verify", "--data-dir", str(world.data)]
    command += ["--publisher", str(world.pinned), "--rpc-url", world.rpc_url, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    (dataset,) = [d for d in json.loads(done.stdout)["datasets"] if d["dataset"] == DATASET]
    assert f"{path.name} is not a regular file: not read" in dataset["first_failure"]["detail"]


def test_a_bundle_row_holding_an_integer_beyond_any_double_is_not_verified(world):
    bundle = fabricated_bundle()
    bundle["row"]["rsrp_dbm"] = 10**400
    code, report = verify(world, "--bundle", str(write_bundle(world, bundle, "big.bundle.json")))
    assert code == 1
    assert report["bundles"][0]["first_failure"]["detail"] == (
        "leaf 0: row is not I-JSON: the row holds an integer of 401 digits, "
        "beyond any JSON number a leaf holds"
    )


def test_a_bundle_claiming_a_device_signature_at_an_impossible_time_is_not_verified(world):
    """Month 13, hour 25: the time's pattern let it through to ``datetime``, which raised."""
    row = {
        "node_id": "node-00001", "event_time": "2026-13-45T25:61:61Z", "device_signed": True,
        "device_key_id": "11" * 32, "device_payload_sha256": "22" * 32,
        "device_batch_index": 0, "device_batch_size": 1, "device_batch_path": "",
        "device_signature": "33" * 64,
    }  # fmt: skip
    leaf = leaf_hash(canonicalize(row)).hex()
    bundle = fabricated_bundle() | {"row": row, "leaf_hash": leaf}
    bundle["checkpoint"] = bundle["checkpoint"] | {"root": leaf}
    code, report = verify(world, "--bundle", str(write_bundle(world, bundle, "t.bundle.json")))
    assert code == 1
    checks = {c["check"]: c for c in report["bundles"][0]["checks"]}
    assert checks["device"]["ok"] is False, checks


def test_markup_and_escape_codes_in_a_planted_manifest_are_printed_as_text(world, capsys):
    """An unsigned manifest naming its dataset ``[/red]`` plus a terminal escape: printing the
    verdict raised rich's MarkupError. Every detail and title is printed as text (``shown``)."""
    newest = _folder(world) / "checkpoints" / "000000000025.manifest.json"
    name = "[/red]\x1b[2J"
    hostile = json.loads(newest.read_text()) | {"dataset": name, "log": name}
    (newest.parent / "000000000099.manifest.json").write_text(json.dumps(hostile))
    command = ["verify", "--data-dir", str(world.data), "--dataset", DATASET]
    assert main([*command, "--publisher", str(world.pinned), "--rpc-url", world.rpc_url]) == 1
    printed = capsys.readouterr().out
    assert "a checkpoint of '[/red]\\x1b[2J', not of 'probe.v1'" in printed
    assert "\x1b" not in printed


def test_planted_unsigned_checkpoints_over_a_sparse_leaf_file_are_not_read_whole(world):
    """Two unsigned dataset checkpoints planted after the newest, their second shard's head
    naming a planted shard manifest of 2^28 rows whose leaf file is sparse (8 GiB, no disk):
    the history read that file whole (a MemoryError traceback under a 3 GiB cap, 8 GiB
    without one). The head's manifest hash is checked first now; the verifier stays small."""
    folder, rows_claimed = _folder(world), 1 << 28
    genuine = (folder / "checkpoints" / "000000000025.manifest.json").read_bytes()
    legacy = {
        "shard": DATASET, "tree_size": 25, "root": json.loads(genuine)["checkpoint"]["root"],
        "manifest_sha256": hashlib.sha256(genuine).hexdigest(),
        "manifest_path": "checkpoints/000000000025.manifest.json",
    }  # fmt: skip
    shard = folder / "shards" / "t.p0"
    (shard / "data").mkdir(parents=True)
    (shard / "data" / "x.parquet").write_bytes(b"PAR1")
    with open(shard / "data" / "x.leaves", "wb") as sparse:
        sparse.truncate(rows_claimed * 32)
    (shard / "checkpoints").mkdir()
    (shard / "checkpoints" / "x.manifest.json").write_bytes(canonicalize({
        "manifest_version": 2, "kind": "shard", "dataset": DATASET, "log": f"{DATASET}/t.p0",
        "checkpoint": {"tree_size": rows_claimed, "root": "ab" * 32}, "previous": None,
        "files": [{"path": "shards/t.p0/data/x.parquet", "sha256": "00" * 32,
                   "rows": rows_claimed, "leaf_start": 0}],
    }))  # fmt: skip
    for size in (1, 2):
        heads = [legacy, {
            "shard": f"{DATASET}/t.p0", "tree_size": size, "root": "ab" * 32,
            "manifest_sha256": "00" * 32,
            "manifest_path": "shards/t.p0/checkpoints/x.manifest.json",
        }]  # fmt: skip
        planted = {
            "manifest_version": 2, "kind": "dataset", "dataset": DATASET, "log": DATASET,
            "checkpoint": {"tree_size": 25 + size, "shards": 2, "root": heads_root(heads).hex()},
            "shards": heads, "previous": None,
        }  # fmt: skip
        name = f"{25 + size:012d}.manifest.json"
        (folder / "checkpoints" / name).write_bytes(canonicalize(planted))
    command = [sys.executable, "-m", "cli.main", "verify", "--data-dir", str(world.data)]
    command += ["--publisher", str(world.pinned), "--rpc-url", world.rpc_url, "--json"]
    cap = 3 << 30
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads(done.stdout)["verdict"] == "NOT VERIFIED"


def test_the_rows_of_an_unsigned_manifest_are_not_read(world):
    """Planted as the newest, it listed one 12 KB file of a million repeated rows four times:
    the verifier hashed them all before it looked for a signature (~20 min per 10^9 rows)."""
    rows_in_file = 1_000_000
    bomb = _folder(world) / "data" / "bomb.parquet"
    pq.write_table(rows(0, 1).take(pa.array([0] * rows_in_file)), bomb, compression="zstd")
    newest = _folder(world) / "checkpoints" / "000000000025.manifest.json"
    planted = json.loads(newest.read_text())
    digest = hashlib.sha256(bomb.read_bytes()).hexdigest()
    planted["files"] = [
        {"path": "data/bomb.parquet", "sha256": digest, "rows": rows_in_file,
         "leaf_start": i * rows_in_file}
        for i in range(4)
    ]  # fmt: skip
    planted["checkpoint"]["tree_size"] = 4 * rows_in_file
    (newest.parent / "000004000000.manifest.json").write_text(json.dumps(planted))
    code, datasets = _datasets(world, "--dataset", DATASET)
    checks = {c["check"]: c for c in datasets[DATASET]["checks"]}
    assert code == 1
    assert checks["files"] == {
        "check": "files", "ok": None, "detail": "not read: the manifest is not the publisher's"
    }  # fmt: skip
    assert checks["signature"]["ok"] is False and "root" not in checks


def test_planted_self_consistent_checkpoints_of_2_to_the_28_rows_are_refused_unread(world):
    """Two unsigned dataset checkpoints after the newest, linked to it and to each other, a new
    shard growing from 2^27 to 2^28 rows over sparse leaf files of 4 GiB each: everything
    matches but the anchors and signatures. The history rebuilt the shard's log for their step
    (8 GiB read, 16 GiB of temporary log written) before it looked for an anchor. Now no proof
    is built for a checkpoint that is not anchored: the verifier, allowed to write no file of
    more than 64 MiB, answers at once."""
    folder = _folder(world)
    newest = folder / "checkpoints" / "000000000025.manifest.json"
    base = json.loads(newest.read_bytes())
    plant_growing_shard(
        folder, DATASET, base, hashlib.sha256(newest.read_bytes()).hexdigest(), 1 << 27
    )
    command = [sys.executable, "-m", "cli.main", "verify", "--data-dir", str(world.data)]
    command += ["--publisher", str(world.pinned), "--rpc-url", world.rpc_url, "--json"]
    cap = 64 << 20  # a rebuilt log of the forgery's rows would outgrow it at once
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TMPDIR": str(world.tmp)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap)),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    (dataset,) = [d for d in json.loads(done.stdout)["datasets"] if d["dataset"] == DATASET]
    checks = {c["check"]: c for c in dataset["checks"]}
    assert checks["signature"]["ok"] is False and checks["files"]["ok"] is None
    half = 25 + (1 << 27)
    assert checks["consistency"] == {
        "check": "consistency", "ok": None,
        "detail": f"25 → {half}: not built: checkpoint {half} is not anchored as it is",
    }  # fmt: skip
    assert checks["anchored"]["ok"] is False
