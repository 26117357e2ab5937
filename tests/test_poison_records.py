"""A record that kills the worker: the driver survives, bisects its batch and quarantines it.

The test hook ``RDA_CRASH_ON_RECORD`` makes the process decoding a record that holds the marker
SIGKILL itself, as a parser crashing on that record would. The batch is landed in a child
process, so the crash costs the child only; after ``crash_limit`` crashes the batch is bisected.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from pipelines.kafka_source import open_source
from simulator.fleet import generate
from simulator.messages import Message
from simulator.producer import produce
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal
from streaming.poison import bisect
from streaming.replay import replay

MARKER = "KILL-THE-WORKER-7731"
START_MS = 1_764_000_000_000


def marked(key: bytes) -> Message:
    value = (
        b'{"format":"rda.node.v1","kind":"node_heartbeat","node":"x","ts_ms":1764000000000,'
        b'"note":"' + MARKER.encode() + b'"}'
    )
    return Message(key=key, value=value, timestamp_ms=START_MS)


def test_a_record_that_kills_the_worker_is_quarantined_as_crashed_worker_and_the_rest_land(
    broker, topic, data_dir, chain, monkeypatch
):
    fleet = list(generate(3, 10, 1.0, START_MS, 5, 0.0))
    messages = [*fleet[:20], marked(fleet[0].key), *fleet[20:]]
    produce(broker.bootstrap, topic, messages)
    monkeypatch.setenv("RDA_CRASH_ON_RECORD", MARKER)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir, crash_limit=2)

    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor)

    assert summary.crashes == 2
    assert summary.reasons == {"crashed_worker": 1}
    assert summary.read == len(messages)
    assert summary.published + summary.suppressed == len(fleet)
    (path,) = (DataLayout(data_dir).private / "quarantine" / topic).glob("*.parquet")
    (record,) = pq.read_table(path).to_pylist()
    assert MARKER.encode() in record["value"]  # raw bytes kept, privately
    assert record["reason_code"] == "crashed_worker"
    assert "killed the worker process 2 times (killed by SIGKILL)" in record["reason"]
    with BatchJournal(DataLayout(data_dir).journal, read_only=True) as journal:
        (poison,) = journal.batch(summary.batch_id)["plan"]["poison"]
    assert (poison["partition"], poison["offset"]) == (record["partition"], record["offset"])


def test_bisect_finds_every_position_that_fails_alone():
    bad = {0, 7, 8, 19}
    found = bisect(0, 20, lambda a, b: not bad & set(range(a, b)))
    assert found == sorted(bad)
    assert bisect(0, 20, lambda a, b: True) == []


def test_replay_overrides_a_wrong_header_and_survives_a_record_that_kills_it(
    broker, topic, data_dir, chain, monkeypatch
):
    fleet = list(generate(2, 5, 1.0, START_MS, 6, 0.0))
    fixed, poisoned = (
        Message(m.key, m.value, m.timestamp_ms, wire_format="gnmi.json")  # a wrong header
        for m in (fleet[0], marked(fleet[1].key))
    )
    produce(broker.bootstrap, topic, [fixed, poisoned, *fleet[1:]])
    source = open_source(broker.bootstrap)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    first = run_batch(config, source, chain.anchor)
    assert first.reasons == {"not_a_notification": 2}

    monkeypatch.setenv("RDA_CRASH_ON_RECORD", MARKER)
    summary = replay(data_dir, "rda.node.v1", chain.anchor, override=True, crash_limit=1)

    assert summary.published == 1
    assert summary.still_quarantined == {"crashed_worker": 1}
    with Catalog(DataLayout(data_dir)) as catalog:
        (left,) = catalog.quarantine.pending().to_pylist()
    assert MARKER.encode() in left["value"]

    shown = subprocess.run(
        [sys.executable, "-m", "cli.main", "quarantine", "show", "--json", "--data-dir",
         str(data_dir)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (record,) = json.loads(shown.stdout)["records"]
    assert (record["offset"], record["key"], record["format_header"]) == (
        left["offset"],
        left["key"].decode(),
        "gnmi.json",
    )
    assert (record["reason_code"], record["reason"]) == (
        "not_a_notification",
        "no update, delete or notification member",
    )  # its reason at first: replay changes nothing of a record it leaves in quarantine


def test_quarantine_show_gives_no_order_to_the_terminal_from_a_records_header(
    broker, topic, data_dir, chain
):
    header = "\x1b]0;PWNED\x07\x1b[2J\nhostile partition 0 offset 99  unknown_format: forged"
    record = Message(b"k", b"{}", START_MS, wire_format=header)
    produce(broker.bootstrap, topic, [record])
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    assert run_batch(config, open_source(broker.bootstrap), chain.anchor).quarantined == 1
    shown = subprocess.run(
        [sys.executable, "-m", "cli.main", "quarantine", "show", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "\\x1b]0;PWNED\\x07\\x1b[2J\\nhostile" in shown.stdout
    assert not any(line.startswith("hostile") for line in shown.stdout.splitlines())
