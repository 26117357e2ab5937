"""The bounded Beam pipeline: offset ranges in, standardized chunks handed to a sink.

Work items are ``OffsetRange`` chunks small enough to hold in memory. Each is read with a plain
DoFn (not a splittable DoFn, not the cross-language ReadFromKafka, which cannot start offline), so
the same graph runs on FnApiRunner here and on distributed runners unchanged. There is no
windowing and no GroupByKey: every chunk is written and committed on its own, by name, so the
output is identical whichever worker handled it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.kafka_source import KafkaPythonSource, OffsetRange
from pipelines.protect import Protection
from pipelines.standardize import Standardized, standardize_routed

# Called once per chunk with the chunk and its standardized result; returns a summary.
ChunkSink = Callable[[OffsetRange, Standardized], Any]


class ReadAndStandardize(beam.DoFn):
    """Reads one offset range and standardizes each record with its format's adapter."""

    def __init__(
        self, bootstrap: str, wire_format: str | None, protection: Protection | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.wire_format = wire_format  # the topic's default, for records without a header
        self.protection = protection  # quality checks and privacy policy, before landing

    def setup(self) -> None:
        self.source = KafkaPythonSource(self.bootstrap)

    def process(self, work_item: dict) -> Iterable[tuple[OffsetRange, Standardized]]:
        chunk = OffsetRange(**work_item)
        raw = self.source.read(chunk)
        result = standardize_routed(raw, self.wire_format)
        if self.protection is not None:
            result = self.protection(raw, result)
        yield chunk, result


class WriteChunk(beam.DoFn):
    def __init__(self, sink: ChunkSink) -> None:
        self.sink = sink

    def process(self, element: tuple[OffsetRange, Standardized]) -> Iterable[Any]:
        chunk, result = element
        yield self.sink(chunk, result)


def build(
    pipeline: beam.Pipeline,
    chunks: list[OffsetRange],
    bootstrap: str,
    wire_format: str | None,
    sink: ChunkSink,
    protection: Protection | None = None,
) -> beam.PCollection:
    """Add the read → standardize → sink stages for ``chunks`` to ``pipeline``."""
    return (
        pipeline
        # Plain dicts as work items: Beam would otherwise infer a row schema for the dataclass.
        | "Chunks" >> beam.Create([chunk.as_dict() for chunk in chunks])
        | "Distribute" >> beam.Reshuffle()
        | "ReadAndStandardize" >> beam.ParDo(ReadAndStandardize(bootstrap, wire_format, protection))
        | "Write" >> beam.ParDo(WriteChunk(sink))
    )


def run(
    chunks: list[OffsetRange],
    bootstrap: str,
    wire_format: str | None,
    sink: ChunkSink,
    runner: str = "fnapi",
    protection: Protection | None = None,
) -> None:
    """Run the pipeline to completion on the chosen runner (FnApiRunner by default).

    ``DirectRunner`` is never used: it first tries to download another runner from the network.
    """
    if runner != "fnapi":
        raise ValueError(f"unknown runner {runner!r} (available: fnapi)")
    options = PipelineOptions(["--no_pipeline_type_check"])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as pipeline:
        build(pipeline, chunks, bootstrap, wire_format, sink, protection)
