"""The benchmarks' baselines: bare consume loops, each in its own process (``peer_apps``)."""

from __future__ import annotations

import pytest

from benchmarks.timing import file_create_us, raw_loop_seconds
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
