"""``infra.json``: what ``rda infra up`` started, read back by every later command. Absent, it is
"nothing started"; there but not such a record, it is said in one line (a traceback, before)."""

from __future__ import annotations

import json

import pytest

from cli.main import main as rda
from infra.state import InfraState, InfraStateDamaged


def test_no_file_is_nothing_started(tmp_path):
    assert InfraState.load(tmp_path) == InfraState()


def test_what_is_saved_is_read_back(tmp_path):
    state = InfraState(kafka_bootstrap="127.0.0.1:9092", chain_kind="anvil", rpc_url="http://x")
    state.save(tmp_path)
    assert InfraState.load(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["infra.json"]  # no partial file left


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"kafka_bootstrap": "127.0.0.1:90', "cannot be read"),  # cut short
        (b"\xff\xfe", "cannot be read"),  # not UTF-8
        (b"[]", "is not what `rda infra up` saves"),
        (b'{"kafka": "127.0.0.1:9092"}', "is not what `rda infra up` saves"),  # unknown field
    ],
)
def test_a_damaged_file_is_refused_naming_it(tmp_path, content, why):
    (tmp_path / "infra.json").write_bytes(content)
    with pytest.raises(InfraStateDamaged, match=why) as refused:
        InfraState.load(tmp_path)
    assert str(tmp_path / "infra.json") in str(refused.value)
    assert "rda infra up" in str(refused.value)


def test_rda_says_a_damaged_file_in_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path))
    (tmp_path / "infra.json").write_text(json.dumps({"kafka_bootstrap": None})[:-1])
    assert rda(["infra", "status"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("rda: error:") and "infra.json cannot be read" in err
