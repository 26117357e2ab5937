"""Great Expectations suites generated from schema metadata, run offline on published rows.

One suite per published schema: the columns in order, their types, not-null for required
fields, ranges, enumerations and the uniqueness of the natural key. The validation result is
reduced to a deterministic report (no run ids or clocks), so redoing a checkpoint gives the
same bytes and the same SHA-256 in the manifest. GE's HTML Data Docs are built beside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from infra import pydantic_fields
from infra.deferred_imports import defer
from schemas.model import Field, TelemetrySchema
from validators import ge_text

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # offline: no usage statistics
# Imported by GE's import for expectations these suites never use (KL divergence, KS tests):
# ~1 s of every validating process's start, now paid only by a process that uses them.
DEFERRED_BY_GE = ("scipy.stats", "altair")

# pandas dtypes a published Arrow column may arrive as (nullable integers become floats).
_PANDAS_TYPES = {
    "int": ["int8", "int16", "int32", "int64", "float64"],
    "float": ["float32", "float64"],
    "string": ["object", "str", "string"],
    "bool": ["bool", "object"],
}


def expectations(schema: TelemetrySchema) -> list[Any]:
    """The expectations ``schema``'s metadata implies, as GE expectation objects."""
    gxe = _great_expectations().expectations
    suite: list[Any] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[f.name for f in schema.all_fields])
    ]
    for f in schema.all_fields:
        types = _types(f)
        if types:
            suite.append(gxe.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=types))
        if f.required:
            suite.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name))
        if f.minimum is not None or f.maximum is not None:
            suite.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=f.name, min_value=f.minimum, max_value=f.maximum
                )
            )
        if f.allowed is not None:
            suite.append(gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.allowed)))
    key = list(schema.natural_key)
    if len(key) == 1:
        suite.append(gxe.ExpectColumnValuesToBeUnique(column=key[0]))
    elif key:
        suite.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key))
    return suite


# Validated once, empty, by the quality worker as it starts (``streaming/quality_worker.py``):
# GE's first validation pays costs of its own (its lazy imports, each kind of expectation's
# first use, the Data Docs templates), then every later one is cheaper. The smallest suite
# with every kind of expectation ``expectations`` makes, but the one-column key's (a suite has
# one key; that kind's first use costs ~0.01-0.04 s): 0.29 CPU-s here against 0.48 for
# radio_kpi's, the later validations as fast.
WARM_UP_SCHEMA = TelemetrySchema(
    name="ge_warm_up",
    major=1,
    minor=0,
    description="GE's first validation in a process, paid before its first job",
    fields=(
        Field("level", pa.int32(), "an integer in a range", required=True, minimum=0, maximum=9),
        Field("ratio", pa.float64(), "a floating-point number", minimum=0.0),
        Field("kind", pa.string(), "an enumeration", allowed=("a", "b")),
        Field("flag", pa.bool_(), "a boolean"),
    ),
    natural_key=("source_partition", "source_offset"),
)


def prepare_ge_import() -> None:
    """Before GE is imported: ``DEFERRED_BY_GE`` left to their first use, if any, and pydantic
    v1's fields copied slot by slot as its ~370 models are defined (``infra/pydantic_fields.py``:
    ~0.28 of GE's ~1.5 CPU-s import)."""
    for name in DEFERRED_BY_GE:
        defer(name)
    pydantic_fields.install()


@functools.cache
def _great_expectations() -> Any:
    """GE, imported (once) as ``prepare_ge_import`` prepares it: only here, so that a process
    that never validates (``rda run``'s driver) does not even look its modules up."""
    prepare_ge_import()
    import great_expectations
    from great_expectations.execution_engine import pandas_execution_engine

    # GE fingerprints every pandas batch under this many bytes: an MD5 over pandas' hash of
    # every cell, 0.03-0.06 s of a 141,300-row job (5-13 %, py-spy). The fingerprint goes to
    # GE's batch markers, which the report leaves out; the attestation binds the validated
    # files by SHA-256 instead. Never fingerprinted, then.
    pandas_execution_engine.HASH_THRESHOLD = 0
    _keep_configurations(great_expectations.expectations.Expectation)
    _keep_domain_objects(great_expectations.expectations.expectation.ExpectationConfiguration)
    from great_expectations.core.id_dict import IDDict
    from great_expectations.util import convert_to_json_serializable

    from validators import ge_ids

    ge_ids.install(IDDict, convert_to_json_serializable)  # metric ids without GE's conversion
    return great_expectations


def _types(f: Field) -> list[str]:
    if pa.types.is_integer(f.type):
        return _PANDAS_TYPES["int"]
    if pa.types.is_floating(f.type):
        return _PANDAS_TYPES["float"]
    if pa.types.is_timestamp(f.type):
        return []  # GE 1.24 rejects tz-aware pandas timestamps by name; Parquet types them
    if pa.types.is_boolean(f.type):
        return _PANDAS_TYPES["bool"]
    return _PANDAS_TYPES["string"]


def validate(
    schema: TelemetrySchema, rows: pa.Table, docs_dir: Path | None = None
) -> tuple[dict[str, Any], float]:
    """Run the suite on ``rows``; return the deterministic report and GE's run time (s)."""
    gx = _great_expectations()
    from great_expectations.validator.v1_validator import Validator

    # GE's file store wants an absolute path (a data dir like ``data/demo`` is relative).
    suite = _suite(schema, str(docs_dir.resolve()) if docs_dir else None)
    # On one thread, as the rows are read (``sinks/quality_report.py``): at a run's end two
    # jobs validate at once on 2 cores (`rda run --once`, medians 6.69 -> 6.43 and 7.00 -> 6.92 s
    # in two sets of 8 alternated pairs).
    frame = ge_text.frame(rows)
    started = time.perf_counter()
    with _pandas_options(), _configurations_kept():
        # GE's own validator on the definition's batch, as its ValidationDefinition.run makes
        # it (``Batch.validate`` loads the batch a second time, for a validator of its own).
        validator = Validator(
            batch_definition=suite.definition.batch_definition,
            batch_parameters={"dataframe": frame},
        )
        result = validator.validate_expectation_suite(suite.definition.suite)
        if docs_dir is not None:
            _build_docs(suite, result)
    seconds = time.perf_counter() - started
    return _report(schema, rows.num_rows, result.to_json_dict(), gx.__version__), seconds


def _build_docs(suite: _Suite, result: Any) -> None:
    """Store ``result`` as a run of the suite's validation definition and build the Data Docs
    from it: what a GE checkpoint with an ``UpdateDataDocsAction`` does after validating.

    Not through a checkpoint: its run first checks that the checkpoint, its validation
    definition and suite are still as stored (``is_fresh``, twice: serialized and compared),
    ~0.15-0.25 s of a ~1 s validation here, for objects this process made in an ephemeral
    context nothing else can change. The pages are GE's, from the same stored result.
    """
    import datetime as dt

    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=dt.datetime.now(dt.timezone.utc))
    result.meta.update(  # as GE's ValidationDefinition.run records its runs
        validation_id=suite.definition.id,
        run_id=run_id,
        validation_time=run_id.run_time,
        batch_parameters={"dataframe": DATAFRAME_REPLACEMENT_STR},
    )
    suite_id = ExpectationSuiteIdentifier(name=suite.definition.suite.name)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=result.batch_id
    )
    suite.context.validation_results_store.store_validation_results(
        suite_validation_result=result,
        suite_validation_result_identifier=key,
        expectation_suite_identifier=suite_id,
    )
    suite.context.build_data_docs(resource_identifiers=[key, suite_id])


def prepare(schema: TelemetrySchema, docs_dir: Path | None = None) -> None:
    """Make, in this process, the GE context and suite ``validate`` uses for ``schema`` and
    ``docs_dir`` (~0.1 s each, then kept): children forked afterwards find them made."""
    _suite(schema, str(docs_dir.resolve()) if docs_dir else None)


def _pandas_options() -> contextlib.AbstractContextManager:
    """pandas' copy-on-write while GE runs: GE selects each metric's rows with a boolean mask
    (``df[df[column].notnull()]``), which without it copies the whole frame even when every
    row is kept — about 40 % of a large checkpoint's validation. GE only reads the frames: the
    report is the same."""
    import pandas as pd

    return pd.option_context("mode.copy_on_write", True)


# id(expectation): (the expectation, its configuration), while this context validates
_KEPT: contextvars.ContextVar[dict[int, tuple[Any, Any]] | None] = contextvars.ContextVar(
    "kept_configurations", default=None
)


@contextlib.contextmanager
def _configurations_kept() -> Iterator[None]:
    """Each expectation's ``configuration`` made once while GE validates, not at every read.

    GE 1.24's ``Expectation.configuration`` is a property that builds a new
    ``ExpectationConfiguration`` from the pydantic model (``.dict()``, deep copies) each time
    it is read, and one validation reads it ~6,000 times (every kwarg lookup of every metric
    dependency): measured, ~20 % of a small job's CPU time, 5-10 % of a large one's. Nothing
    changes an expectation while it is validated, so within this context the first one made is
    kept for that expectation object; the report is the same bytes (``tests/test_quality.py``).
    The property is replaced when GE is imported (``_keep_configurations``) by one that keeps
    only inside such a context (a ``ContextVar``: each thread's validation its own); anywhere
    else it builds a new configuration at every read, as GE's does. The same holds for each
    configuration's expectation (``_keep_domain_objects``)."""
    token = _KEPT.set({})
    try:
        yield
    finally:
        _KEPT.reset(token)


def _keep_configurations(expectation: type) -> None:
    """Replace GE's ``configuration`` property (once: ``_great_expectations`` is cached)."""
    own = expectation.__dict__["configuration"]

    def configuration(self: Any) -> Any:
        kept = _KEPT.get()
        if kept is None:
            return own.fget(self)
        entry = kept.get(id(self))  # the entry holds the expectation: its id is not reused
        if entry is None:
            entry = kept[id(self)] = (self, own.fget(self))
        return entry[1]

    expectation.configuration = property(configuration, doc=own.__doc__)


def _keep_domain_objects(configuration_class: type) -> None:
    """Replace GE's ``ExpectationConfiguration.to_domain_obj`` (once) by one that, inside
    ``_configurations_kept``, makes each configuration's expectation once.

    The reverse of ``configuration``: GE builds a new pydantic expectation from a configuration
    at each call, ~25 times per expectation of one validation (every metric's keyword
    arguments are looked up through one, ``registry.get_metric_kwargs``), and each new
    expectation then builds its own configuration again: 12-14 % of a validation here. GE
    changes a configuration before it asks for its expectation (the batch id), never after,
    within a validation; the report is the same bytes (``tests/test_quality.py``)."""
    own = configuration_class.to_domain_obj

    def to_domain_obj(self: Any) -> Any:
        kept = _KEPT.get()
        if kept is None:
            return own(self)
        entry = kept.get(id(self))  # an expectation's and a configuration's ids never meet
        if entry is None:
            entry = kept[id(self)] = (self, own(self))
        return entry[1]

    configuration_class.to_domain_obj = to_domain_obj


@dataclass(frozen=True)
class _Suite:
    context: Any  # an ephemeral GE context, with the Data Docs site when there is one
    definition: Any  # its validation definition: the suite, on a whole-dataframe batch


@functools.lru_cache(maxsize=32)
def _suite(schema: TelemetrySchema, docs_dir: str | None) -> _Suite:
    """An ephemeral context with the schema's suite, made once per schema and site."""
    gx = _great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    from validators import ge_between, ge_type_list
    from validators.data_docs_views import site_views

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    ge_between.register()  # numeric bounds checked in one step whatever the column's width
    ge_type_list.register()  # a column of one type judged once, not value by value
    ge_text.register()  # text columns as Arrow strings, their values judged as before
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,  # offline
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    name = schema.dataset
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="rda",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": docs_dir,
                },
                **site_views(),  # GE's views, templates compiled once per process
            },
        )
    batch_definition = (
        context.data_sources.add_pandas("rda")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("published rows")
    )
    # The whole suite at once: adding expectations one by one re-serializes the suite each time.
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations(schema)))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    return _Suite(context, definition)


def _report(
    schema: TelemetrySchema, rows: int, result: dict[str, Any], version: str
) -> dict[str, Any]:
    """GE's result without run ids, clocks or random ids: a function of the rows alone."""
    results = []
    for item in result["results"]:
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        detail = item.get("result", {})
        results.append(
            {
                "expectation": config["type"],
                "kwargs": kwargs,
                "success": item["success"],
                "result": {
                    k: detail[k]
                    for k in (
                        "element_count",
                        "unexpected_count",
                        "unexpected_percent",
                        "missing_count",
                        "partial_unexpected_list",
                        "observed_value",
                    )
                    if k in detail
                },
            }
        )
    report = {
        "report": "Great Expectations validation result (deterministic subset)",
        "great_expectations_version": version,
        "suite": schema.dataset,
        "schema_fingerprint": schema.fingerprint(),
        "rows_validated": rows,
        "success": result["success"],
        "statistics": result["statistics"],
        "results": results,
    }
    return json.loads(json.dumps(report, default=str))


def report_bytes(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
