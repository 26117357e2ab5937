"""``ReadStandardizeProtect`` is a composite PTransform anyone can put in their own pipeline;
the landing's own pipeline takes its options (``KeptViews``), work items (``WorkItems``) and
DoFns' state specs (``specs_of_class``) as Beam's would, made cheaper."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from types import SimpleNamespace

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import (
    DebugOptions,
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    TypeOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.worker import statesampler
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import BagStateSpec
from hypothesis import given
from hypothesis import strategies as st

from pipelines.beam_tuning import STATE_SAMPLING_PERIOD_MS, KeptViews, specs_of_class
from pipelines.graph import ReadAndStandardize, ReadStandardizeProtect, WorkItems, read_groups
from pipelines.kafka_source import KafkaSpec, OffsetRange, check_together, open_source
from pipelines.protect import Protection


def test_a_users_own_pipeline_reads_standardizes_and_protects_every_record(
    broker, topic, tmp_path, publish
):
    produced = publish(broker, topic, nodes=4, duration_s=10, bad_fraction=0.1)
    ends = open_source(broker.bootstrap).high_watermarks(topic)
    chunks = [
        chunk.as_dict()
        for partition, end in ends.items()
        for chunk in OffsetRange(topic, partition, 0, end).split(30)
    ]

    def counts(chunk: OffsetRange, result) -> tuple[int, int, int]:
        suppressed = result.suppressed.num_rows if result.suppressed is not None else 0
        return result.read, result.published_records + result.quarantined.num_rows, suppressed

    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        per_chunk = (
            pipeline
            | beam.Create(chunks)
            | ReadStandardizeProtect(broker.bootstrap, "rda.node.v1", Protection(str(tmp_path)))
            | beam.MapTuple(counts)
        )
        totals = per_chunk | beam.CombineGlobally(
            lambda rows: tuple(sum(column) for column in zip(*rows, strict=True)) or (0, 0, 0)
        )
        # Every record read is published, quarantined or suppressed (no sessions here: none).
        assert_that(totals, equal_to([(produced.messages, produced.messages, 0)]))


def test_a_stream_batch_s_chunks_are_read_together_and_land_as_read_one_by_one(
    broker, topic, tmp_path, publish
):
    """One worker taking the chunks in order (``in_order``) reads small chunks of distinct
    partitions with one ``read_many``; each chunk's result is what reading it alone gives."""
    publish(broker, topic, nodes=4, duration_s=10)
    ends = open_source(broker.bootstrap).high_watermarks(topic)
    chunks = [OffsetRange(topic, p, 0, end) for p, end in sorted(ends.items())]
    chunks += [OffsetRange(topic, 0, 0, 1)]  # partition 0 again: read in a group of its own
    protection = Protection(str(tmp_path / "keys"))

    def landed(in_order: list[OffsetRange] | None) -> tuple[list[tuple[str, int]], list]:
        dofn = ReadAndStandardize(KafkaSpec(broker.bootstrap), None, protection, in_order=in_order)
        dofn.setup()
        calls: list[tuple[str, int]] = []  # what the DoFn asks of its source
        source = dofn.source
        dofn.source = SimpleNamespace(
            read=lambda r: calls.append(("read", 1)) or source.read(r),
            read_many=lambda rs: calls.append(("read_many", len(rs))) or source.read_many(rs),
            close=source.close,
        )
        results = [next(iter(dofn.process(c.as_dict())))[1] for c in chunks]
        dofn.finish_bundle()
        return calls, [_contents(r) for r in results]

    calls, together = landed(chunks)
    assert calls == [("read_many", 4), ("read", 1)]
    alone_calls, alone = landed(None)
    assert alone_calls == [("read", 1)] * 5
    assert together == alone


def _contents(result) -> dict:
    """A chunk's standardized result, as values."""
    suppressed = result.suppressed.to_pylist() if result.suppressed is not None else None
    published = {d: rows.to_pylist() for d, rows in result.published.items()}
    return {"read": result.read, "published": published, "suppressed": suppressed,
            "quarantined": result.quarantined.to_pylist(), "quality": result.quality}  # fmt: skip


@given(
    st.lists(
        st.tuples(st.sampled_from(["t", "u"]), st.integers(0, 3), st.integers(0, 40)), max_size=12
    ),
    st.integers(1, 60),
)
def test_read_groups_keep_the_chunks_in_order_in_groups_that_can_be_read_together(
    specs, most_records
):
    chunks = [OffsetRange(topic, partition, 0, size) for topic, partition, size in specs]
    groups = read_groups(chunks, most_records)
    assert [c for group in groups for c in group] == chunks
    for group in groups:
        check_together(group)
        assert len(group) == 1 or sum(c.size for c in group) <= most_records
    for before, after in itertools.pairwise(groups):  # a group ends where the next chunk
        first = after[0]  # could not join it
        assert (
            first.topic != before[0].topic
            or first.partition in {c.partition for c in before}
            or sum(c.size for c in before) + first.size > most_records
        )


class _SamplingPeriod(beam.DoFn):
    """Notes, in a file (the runner works on a copy of the DoFn), the sampling period of the
    state sampler that times the bundle it runs in."""

    def __init__(self, notes: str) -> None:
        self.notes = notes

    def process(self, element: int) -> Iterator[int]:
        with open(self.notes, "a") as notes:
            notes.write(f"{statesampler.get_current_tracker().sampling_period_ms}\n")
        yield element


def test_a_bundle_s_state_sampler_looks_every_ten_ms_so_its_stop_waits_no_longer(tmp_path):
    notes = tmp_path / "periods"
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        pipeline | beam.Create([1, 2]) | beam.ParDo(_SamplingPeriod(str(notes)))
    assert notes.read_text().split() == [str(STATE_SAMPLING_PERIOD_MS)] * 2
    assert STATE_SAMPLING_PERIOD_MS == 10


def test_kept_views_are_made_once_per_options_class():
    options = KeptViews(["--no_pipeline_type_check"])
    typed = options.view_as(TypeOptions)
    assert options.view_as(TypeOptions) is typed
    assert typed.pipeline_type_check is False
    assert options.view_as(DebugOptions) is not typed


def test_a_value_set_through_a_kept_view_is_the_options_value():
    options = KeptViews([])
    options.view_as(DebugOptions).add_experiment("kept")
    options.view_as(StandardOptions).streaming = True
    assert options.view_as(DebugOptions).lookup_experiment("kept")
    assert PipelineOptions.view_as(options, StandardOptions).streaming is True  # a fresh view
    assert options.get_all_options()["experiments"] == ["kept"]


_FLAG_SETS = [
    [],
    ["--no_pipeline_type_check"],
    ["--streaming", "--experiments=a", "--experiments=b", "--resource_hint=min_ram=1GB"],
    ["--job_name=landing", "--direct_num_workers=3", "--unknown_flag=1", "--sdk_location=x"],
]


def _every_options_class() -> list[type[PipelineOptions]]:
    return sorted(PipelineOptions.__subclasses__(), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("flags", _FLAG_SETS)
def test_a_view_from_the_kept_parser_holds_what_beams_own_view_holds(flags):
    for cls in _every_options_class():
        kept, beams = KeptViews(flags).view_as(cls), PipelineOptions(flags).view_as(cls)
        names = beams._visible_option_list()
        assert kept._visible_option_list() == names, cls
        for name in names:
            assert repr(getattr(kept, name)) == repr(getattr(beams, name)), (cls, name)


@pytest.mark.parametrize("flags", _FLAG_SETS)
@pytest.mark.parametrize("drop_default", [False, True])
@pytest.mark.parametrize("keep_unknown", [False, True])
def test_all_options_from_the_kept_parser_are_beams_own(flags, drop_default, keep_unknown):
    kept, beams = KeptViews(flags, job_name="given"), PipelineOptions(flags, job_name="given")
    for options in (kept, beams):  # values set through views, and an option no class defines
        options.view_as(DebugOptions).add_experiment("set")
        options.view_as(StandardOptions).streaming = True
        options._all_options["no_such_option"] = 1
    asked = {"drop_default": drop_default, "retain_unknown_options": keep_unknown}
    assert repr(kept.get_all_options(**asked)) == repr(beams.get_all_options(**asked))


def test_options_made_after_another_get_list_and_dict_defaults_of_their_own():
    first = KeptViews([])
    first.view_as(StandardOptions).resource_hints.append("accelerator=x")
    first.view_as(DirectOptions).direct_test_splits["step"] = {"timings": [0]}
    second = KeptViews([])
    assert second.view_as(StandardOptions).resource_hints == []
    assert second.view_as(DirectOptions).direct_test_splits == {}


def test_a_value_set_before_a_class_is_viewed_is_kept_by_its_view():
    options = KeptViews(["--streaming"], job_name="set")
    assert options.view_as(GoogleCloudOptions).job_name == "set"
    assert options.view_as(StandardOptions).streaming is True


def test_a_deep_copy_of_kept_views_has_their_values_and_views_of_its_own():
    options = KeptViews(["--streaming"])
    options.view_as(DebugOptions).add_experiment("kept")
    copied = copy.deepcopy(options)
    assert "_kept_views" not in copied.__dict__  # made again when asked
    assert copied.view_as(StandardOptions).streaming is True
    assert copied.view_as(DebugOptions).experiments == ["kept"]
    copied.view_as(DebugOptions).add_experiment("copy only")
    assert options.view_as(DebugOptions).experiments == ["kept"]


def test_a_pipeline_with_kept_views_runs_as_with_plain_options():
    with beam.Pipeline(runner=FnApiRunner(), options=KeptViews([])) as pipeline:
        squares = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * x)
        assert_that(squares, equal_to([1, 4, 9]))


def test_work_items_are_the_items_given_each_once():
    items = [{"topic": "t", "partition": p, "start": 0, "end": 10} for p in range(3)]
    with beam.Pipeline(runner=FnApiRunner(), options=KeptViews([])) as pipeline:
        got = pipeline | WorkItems(items) | beam.Map(lambda item: (item["partition"], item))
        assert_that(got, equal_to([(item["partition"], item) for item in items]))


class _Looked(beam.DoFn):
    """Counts how often Beam lists its attributes: once per look for state and timer specs."""

    looked = 0

    def __dir__(self) -> list[str]:
        type(self).looked += 1
        return list(super().__dir__())

    def process(self, element: int) -> Iterator[int]:
        yield element


@specs_of_class
class _LookedOnce(_Looked):
    looked = 0


def test_beam_looks_for_the_specs_of_a_class_it_is_told_of_once_for_all_its_instances():
    for _ in range(3):
        assert userstate.get_dofn_specs(_LookedOnce()) == (set(), set())
    assert _LookedOnce.looked == 1


def test_beam_looks_at_every_instance_of_any_other_dofn_each_time_it_asks():
    for _ in range(3):
        assert userstate.get_dofn_specs(_Looked()) == (set(), set())
    assert _Looked.looked == 3


_SEEN = BagStateSpec("seen", beam.coders.VarIntCoder())


@specs_of_class
class _CountPerKey(beam.DoFn):
    def process(self, element: tuple[str, int], seen=beam.DoFn.StateParam(_SEEN)):  # noqa: B008 (Beam reads state from the default)
        seen.add(element[1])
        yield element[0], sum(seen.read())


def test_a_stateful_dofn_told_of_keeps_its_state_each_time_beam_asks():
    first = userstate.get_dofn_specs(_CountPerKey())
    first[0].clear()  # each answer is the caller's own set
    assert userstate.get_dofn_specs(_CountPerKey()) == ({_SEEN}, set())
    assert userstate.is_stateful_dofn(_CountPerKey())
    with beam.Pipeline(runner=FnApiRunner(), options=KeptViews([])) as pipeline:
        totals = pipeline | beam.Create([("a", 1), ("a", 2)]) | beam.ParDo(_CountPerKey())
        assert_that(totals, equal_to([("a", 1), ("a", 3)]))
