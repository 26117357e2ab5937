"""What a closed window releases of the sessions reveals no more than their coarsened fields.

Found by the privacy red team: a published session's exact Kafka offset dated it to the second
(the rows beside it in its partition are node reports with exact times), which undid the hour
its times are floored to and so k-anonymity; k counted rows, so five sessions of one subscriber
made a "group of five" behind one pseudonym; and a row generalized to the day kept its ingest
time at the hour.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from session_rows import sessions

from pipelines.anonymize import PseudonymKey, anonymize, concealed_offsets
from pipelines.k_anonymity import distinct_people
from pipelines.protect import Protection
from pipelines.windows import WindowSettings
from schemas.published import PrivacySettings
from schemas.service import SUBSCRIBER_SESSION_V1
from simulator.fleet import generate
from tests.event_time_harness import Harness, partitioned

KEY = PseudonymKey(bytes(range(32)))
UTC = dt.timezone.utc
AT = dt.datetime(2025, 11, 24, 10, 5, tzinfo=UTC)
PARTITIONS = 2
SESSIONS = "subscriber_session.v1"


def sessions_of(imsis: list[str], start: dt.datetime = AT) -> pa.RecordBatch:
    """Sessions in one cell, one per IMSI given, all starting at ``start``."""
    return sessions([{"imsi": imsi, "session_start": start} for imsi in imsis])


def published(batch: pa.RecordBatch) -> list[dict]:
    flags = pa.nulls(batch.num_rows, pa.string())
    return anonymize(
        SUBSCRIBER_SESSION_V1, batch, flags, KEY, PrivacySettings(k=5)
    ).rows.to_pylist()


def test_five_sessions_of_one_subscriber_are_not_a_group_of_five():
    assert published(sessions_of(["262010000000001"] * 5)) == []


def test_five_subscribers_sessions_in_one_cell_and_hour_are_published():
    imsis = [f"26201000000000{i}" for i in range(5)]
    assert len(published(sessions_of(imsis))) == 5


def test_a_group_generalized_to_the_day_has_its_ingest_time_floored_to_the_day_too():
    early = sessions_of([f"26201000000000{i}" for i in range(3)])
    later = sessions_of([f"26201000000001{i}" for i in range(2)], start=AT + dt.timedelta(hours=3))
    rows = published(pa.concat_batches([early, later]))
    day = dt.datetime(2025, 11, 24, tzinfo=UTC)
    assert [(r["session_start"], r["ingest_time"]) for r in rows] == [(day, day)] * 5


@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, None]), st.sampled_from(["a", "b", "c", None])),
        min_size=1,
        max_size=40,
    )
)
def test_a_groups_size_is_its_number_of_distinct_named_people(rows):
    keys, people = zip(*rows, strict=True)
    sizes = distinct_people([pa.array(keys, pa.int64())], pa.array(people, pa.string()))
    expected = [len({p for k2, p in rows if k2 == k and p is not None}) for k, _ in rows]
    assert sizes.to_pylist() == expected


@functools.cache
def released() -> Harness:
    """A small fleet's stream with sessions, through the event-time step in two batches."""
    messages = generate(3, 30, 1, 1_764_000_000_000, 14, 0.0, sessions=True)
    raw = partitioned(list(messages), PARTITIONS)
    root = Path(tempfile.mkdtemp(prefix="rda-release-"))
    protection = Protection(
        str(root / "private"),
        PrivacySettings(k=2),
        windows=WindowSettings(window_s=10, allowed_lateness_s=2),
        staged_only=True,
        _key=KEY,
    )
    harness = Harness(root, raw, protection)
    half = {p: batch.num_rows // 2 for p, batch in raw.items()}
    harness.run([half, {p: batch.num_rows for p, batch in raw.items()}], chunk=10_000)
    return harness


def session_files(harness: Harness) -> list[Path]:
    return sorted(harness.layout.published.glob(f"{SESSIONS}/shards/*/data/*.parquet"))


def record_at(harness: Harness, partition: int, offset: int) -> dict:
    return json.loads(harness.raw[partition].column("value")[offset].as_py())


def test_a_released_session_publishes_a_keyed_pseudonym_of_its_offset_not_the_offset():
    harness = released()
    rows = [row for path in session_files(harness) for row in pq.read_table(path).to_pylist()]
    assert rows
    for row in rows:
        partition, epoch = row["source_partition"], row["pseudonym_epoch"]
        offsets = pa.array(range(harness.raw[partition].num_rows), pa.int64())
        pseudonyms = concealed_offsets(
            pa.repeat(pa.scalar(partition, pa.int32()), len(offsets)),
            offsets,
            pa.repeat(pa.scalar(epoch, pa.int64()), len(offsets)),
            KEY,
        ).to_pylist()
        assert pseudonyms.count(row["source_offset"]) == 1  # the pseudonym of one record
        record = record_at(harness, partition, pseudonyms.index(row["source_offset"]))
        assert record["kind"] == "subscriber_session"
        assert not 0 <= row["source_offset"] < len(offsets)  # no offset of its partition
        assert row["source_offset"] < 2**53  # a leaf's integers are I-JSON's


def test_a_released_files_rows_are_in_the_order_of_their_pseudonyms_not_the_streams():
    for path in session_files(released()):
        offsets = pq.read_table(path, columns=["source_offset"]).column(0).to_pylist()
        assert offsets == sorted(offsets)


def test_a_released_files_source_range_is_the_partitions_range_the_batch_read():
    harness = released()
    checked = 0
    for batch_id, receipts in harness.receipts.items():
        read = {r["partition"]: r for r in harness.plans[batch_id]["ranges"]}
        for receipt in receipts:
            if SESSIONS in receipt["files"]:
                source = receipt["range"]
                plan = read[source["partition"]]
                assert (source["start"], source["end"]) == (plan["start"], plan["end"])
                checked += 1
    assert checked


def test_a_checkpoint_of_an_earlier_version_passes_on_no_count_of_withheld_records():
    from validators.score import dataset_counts

    earlier = {"rows": 10, "cells": 90, "null_cells": 9, "suppressed": 3}
    chunk = {"rows": 2, "cells": 18, "null_cells": 0, "quarantined": {}, "flags": {}}
    assert dataset_counts([chunk], earlier) == {"cells": 108, "null_cells": 9, "rows": 12}
