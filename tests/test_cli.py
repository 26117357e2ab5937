"""The ``rda`` command as a user runs it: real processes, JSON contracts, clear errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.tools import free_port
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.journal import BatchJournal


def rda(*args: str, state: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "RDA_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def demo(tmp_path: Path, *extra: str, ripe: bool = False) -> dict:
    """``rda demo --json`` on a small fleet, in its own state and data directory (the RIPE
    topic, a batch more, only where a test looks at it)."""
    result = rda(
        "demo",
        "--json",
        "--nodes",
        "12",
        "--duration",
        "60",
        "--data-dir",
        str(tmp_path / "demo"),
        "--ripe" if ripe else "--no-ripe",
        *extra,
        state=tmp_path / "state",
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr  # a quiet shutdown
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One demo on anvil with 10 % broken records and the RIPE topic, shared by the tests that
    read what a demo leaves. (The demo on the embedded chain, the default, builds the
    marketplace tests' data: ``market_support.demo_dir``.)"""
    root = tmp_path_factory.mktemp("demo")
    return root, demo(root, "--bad-fraction", "0.1", "--chain", "anvil", ripe=True)


@pytest.mark.anvil
@pytest.mark.slow
def test_demo_json_reports_reconciled_counts_anchored_checkpoints_and_a_verdict(demo_run):
    root, summary = demo_run
    assert summary["records_read"] == summary["records_produced"] > 0
    assert summary["records_read"] == (
        summary["records_published"]
        + summary["records_quarantined"]
        + summary["records_suppressed"]  # withheld for k-anonymity, kept privately
    )
    assert summary["records_held"] == 0  # the last wave closed every event-time window
    assert summary["data_dir"] == str(root / "demo")
    fleet = ["node_heartbeat.v1", "radio_kpi.v1", "link_kpi.v1", "speed_test.v2"]
    # Sessions wait for their hour to close, and their DP counts with them: the first wave
    # holds them, the last (the end of input) releases them. The RIPE pings: one batch.
    released = [*fleet, "subscriber_session.v1", "session_counts_dp.v1"]
    checkpointed = [c["dataset"] for c in summary["checkpoints"]]
    assert checkpointed == [*fleet, "link_kpi.v1", *released]
    latest: dict[str, int] = {}
    for checkpoint in summary["checkpoints"]:
        assert set(checkpoint) >= {"dataset", "tree_size", "root", "anchor_tx", "quality_score"}
        assert checkpoint["anchor_tx"].startswith("0x")
        latest[checkpoint["dataset"]] = max(
            latest.get(checkpoint["dataset"], 0), checkpoint["tree_size"]
        )
    rows = sum(size for dataset, size in latest.items() if dataset != "session_counts_dp.v1")
    assert rows == summary["records_published"]  # one row per published record
    reasons = summary["quarantine_reasons"]
    assert {reasons[r] for r in ("bad_signature", "unsigned", "unknown_node")} == {1}
    assert reasons["revoked_key"] > 0  # the node revoked three quarters of the way through
    assert summary["topics"]["ripe-atlas"]["quarantined"] == 0  # a source that cannot sign
    assert {p["device"]["ok"] for p in summary["proven_rows"]} == {True}
    assert summary["verified"] is True
    with BatchJournal(DataLayout(root / "demo").journal, read_only=True) as journal:
        plans = {b["topic"]: b["plan"] for b in journal.entries()}
    assert isinstance(plans["node-telemetry"]["node_registry_block"], int)  # what it checked
    assert "node_registry_block" not in plans["ripe-atlas"]  # a topic that does not sign


@pytest.mark.anvil
@pytest.mark.slow
def test_demo_with_ten_percent_bad_records_still_reconciles(demo_run):
    _, summary = demo_run
    assert summary["records_quarantined"] > 0
    assert summary["records_read"] == (
        summary["records_published"]
        + summary["records_quarantined"]
        + summary["records_suppressed"]
    )
    assert sum(summary["quarantine_reasons"].values()) == summary["records_quarantined"]
    assert summary["verified"] is True


@pytest.mark.anvil
@pytest.mark.slow
def test_demo_stops_the_broker_it_started(demo_run):
    root, _ = demo_run
    assert not (root / "state" / "demo" / "broker.pid").exists()


@pytest.mark.slow
def test_infra_up_status_down_round_trip(tmp_path):
    state = tmp_path / "state"
    port = str(free_port())
    up = rda("infra", "up", "--port", port, "--json", state=state)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(rda("infra", "status", "--json", state=state).stdout)
        assert status["kafka_bootstrap"] == f"127.0.0.1:{port}"
        assert status["kafka_up"] is True
        assert status["chain"]["kind"] == "embedded"
        again = rda("infra", "up", "--port", port, state=state)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        down = rda("infra", "down", "--json", state=state)
    assert json.loads(down.stdout)["stopped"]["broker"] is True
    status = json.loads(rda("infra", "status", "--json", state=state).stdout)
    assert status["kafka_up"] is False


@pytest.mark.slow
def test_simulate_run_verify_through_the_cli(tmp_path, broker, topic):
    state, data = tmp_path / "state", str(tmp_path / "data")
    sim = rda(
        "simulate",
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
        "--nodes",
        "5",
        "--duration",
        "20",
        "--seed",
        "3",
        "--json",
        state=state,
    )
    assert sim.returncode == 0, sim.stderr
    produced = json.loads(sim.stdout)["messages"]
    run = rda(
        "run",
        "--once",
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
        "--data-dir",
        data,
        "--json",
        state=state,
    )
    assert run.returncode == 0, run.stderr
    batches = json.loads(run.stdout)["batches"]
    assert sum(b["records_read"] for b in batches) == produced
    check = rda("verify", "--data-dir", data, "--json", state=state)
    verdict = json.loads(check.stdout)
    # the embedded chain died with `rda run`: every row checks out, the anchors cannot be read
    assert check.returncode == 3 and verdict["verdict"] == "INCOMPLETE"
    assert verdict["datasets"][0]["first_failure"] is None
    anchor = next(c for c in verdict["datasets"][0]["checks"] if c["check"] == "anchor")
    assert anchor["ok"] is None  # said, not hidden


def test_run_once_exits_when_caught_up_without_waiting_for_the_trigger(tmp_path, broker, topic):
    """--once looks again at once for what came meanwhile: --interval paces only the stream."""
    produced = produce(broker.bootstrap, topic, generate(2, 10, 1.0, 1_764_000_000_000, 1))
    started = time.monotonic()
    run = rda(
        "run", "--once", "--interval", "600", "--bootstrap", broker.bootstrap, "--topic", topic,
        "--data-dir", str(tmp_path / "data"), "--chain", "embedded", "--json", "--quality", "queue",
        state=tmp_path / "state", timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["totals"]["read"] == produced.messages
    assert time.monotonic() - started < 120  # a wait for the trigger would have been 600 s


def test_run_without_a_broker_is_a_clear_error_not_a_traceback(tmp_path):
    result = rda("run", "--once", state=tmp_path / "state")
    assert result.returncode == 2
    assert "no Kafka broker: run `rda infra up` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_of_a_missing_data_dir_is_a_clear_error(tmp_path):
    result = rda("verify", "--data-dir", str(tmp_path / "nothing"), state=tmp_path / "state")
    assert result.returncode == 2
    assert "does not exist: nothing to verify" in result.stderr


def test_demo_refuses_an_impossible_bad_fraction(tmp_path):
    result = rda("demo", "--bad-fraction", "1.5", state=tmp_path / "state")
    assert result.returncode == 2
    assert "--bad-fraction must be between 0 and 1" in result.stderr


@pytest.mark.anvil
@pytest.mark.slow
def test_demo_on_anvil_verifies_against_the_real_node(demo_run):
    _, summary = demo_run
    assert summary["chain"]["kind"] == "anvil"
    assert summary["verified"] is True


def test_schemas_list_names_every_version_and_the_adapters_feeding_it(tmp_path):
    result = rda("schemas", "list", "--json", state=tmp_path)
    listed = json.loads(result.stdout)
    schemas = {s["dataset"]: s for s in listed["schemas"]}
    assert "radio_kpi.v1" in schemas and "link_kpi.v1" in schemas
    old, new = schemas["speed_test.v1"], schemas["speed_test.v2"]
    assert (old["version"], old["superseded_by"], old["adapters"]) == ("1.0", "speed_test.v2", [])
    assert (new["version"], new["current"]) == ("2.1", True)  # 2.1: device signatures
    assert {"rda.node.v1", "mlab.ndt7"} <= set(new["adapters"])
    ndt7 = next(a for a in listed["adapters"] if a["wire_format"] == "mlab.ndt7")
    assert ndt7 == {
        "wire_format": "mlab.ndt7", "origin": "built-in", "datasets": ["speed_test.v2"],
        "sniffed": True,
    }  # fmt: skip


def test_schemas_show_takes_a_versioned_name(tmp_path):
    result = rda("schemas", "show", "speed_test.v1", "--json", state=tmp_path)
    shown = json.loads(result.stdout)
    assert (shown["dataset"], shown["version"]) == ("speed_test.v1", "1.0")


def test_schemas_show_of_an_unknown_schema_lists_the_known_ones(tmp_path):
    result = rda("schemas", "show", "nope", state=tmp_path)
    assert result.returncode == 2
    assert "unknown schema 'nope' (known: link_kpi" in result.stderr


@pytest.mark.anvil
@pytest.mark.slow
def test_quarantine_list_and_show_after_a_demo(demo_run, tmp_path):
    root, summary = demo_run
    data = str(root / "demo")
    listed = json.loads(
        rda("quarantine", "list", "--data-dir", data, "--json", state=tmp_path).stdout
    )
    assert listed["total"] == summary["records_quarantined"]
    by_reason = {r["reason_code"]: r["records"] for r in listed["by_reason"]}
    assert by_reason == summary["quarantine_reasons"]
    shown = rda(
        "quarantine",
        "show",
        "--data-dir",
        data,
        "--reason",
        "invalid_utf8",
        "--limit",
        "2",
        "--json",
        state=tmp_path,
    )
    records = json.loads(shown.stdout)["records"]
    assert len(records) == 2 and {r["reason_code"] for r in records} == {"invalid_utf8"}


def test_quarantine_commands_on_an_empty_data_dir_are_a_clear_error(tmp_path):
    result = rda("quarantine", "list", "--data-dir", str(tmp_path / "none"), state=tmp_path)
    assert result.returncode == 2
    assert "nothing has been landed there" in result.stderr


def test_the_projects_warnings_are_shown_and_its_libraries_chatter_is_not():
    from cli.main import configure_warnings

    root, project = logging.getLogger(), logging.getLogger("rda")
    levels = root.level, project.level
    try:
        configure_warnings()
        assert logging.getLogger("rda.catalog").isEnabledFor(logging.WARNING)
        assert logging.getLogger("rda.kafka").isEnabledFor(logging.WARNING)
        assert not root.isEnabledFor(logging.WARNING)  # Beam warns on the root logger itself
        assert not logging.getLogger("apache_beam.io").isEnabledFor(logging.WARNING)
        assert not logging.getLogger("kafka.conn").isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(levels[0])
        project.setLevel(levels[1])
