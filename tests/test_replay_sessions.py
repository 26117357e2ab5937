"""A replay releases sessions as a closed window does: nothing twice, no offset that dates one.

Found by the review of the offset concealment: a replay's duplicate check read the concealed
offsets of the rows it had just released and dropped nothing, so five duplicate sessions were
published a second time; and its files' manifest entries named the span of the replayed
sessions' real offsets.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from kafka import KafkaProducer
from session_rows import session_at

from pipelines.anonymize import PseudonymKey, concealed_offsets
from pipelines.kafka_source import open_source
from simulator.messages import Message
from simulator.producer import produce
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.replay import replay

START_MS = 1_764_000_000_000  # 2025-11-24 16:00 UTC
SESSIONS = "subscriber_session.v1"
KEY_HEX = "5e" * 32
CELL = 2_560_000


def five_subscribers() -> list[Message]:
    """Five subscribers' sessions in one cell and hour: a group of k = 5."""
    return [session_at(START_MS + i * 1000, CELL, f"2620100000000{i:02d}") for i in range(5)]


def published_sessions(data) -> list[tuple[str, dict, list[int]]]:
    """(file name, its manifest source, its rows' source offsets) of every session file."""
    found = []
    for manifest in sorted((data / "published" / SESSIONS).glob("shards/*/checkpoints/*.json")):
        if manifest.name.endswith(".sig.json"):
            continue
        for entry in json.loads(manifest.read_text()).get("files", []):
            path = data / "published" / SESSIONS / entry["path"]
            offsets = pq.read_table(path, columns=["source_offset"]).column(0).to_pylist()
            found.append((path.name, entry["source"], offsets))
    return found


def test_replayed_duplicate_sessions_stay_quarantined(broker, topic, tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_PSEUDONYM_KEY", KEY_HEX)
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)
    data = tmp_path / "data"
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data)
    later = START_MS + 3_960_000  # past the hour and its allowed lateness: the window closes
    closing = session_at(later, CELL + 1, "262010000000099")
    produce(broker.bootstrap, topic, [*five_subscribers(), closing], partitions=1)
    assert run_batch(config, source, chain.anchor).published == 5  # the window closed
    produce(broker.bootstrap, topic, five_subscribers(), partitions=1)  # a producer's retry
    assert run_batch(config, source, chain.anchor).reasons == {"duplicate": 5}

    summary = replay(data, None, chain.anchor, reason="duplicate")

    assert (summary.published, summary.still_quarantined) == (0, {"duplicate": 5})
    assert sum(len(offsets) for _, _, offsets in published_sessions(data)) == 5


def test_a_replayed_session_file_names_no_offset_of_its_sessions(
    broker, topic, tmp_path, monkeypatch
):
    monkeypatch.setenv("RDA_PSEUDONYM_KEY", KEY_HEX)
    chain = open_chain("embedded", None, None)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for message in five_subscribers():  # under a format header nothing decodes: quarantined
        producer.send(topic, key=message.key, value=message.value, partition=0,
                      headers=[("rda-format", b"vendor.sessions")])  # fmt: skip
    producer.flush()
    producer.close()
    data = tmp_path / "data"
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data)
    assert run_batch(config, open_source(broker.bootstrap), chain.anchor).reasons == {
        "unknown_format": 5
    }

    summary = replay(data, "rda.node.v1", chain.anchor, reason="unknown_format", override=True)

    assert summary.published == 5
    ((name, source, offsets),) = published_sessions(data)
    assert name.startswith("replay-") and (source["start"], source["end"]) == (0, 0)
    epoch = START_MS // 86_400_000
    expected = concealed_offsets(
        pa.array([0] * 5, pa.int32()),
        pa.array(range(5), pa.int64()),
        pa.array([epoch] * 5, pa.int64()),
        PseudonymKey(bytes.fromhex(KEY_HEX)),
    )
    assert offsets == sorted(expected.to_pylist())
