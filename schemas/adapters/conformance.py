"""The properties every adapter keeps, as one check an adapter's author runs in their own tests.

    from schemas.adapters.conformance import check_adapter

    def test_my_adapter_keeps_the_adapter_contract():
        assert check_adapter(MyAdapter, samples=[b'{...}', b'{...}']) == []

``check_adapter`` decodes through the same guard the pipeline uses (``adapter_for``) and returns
every problem found, each a sentence naming the input; the built-in adapters pass it. It checks:

1. each sample (a valid message of the format) gives rows of the adapter's schemas, and only
   rows with every column of their schema;
2. hostile input — tombstones, empty and oversized messages, binary, 100,000 nested arrays, a
   5,000-digit number, truncations of each sample, other kinds of JSON value in place of the
   samples' members (the first 40 of each, outer ones first) — never makes the adapter raise
   (the guard would quarantine such records as ``adapter_error``: a bug to fix), and every
   record ends as rows or as a reject with a reason code and a reason a person reads;
3. a record decodes the same alone as in a batch with others (every sample, and hostile
   records spread over the whole set);
4. with a fast path (an adapter with a ``bulk`` switch), rows and rejects are the same with it
   on and off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from schemas.adapters.base import Adapter, DecodeResult
from schemas.adapters.guard import GuardedAdapter
from schemas.records import RAW_RECORD_SCHEMA

INGEST_MS = 1_764_000_000_000
_LINEAGE = ("source_topic", "source_partition", "source_offset", "ingest_time")
_CODE = re.compile(r"^[a-z][a-z0-9_]{2,40}$")
_UNREADABLE = ("Traceback", "<missing>", "object at 0x")
_REPLACEMENTS: tuple[Any, ...] = (None, True, "x", [], {}, -1, 1e308, 2**64, "NaN")
_MAX_MUTATED_MEMBERS = 40  # per sample, outer members first
_KINDS_PER_MEMBER = 3
_ALONE = 60  # records also decoded alone, to compare with the batch


def raw_records(values: list[bytes | None], wire_format: str | None = None) -> pa.RecordBatch:
    """Kafka records as the pipeline hands them to an adapter (offsets from 0, partition 0)."""
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["conformance"] * n,
            "partition": [0] * n,
            "offset": list(range(n)),
            "timestamp_ms": [INGEST_MS] * n,
            "key": [b"k"] * n,
            "value": values,
            "format": [wire_format] * n,
        },
        schema=RAW_RECORD_SCHEMA,
    )


def check_adapter(factory: Callable[[], Adapter], samples: list[bytes]) -> list[str]:
    """Every way ``factory()``'s adapter breaks the adapter contract; [] when it keeps it."""
    adapter = factory()
    problems = [f"sample {i}: {p}" for i, s in enumerate(samples) for p in _sample(adapter, s)]
    hostile = list(hostile_inputs(samples))
    outcomes = _outcomes(_guarded(factory), [value for _, value in hostile])
    for (what, _), outcome in zip(hostile, outcomes, strict=True):
        problems += [f"{what}: {problem}" for problem in _judged(outcome)]
    records = samples + [value for _, value in hostile]
    together = _outcomes(_guarded(factory), records)
    step = max(1, len(records) // _ALONE)  # every sample, then hostile records evenly spread
    for number in sorted(set(range(len(samples))) | set(range(0, len(records), step))):
        if _outcomes(_guarded(factory), [records[number]])[0] != together[number]:
            what = (
                f"sample {number}" if number < len(samples) else hostile[number - len(samples)][0]
            )
            problems.append(f"{what} decodes differently alone than in a batch")
    if hasattr(adapter, "bulk"):
        problems += _bulk_problems(factory, records)
    return problems


def hostile_inputs(samples: list[bytes]) -> Iterator[tuple[str, bytes | None]]:
    """(what it is, the message) of inputs a broken or malicious producer can send."""
    yield "a tombstone", None
    yield "an empty message", b""
    yield "binary", bytes(range(256)) * 4
    yield "one byte over 1 MB", b"{" + b" " * 1_000_000
    yield "100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000
    yield "100,000 nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    yield "a 5,000-digit number", b'{"n":' + b"9" * 5_000 + b"}"
    for text in (b"null", b"[]", b"{}", b'"text"', b"1e999", b"NaN", b"[1,2,3]"):
        yield f"the JSON value {text.decode()}", text
    for number, sample in enumerate(samples):
        for cut in (len(sample) // 3, len(sample) // 2, len(sample) - 1):
            yield f"sample {number} cut at byte {cut}", sample[:cut]
        yield f"sample {number} with invalid UTF-8", sample[:-1] + b"\xff"
        yield from _mutations(number, sample)


def _mutations(number: int, sample: bytes) -> Iterator[tuple[str, bytes]]:
    """The sample with one member at a time replaced by another kind of JSON value."""
    try:
        document = json.loads(sample)
    except ValueError:
        return  # not JSON: the format's own tests mutate it
    for turn, path in enumerate(list(_paths(document))[:_MAX_MUTATED_MEMBERS]):
        for shift in range(_KINDS_PER_MEMBER):  # a few kinds of value per member, in turn
            replacement = _REPLACEMENTS[(turn * _KINDS_PER_MEMBER + shift) % len(_REPLACEMENTS)]
            changed = _replaced(document, path, replacement)
            shown = "/".join(map(str, path))
            text = json.dumps(changed, allow_nan=True).replace('"NaN"', "NaN")
            yield f"sample {number} with {shown} = {replacement!r}", text.encode()


def _paths(document: Any) -> Iterator[tuple]:
    """Paths of the document's members, breadth first (outer members first), of lists the
    first and last items (what "the last snapshot" readers read)."""
    level = [((), document)]
    while level:
        deeper = []
        for path, value in level:
            if type(value) is dict:
                members = list(value.items())
            elif type(value) is list:
                members = [(i, value[i]) for i in sorted({0, len(value) - 1}) if value]
            else:
                continue
            for key, child in members:
                yield (*path, key)
                deeper.append(((*path, key), child))
        level = deeper


def _replaced(document: Any, path: tuple, replacement: Any) -> Any:
    if not path:
        return replacement
    copy = dict(document) if type(document) is dict else list(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], replacement)
    return copy


def _guarded(factory: Callable[[], Adapter]) -> GuardedAdapter:
    adapter = factory()
    return GuardedAdapter(adapter, nested=getattr(adapter, "nested", True))


def _outcomes(adapter: Adapter, values: list[bytes | None]) -> list[tuple]:
    """Per record: (its rows without lineage, by schema; its reject codes and reasons)."""
    result: DecodeResult = adapter.decode(raw_records(values, adapter.wire_format))
    rows: list[list] = [[] for _ in values]
    for part in result.parts:
        for index, row in zip(part.row_index.to_pylist(), part.rows.to_pylist(), strict=True):
            kept = {k: v for k, v in row.items() if k not in _LINEAGE}
            rows[index].append((part.schema.dataset, sorted(kept.items(), key=str)))
    rejects: list[list] = [[] for _ in values]
    for index, code, reason in zip(
        result.rejected_index.to_pylist(),
        result.reject_codes.to_pylist(),
        result.reject_reasons.to_pylist(),
        strict=True,
    ):
        rejects[index].append((code, reason))
    return [(tuple(r), tuple(j)) for r, j in zip(rows, rejects, strict=True)]


def _judged(outcome: tuple) -> list[str]:
    rows, rejects = outcome
    if not rows and not rejects:
        return ["neither rows nor a reject: the record would be lost"]
    problems = []
    for code, reason in rejects:
        if code == "adapter_error":
            problems.append(f"the adapter raised ({reason})")
        elif not _CODE.match(code or ""):
            problems.append(f"reject code {code!r} is not a snake_case word")
        elif not reason or not 10 <= len(reason) <= 300 or any(t in reason for t in _UNREADABLE):
            problems.append(f"reject reason {reason!r} is not one a person reads")
    return problems


def _sample(adapter: Adapter, sample: bytes) -> list[str]:
    result = _guarded(lambda: adapter).decode(raw_records([sample], adapter.wire_format))
    problems = [f"rejected: {c}: {r}" for c, r in zip(*_texts(result), strict=True)]
    if not any(part.rows.num_rows for part in result.parts) and not problems:
        problems.append("neither rows nor a reject: the record would be lost")
    for part in result.parts:
        if part.schema not in adapter.schemas:
            problems.append(f"gave rows of {part.schema.dataset}, not one of its schemas")
        missing = {f.name for f in part.schema.all_fields} - set(part.rows.schema.names)
        if missing:
            problems.append(f"rows of {part.schema.dataset} lack {sorted(missing)}")
    return problems


def _texts(result: DecodeResult) -> tuple[list[str], list[str]]:
    return result.reject_codes.to_pylist(), result.reject_reasons.to_pylist()


def _bulk_problems(factory: Callable[[], Adapter], records: list[bytes | None]) -> list[str]:
    outcomes = []
    for bulk in (True, False):
        adapter = _guarded(factory)
        adapter.bulk = bulk
        outcomes.append(_outcomes(adapter, records))
    return [
        f"record {number} decodes differently with the bulk path on and off"
        for number, (on, off) in enumerate(zip(*outcomes, strict=True))
        if on != off
    ]
