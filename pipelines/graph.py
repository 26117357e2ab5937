"""The bounded Beam pipeline: offset ranges in, standardized chunks handed to a sink.

Work items are ``OffsetRange`` chunks small enough to hold in memory. Each is read with a plain
DoFn (not a splittable DoFn, not the cross-language ReadFromKafka, which cannot start offline), so
the same graph runs on FnApiRunner here and on distributed runners unchanged. There is no
windowing and no GroupByKey: every chunk is written and committed on its own, by name, so the
output is identical whichever worker handled it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.beam_tuning import KeptViews, specs_of_class
from pipelines.device_signatures import DeviceCheck
from pipelines.kafka_source import KafkaSpec, OffsetRange
from pipelines.protect import Protection
from pipelines.standardize import Standardized, drop_duplicates, standardize_each

RUNNERS = ("fnapi", "dask")
# Called once per chunk with the chunk and its standardized result; returns a summary.
ChunkSink = Callable[[OffsetRange, Standardized], Any]
# (partition, offset) -> (code, reason): records to quarantine unread (pipelines/poison.py).
Refused = Mapping[tuple[int, int], tuple[str, str]]
# Chunks of distinct partitions holding at most this many records together are read with one
# assignment (``KafkaSource.read_many``) when one worker takes them in order: a stream's batch,
# a chunk a partition, waited for each chunk's fetch at its partition's end otherwise.
READ_TOGETHER_RECORDS = 16_384


def read_groups(
    chunks: list[OffsetRange], most_records: int = READ_TOGETHER_RECORDS
) -> list[list[OffsetRange]]:
    """``chunks`` in order, in groups to read together: consecutive chunks of one topic, each
    of another partition, ``most_records`` at most in all (a larger chunk is a group alone)."""
    groups: list[list[OffsetRange]] = []
    for chunk in chunks:
        group = groups[-1] if groups else None
        if (
            group is None
            or chunk.topic != group[0].topic
            or chunk.partition in {c.partition for c in group}
            or sum(c.size for c in group) + chunk.size > most_records
        ):
            groups.append([chunk])
        else:
            group.append(chunk)
    return groups


def standardize_chunk(
    raw: pa.RecordBatch,
    wire_format: str | None,
    protection: Protection | None = None,
    refused: Refused | None = None,
    devices: DeviceCheck | None = None,
    override: bool = False,
) -> Standardized:
    """One chunk's raw records standardized and protected: what the DoFn does after reading.

    With ``devices``, each record's device signature is checked before any parser sees it and
    its rows are bound to the signing node afterwards (``pipelines/device_signatures.py``).
    Records are compared for duplicates last, among those every other check lets through.
    """
    partition = raw.column("partition")[0].as_py() if raw.num_rows else None
    unread = {o: r for (p, o), r in (refused or {}).items() if p == partition}
    checked = devices.check_records(raw) if devices is not None else None
    if checked is not None:
        unread = {**checked.refused, **unread}  # a poison record stays poison
    result = standardize_each(raw, wire_format, override, refused=unread)
    if devices is not None:
        result = devices.bind(raw, checked, result)
    if protection is None:
        return drop_duplicates(raw, result)
    return protection(raw, result)  # its quality checks first, then ``drop_duplicates``


@specs_of_class
class ReadAndStandardize(beam.DoFn):
    """Reads one offset range and standardizes each record with its format's adapter."""

    def __init__(
        self,
        kafka: KafkaSpec,
        wire_format: str | None,
        protection: Protection | None = None,
        refused: Refused | None = None,
        devices: DeviceCheck | None = None,
        in_order: list[OffsetRange] | None = None,
    ) -> None:
        """``in_order``: the work items, as one worker takes them (FnApiRunner's), to read
        small chunks of distinct partitions together (``read_groups``)."""
        self.kafka = kafka  # broker, client, and the timeout after which the batch is retried
        self.wire_format = wire_format  # the topic's default, for records without a header
        self.protection = protection  # quality checks and privacy policy, before landing
        self.refused = dict(refused or {})  # records the driver found to kill the worker
        self.devices = devices  # device signatures against the node registry
        self.in_order = list(in_order or [])

    def setup(self) -> None:
        self.source = self.kafka.open()
        self.group_of = {c: group for group in read_groups(self.in_order) for c in group}
        self.read_ahead: dict[OffsetRange, pa.RecordBatch] = {}  # of the group being landed

    def finish_bundle(self) -> None:
        # Runners do not always call teardown: a consumer left open would log connection errors
        # once the broker is gone. One connection per bundle still spares one per chunk.
        self.source.close()
        self.read_ahead = {}

    def teardown(self) -> None:
        self.source.close()

    def process(self, work_item: dict) -> Iterable[tuple[OffsetRange, Standardized]]:
        chunk = OffsetRange(**work_item)
        raw = self._read(chunk)
        yield (
            chunk,
            standardize_chunk(raw, self.wire_format, self.protection, self.refused, self.devices),
        )

    def _read(self, chunk: OffsetRange) -> pa.RecordBatch:
        """The chunk's records: read with the rest of its group when it is the group's first
        asked (the others kept until asked), else alone."""
        raw = self.read_ahead.pop(chunk, None)
        if raw is not None:
            return raw
        group = self.group_of.get(chunk, [chunk])
        if len(group) == 1:
            return self.source.read(chunk)
        batches = dict(zip(group, self.source.read_many(group), strict=True))
        self.read_ahead = {c: batch for c, batch in batches.items() if c != chunk}
        return batches[chunk]


class ReadStandardizeProtect(beam.PTransform):
    """Offset ranges in; per range, its records standardized and protected, out.

    The input is a PCollection of work items, ``OffsetRange.as_dict()`` dicts (topic,
    partition, start, end), each small enough to hold in memory; the output holds one
    ``(OffsetRange, Standardized)`` per work item: the rows of each canonical dataset, the
    quarantined records with their reasons, and those withheld by the privacy policy. The
    transform has no windowing and no GroupByKey, so it runs unchanged on any Beam runner::

        chunks = [r.as_dict() for r in OffsetRange("t", 0, 0, 10_000).split(2_000)]
        with beam.Pipeline(runner=FnApiRunner()) as p:
            (p | beam.Create(chunks)
               | ReadStandardizeProtect("127.0.0.1:9092", "rda.node.v1", Protection(keys_dir))
               | beam.MapTuple(lambda chunk, result: ...))
    """

    def __init__(
        self,
        kafka: KafkaSpec | str,
        wire_format: str | None,
        protection: Protection | None = None,
        refused: Refused | None = None,
        devices: DeviceCheck | None = None,
        distribute: bool = True,
        in_order: list[OffsetRange] | None = None,
    ) -> None:
        """``distribute``: reshuffle the work items over the runner's workers first (a runner
        with one worker, like ``rda run``'s FnApiRunner, gains nothing from it but an extra
        stage: ~30 ms a batch). ``in_order``: when not distributed, the work items in the order
        the one worker takes them, so that small chunks of several partitions are read
        together."""
        super().__init__()
        self.kafka = kafka if isinstance(kafka, KafkaSpec) else KafkaSpec(kafka)
        self.wire_format = wire_format
        self.protection = protection
        self.refused = refused
        self.devices = devices
        self.distribute = distribute
        self.in_order = None if distribute else in_order

    def expand(self, work_items: beam.PCollection) -> beam.PCollection:
        read = ReadAndStandardize(
            self.kafka, self.wire_format, self.protection, self.refused, self.devices, self.in_order
        )
        if self.distribute:
            work_items = work_items | "Distribute" >> beam.Reshuffle()
        return work_items | "ReadAndStandardize" >> beam.ParDo(read)


class WorkItems(beam.PTransform):
    """The work items as a PCollection: ``beam.Create`` without what it does for any values.

    ``Create`` infers the values' type (a row schema, for dataclasses) and sends each through a
    coder, encoded at construction and decoded in a step of its own; plain dicts of a few
    offsets need neither. Each landing builds its pipeline anew, and that was ~8 ms of its ~36
    ms fixed cost (measured on empty chunks). The same primitives as ``Create`` (an impulse,
    then the items), so it runs on any runner.
    """

    def __init__(self, items: list[dict]) -> None:
        super().__init__()
        self.items = items

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection:
        return begin | beam.Impulse() | "Items" >> beam.ParDo(_Emit(self.items))


@specs_of_class
class _Emit(beam.DoFn):
    """The items, once, for the impulse (a DoFn of this module's: Beam looks at it once)."""

    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def process(self, _impulse: bytes) -> Iterable[dict]:
        yield from self.items


@specs_of_class
class WriteChunk(beam.DoFn):
    """Hands each chunk's result to the sink (e.g. ``sinks.parquet.ChunkWriter``)."""

    def __init__(self, sink: ChunkSink) -> None:
        self.sink = sink

    def process(self, element: tuple[OffsetRange, Standardized]) -> Iterable[Any]:
        chunk, result = element
        yield self.sink(chunk, result)


def build(
    pipeline: beam.Pipeline,
    chunks: list[OffsetRange],
    kafka: KafkaSpec,
    wire_format: str | None,
    sink: ChunkSink,
    protection: Protection | None = None,
    refused: Refused | None = None,
    devices: DeviceCheck | None = None,
    distribute: bool = True,
) -> beam.PCollection:
    """Add the read → standardize → protect → sink stages for ``chunks`` to ``pipeline``.

    ``distribute``: the runner has several workers (Dask), so the work items are reshuffled
    over them, and made by ``beam.Create``, the root Beam's Dask runner turns into a bag (not a
    bare ``Impulse``). FnApiRunner's one worker takes them from the lighter ``WorkItems``."""
    read = ReadStandardizeProtect(
        kafka, wire_format, protection, refused, devices, distribute, in_order=chunks
    )
    # ``OffsetRange.as_dict()`` work items, as ``ReadStandardizeProtect`` takes them. No
    # reshuffle here: ``read`` distributes the items when asked to.
    items = [chunk.as_dict() for chunk in chunks]
    return (
        pipeline
        | "Chunks" >> (beam.Create(items, reshuffle=False) if distribute else WorkItems(items))
        | "ReadStandardizeProtect" >> read
        | "Write" >> beam.ParDo(WriteChunk(sink))
    )


def run(
    chunks: list[OffsetRange],
    kafka: KafkaSpec,
    wire_format: str | None,
    sink: ChunkSink,
    runner: str = "fnapi",
    protection: Protection | None = None,
    dask_scheduler: str | None = None,
    refused: Refused | None = None,
    devices: DeviceCheck | None = None,
) -> None:
    """Run the pipeline to completion on the chosen runner (FnApiRunner by default).

    ``dask`` runs the same graph on Beam's Dask runner, on the scheduler at ``dask_scheduler`` or
    on a local cluster of worker processes. ``DirectRunner`` is never used: it first tries to
    download another runner from the network.
    """
    options = ["--no_pipeline_type_check"]
    if runner == "fnapi":  # one in-process worker: nothing to distribute the chunks over
        with beam.Pipeline(runner=FnApiRunner(), options=KeptViews(options)) as pipeline:
            build(pipeline, chunks, kafka, wire_format, sink, protection, refused, devices, False)
        return
    if runner != "dask":
        raise ValueError(f"unknown runner {runner!r} (available: {', '.join(RUNNERS)})")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    from pipelines.dask_cluster import local_scheduler_address

    address = dask_scheduler or local_scheduler_address()
    options.append(f"--dask_client_address={address}")
    pipeline = beam.Pipeline(runner=DaskRunner(), options=PipelineOptions(options))
    build(pipeline, chunks, kafka, wire_format, sink, protection, refused, devices)
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()  # Beam opens a client per pipeline and leaves it open
