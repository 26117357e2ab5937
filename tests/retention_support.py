"""A broker whose records a test can delete as retention would: Tansu keeping its record
batches in a local S3 store (one object per batch), so deleting an object moves the log's start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.broker import Broker, start_broker, stop_broker
from infra.object_store import start_object_store, stop_object_store


@contextmanager
def stored_broker_in(root: Path) -> Iterator[tuple[Broker, Path]]:
    """A broker keeping its records in a local S3 store under ``root`` (one object per record
    batch), and the store's folder of objects: a test deletes some as retention would (a
    module's fixture: each test on its own topic)."""
    store = start_object_store(root / "s3", root / "objects")
    try:
        yield start_broker(root / "broker", store=store), root / "objects"
    finally:
        stop_broker(root / "broker")
        stop_object_store(root / "s3")


def delete_a_batch(objects: Path, topic: str, at: dict[int, int]) -> tuple[int, int]:
    """Delete from the store the record batch at offset ``at[partition]`` of the first
    partition with another batch after it, as retention would: that partition, and the offset
    its log starts at now (the next batch's base offset)."""
    folder = objects / "tansu" / "clusters"
    for partition in range(4):
        records = f"*/topics/{topic}/partitions/{partition:010d}/records/*.batch*"
        batches = sorted(folder.glob(records))
        bases = sorted(int(b.name.split(".")[0]) for b in batches)
        later = [base for base in bases if base > at.get(partition, 0)]
        if at.get(partition, 0) in bases and later:
            for path in batches:
                if int(path.name.split(".")[0]) <= at.get(partition, 0):
                    path.unlink()
            return partition, later[0]
    raise AssertionError(f"no partition has a record batch at {at} and one after it")


def publish_twice(broker, topic: str, publish) -> None:
    """Two record batches (two objects in the store) in each partition the nodes reach."""
    for seed in (1, 2):
        publish(broker, topic, nodes=6, duration_s=10, seed=seed)


def delete_below(objects: Path, topic: str, partition: int, offset: int) -> None:
    """Delete from the store every record batch of the partition below ``offset``, where its
    next batch starts: its log then starts at ``offset``."""
    folder = objects / "tansu" / "clusters"
    records = f"*/topics/{topic}/partitions/{partition:010d}/records/*.batch*"
    files = [(int(path.name.split(".")[0]), path) for path in folder.glob(records)]  # 2-3 a batch
    assert offset in {base for base, _ in files}, f"partition {partition}: no batch at {offset}"
    for base, path in files:
        if base < offset:
            path.unlink()


def batch_bases(objects: Path, topic: str, partition: int) -> list[int]:
    """The base offsets of the partition's record batches in the store, in order."""
    folder = objects / "tansu" / "clusters"
    records = f"*/topics/{topic}/partitions/{partition:010d}/records/*.batch*"
    return sorted({int(path.name.split(".")[0]) for path in folder.glob(records)})
