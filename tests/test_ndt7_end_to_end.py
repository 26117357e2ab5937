"""M-Lab NDT7 results and an installed adapter's iperf3 results through the real broker and a
real ``rda run``: published values equal what the JSON says, computed here by hand; no client
address, port or token in any published byte, the catalog, the log or the Data Docs; and the
example adapter package is installed into the venv, discovered, used, and uninstalled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from kafka import KafkaProducer
from test_leak import catalog_texts, leaks, texts_of

from schemas import adapters
from simulator import ndt7
from simulator.producer import ensure_topic
from sinks.layout import DataLayout

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "rda-iperf3"
SAMPLES = ROOT.parent / "shared" / "samples" / "mlab-ndt7"
START_MS = 1_764_000_000_000


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def rda(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "RDA_STATE_DIR": str(state)},
    )  # fmt: skip


def listed_formats(state: Path) -> dict[str, str]:
    listed = json.loads(rda("schemas", "list", "--json", state=state).stdout)
    return {a["wire_format"]: a["origin"] for a in listed["adapters"]}


@pytest.fixture
def example_installed():
    """The example package, installed into this venv as its guide says, removed after."""
    pip("uninstall", "-y", "rda-iperf3")  # left by a run that was killed
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE))
    try:
        yield
    finally:
        pip("uninstall", "-y", "rda-iperf3")
        adapters.refresh()


def records() -> list[tuple[str | None, bytes]]:
    """(rda-format header, value): the real sample and written NDT7 results of every server
    generation (some without a header: sniffed), and iperf3 results for the installed adapter."""
    found = [(None, path.read_bytes()) for path in sorted(SAMPLES.glob("*.json"))]
    for number, message in enumerate(ndt7.messages(6, START_MS, 9)):
        found.append((None if number % 2 else ndt7.WIRE_FORMAT, message.value))
    sys.path.insert(0, str(EXAMPLE / "src"))
    try:
        from rda_iperf3.samples import iperf3_result
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    found.append(("iperf3.json", iperf3_result(reverse=1)))
    upload = iperf3_result(reverse=0, pretty=True, cookie="u0ploadc00kie")  # sniffed, slow path
    found.append((None, upload))
    return found


def expected(document: dict) -> dict:
    """The speed_test values of one NDT7 result, computed by hand from its JSON."""
    direction = "Download" if "Download" in document else "Upload"
    test = document[direction]
    server = [m for m in test["ServerMeasurements"] if "TCPInfo" in m]
    if server:
        tcp = server[-1]["TCPInfo"]
        counter = tcp["BytesAcked"] if direction == "Download" else tcp["BytesReceived"]
        mbps, rtt = counter * 8 / tcp["ElapsedTime"], tcp["MinRTT"] / 1000
    else:  # 2019 servers: the client's application bytes, the BBR minimum RTT in ms
        app = test["ClientMeasurements"][-1]
        mbps = app["app_info"]["num_bytes"] * 8 / app["elapsed"] / 1e6
        rtt = test["ServerMeasurements"][-1]["bbr_info"]["min_rtt"]
    return {
        "test_id": test["UUID"].replace("_unsafe", ""),
        "download_mbps" if direction == "Download" else "upload_mbps": mbps,
        "latency_ms": rtt,
        "server": document["ServerIP"],
        "source_version": document["Version"],
    }


def secrets_of(document: dict) -> set[str]:
    """What names an NDT7 client: its address, address:port, network, tokens."""
    address, port = document["ClientIP"], document["ClientPort"]
    found = {address, f"{address}:{port}", f"[{address}]:{port}"}
    found.add(".".join(address.split(".")[:3]) + ".0/24" if "." in address else address[:12])
    test = document.get("Download") or document.get("Upload")
    metadata = test.get("ClientMetadata") or []
    found |= {e["Value"] for e in metadata if e["Name"] == "access_token"}
    found |= {e["Value"].split(".")[-1] for e in metadata if e["Name"] == "access_token"}
    return found


def test_ndt7_and_an_installed_adapter_through_the_broker_and_rda_run(
    broker, topic, tmp_path, example_installed
):
    state = tmp_path / "state"
    assert listed_formats(state)["iperf3.json"] == "rda-iperf3 0.1.0"  # discovered
    sent = records()
    ensure_topic(broker.bootstrap, topic, 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for number, (header, value) in enumerate(sent):
        headers = [("rda-format", header.encode())] if header else []
        producer.send(topic, key=b"k%d" % number, value=value, headers=headers)
    producer.flush()
    producer.close()

    data = tmp_path / "data"
    run = rda(
        "run", "--once", "--json", "--bootstrap", broker.bootstrap, "--topic", topic,
        "--group", f"g-{topic}", "--data-dir", str(data), "--chain", "embedded", state=state,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    totals = json.loads(run.stdout)["totals"]
    assert (totals["read"], totals["published"]) == (len(sent), len(sent)), totals
    db = duckdb.connect(str(DataLayout(data).catalog), read_only=True)
    try:
        rows = {r[0]: r for r in db.execute("SELECT test_id, * FROM speed_test_v2").fetchall()}
        names = [d[0] for d in db.description][1:]
    finally:
        db.close()
    published = {key: dict(zip(names, row[1:], strict=True)) for key, row in rows.items()}
    documents = [json.loads(v) for h, v in sent if h != "iperf3.json" and b"test_start" not in v]
    assert len(published) == len(documents) + 2  # every NDT7 result and both iperf3 results
    for document in documents:
        want = expected(document)
        got = published[want["test_id"]]
        assert {k: got[k] for k in want} == want
        assert (got["source"], got["node_id"], len(got["client_network"])) == (
            "mlab.ndt7",
            None,
            32,
        )
    iperf = [row for row in published.values() if row["source"] == "iperf3"]
    assert {(r["download_mbps"], r["upload_mbps"]) for r in iperf} == {
        (93.625498, None), (None, 93.625498)
    }  # fmt: skip

    secrets = set().union(*(secrets_of(d) for d in documents)) | {"192.0.2.77"}  # iperf3 client
    layout = DataLayout(data)
    files = [p for p in layout.published.rglob("*") if p.is_file()]
    assert {".parquet", ".json", ".html"} <= {p.suffix for p in files}  # data, manifests, docs
    texts = [t for path in files for t in texts_of(path)] + catalog_texts(layout.catalog)
    texts += [run.stdout, run.stderr]
    assert leaks(secrets, texts) == set()

    pip("uninstall", "-y", "rda-iperf3")
    assert "iperf3.json" not in listed_formats(state)  # gone with its package
