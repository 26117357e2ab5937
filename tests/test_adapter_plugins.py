"""Adapters from installed packages (the ``rda.adapters`` entry point group), in the process:
packages are made as installers make them — a ``*.dist-info`` folder with ``entry_points.txt``
on the import path — so discovery runs exactly as for a pip-installed package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adapter_inputs import raw

from pipelines.standardize import standardize_routed
from schemas import adapters

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rda-iperf3"
FAKE_MODULE = """
import pyarrow as pa
from schemas.adapters.toolkit import DecodeResult, get_schema
from schemas.model import TelemetrySchema

class Working:
    wire_format = "x.working"
    schemas = (get_schema("speed_test.v2"),)

    @staticmethod
    def looks_like(value):
        raise RuntimeError("a bug in the sniff")

    def decode(self, raw):
        n = raw.num_rows
        return DecodeResult(
            rejected_index=pa.array(range(n), pa.int64()),
            reject_codes=pa.array(["no_measurement"] * n),
            reject_reasons=pa.array(["this adapter measures nothing"] * n),
        )

class Superseded(Working):
    schemas = (get_schema("speed_test.v1"),)

class Unregistered(Working):
    schemas = (TelemetrySchema("made_up", 1, 0, "not registered", (), ()),)

class NoDecode:
    wire_format = "x.nodecode"
    schemas = (get_schema("speed_test.v2"),)
"""


def install(root: Path, name: str, points: dict[str, str], module: str = "") -> None:
    """A package as an installer leaves it: its module, and its dist-info naming entry points."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{point} = {target}\n" for point, target in points.items())
    (info / "entry_points.txt").write_text("[rda.adapters]\n" + lines)
    if module:
        (root / f"{name.replace('-', '_')}_adapters.py").write_text(module)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on the import path to install packages into; discovery forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    adapters.refresh()
    yield tmp_path
    monkeypatch.undo()
    adapters.refresh()


def test_an_installed_adapter_is_discovered_listed_and_used(site, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    install(site, "rda-iperf3", {"iperf3.json": "rda_iperf3.adapter:Iperf3Adapter"})
    adapters.refresh()
    assert adapters.wire_formats()[-1] == "iperf3.json"  # after the built-in ones
    assert "iperf3.json" in adapters.format_choices()
    (listed,) = [a for a in adapters.registered() if a["wire_format"] == "iperf3.json"]
    assert listed == {
        "wire_format": "iperf3.json", "origin": "rda-iperf3 1.0", "datasets": ["speed_test.v2"],
        "sniffed": True,
    }  # fmt: skip
    from rda_iperf3.samples import iperf3_result

    result = standardize_routed(raw(iperf3_result()), "auto")  # no header: sniffed
    (row,) = result.published["speed_test.v2"].to_pylist()
    assert (row["source"], row["download_mbps"]) == ("iperf3", 93.625498)


@pytest.mark.parametrize(
    ("point", "target", "reason"),
    [
        ("mlab.ndt7", "pkg:Working", "the wire format mlab.ndt7 is already registered"),
        ("Bad Name", "pkg:Working", "a wire format name is 1-64 of a-z 0-9 . _ - (and not 'auto')"),
        ("x.gone", "not_installed:Thing", "loading failed: ModuleNotFoundError: No module named "
         "'not_installed'"),
        ("x.mismatch", "pkg:Working", "its adapter says wire_format 'x.working', not 'x.mismatch'"),
        ("x.working", "pkg:Unregistered", "it feeds made_up.v1, which is not a registered "
         "canonical schema"),
        ("x.working", "pkg:Superseded", "it feeds speed_test.v1, superseded by speed_test.v2"),
        ("x.nodecode", "pkg:NoDecode", "its adapter has no decode(raw) method"),
    ],
)  # fmt: skip
def test_a_broken_adapter_is_refused_with_its_reason_and_its_records_wait(
    site, point, target, reason
):
    install(site, "broken", {point: target.replace("pkg:", "broken_adapters:")}, FAKE_MODULE)
    adapters.refresh()
    assert adapters.refused() == [{"wire_format": point, "origin": "broken 1.0", "reason": reason}]
    result = standardize_routed(raw(b"{}", wire_format=point), "auto")
    # Refused: its records are unknown_format (replayable once fixed); a built-in keeps its own.
    expected = "unknown_kind" if point == "mlab.ndt7" else "unknown_format"
    assert result.quarantined.column("reason_code").to_pylist() == [expected]


def test_of_two_packages_claiming_one_format_the_first_by_name_wins(site):
    for name in ("beta", "alpha"):
        install(site, name, {"x.working": f"{name}_adapters:Working"}, FAKE_MODULE)
    adapters.refresh()
    (listed,) = [a for a in adapters.registered() if a["wire_format"] == "x.working"]
    assert listed["origin"] == "alpha 1.0"
    assert [(r["origin"], r["reason"]) for r in adapters.refused()] == [
        ("beta 1.0", "the wire format x.working is already registered")
    ]


def test_a_sniff_that_raises_is_no_match_and_routing_goes_on(site):
    install(site, "buggy", {"x.working": "buggy_adapters:Working"}, FAKE_MODULE)
    adapters.refresh()
    result = standardize_routed(raw(b"not any format"), "auto")
    assert result.quarantined.column("reason_code").to_pylist() == ["unknown_format"]
    headed = standardize_routed(raw(b"{}", wire_format="x.working"), "auto")
    assert json.loads(json.dumps(headed.quarantined.column("reason").to_pylist())) == [
        "this adapter measures nothing"
    ]
