"""``ReadStandardizeProtect`` is a composite PTransform anyone can put in their own pipeline."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from pipelines.graph import ReadStandardizeProtect
from pipelines.kafka_source import OffsetRange, open_source
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
