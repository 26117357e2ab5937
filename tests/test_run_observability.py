"""What an operator sees of a running ``rda run``: metrics, JSON log lines, ``rda status``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from run_helpers import start_run, wait_for

from infra.tools import free_port

pytestmark = pytest.mark.slow


def metrics(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def json_lines(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_metrics_json_logs_and_status_agree_with_what_was_produced(
    broker, topic, tmp_path, publish
):
    produced = publish(broker, topic, nodes=6, duration_s=15, bad_fraction=0.1)
    data, log, port = tmp_path / "data", tmp_path / "run.log", free_port()
    process = start_run(
        "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"g-{topic}",
        "--data-dir", str(data), "--chain", "embedded", "--max-batch-records", "50",
        "--interval", "600", "--lag-interval", "0.5", "--metrics-port", str(port),
        "--log-format", "json", "--quality", "queue", state=tmp_path / "state", log=log,
    )  # fmt: skip
    try:

        def all_read() -> bool:
            batches = [e for e in json_lines(log) if e.get("event") == "batch"]
            return sum(e["read"] for e in batches) == produced.messages

        lag = [("rda_consumer_lag", (("partition", str(p)), ("topic", topic))) for p in range(4)]
        wait_for(all_read, 180, "every record to be read")  # a backlog: batches back to back
        wait_for(lambda: [metrics(port).get(k) for k in lag] == [0] * 4, 30, "lag 0 at once")
        seen = metrics(port)
        # Drained, the next trigger is 10 minutes away: only the timer can show new records.
        waiting = publish(broker, topic, nodes=2, duration_s=5, seed=9).messages
        wait_for(lambda: sum(metrics(port)[k] for k in lag) == waiting, 30, "the new lag")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 0

    batches = [e for e in json_lines(log) if e.get("event") == "batch"]
    assert all(e["level"] == "info" and e["logger"] == "rda.run" for e in batches)
    published, quarantined = assert_metrics_match(seen, batches, topic, produced)
    # No batch ran for the second wave (the metrics were read before it was produced).
    assert seen[("rda_batches_total", (("topic", topic),))] == len(batches)
    report = status(broker.bootstrap, topic, data, tmp_path / "state")
    lag = report["lag"]["topics"][topic]
    assert lag["total"] == waiting and len(lag["partitions"]) == 4
    assert report["journal"]["totals"] == {
        "read": produced.messages,
        "published": published,
        "quarantined": quarantined,
        "suppressed": sum(e["suppressed"] for e in batches),
        "held": 0,  # no sessions: nothing waits for an event-time window
    }
    assert [b["state"] for b in report["journal"]["batches"]] == ["done"] * min(len(batches), 10)
    assert sum(c["tree_size"] for c in report["checkpoints"].values()) == published


def assert_metrics_match(seen: dict, batches: list[dict], topic: str, produced) -> tuple[int, int]:
    """Every counter agrees with the batch log lines; returns (published, quarantined)."""
    published = sum(e["published"] for e in batches)
    quarantined = sum(e["quarantined"] for e in batches)
    assert seen[("rda_records_read_total", (("topic", topic),))] == produced.messages
    assert seen[("rda_records_published_total", (("topic", topic),))] == published
    by_reason = [v for (name, _), v in seen.items() if name == "rda_records_quarantined_total"]
    assert sum(by_reason) == quarantined == sum(produced.defects.values())
    assert seen[("rda_batches_total", (("topic", topic),))] == len(batches)
    assert seen[("rda_records_lost_total", (("topic", topic),))] == 0  # nothing skipped
    assert seen[("rda_batch_duration_seconds_count", (("topic", topic),))] == len(batches)
    assert seen[("rda_last_batch_success_timestamp_seconds", (("topic", topic),))] > 0
    assert seen[("rda_unfinished_batches", (("topic", topic),))] == 0
    for step in ("plan", "land", "sequence", "dedup", "anchor", "offsets"):
        label = (("step", step), ("topic", topic))
        assert seen[("rda_batch_step_seconds_count", label)] == len(batches), step
    assert seen[("rda_anchor_gas_total", ())] > 0
    assert seen[("rda_anchor_latency_seconds_count", ())] == len(batches)  # one anchor call each
    for dataset in {c[0] for e in batches for c in e["checkpoints"]}:
        anchored = sum(1 for e in batches for c in e["checkpoints"] if c[0] == dataset)
        assert seen[("rda_checkpoints_anchored_total", (("dataset", dataset),))] == anchored
    return published, quarantined


def status(bootstrap: str, topic: str, data, state) -> dict:
    """``rda status --json`` as a separate process sees it."""
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--json", "--bootstrap", bootstrap,
         "--topic", topic, "--group", f"g-{topic}", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(state)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_of_a_directory_nothing_ran_in_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--data-dir", str(tmp_path / "none"),
         "--bootstrap", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "nothing has run in" in result.stderr and "Traceback" not in result.stderr


def test_a_topic_that_does_not_exist_yet_is_a_warning_and_nothing_is_read(broker, tmp_path):
    log = tmp_path / "run.log"
    process = start_run(
        "--once", "--json", "--bootstrap", broker.bootstrap, "--topic", "no-such-topic",
        "--data-dir", str(tmp_path / "data"), "--chain", "embedded", "--quality", "queue",
        state=tmp_path / "state", log=log,
    )  # fmt: skip
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()
    assert json.loads(stdout)["totals"]["batches"] == 0
    assert "topic no-such-topic does not exist (yet); nothing to read" in log.read_text()
