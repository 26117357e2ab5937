"""Privacy by schema: pseudonyms, truncation, H3, coarsening, k-anonymity, the published schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import stat
from dataclasses import replace

import h3
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_rows import IMSI, sessions

from pipelines.aggregate import empty_ledger, laplace, window_counts
from pipelines.anonymize import (
    KEY_ENV,
    PseudonymKey,
    PseudonymKeyError,
    _pseudonyms,
    _truncated_addresses,
    anonymize,
    subscriber_keys,
)
from pipelines.k_anonymity import group_sizes
from pipelines.staged import SUBSCRIBER
from schemas.published import DEFAULT_PRIVACY, PrivacySettings, published_schema
from schemas.service import SPEED_TEST_V1, SUBSCRIBER_SESSION_V1
from simulator.subscribers import luhn_digit, luhn_valid, make_subscriber

KEY = PseudonymKey(bytes(range(32)))
UTC = dt.timezone.utc


def published(rows: list[dict], settings: PrivacySettings = DEFAULT_PRIVACY, key=KEY):
    batch = sessions(rows)
    flags = pa.nulls(batch.num_rows, pa.string())
    return anonymize(SUBSCRIBER_SESSION_V1, batch, flags, key, settings)


def expected_pseudonym(value: str, epoch: int, key: PseudonymKey = KEY) -> str:
    epoch_key = hmac.new(key.secret, f"rda-pseudonym-epoch:{epoch}".encode(), "sha256").digest()
    return hmac.new(epoch_key, value.encode(), "sha256").hexdigest()[:32]


def test_an_identifier_becomes_the_hmac_of_its_epoch_key_and_the_imei_keeps_its_tac():
    (row,) = published([{}] * 5).rows.slice(0, 1).to_pylist()
    epoch = int(dt.datetime(2025, 11, 24, tzinfo=UTC).timestamp()) // 86_400
    assert row["pseudonym_epoch"] == epoch
    assert row["imsi"] == expected_pseudonym(IMSI, epoch)
    assert row["msisdn"] == expected_pseudonym("4915112345678", epoch)
    assert row["imei"] == "35332011-" + expected_pseudonym("353320110123457", epoch)


def test_the_same_subscriber_links_within_an_epoch_and_not_across_epochs():
    day1 = dt.datetime(2025, 11, 24, 10, 5, tzinfo=UTC)
    day2 = day1 + dt.timedelta(days=1)
    result = published(
        [{"imsi": IMSI, "session_start": day1 + dt.timedelta(seconds=i)} for i in range(5)]
        + [{"imsi": IMSI, "session_start": day2 + dt.timedelta(seconds=i)} for i in range(5)],
        PrivacySettings(k=1),  # one subscriber's sessions: published only without k-anonymity
    )
    imsis = result.rows.column("imsi").to_pylist()
    assert len(set(imsis[:5])) == 1 and len(set(imsis[5:])) == 1
    assert imsis[0] != imsis[5]
    assert len(result.epochs) == 2


def test_another_key_gives_other_pseudonyms():
    other = PseudonymKey(bytes(32))
    ours = published([{}] * 5).rows.column("imsi")[0]
    theirs = published([{}] * 5, key=other).rows.column("imsi")[0]
    assert ours != theirs


@settings(deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=40),
    st.lists(st.integers(20_000, 20_002), min_size=40, max_size=40),
    st.sampled_from([0, 1, 8]),
)
def test_pseudonyms_of_any_text_are_the_hmac_of_its_epoch_key_with_the_kept_prefix(
    values, epochs, keep
):
    epochs = epochs[: len(values)]
    result = _pseudonyms(pa.array(values, pa.string()), pa.array(epochs, pa.int64()), KEY, keep)
    expected = [
        None if v is None else (f"{v[:keep]}-" if keep else "") + expected_pseudonym(v, epoch)
        for v, epoch in zip(values, epochs, strict=True)
    ]
    assert result.to_pylist() == expected


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=40))
def test_subscriber_keys_are_the_hmac_of_the_ledger_key_in_every_epoch(values):
    ledger = KEY.ledger_key()
    expected = [
        None if v is None else hmac.new(ledger, v.encode(), "sha256").digest()[:16].hex()
        for v in values
    ]
    assert subscriber_keys(pa.array(values, pa.string()), KEY).to_pylist() == expected


@pytest.mark.parametrize(
    ("address", "published_as"),
    [
        ("100.64.12.7", "100.64.12.0/24"),
        ("2001:db8:abcd:12:1::7", "2001:db8:abcd::/48"),
        ("2001:0db8:00ab:ffff::1", "2001:db8:ab::/48"),
    ],
)
def test_addresses_are_truncated_to_their_network(address, published_as):
    result = published([{"ue_ip": address}] * 5)
    assert result.rows.column("ue_ip").to_pylist() == [published_as] * 5


def test_session_times_and_ingest_time_are_floored_to_the_hour():
    start = dt.datetime(2025, 11, 24, 10, 41, 7, 123, tzinfo=UTC)
    (row, *_) = published([{"session_start": start}] * 5).rows.to_pylist()
    hour = dt.datetime(2025, 11, 24, 10, tzinfo=UTC)
    assert (row["session_start"], row["session_end"]) == (hour, hour)
    assert row["ingest_time"] == hour


def test_small_groups_are_generalized_to_the_day_then_suppressed_and_counted():
    at = dt.datetime(2025, 11, 24, 10, 5, tzinfo=UTC)
    rows = (
        [{"cell_id": 1, "session_start": at}] * 5  # a group of five: published as is
        + [{"cell_id": 2, "session_start": at}] * 3  # 3 + 2 in two hours: the day holds five
        + [{"cell_id": 2, "session_start": at + dt.timedelta(hours=3)}] * 2
        + [{"cell_id": 3, "session_start": at}] * 4  # four, even for the whole day: suppressed
    )
    result = published(rows)
    published_rows = result.rows.to_pylist()
    assert result.suppressed_offsets.to_pylist() == [10, 11, 12, 13]
    day = dt.datetime(2025, 11, 24, tzinfo=UTC)
    assert [r["session_start"] for r in published_rows if r["cell_id"] == 2] == [day] * 5
    assert [r["session_start"].hour for r in published_rows if r["cell_id"] == 1] == [10] * 5
    assert len(published_rows) + len(result.suppressed_offsets) == len(rows)


@settings(deadline=None)  # timing varies on a shared machine; correctness does not
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=60))
def test_every_published_quasi_identifier_group_has_at_least_k_rows(cells_and_minutes):
    base = dt.datetime(2025, 11, 24, 0, 0, tzinfo=UTC)
    rows = [
        {"cell_id": cell, "session_start": base + dt.timedelta(minutes=37 * minute)}
        for cell, minute in cells_and_minutes
    ]
    result = published(rows)
    table = pa.Table.from_batches([result.rows])
    quasi = ["cell_id", "session_start", "session_end"]
    sizes = group_sizes([table.column(name).combine_chunks() for name in quasi])
    assert all(size >= DEFAULT_PRIVACY.k for size in sizes.to_pylist())
    assert result.rows.num_rows + len(result.suppressed_offsets) == len(rows)


def test_precise_locations_are_published_as_h3_cells_only():
    schema = published_schema(SPEED_TEST_V1)
    names = [f.name for f in schema.all_fields]
    assert "h3_cell" in names and "latitude" not in names and "longitude" not in names
    row = {
        "node_id": "an-1",
        "event_time": dt.datetime(2025, 11, 24, tzinfo=UTC),
        "download_mbps": 50.0,
        "upload_mbps": 10.0,
        "latency_ms": 20.0,
        "latitude": 52.520008,
        "longitude": 13.404954,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 0,
        "ingest_time": dt.datetime(2025, 11, 24, tzinfo=UTC),
    }
    batch = pa.RecordBatch.from_pylist([row], schema=SPEED_TEST_V1.arrow_schema())
    result = anonymize(SPEED_TEST_V1, batch, pa.nulls(1, pa.string()), KEY, DEFAULT_PRIVACY)
    assert result.rows.column("h3_cell").to_pylist() == [h3.latlng_to_cell(52.520008, 13.404954, 8)]


def test_the_published_session_schema_is_derived_from_the_policy():
    schema = published_schema(SUBSCRIBER_SESSION_V1)
    assert schema.natural_key == ("row_key",)
    assert schema.fingerprint() != SUBSCRIBER_SESSION_V1.fingerprint()
    names = [f.name for f in schema.fields]
    assert names[-3:] == ["pseudonym_epoch", "row_key", "quality_flags"]
    assert "pseudonym" in schema.field("imsi").description
    assert "/24" in schema.field("ue_ip").description


def test_a_key_file_is_made_once_privately_and_the_environment_overrides_it(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    first = PseudonymKey.load(tmp_path)
    path = tmp_path / "keys" / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PseudonymKey.load(tmp_path) == first
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    assert PseudonymKey.load(tmp_path).secret == bytes([0xAB]) * 32
    assert first.key_id == hashlib.sha256(b"rda-key-id:" + first.secret).hexdigest()[:16]


@pytest.mark.parametrize(("value", "problem"), [("xyz", "not hexadecimal"), ("abcd", "shorter")])
def test_a_bad_key_in_the_environment_is_refused_clearly(tmp_path, monkeypatch, value, problem):
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(PseudonymKeyError, match=problem):
        PseudonymKey.load(tmp_path)


def test_simulated_identifiers_look_real():
    import random

    rng = random.Random(1)
    for site in range(4):
        subscriber = make_subscriber(site, rng)
        assert len(subscriber.imsi) == 15 and subscriber.imsi.isdigit()
        assert len(subscriber.imei) == 15 and luhn_valid(subscriber.imei)
    assert luhn_digit("49015420323751") == "8"  # the IMEI example of 3GPP TS 23.003


@settings(deadline=None)
@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.ip_addresses(v=6).map(lambda ip: ip.exploded.upper()),
    )
)
def test_vectorized_truncation_agrees_with_the_ipaddress_module(address):
    import ipaddress

    ip = ipaddress.ip_address(address)
    prefix = 24 if ip.version == 4 else 48
    expected = str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    assert _truncated_addresses(pa.array([address, None])).to_pylist() == [expected, None]


def test_laplace_quantiles_are_symmetric_with_the_right_spread():
    assert laplace(0.5, 2.0) == 0.0
    assert laplace(0.25, 2.0) == pytest.approx(-2.0 * math.log(2))
    assert laplace(0.75, 2.0) == -laplace(0.25, 2.0)


def window_sessions(people_and_cells: list[tuple[str, int]]) -> pa.Table:
    """Staged session rows of one window, in stream order: (subscriber key, cell) each."""
    n = len(people_and_cells)
    hour = dt.datetime(2025, 11, 24, 10, tzinfo=UTC)
    return pa.table(
        {
            "cell_id": [cell for _, cell in people_and_cells],
            SUBSCRIBER: [who for who, _ in people_and_cells],
            "source_partition": pa.array([0] * n, pa.int32()),
            "source_offset": list(range(n)),
            "ingest_time": pa.array([hour] * n, pa.timestamp("us", tz="UTC")),
        }
    )


WINDOW_US = int(dt.datetime(2025, 11, 24, 10, tzinfo=UTC).timestamp()) * 1_000_000
# Noise negligible, and tau just below 1: every cell with a counted subscriber is released
# (partition selection: tests/test_dp_partition_selection.py).
EXACT = PrivacySettings(dp_epsilon=1e9, dp_budget_per_epoch=1e10, dp_delta=1 - 1e-12)


def test_window_counts_are_distinct_subscribers_per_cell_with_reproducible_noise():
    rows = window_sessions([("a", 7), ("b", 7), ("a", 7), ("c", 7), ("d", 9)])
    exact, _ = window_counts(rows, WINDOW_US, "t", KEY, EXACT, empty_ledger())
    assert [(r["cell_id"], r["hour"].hour, r["noisy_subscribers"]) for r in exact.to_pylist()] == [
        (7, 10, 3),
        (9, 10, 1),
    ]
    settings = PrivacySettings(dp_epsilon=0.1, dp_delta=1 - 1e-12)  # tau ~ -267: both released
    noisy, _ = window_counts(rows, WINDOW_US, "t", KEY, settings, empty_ledger())
    again, _ = window_counts(rows, WINDOW_US, "t", KEY, settings, empty_ledger())
    assert noisy.equals(again)
    assert noisy.column("noisy_subscribers").to_pylist() != [3, 1]
    assert all(n >= 0 for n in noisy.column("noisy_subscribers").to_pylist())


def test_a_subscriber_counts_in_one_cell_per_window_the_cell_of_their_first_session():
    rows = window_sessions([("a", 9), ("a", 7), ("b", 7)])
    counts, ledger = window_counts(rows, WINDOW_US, "t", KEY, EXACT, empty_ledger())
    assert [(r["cell_id"], r["noisy_subscribers"]) for r in counts.to_pylist()] == [(7, 1), (9, 1)]
    assert sorted(ledger.column("subscriber").to_pylist()) == ["a", "b"]
    assert ledger.column("spent").to_pylist() == [1e9, 1e9]


def test_a_subscriber_whose_daily_budget_is_spent_is_left_out_of_later_windows():
    settings = replace(EXACT, dp_budget_per_epoch=2e9)  # two windows a day
    ledger = empty_ledger()
    seen = []
    for hour in range(3):
        rows = window_sessions([("a", 7), ("b", 7)])
        start = WINDOW_US + hour * 3_600_000_000
        counts, ledger = window_counts(rows, start, "t", KEY, settings, ledger)
        seen.append(counts.column("noisy_subscribers").to_pylist())
    assert seen == [[2], [2], []]  # the third hour: both budgets are spent, no cell is a candidate
    assert ledger.column("spent").to_pylist() == [2e9, 2e9]
