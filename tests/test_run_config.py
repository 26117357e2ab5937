"""``rda run`` settings: flags > RDA_* environment variables > the TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kafka_group import MIN_SESSION_TIMEOUT_MS, heartbeat_interval_ms
from streaming.config import RunSettings, TopicSettings, describe, load_settings
from streaming.errors import SettingsError
from streaming.schedule import MIN_PARTITION_SHARE

CONFIG = """
[run]
group = "from-file"
interval = 2.5
max_batch_records = 1000

[topics.node-telemetry]
format = "rda.node.v1"

[topics.ems]
format = "ems.csv"
max_chunk_records = 200
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rda.toml"
    path.write_text(CONFIG)
    return path


def test_without_file_env_or_flags_the_defaults_apply():
    assert load_settings({}, environ={}) == RunSettings()


def test_the_file_sets_globals_and_each_topic_table_overrides_them_for_its_topic(config):
    settings = load_settings({"config": config}, environ={})
    assert (settings.group, settings.interval) == ("from-file", 2.5)
    assert settings.topics == {
        "node-telemetry": TopicSettings("rda.node.v1", 1000, 50_000),
        "ems": TopicSettings("ems.csv", 1000, 200),
    }


def test_environment_variables_override_the_file_for_every_topic(config):
    env = {"RDA_CONFIG": str(config), "RDA_GROUP": "from-env", "RDA_MAX_CHUNK_RECORDS": "7"}
    settings = load_settings({}, environ=env)
    assert settings.group == "from-env"
    assert [t.max_chunk_records for t in settings.topics.values()] == [7, 7]


def test_flags_override_environment_variables(config):
    env = {"RDA_GROUP": "from-env", "RDA_INTERVAL": "9"}
    settings = load_settings({"config": config, "group": "from-flag"}, environ=env)
    assert (settings.group, settings.interval) == ("from-flag", 9.0)


def test_topics_come_from_flags_then_the_comma_separated_variable_then_the_file(config):
    file_only = load_settings({"config": config}, environ={})
    from_env = load_settings({"config": config}, environ={"RDA_TOPIC": "ems, extra"})
    from_flags = load_settings({"config": config, "topic": ["x", "x"]}, environ={})
    assert list(file_only.topics) == ["node-telemetry", "ems"]
    assert list(from_env.topics) == ["ems", "extra"]
    assert from_env.topics["extra"] == TopicSettings(max_batch_records=1000)
    assert list(from_flags.topics) == ["x"]


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[run]\ninterval = ", {}, "is not valid TOML"),
        ("[run]\nintervall = 3", {}, "unknown setting(s) intervall"),
        ("[topics.t]\ngroup = 'g'", {}, "[topics.t]: unknown setting(s) group"),
        ("[run]\ninterval = 'soon'", {}, "interval: expected float, got 'soon'"),
        ("", {"RDA_MAX_BATCH_RECORDS": "lots"}, "RDA_MAX_BATCH_RECORDS: expected int"),
        ("", {"RDA_RUNNER": "spark"}, "runner must be one of fnapi, dask, not 'spark'"),
        ("[run]\nmax_batch_records = 0", {}, "batch and chunk sizes must be positive"),
        ("", {"RDA_MIN_PARTITION_SHARE": "-1"}, "min partition share must be 0 or more"),
        ("", {"RDA_TOPIC": "../../published/x"}, "topic: '../../published/x' is not a Kafka"),
        ('[topics."a/b"]', {}, "topic: 'a/b' is not a Kafka topic name"),
        ("", {"RDA_QUALITY": "later"}, "quality must be one of worker, queue, not 'later'"),
        ("", {"RDA_GROUP_SESSION_TIMEOUT": "0.5"}, "session timeout must be at least 1 s"),
    ],
)
def test_a_bad_setting_is_one_clear_error_naming_where_it_came_from(tmp_path, text, env, message):
    path = tmp_path / "rda.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings({"config": path}, environ=env)
    assert message in str(error.value)


def test_a_topic_may_read_every_partition_in_every_batch(tmp_path):
    path = tmp_path / "rda.toml"
    path.write_text("[topics.latency]\nmin_partition_share = 0\n\n[topics.bulk]\n")
    settings = load_settings({"config": path}, environ={})
    assert settings.topics["latency"].min_partition_share == 0
    assert settings.topics["bulk"].min_partition_share == MIN_PARTITION_SHARE
    flagged = load_settings({"config": path, "min_partition_share": 4096}, environ={})
    assert {t.min_partition_share for t in flagged.topics.values()} == {4096}


def test_the_settings_reported_name_the_rpc_node_without_its_key():
    settings = load_settings({"rpc_url": "https://u:pw@node.example/v3/KEY"}, environ={})
    assert describe(settings)["rpc_url"] == "https://…@node.example/…"


def test_ge_runs_beside_the_run_unless_a_layer_says_to_leave_it_queued(tmp_path):
    path = tmp_path / "rda.toml"
    path.write_text('[run]\nquality = "queue"\n')
    assert load_settings({}, environ={}).quality == "worker"
    assert load_settings({"config": path}, environ={}).quality == "queue"
    assert load_settings({"config": path}, environ={"RDA_QUALITY": "worker"}).quality == "worker"
    assert load_settings({"quality": "queue"}, environ={"RDA_QUALITY": "worker"}).quality == "queue"


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match=r"config file .*nothing\.toml does not exist"):
        load_settings({"config": tmp_path / "nothing.toml"}, environ={})


def test_rda_run_reports_a_bad_config_file_in_one_line_with_its_table(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "rda.toml"
    path.write_text("[run]\nintervall = 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--config", str(path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"rda: error: {path} [run]: unknown setting(s) intervall"


@given(st.integers(min_value=MIN_SESSION_TIMEOUT_MS, max_value=600_000))
def test_every_session_timeout_allowed_leaves_time_for_two_heartbeats(session_ms):
    """A member whose heartbeats each take up to one interval still keeps its partitions."""
    interval = heartbeat_interval_ms(session_ms)
    assert interval >= 500 and session_ms >= 2 * interval


def test_the_default_session_heartbeats_every_sixth_of_it():
    assert heartbeat_interval_ms(10_000) == 1_666
