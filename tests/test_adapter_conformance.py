"""Every built-in adapter keeps the adapter contract, checked by the same kit an installed
adapter's author runs (``schemas/adapters/conformance.py``, ``docs/adapters.md``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from schemas.adapters import _REGISTRY
from schemas.adapters.conformance import check_adapter, hostile_inputs
from simulator import ndt7
from simulator.fleet import generate

START_MS = 1_764_000_000_000
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rda-iperf3"


def samples(wire_format: str) -> list[bytes]:
    if wire_format == ndt7.WIRE_FORMAT:
        return [m.value for m in ndt7.messages(3, START_MS, 5)]  # one per server generation
    return [m.value for m in list(generate(2, 30, 1.0, START_MS, 5, 0.0, wire_format))[:3]]


@pytest.mark.parametrize("wire_format", list(_REGISTRY))
def test_each_built_in_adapter_keeps_the_adapter_contract(wire_format):
    factory, _ = _REGISTRY[wire_format]
    assert check_adapter(factory, samples(wire_format)) == []


class SilentOnSeven:
    """An adapter with two bugs: it loses the record b"7" and raises on b"8"."""

    wire_format = "test.sloppy"
    schemas = ()

    def decode(self, raw: pa.RecordBatch):
        from schemas.adapters.base import DecodeResult

        values = raw.column("value").to_pylist()
        if b"8" in values:
            raise ValueError("eight")
        kept = [i for i, v in enumerate(values) if v != b"7"]
        return DecodeResult(
            rejected_index=pa.array(kept, pa.int64()),
            reject_codes=pa.array(["no_measurement"] * len(kept)),
            reject_reasons=pa.array(["nothing here to measure"] * len(kept)),
        )


def test_the_kit_names_a_lost_record_and_a_raise():
    assert check_adapter(SilentOnSeven, [b"7", b"8"]) == [
        "sample 0: neither rows nor a reject: the record would be lost",
        "sample 1: rejected: adapter_error: the test.sloppy adapter failed on this record "
        "(ValueError: eight)",
    ]


def test_hostile_inputs_replace_each_member_with_other_kinds_of_value_in_turn():
    names = [name for name, _ in hostile_inputs([b'{"a": {"b": [1, 2]}}'])]
    assert {"a tombstone", "100,000 nested arrays", "a 5,000-digit number"} <= set(names)
    assert [n for n in names if n.startswith("sample 0 with ") and " = " in n] == [
        "sample 0 with a = None", "sample 0 with a = True", "sample 0 with a = 'x'",
        "sample 0 with a/b = []", "sample 0 with a/b = {}", "sample 0 with a/b = -1",
        "sample 0 with a/b/0 = 1e+308", "sample 0 with a/b/0 = 18446744073709551616",
        "sample 0 with a/b/0 = 'NaN'", "sample 0 with a/b/1 = None", "sample 0 with a/b/1 = True",
        "sample 0 with a/b/1 = 'x'",
    ]  # fmt: skip


def test_the_example_adapter_package_keeps_it_too(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    from rda_iperf3.adapter import Iperf3Adapter
    from rda_iperf3.samples import iperf3_result

    found = [iperf3_result(), iperf3_result(0, pretty=True), iperf3_result(protocol="UDP")]
    assert check_adapter(Iperf3Adapter, found) == []
