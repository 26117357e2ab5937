"""Every hostile kind through the real broker, in one topic between valid records, under a real
``rda run`` that never stops: each hostile record is quarantined once with a readable reason,
every valid record is published (or suppressed), the counts reconcile — and the record that
kills the worker (test hook ``RDA_CRASH_ON_RECORD``) is bisected out as ``crashed_worker``, named
in a log line and counted in the metrics, while the run goes on.
"""

from __future__ import annotations

import json
import signal

import duckdb
import pyarrow.parquet as pq
import pytest
from hostile_records import (
    BRACKETS_IN_A_STRING,
    CRASH_MARKER,
    CRASHER,
    KINDS,
    LONG_DIGITS_IN_A_FLOAT,
    NDT7_WITHOUT_A_HEADER,
    NODE,
    RIPE,
)
from kafka import KafkaProducer
from run_helpers import start_run, wait_for
from test_hostile_kinds import readable
from test_run_observability import json_lines, metrics

from infra.tools import free_port
from simulator.fleet import generate
from simulator.producer import ensure_topic
from sinks.layout import DataLayout

pytestmark = pytest.mark.slow
AGGREGATE = "session_counts_dp.v1"  # counts over sessions, suppressed ones included: no record
START_MS = 1_764_000_000_000
OWN_NETWORK_TRACE = {  # a traceroute from 198.51.100.7 to a host of its own /24: generalized
    "fw": 4790, "type": "traceroute", "af": 4, "proto": "UDP", "from": "198.51.100.7",
    "dst_addr": "198.51.100.42", "dst_name": "nas.home.example", "prb_id": 7001,
    "msm_id": 9001, "timestamp": START_MS // 1000,
    "result": [{"hop": 1, "result": [{"from": "198.51.100.42", "rtt": 0.4, "ttl": 64}]}],
}  # fmt: skip
RIPE_PING = {  # a current-firmware ping, sent without a header: sniffed
    "fw": 5080, "type": "ping", "af": 4, "dst_name": "k.root-servers.net", "proto": "ICMP",
    "sent": 3, "rcvd": 3, "avg": 10.0, "min": 9.0, "max": 11.0, "msm_id": 1001,
    "prb_id": 6001, "timestamp": START_MS // 1000, "result": [{"rtt": 9.0}, {"rtt": 11.0}],
}  # fmt: skip


def valid_records() -> list[tuple[str | None, bytes, bytes]]:
    """(header, key, value) of records that must all be published (or suppressed)."""
    fleet = generate(4, 10, 1.0, START_MS, 11, 0.0, sessions=True)
    records = [(m.wire_format, m.key, m.value) for m in fleet]
    records += [(NODE, b"edge", BRACKETS_IN_A_STRING), (NODE, b"edge", LONG_DIGITS_IN_A_FLOAT)]
    records += [(None, b"ripe", json.dumps(RIPE_PING).encode())]
    records += [(RIPE, b"ripe", json.dumps(OWN_NETWORK_TRACE).encode())]
    records += [(None, b"ndt7", NDT7_WITHOUT_A_HEADER)]  # an M-Lab result, sniffed
    return records


def send(bootstrap: str, topic: str, hostile: list, valid: list) -> tuple[dict, set]:
    """Hostile records between valid ones, round-robin over 4 partitions; where each landed."""
    ensure_topic(bootstrap, topic, 4)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 << 20)
    step = max(1, len(valid) // len(hostile))
    where_hostile, where_valid = {}, set()
    for i, kind in enumerate(hostile):
        for header, key, value in valid[i * step : (i + 1) * step]:
            where_valid.add(_send(producer, topic, i % 4, header, key, value))
        where_hostile[_send(producer, topic, i % 4, kind.header, b"hostile", kind.value)] = kind
    for j, (header, key, value) in enumerate(valid[len(hostile) * step :]):
        where_valid.add(_send(producer, topic, j % 4, header, key, value))
    producer.flush()
    producer.close()
    return where_hostile, where_valid


def _send(producer, topic, partition, header, key, value) -> tuple[int, int]:
    headers = [("rda-format", header.encode())] if header is not None else []
    sent = producer.send(topic, key=key, value=value, headers=headers, partition=partition)
    metadata = sent.get(timeout=30)
    return metadata.partition, metadata.offset


def landed(data) -> tuple[dict, set, set]:
    """(quarantined (partition, offset) -> rows, published positions, suppressed positions)."""
    layout = DataLayout(data)
    db = duckdb.connect(str(layout.catalog), read_only=True)
    try:
        files = [
            p for (p,) in db.execute("SELECT path FROM files").fetchall() if AGGREGATE not in p
        ]
        quarantine = [p for (p,) in db.execute("SELECT path FROM quarantine_files").fetchall()]
    finally:
        db.close()
    quarantined: dict = {}
    for path in quarantine:
        for row in pq.read_table(layout.root / path).to_pylist():
            quarantined.setdefault((row["partition"], row["offset"]), []).append(row)
    published = set()
    for path in files:
        table = pq.read_table(layout.root / path, columns=["source_partition", "source_offset"])
        published |= set(zip(*(c.to_pylist() for c in table.columns), strict=True))
    suppressed = set()
    for path in (layout.private / "suppressed").rglob("*.parquet"):
        table = pq.read_table(path, columns=["partition", "offset"])
        suppressed |= set(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return quarantined, published, suppressed


def test_every_hostile_kind_is_quarantined_once_and_rda_run_never_stops(broker, topic, tmp_path):
    hostile = [*KINDS, CRASHER]
    where_hostile, where_valid = send(broker.bootstrap, topic, hostile, valid_records())
    produced = len(where_hostile) + len(where_valid)
    data, log, port = tmp_path / "data", tmp_path / "run.log", free_port()
    process = start_run(
        "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"g-{topic}",
        "--data-dir", str(data), "--chain", "embedded", "--interval", "0.2",
        "--crash-limit", "1", "--metrics-port", str(port), "--log-format", "json",
        "--quality", "queue",
        "--flush-windows",  # the whole input is there: sessions are not left waiting for 17:05
        state=tmp_path / "state", log=log, env={"RDA_CRASH_ON_RECORD": CRASH_MARKER},
    )  # fmt: skip
    try:

        def batches() -> list[dict]:
            return [e for e in json_lines(log) if e.get("event") == "batch"]

        wait_for(lambda: sum(b["read"] for b in batches()) == produced, 300, "every record")
        assert process.poll() is None  # rda run is still running
        seen = metrics(port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]

    quarantined, published, suppressed = landed(data)
    for position, kind in where_hostile.items():
        (row,) = quarantined[position]  # quarantined once
        assert (row["reason_code"], readable(row["reason"])) == (kind.code, True), kind.name
    assert set(quarantined) == set(where_hostile)
    assert where_valid == published | suppressed and not published & suppressed
    totals = [sum(b[k] for b in batches()) for k in ("published", "quarantined", "suppressed")]
    assert totals == [len(published), len(where_hostile), len(suppressed)]

    crash = next(p for p, k in where_hostile.items() if k is CRASHER)
    (line,) = [e for e in json_lines(log) if e.get("event") == "crashed_worker"]
    assert (line["partition"], line["offset"]) == crash and f"offset {crash[1]}" in line["message"]
    assert seen[("rda_worker_crashes_total", (("topic", topic),))] == 1
    reason = (("reason", "crashed_worker"), ("topic", topic))
    assert seen[("rda_records_quarantined_total", reason)] == 1
    traces = pq.read_table(next((DataLayout(data).published / "path_trace.v1").rglob("*.parquet")))
    assert traces.column("target").to_pylist() == ["198.51.100.0/24"]
