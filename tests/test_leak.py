"""Nothing leaks: no raw subscriber identifier in any published byte, k-anonymity everywhere.

A fleet with subscriber sessions (and defects of every kind) goes through the real broker, Beam,
Parquet, DuckDB and the in-process EVM. Then every published file — Parquet (decoded as well as
raw, since its pages are compressed), the DuckDB catalog, manifests, quality reports, Data Docs —
and the log at INFO are searched for every IMSI, MSISDN, IMEI, MAC and IP address of the input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kafka_source import open_source
from proofs.verify import verify_dataset
from schemas.service import SUBSCRIBER_SESSION_V1
from simulator.fleet import generate
from simulator.messages import Message, encode_report
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.quality_pool import drain

START_MS = 1_764_000_000_000
SESSIONS = "subscriber_session.v1"


def raw_identifiers(messages) -> set[str]:
    found = set()
    for message in messages:
        try:
            report = json.loads(message.value)
        except ValueError:
            continue
        if report.get("kind") == "subscriber_session":
            found.update(v for v in report["subscriber"].values() if v)
            found.add(report["session"]["ue_ip"])
    return found


def texts_of(path: Path) -> list[str]:
    """What a file holds, as searchable text: its bytes, and decoded values for Parquet."""
    data = path.read_bytes()
    texts = [data.decode("latin-1")]
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        texts.append(json.dumps(table.to_pylist(), default=str))
        texts.append(str(table.schema))
    return texts


def catalog_texts(catalog: Path) -> list[str]:
    """The catalog's bytes and every base table's rows (views over private files excluded)."""
    texts = [catalog.read_bytes().decode("latin-1")]
    db = duckdb.connect(str(catalog), read_only=True)
    try:
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        for (name,) in tables:
            texts.append(json.dumps(db.execute(f'SELECT * FROM "{name}"').fetchall(), default=str))
    finally:
        db.close()
    return texts


def leaks(identifiers: set[str], texts: list[str]) -> set[str]:
    """The identifiers that occur in some text: ``{v for v in identifiers if any(v in t …)}``,
    in one pass over each text (1,574 identifiers in 38 MB: 19 s searched one by one, 1.6 s).

    At every position, a regex shaped as the identifiers' trie matches the longest identifier
    that starts there; any other that starts there is one of its prefixes."""
    if not identifiers:
        return set()
    longest_at = re.compile("(?=(" + _trie_pattern(identifiers) + "))")
    lengths = {len(value) for value in identifiers}
    found = set()
    for text in texts:
        for match in longest_at.finditer(text):
            longest = match.group(1)
            found.update(longest[:n] for n in lengths if longest[:n] in identifiers)
    return found


def _trie_pattern(words: set[str]) -> str:
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def pattern(node: dict) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in node.items() if char]
        if not branches:
            return ""
        either = "(?:" + "|".join(branches) + ")"
        return either + "?" if "" in node else either  # greedy: the longer word first

    return pattern(root)


@pytest.fixture(scope="module")
def landed(broker, tmp_path_factory):
    """Two batches of a fleet with sessions and defects, landed and anchored; logs at INFO."""
    data_dir = tmp_path_factory.mktemp("leak") / "data"
    topic = "leak-telemetry"
    chain = open_chain("embedded", None, None)
    source = open_source(broker.bootstrap)
    config = RunConfig(broker.bootstrap, topic, "leak-group", data_dir, max_chunk_records=800)
    handler = _Capture()
    logging.getLogger().addHandler(handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    messages, summaries = [], []
    try:
        for wave in range(2):
            wave_messages = list(
                generate(
                    12,
                    90,
                    1,
                    START_MS + wave * 90_000,
                    3,
                    0.03,
                    sessions=True,
                    quality_fraction=0.02,
                )
            )
            wave_messages += identifiers_in_public_text(wave_messages) if wave == 0 else []
            produce(broker.bootstrap, topic, wave_messages)
            messages.extend(wave_messages)
            # The second wave is the end of input: its batch closes every event-time window.
            last = replace(config, flush_windows=wave == 1)
            summaries.append(run_batch(last, source, chain.anchor, handler.progress))
        drain(DataLayout(data_dir))  # Great Expectations' reports and docs, after the anchors
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(previous_level)
    return data_dir, messages, summaries, handler.lines, chain


def identifiers_in_public_text(messages: list[Message]) -> list[Message]:
    """Reports whose public text carries a subscriber's identifier from the sessions beside
    them (the red team's): a firmware string, a speed test's server, an (unsigned) node's id."""
    reports = [r for r in map(_report, messages) if isinstance(r, dict)]
    sessions = [r for r in reports if r.get("kind") == "subscriber_session"]
    first = {kind: next(r for r in reports if r.get("kind") == kind) for kind in KINDS_WITH_TEXT}
    imsi, imei = sessions[0]["subscriber"]["imsi"], sessions[1]["subscriber"]["imei"]
    msisdn = sessions[2]["subscriber"]["msisdn"]  # 14 digits in this fleet
    first["node_heartbeat"]["fw"] = f"2.4.1-{imsi}"
    first["speed_test"]["speed"]["server"] = f"{imei}.speedtest.example"
    first["radio_kpi"]["node"] = msisdn
    for report in first.values():
        report["ts_ms"] += 1  # not a duplicate of the report it was made from
    return [
        Message(r["node"].encode(), encode_report(r), r["ts_ms"], defect="identifier_in_text")
        for r in first.values()
    ]


KINDS_WITH_TEXT = ("node_heartbeat", "speed_test", "radio_kpi")


def _report(message: Message) -> object:
    try:
        return json.loads(message.value)
    except ValueError:  # the fleet's defects
        return None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def progress(self, message: str) -> None:
        self.lines.append(message)


def test_no_raw_identifier_appears_in_any_published_byte_or_log_line(landed):
    data_dir, messages, summaries, log_lines, _ = landed
    identifiers = raw_identifiers(messages)
    assert len(identifiers) > 300  # IMSIs, MSISDNs, IMEIs, MACs and addresses of the input
    layout = DataLayout(data_dir)
    published_files = [p for p in layout.published.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in published_files}
    assert {".parquet", ".json", ".html", ".leaves"} <= kinds  # data, manifests, docs, leaves
    texts = [t for path in published_files for t in texts_of(path)]
    texts += catalog_texts(layout.catalog)
    texts += ["\n".join(log_lines), json.dumps([s.as_dict() for s in summaries], default=str)]
    assert leaks(identifiers, texts) == set()


def test_a_subscriber_identifier_in_public_text_is_quarantined_with_its_field_named(landed):
    """Public text is published as sent: an IMSI in a firmware string, an IMEI in a server
    name, an MSISDN as a node's id would have been, each under its own node's name."""
    _, messages, summaries, *_ = landed
    planted = [m for m in messages if m.defect == "identifier_in_text"]
    assert len(planted) == len(KINDS_WITH_TEXT)
    assert summaries[0].reasons["identifier_in_text"] == len(planted)
    assert "identifier_in_text" not in summaries[1].reasons


def test_the_scan_does_find_identifiers_in_a_compressed_parquet_file(landed, tmp_path):
    """The scanner's own check: unanonymized rows written like published ones are caught."""
    _, messages, *_ = landed
    identifiers = raw_identifiers(messages)
    imsi = next(i for i in identifiers if len(i) == 15 and i.startswith("262"))
    row = {"imsi": imsi, "node_id": "an-0000", "cell_id": 1, "source_topic": "t"}
    row |= {"source_partition": 0, "source_offset": 0}
    row |= {"session_start": 0, "ingest_time": 0}
    table = pa.Table.from_pylist(
        [row], schema=pa.schema([SUBSCRIBER_SESSION_V1.arrow_schema().field(name) for name in row])
    )
    path = tmp_path / "canonical.parquet"
    pq.write_table(table, path, compression="zstd")
    assert leaks(identifiers, texts_of(path)) == {imsi}


@given(
    identifiers=st.sets(st.text(alphabet="ab:1", min_size=1, max_size=5), max_size=8),
    texts=st.lists(st.text(alphabet="ab:1x", max_size=30), max_size=4),
)
def test_the_scan_finds_exactly_the_identifiers_a_substring_search_finds(identifiers, texts):
    # A small alphabet: identifiers that are prefixes of, inside or overlapping one another.
    expected = {value for value in identifiers if any(value in text for text in texts)}
    assert leaks(identifiers, texts) == expected


def test_every_published_session_group_has_at_least_k_members(landed):
    data_dir, *_ = landed
    db = duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True)
    smallest, groups = db.execute(
        "SELECT min(n), count(*) FROM (SELECT count(*) AS n FROM subscriber_session_v1 "
        "GROUP BY cell_id, session_start, session_end)"
    ).fetchone()
    assert groups > 10 and smallest >= 5


def test_counts_reconcile_with_suppressed_records_kept_privately(landed):
    data_dir, messages, summaries, *_ = landed
    layout = DataLayout(data_dir)
    read = sum(s.read for s in summaries)
    assert read == len(messages)
    assert read == sum(s.published + s.quarantined + s.suppressed + s.held for s in summaries)
    assert summaries[0].held > 0 and summaries[-1].held_total == 0  # held, then all released
    suppressed_files = list((layout.private / "suppressed").rglob("*.parquet"))
    stored = sum(pq.read_metadata(p).num_rows for p in suppressed_files)
    assert stored == sum(s.suppressed for s in summaries) > 0
    codes = {
        c for p in suppressed_files for c in pq.read_table(p).column("reason_code").to_pylist()
    }
    assert codes == {"k_anonymity"}


def test_no_published_document_says_how_many_records_k_anonymity_withheld(landed):
    """An exact count per partition and checkpoint says someone had a rare session there and
    then (review of stop 70); the counts are the publisher's alone."""
    data_dir, _, summaries, *_ = landed
    assert sum(s.suppressed for s in summaries) > 0

    def keys(value) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        return {k for v in value for k in keys(v)} if isinstance(value, list) else set()

    documents = sorted((data_dir / "published").rglob("*.json"))
    assert documents
    for path in documents:
        assert "suppressed" not in keys(json.loads(path.read_text())), path


def test_session_checkpoints_record_the_key_id_and_epochs_and_verify(landed):
    data_dir, _, summaries, _, chain = landed
    (checkpoint,) = [c for c in summaries[-1].checkpoints if c["dataset"] == SESSIONS]
    manifest = json.loads((data_dir / checkpoint["manifest_path"]).read_text())
    pseudonyms = manifest["privacy"]["pseudonyms"]
    key_file = DataLayout(data_dir).private / "keys" / "pseudonym.key"
    assert len(pseudonyms["key_id"]) == 16
    assert key_file.read_text().strip() not in json.dumps(manifest)
    assert pseudonyms["epochs"] == [START_MS // 1000 // 86_400]
    assert manifest["privacy"]["k_anonymity"]["k"] == 5
    quality = manifest["quality"]
    assert 0 <= quality["score"] <= 100
    report = data_dir / "published" / SESSIONS / quality["report_path"]
    attestation = json.loads(
        (data_dir / "published" / SESSIONS / quality["attestation_path"]).read_text()
    )
    assert (
        hashlib.sha256(report.read_bytes()).hexdigest()
        == (attestation["statement"]["report_sha256"])
    )
    verdict = verify_dataset(data_dir / "published" / SESSIONS, trust=chain.trust_root(data_dir))
    assert verdict.ok and "quality" in [c.name for c in verdict.checks]


def test_the_noisy_session_counts_are_published_with_epsilon_in_their_manifest(landed):
    data_dir, _, summaries, _, chain = landed
    (checkpoint,) = [c for c in summaries[-1].checkpoints if c["dataset"] == "session_counts_dp.v1"]
    manifest = json.loads((data_dir / checkpoint["manifest_path"]).read_text())
    dp = manifest["privacy"]["differential_privacy"]
    assert (dp["epsilon"], dp["delta"]) == (1.0, 1e-6)
    assert dp["partition_selection"]["tau"] == pytest.approx(1 + math.log(5e5))
    # Released when their hours closed: 15:00 (sessions ending in the first second) and 16:00,
    # in each partition (each keeps its own windows and budget ledger: the bound adds up).
    partitions = len(manifest["shards"])
    assert dp["budget"]["max_epsilon_per_subscriber_per_epoch"] == 8.0
    assert dp["composition"]["windows_released"] == 2 * partitions
    assert dp["composition"]["max_epsilon_per_subscriber"] == 2.0 * partitions
    windows = {(w["window_start"], w["window_end"]) for w in manifest["quality"]["windows"]}
    assert windows == {
        ("2025-11-24T15:00:00Z", "2025-11-24T16:00:00Z"),
        ("2025-11-24T16:00:00Z", "2025-11-24T17:00:00Z"),
    }
    db = duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True)
    negative, rows = db.execute(
        "SELECT count(*) FILTER (WHERE noisy_subscribers < 0), count(*) FROM session_counts_dp_v1"
    ).fetchone()
    assert (negative, rows > 0) == (0, True)
    dataset_dir = data_dir / "published" / "session_counts_dp.v1"
    assert verify_dataset(dataset_dir, trust=chain.trust_root(data_dir)).ok
