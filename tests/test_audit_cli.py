"""``rda prove`` and ``rda verify --bundle | --history`` as an auditor runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_dataset import DATASET, publish, rows
from test_cli import rda

from infra.tools import free_port


@pytest.fixture
def data_dir(tmp_path):
    publish(tmp_path / "data", [rows(0, 12), rows(12, 8)], None)
    return tmp_path / "data"


def test_prove_writes_one_bundle_per_matching_row_and_each_is_incomplete_offline(
    data_dir, tmp_path
):
    out = tmp_path / "bundles"
    where = "node_id IN ('node-00003', 'node-00015')"
    proved = rda(
        "prove", "--data-dir", str(data_dir), "--dataset", DATASET, "--where", where,
        "--out", str(out), "--json", state=tmp_path / "state",
    )  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    report = json.loads(proved.stdout)
    assert report["matched"] == 2 and report["checkpoint"]["tree_size"] == 20
    assert [json.loads(Path(p).read_text())["leaf_index"] for p in report["bundles"]] == [3, 15]
    check = rda("verify", "--bundle", str(out), "--json", state=tmp_path / "state")
    verdict = json.loads(check.stdout)
    assert check.returncode == 3 and verdict["verdict"] == "INCOMPLETE"
    assert [b["first_failure"] for b in verdict["bundles"]] == [None, None]
    assert [b["checks"][-1]["detail"] for b in verdict["bundles"]] == [
        "not checked: no pinned publisher identity: pass --publisher FILE (the publisher's "
        "identity document), --registry ADDRESS with --rpc-url, or --publisher-key-id"
    ] * 2


def test_verify_names_the_bundle_and_the_check_that_failed(data_dir, tmp_path):
    out = tmp_path / "bundles"
    rda(
        "prove", "--data-dir", str(data_dir), "--dataset", DATASET,
        "--where", "node_id = 'node-00004'", "--out", str(out), state=tmp_path / "state",
    )  # fmt: skip
    (path,) = out.glob("*.bundle.json")
    bundle = json.loads(path.read_text())
    bundle["row"]["rsrp_dbm"] = -43.0
    path.write_text(json.dumps(bundle))
    check = rda("verify", "--bundle", str(path), state=tmp_path / "state")
    assert check.returncode == 1
    assert f"{path.name} (leaf 4): NOT VERIFIED" in check.stdout
    assert "✗ leaf: leaf 4: the row does not hash to leaf_hash" in check.stdout
    assert check.stdout.endswith("verdict: NOT VERIFIED\n")


def test_history_checks_consistency_offline_and_is_incomplete_without_the_chain(data_dir, tmp_path):
    check = rda("verify", "--history", "--data-dir", str(data_dir), "--json", state=tmp_path / "s")
    verdict = json.loads(check.stdout)
    assert check.returncode == 3, check.stderr
    assert verdict["verdict"] == "INCOMPLETE"
    (history,) = verdict["histories"]
    assert [c["detail"] for c in history["checks"] if c["check"] == "consistency"] == [
        "12 → 20: consistency proof of 4 hashes"
    ]


def test_verify_with_a_pinned_publisher_key_rejects_another_signer(data_dir, tmp_path):
    published = json.loads((data_dir / "published" / "publisher.json").read_text())
    state = tmp_path / "state"
    args = ("verify", "--data-dir", str(data_dir), "--offline", "--json", "--publisher-key-id")
    assert rda(*args, published["key_id"], state=state).returncode == 3  # offline: INCOMPLETE
    check = rda(*args, "ab" * 32, state=state)
    assert check.returncode == 1
    failure = json.loads(check.stdout)["datasets"][0]["first_failure"]
    assert failure["check"] == "signature" and failure["detail"].endswith("not by " + "ab" * 32)


def test_a_predicate_that_is_not_sql_is_a_clear_error(data_dir, tmp_path):
    proved = rda(
        "prove", "--data-dir", str(data_dir), "--dataset", DATASET, "--where", "no_such_column = 1",
        state=tmp_path / "state",
    )  # fmt: skip
    assert proved.returncode == 2
    message = " ".join(proved.stderr.split())
    assert "--where 'no_such_column = 1' is not a valid predicate" in message
    assert "Traceback" not in proved.stderr


def test_prove_refuses_to_write_more_bundles_than_the_limit(data_dir, tmp_path):
    proved = rda(
        "prove", "--data-dir", str(data_dir), "--dataset", DATASET, "--where", "true",
        "--limit", "5", "--out", str(tmp_path / "bundles"), state=tmp_path / "state",
    )  # fmt: skip
    assert proved.returncode == 2
    assert "20 rows match; at most --limit 5" in " ".join(proved.stderr.split())
    assert not (tmp_path / "bundles").exists()


def test_proving_an_unknown_dataset_or_verifying_a_missing_bundle_is_a_clear_error(tmp_path):
    proved = rda("prove", "--data-dir", str(tmp_path), "--dataset", "nope.v1", "--where", "true",
                 state=tmp_path / "state")  # fmt: skip
    assert proved.returncode == 2 and "no checkpoint of 'nope.v1'" in " ".join(
        proved.stderr.split()
    )
    check = rda("verify", "--bundle", str(tmp_path / "missing.json"), state=tmp_path / "state")
    assert check.returncode == 2 and "does not exist" in " ".join(check.stderr.split())


@pytest.mark.anvil
@pytest.mark.slow
def test_an_auditor_proves_rows_and_checks_bundles_and_history_on_anvil(tmp_path):
    # Every step is its own process: what the auditor checks on chain outlives `rda run`.
    state, data = tmp_path / "state", str(tmp_path / "data")
    up = rda(
        "infra", "up", "--port", str(free_port()), "--chain", "anvil",
        "--chain-port", str(free_port()), "--json", state=state,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    chain = json.loads(up.stdout)["chain"]
    assert (chain["kind"], chain["up"]) == ("anvil", True)
    try:
        simulated = rda("simulate", "--nodes", "3", "--duration", "20", "--json", state=state)
        assert simulated.returncode == 0, simulated.stderr
        half = str(json.loads(simulated.stdout)["messages"] // 2 + 1)
        # Two batches or more: two anchored checkpoints per dataset, a history to check
        run = rda("run", "--once", "--max-batch-records", half, "--data-dir", data, "--json",
                  state=state)  # fmt: skip
        assert run.returncode == 0, run.stderr
        batches = json.loads(run.stdout)["batches"]
        radio_checkpoints = [
            c for b in batches for c in b["checkpoints"] if c["dataset"] == "radio_kpi.v1"
        ]
        assert len(radio_checkpoints) >= 2
        pinned = tmp_path / "publisher-identity.json"  # what the auditor got from the publisher
        pinned.write_bytes(
            (tmp_path / "data" / "published" / "publisher-identity.json").read_bytes()
        )
        bundles = tmp_path / "bundles"
        proved = rda(
            "prove", "--data-dir", data, "--dataset", "radio_kpi.v1",
            "--where", "source_offset < 3", "--out", str(bundles), "--json", state=state,
        )  # fmt: skip
        assert proved.returncode == 0, proved.stderr
        assert json.loads(proved.stdout)["anchored"] is True
        check = rda(
            "verify", "--bundle", str(bundles), "--publisher", str(pinned), "--json", state=state
        )
        verdicts = json.loads(check.stdout)["bundles"]
        assert check.returncode == 0 and verdicts
        # The row's device signature too: the fleet signs, `infra up` deployed a NodeRegistry,
        # `simulate` registered the nodes and the pinned identity names that registry.
        assert {tuple((c["check"], c["ok"]) for c in v["checks"][-2:]) for v in verdicts} == {
            (("anchor", True), ("device", True))
        }
        audit = rda("verify", "--data-dir", data, "--publisher", str(pinned), "--json", state=state)
        datasets = json.loads(audit.stdout)["datasets"]
        assert audit.returncode == 0, audit.stdout
        radio = next(d for d in datasets if d["dataset"] == "radio_kpi.v1")
        assert [c["check"] for c in radio["checks"]] == [
            "files", "root", "manifest", "shards", "signature", "identity", "anchor", "quality",
            "previous", "consistency", "anchored", "latest", "links",
        ]  # fmt: skip
        assert all(c["ok"] for c in radio["checks"]) and radio["verdict"] == "VERIFIED"
    finally:
        down = rda("infra", "down", "--json", state=state)
    assert json.loads(down.stdout)["stopped"] == {
        "broker": True, "anvil": True, "object_store": True
    }  # fmt: skip
