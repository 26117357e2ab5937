"""What is private stays its owner's on disk: ``private/`` is 0700 in every data and work
directory a run writes (keys, quarantine, held and withheld sessions hold raw identifiers),
copies of private objects are 0600 whatever the umask, and a topic name never leads a path out
of its folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.kafka_source import OffsetRange
from sinks.layout import DataLayout
from sinks.storage import Store
from streaming.keys import shared_keys
from streaming.store import workspace


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default: files 0644 and folders 0755 unless made otherwise."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_copied_to_a_separate_work_directory_are_their_owners_alone(tmp_path, loose_umask):
    space = workspace(tmp_path / "data", tmp_path / "work")
    shared_keys(space)
    for root in (tmp_path / "data", tmp_path / "work"):
        assert mode(root / "private") == 0o700
        assert mode(root / "private" / "keys" / "pseudonym.key") == 0o600
        assert mode(root / "private" / "keys" / "publisher-ed25519.pem") == 0o600


def test_a_private_folder_an_earlier_version_left_open_is_closed(tmp_path, loose_umask):
    private = tmp_path / "data" / "private"
    (private / "quarantine").mkdir(parents=True)
    private.chmod(0o755)
    workspace(tmp_path / "data")
    assert mode(private) == 0o700


def test_a_workspace_makes_no_folder_where_there_is_none(tmp_path):
    workspace(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_the_store_writes_private_objects_for_their_owner_and_others_as_the_umask_says(
    tmp_path, loose_umask
):
    store = Store.open(tmp_path)
    store.write_bytes("private/state/t/p0/doc.json", b"{}")
    store.create("private/keys/k", b"secret")
    store.write_bytes("published/x.json", b"{}")
    assert mode(tmp_path / "private/state/t/p0/doc.json") == 0o600
    assert mode(tmp_path / "private/keys/k") == 0o600
    assert mode(tmp_path / "published/x.json") == 0o644
    copy = store.get_file("private/keys/k", tmp_path / "elsewhere" / "private" / "keys" / "k")
    assert mode(copy) == 0o600


def test_the_marketplace_store_is_made_in_a_private_folder(tmp_path, loose_umask):
    from market.store import MarketStore, market_path

    MarketStore(market_path(tmp_path)).add_buyer("alice")  # names, key hashes, messages
    assert mode(tmp_path / "private") == 0o700


@pytest.mark.parametrize("topic", ["..", "../../published/leak", "x/../../y", "", "a b", "t" * 250])
def test_a_name_kafka_refuses_as_a_topic_names_no_file(topic):
    with pytest.raises(ValueError, match="is not a Kafka topic name"):
        OffsetRange(topic, 0, 0, 1)


def test_a_topic_name_kafka_takes_names_files_in_their_folders(tmp_path):
    chunk = OffsetRange("node-telemetry.v2_eu", 3, 0, 10)
    layout = DataLayout(tmp_path)
    path = layout.quarantine_file(chunk.topic, chunk.name).resolve()
    assert path.is_relative_to((tmp_path / "private" / "quarantine").resolve())
