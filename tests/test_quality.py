"""Quality checks: every injected defect is caught at its level; score and GE report are exact."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from quality_support import protected

from benchmarks.decode import raw_batch
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.published import published_schema, published_schema_for_dataset
from schemas.radio import RADIO_KPI_V1
from schemas.registry import ALL_SCHEMAS
from simulator.fleet import generate
from simulator.quality_defects import QUALITY_DEFECTS
from validators.expectations import WARM_UP_SCHEMA, expectations, report_bytes, validate
from validators.quality import QualitySettings, check_quality
from validators.score import components_from_counts, score

START_MS = 1_764_000_000_000
FLAT_LINE_REPORTS_FLAGGED_FROM = QualitySettings().flat_line_reports  # the 5th identical on
# Where each quality defect must end up: ("quarantine", reason code) or ("flag", flag).
EXPECTED = {
    "teleport": ("quarantine", "teleport"),
    "clock_skew": ("quarantine", "clock_skew"),
    "implausible_sinr": ("quarantine", "implausible"),
    "late": ("flag", "late"),
    "flat_line": ("flag", "flat_line"),
    "counter_reset": ("flag", "counter_reset"),
}


def test_every_quality_defect_is_caught_at_its_expected_level(tmp_path):
    messages = list(generate(12, 120, 1, START_MS, seed=4, quality_fraction=0.04))
    result = protected(messages, tmp_path)
    quarantined = dict(
        zip(
            result.quarantined.column("offset").to_pylist(),
            result.quarantined.column("reason_code").to_pylist(),
            strict=True,
        )
    )
    flags = {}
    for rows in result.published.values():
        for offset, row_flags in zip(
            rows.column("source_offset").to_pylist(),
            rows.column("quality_flags").to_pylist(),
            strict=True,
        ):
            flags[offset] = set((row_flags or "").split(",")) - {""}
    caught = Counter()
    stuck: Counter[int] = Counter()  # per cell, the stuck reports so far in its current run
    for offset, message in enumerate(messages):
        report = json.loads(message.value)
        if report.get("kind") == "radio_kpi":
            eci = report["cell"]["eci"]
            stuck[eci] = stuck[eci] + 1 if message.defect == "flat_line" else 0
        if message.defect == "flat_line" and stuck[eci] < FLAT_LINE_REPORTS_FLAGGED_FROM:
            # Not yet known to be stuck when published (the check is causal): no flag.
            assert offset not in quarantined and not flags[offset], (offset, message.value)
            continue
        if message.defect is None:
            assert offset not in quarantined and not flags[offset], (offset, message.value)
            continue
        level, code = EXPECTED[message.defect]
        if level == "quarantine":
            assert quarantined.get(offset) == code, (message.defect, message.value)
        else:
            assert code in flags[offset], (message.defect, message.value)
        caught[message.defect] += 1
    assert set(caught) == set(QUALITY_DEFECTS)
    assert result.read == result.published_records + result.quarantined.num_rows


def radio_rows(**columns) -> pa.RecordBatch:
    n = len(next(iter(columns.values())))
    base = {
        "node_id": ["an-1"] * n,
        "event_time": [
            dt.datetime(2025, 11, 24, 16, 0, i, tzinfo=dt.timezone.utc) for i in range(n)
        ],
        "cell_id": [7] * n,
        "rsrp_dbm": [-90.0 + i for i in range(n)],
        "sinr_db": [10.0] * n,
        "latitude": [52.5] * n,
        "longitude": [13.4] * n,
        "source_partition": pa.array([0] * n, pa.int32()),
        "source_offset": list(range(n)),
        "ingest_time": [dt.datetime(2025, 11, 24, 16, 0, 30, tzinfo=dt.timezone.utc)] * n,
    }
    base.update(columns)
    return pa.RecordBatch.from_pydict(base)


def test_a_location_spike_is_a_teleport_and_a_node_that_moved_loses_one_report_only():
    spike = radio_rows(latitude=[52.5, 52.5, 10.0, 52.5, 52.5])
    moved = radio_rows(latitude=[52.5, 52.5, 10.0, 10.0, 10.0])
    codes = check_quality(RADIO_KPI_V1, spike).codes.to_pylist()
    assert codes == [None, None, "teleport", None, None]
    # The first report at the new place cannot be told from a spike without waiting for the
    # next one, and published rows are never held back: it is quarantined, the rest accepted.
    assert check_quality(RADIO_KPI_V1, moved).codes.to_pylist() == codes


def test_the_fifth_identical_reading_in_a_row_and_those_after_it_are_flagged_as_a_flat_line():
    rows = radio_rows(rsrp_dbm=[-90.0] * 6 + [-80.0, -81.0] + [-70.0] * 4)
    flags = check_quality(RADIO_KPI_V1, rows).flags.to_pylist()
    assert flags == [None] * 4 + ["flat_line"] * 2 + [None] * 6


def test_the_reason_names_the_skew_and_the_sinr_but_a_malformed_identifier_is_never_repeated(
    tmp_path,
):
    future = dt.datetime(2025, 11, 24, 17, 0, 0, tzinfo=dt.timezone.utc)
    rows = radio_rows(event_time=[future], sinr_db=[10.0], rsrp_dbm=[-90.0])
    outcome = check_quality(RADIO_KPI_V1, rows)
    assert outcome.codes.to_pylist() == ["clock_skew"]
    assert outcome.reasons.to_pylist() == ["event time is 3570 s ahead of ingest (limit 300 s)"]
    session = {
        "format": "rda.node.v1",
        "kind": "subscriber_session",
        "node": "an-0001",
        "ts_ms": START_MS,
        "subscriber": {"imsi": "26201-12345", "imei": "353320110123457"},
        "session": {"cell": 5, "start_ms": START_MS - 60_000, "end_ms": START_MS},
    }
    (message,) = [json.dumps(session).encode()]
    raw = raw_batch([message], "rda.node.v1")
    result = Protection(str(tmp_path))(raw, standardize(raw, adapter_for("rda.node.v1")))
    assert result.quarantined.column("reason_code").to_pylist() == ["malformed"]
    assert result.quarantined.column("reason").to_pylist() == ["imsi is not an IMSI (14-15 digits)"]


def test_the_score_is_the_mean_of_the_five_components():
    parts = components_from_counts(
        total=200,
        issues={"out_of_range": 10, "late": 4, "duplicate": 2, "flat_line": 20},
        null_cells=50,
        cells=1000,
    )
    assert parts == {
        "completeness": 0.95,
        "validity": 0.95,
        "timeliness": 0.98,
        "uniqueness": 0.99,
        "consistency": 0.9,
    }
    assert score(parts) == 95.4


def test_the_ge_report_is_deterministic_and_names_the_failing_expectation(tmp_path):
    schema = published_schema(RADIO_KPI_V1)
    messages = list(generate(3, 5, 1, START_MS, seed=2))
    result = protected([m for m in messages if b"radio_kpi" in m.value], tmp_path)
    rows = pa.Table.from_batches([result.published["radio_kpi.v1"]])
    first, _ = validate(schema, rows)
    again, _ = validate(schema, rows, tmp_path / "docs")
    assert report_bytes(first) == report_bytes(again)
    assert first["success"] is True
    assert (tmp_path / "docs" / "index.html").exists()
    broken = rows.set_column(
        rows.schema.get_field_index("rsrp_dbm"),
        "rsrp_dbm",
        pa.array([-20.0, *rows.column("rsrp_dbm").to_pylist()[1:]]),
    )
    report, _ = validate(schema, broken)
    failed = [r for r in report["results"] if not r["success"]]
    assert [(r["expectation"], r["kwargs"]["column"]) for r in failed] == [
        ("expect_column_values_to_be_between", "rsrp_dbm")
    ]
    assert failed[0]["result"]["unexpected_count"] == 1


def test_a_report_with_data_docs_is_the_bytes_and_pages_of_a_ge_checkpoint_s(tmp_path):
    """``validate`` stores the result and builds the docs itself; a GE checkpoint with an
    ``UpdateDataDocsAction`` (what it ran before) gives the same report and the same pages."""
    schema = published_schema(RADIO_KPI_V1)
    messages = list(generate(3, 5, 1, START_MS, seed=2))
    rows = pa.Table.from_batches(
        [
            protected([m for m in messages if b"radio_kpi" in m.value], tmp_path).published[
                "radio_kpi.v1"
            ]
        ]
    )
    rsrp = rows.column("rsrp_dbm").to_pylist()
    broken = rows.set_column(
        rows.schema.get_field_index("rsrp_dbm"), "rsrp_dbm", pa.array([-20.0, 5.0, *rsrp[2:]])
    )
    broken = pa.concat_tables([broken, broken.slice(0, 2)])  # two natural keys twice
    alone, _ = validate(schema, broken)
    with_docs, _ = validate(schema, broken, tmp_path / "docs")
    by_checkpoint = _checkpoint_report(schema, broken, tmp_path / "checkpoint")
    assert report_bytes(alone) == report_bytes(with_docs) == report_bytes(by_checkpoint)
    assert not alone["success"]
    assert alone["statistics"]["unsuccessful_expectations"] == 2
    assert _pages(tmp_path / "docs") == _pages(tmp_path / "checkpoint")
    assert len(_pages(tmp_path / "docs")) == 3  # the index, the suite, the validation


def _checkpoint_report(schema, rows: pa.Table, docs: Path) -> dict:
    """The suite run by a GE checkpoint that builds the Data Docs in ``docs``: GE's own way."""
    import uuid

    import great_expectations as gx

    from validators import expectations

    suite = expectations._suite(schema, str(docs.resolve()))
    checkpoint = suite.context.checkpoints.add(
        gx.Checkpoint(
            name=f"checkpoint-{uuid.uuid4()}",
            validation_definitions=[suite.definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")],
        )
    )
    with expectations._pandas_options(), expectations._configurations_kept():
        outcome = checkpoint.run(batch_parameters={"dataframe": rows.to_pandas()})
    (result,) = outcome.run_results.values()
    return expectations._report(schema, rows.num_rows, result.to_json_dict(), gx.__version__)


def _pages(site: Path) -> list[str]:
    """A Data Docs site's pages, without the run's time in their paths."""
    names = (p.relative_to(site).parts for p in site.rglob("*.html"))
    return sorted("/".join(part for part in parts if not part[:8].isdigit()) for parts in names)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_an_impossible_quality_defect_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="quality defect fraction"):
        list(generate(1, 1, 1, START_MS, seed=1, quality_fraction=fraction))


def test_data_docs_land_in_a_relative_data_directory_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    schema = published_schema(RADIO_KPI_V1)
    messages = [m for m in generate(2, 3, 1, START_MS, seed=2) if b"radio_kpi" in m.value]
    rows = pa.Table.from_batches([protected(messages, tmp_path).published["radio_kpi.v1"]])
    validate(schema, rows, Path("data/demo/quality/docs"))
    assert (tmp_path / "data/demo/quality/docs/index.html").exists()


def test_a_second_data_docs_site_renders_the_same_pages_without_compiling_a_template(tmp_path):
    from validators import data_docs_views

    schema = published_schema(RADIO_KPI_V1)
    messages = [m for m in generate(2, 3, 1, START_MS, seed=2) if b"radio_kpi" in m.value]
    rows = pa.Table.from_batches([protected(messages, tmp_path).published["radio_kpi.v1"]])
    validate(schema, rows, tmp_path / "first")
    compiled = dict(data_docs_views._COMPILED._code)
    assert compiled  # the first site compiled GE's templates into the process-wide cache
    validate(schema, rows, tmp_path / "second")
    assert data_docs_views._COMPILED._code == compiled  # nothing compiled again
    assert _pages(tmp_path / "first") == _pages(tmp_path / "second")
    assert "expectations/radio_kpi/v1.html" in _pages(tmp_path / "second")


@pytest.mark.parametrize("docs", [False, True])
def test_a_report_made_with_ge_s_shortcuts_is_the_bytes_of_ge_s_own(tmp_path, monkeypatch, docs):
    """``validate`` keeps each expectation's configuration and each configuration's
    expectation while GE runs, and ids plain metric arguments without GE's conversion; GE
    rebuilds them at every read and converts every id's arguments. Every published dataset,
    with failing rows (two natural keys twice)."""
    import contextlib

    from great_expectations.core.id_dict import IDDict

    from validators import expectations, ge_ids

    messages = list(generate(3, 5, 1, START_MS, seed=2, sessions=True))
    published = protected(messages, tmp_path / "private").published
    assert len(published) >= 3
    for dataset, batch in sorted(published.items()):
        rows = pa.Table.from_batches([batch])
        rows = pa.concat_tables([rows, rows.slice(0, 2)])
        schema = published_schema_for_dataset(dataset)
        kept, _ = validate(schema, rows, tmp_path / "kept" if docs else None)
        with monkeypatch.context() as patch:
            patch.setattr(expectations, "_configurations_kept", contextlib.nullcontext)
            patch.setattr(IDDict, "to_id", ge_ids.original_to_id)
            rebuilt, _ = validate(schema, rows, tmp_path / "rebuilt" if docs else None)
        assert report_bytes(kept) == report_bytes(rebuilt), dataset
        assert not kept["success"]


def test_outside_a_validation_each_read_of_a_configuration_builds_a_new_one_as_ge_s_does(
    tmp_path,
):
    from great_expectations.expectations import ExpectColumnValuesToNotBeNull

    messages = list(generate(3, 5, 1, START_MS, seed=2))
    result = protected([m for m in messages if b"radio_kpi" in m.value], tmp_path)
    rows = pa.Table.from_batches([result.published["radio_kpi.v1"]])
    validate(published_schema(RADIO_KPI_V1), rows)  # the property is GE's no longer
    expectation = ExpectColumnValuesToNotBeNull(column="node_id")
    first, second = expectation.configuration, expectation.configuration
    assert first is not second and first == second
    expectation.column = "cell_id"  # and a change shows at the next read
    assert expectation.configuration.kwargs["column"] == "cell_id"


def test_inside_a_validation_an_expectation_s_configuration_is_made_once():
    from great_expectations.expectations import ExpectColumnValuesToNotBeNull

    from validators.expectations import _configurations_kept, _great_expectations

    _great_expectations()  # as validating imports GE
    expectation = ExpectColumnValuesToNotBeNull(column="node_id")
    with _configurations_kept():
        first = expectation.configuration
        assert expectation.configuration is first
    assert expectation.configuration is not first


def test_inside_a_validation_a_configuration_s_expectation_is_made_once_and_anew_outside():
    from great_expectations.expectations import ExpectColumnValuesToNotBeNull

    from validators.expectations import _configurations_kept, _great_expectations

    _great_expectations()  # as validating imports GE
    configuration = ExpectColumnValuesToNotBeNull(column="node_id").configuration
    with _configurations_kept():
        first = configuration.to_domain_obj()
        assert configuration.to_domain_obj() is first
        assert first.column == "node_id"
    outside = configuration.to_domain_obj()
    assert outside is not first and outside == first
    assert configuration.to_domain_obj() is not outside


def test_ge_does_not_fingerprint_the_batch_and_the_report_is_the_same_bytes(tmp_path, monkeypatch):
    """GE's MD5 fingerprint of the frame is in its batch markers only, never in the report."""
    from great_expectations.execution_engine import pandas_execution_engine

    messages = list(generate(3, 5, 1, START_MS, seed=2))
    result = protected([m for m in messages if b"radio_kpi" in m.value], tmp_path)
    rows = pa.Table.from_batches([result.published["radio_kpi.v1"]])
    schema = published_schema(RADIO_KPI_V1)
    hashed: list[int] = []
    fingerprint = pandas_execution_engine.hash_pandas_dataframe
    monkeypatch.setattr(
        pandas_execution_engine,
        "hash_pandas_dataframe",
        lambda frame: hashed.append(len(frame)) or fingerprint(frame),
    )
    unhashed, _ = validate(schema, rows, tmp_path / "docs")
    assert hashed == []
    monkeypatch.setattr(pandas_execution_engine, "HASH_THRESHOLD", 1e9)  # GE's own
    fingerprinted, _ = validate(schema, rows, tmp_path / "docs")
    assert hashed == [rows.num_rows]
    assert report_bytes(unhashed) == report_bytes(fingerprinted)


def test_the_warm_up_suite_holds_every_kind_of_expectation_the_published_suites_hold():
    """All but a one-column key's uniqueness (a suite has one key): the worker's warm-up pays
    each kind's first use before the first job."""

    def kinds(schema):
        return {type(expectation).__name__ for expectation in expectations(schema)}

    published = set().union(*(kinds(published_schema(schema)) for schema in ALL_SCHEMAS))
    assert published - kinds(WARM_UP_SCHEMA) == {"ExpectColumnValuesToBeUnique"}


def test_the_warm_up_suite_passes_on_an_empty_table(tmp_path):
    report, _ = validate(WARM_UP_SCHEMA, WARM_UP_SCHEMA.arrow_schema().empty_table(), tmp_path)
    assert report["success"] and report["statistics"]["evaluated_expectations"] == 19
    assert (tmp_path / "index.html").exists()
