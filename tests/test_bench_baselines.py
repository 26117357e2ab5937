"""The benchmarks' baselines: bare consume loops, each in its own process (``peer_apps``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import data_assets
from benchmarks.process_cpu import TreeCpu
from benchmarks.timing import file_create_us, raw_loop_seconds
from cli.commands import bench_summary
from cli.main import main
from simulator.fleet import generate
from simulator.producer import produce


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_raw_loop_reads_every_record_of_the_topic_in_its_own_process(broker, topic, client):
    produced = produce(broker.bootstrap, topic, generate(3, 20, 1.0, 1_764_000_000_000, 1))
    seconds = raw_loop_seconds(client, broker.bootstrap, topic, f"raw-{topic}", produced.messages)
    assert 0 < seconds < 300  # it read all of them: short of one, it fails at its deadline


def test_the_disk_probe_gives_a_cost_per_file_and_leaves_nothing_behind(tmp_path):
    cost = file_create_us(tmp_path, files=20)
    assert cost > 0
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_benchmark_is_named_in_one_line_with_those_there_are(capsys):
    assert main(["bench", "--only", "decode"]) != 0
    error = capsys.readouterr().err
    assert "no benchmark decode: --only takes one of aging," in error
    assert "Traceback" not in error


def test_every_benchmark_line_is_printed_even_of_a_result_without_a_summary():
    """`rda bench` printed each result's summary at the end of the run: one without (the
    data-assets bench's) threw away 18 minutes of figures with a KeyError."""
    assert bench_summary({"name": "a", "summary": "1 row/s"}) == "1 row/s"
    assert bench_summary({"name": "a", "gas": {"mint": 7}}) == '{"gas": {"mint": 7}}'


def test_the_data_assets_bench_says_its_figures_in_a_line():
    gas = {"anchor_checkpoint (baseline)": 100_000, "mint": 150_000}
    assert data_assets._summary(gas, [0.4, 0.6, 1.2], 3, 1.0) == (
        "gas against an anchor's 100,000 on anvil: mint 150,000 (1.50x); a purchase's "
        "entitlement reached the pipeline in median 0.60 s, at most 1.20 s (0.24x the 5 s "
        "trigger; goal ≤ 1), 3 purchases synced every 1 s"
    )


def test_a_process_peak_rss_is_its_own_not_its_parent_s_at_the_fork():
    """``rda bench`` reported 732 MB for ``rda run --once`` (466 MB alone): ``ru_maxrss`` of a
    child counts the resident set of the large process it was forked from."""
    ballast = bytearray(300 * 2**20)
    for page in range(0, len(ballast), 4096):
        ballast[page] = 1
    grows = "b = bytearray(64 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    child = subprocess.Popen([sys.executable, "-c", grows + "import time; time.sleep(0.5)"])
    sampled = TreeCpu(child.pid).start()
    child.wait()
    sampled.stop()
    assert 64 < sampled.peak_rss_mb() < 200
    del ballast
