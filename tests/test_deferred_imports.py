"""Deferred imports: a module a library imports (GE, web3, py-evm) but this project never uses
runs only when it is used."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.deferred_imports import DeferredModule, defer, defer_together, forward, leave_out

HEAVY = """\
from pathlib import Path
with Path(__file__).with_name("imports.log").open("a") as log:
    log.write("imported\\n")
VALUE = 42
"""
PLAIN = """\
from pathlib import Path
with (Path(__file__).parent / "heavy" / "imports.log").open("a") as log:
    log.write("imported\\n")
VALUE = 42
def double(x):
    return 2 * x
"""


@pytest.fixture
def heavy(tmp_path, monkeypatch):
    """A package ``deferpkg`` whose subpackage ``heavy`` logs each time it runs (as
    ``scipy.stats`` is one of scipy), and whose module ``plain`` logs in the same file; the
    names are taken out of ``sys.modules`` afterwards."""
    package = tmp_path / "deferpkg"
    (package / "heavy").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "heavy" / "__init__.py").write_text(HEAVY)
    (package / "heavy" / "part.py").write_text("PART = 7\n")
    (package / "plain.py").write_text(PLAIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package / "heavy" / "imports.log"
    for name in ("deferpkg.heavy.part", "deferpkg.heavy", "deferpkg.plain", "deferpkg"):
        sys.modules.pop(name, None)


def test_a_deferred_module_runs_only_when_an_attribute_is_read(heavy):
    defer("deferpkg.heavy")
    import deferpkg.heavy  # noqa: F401 - as ``import altair``
    from deferpkg import heavy as bound  # as GE's ``from scipy import stats``

    assert isinstance(bound, DeferredModule) and not heavy.exists()
    assert bound.VALUE == 42
    assert heavy.read_text() == "imported\n"
    assert not isinstance(sys.modules["deferpkg.heavy"], DeferredModule)
    assert sys.modules["deferpkg.heavy"].VALUE == 42 and bound.VALUE == 42
    assert heavy.read_text() == "imported\n"  # once


def test_threads_reading_at_once_import_the_module_once(heavy):
    defer("deferpkg.heavy")
    from deferpkg import heavy as bound

    start = threading.Barrier(4, timeout=30)

    def read(_: int) -> int:
        start.wait()  # all four read at once
        return bound.VALUE

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(read, range(4))) == [42] * 4
    assert heavy.read_text() == "imported\n"


def test_a_submodule_imports_through_its_deferred_package(heavy):
    defer("deferpkg.heavy")
    import deferpkg.heavy.part  # as ``import scipy.stats.distributions``
    from deferpkg import heavy as bound

    assert deferpkg.heavy.part.PART == 7 and bound.part.PART == 7
    assert heavy.read_text() == "imported\n"


def test_names_known_ahead_are_bound_without_importing_the_module(heavy):
    # as eth-account's ``from eth_keyfile.keyfile import KDFType`` (infra.chain.defer_key_files)
    defer("deferpkg.plain", {"VALUE": 42, "double": forward("deferpkg.plain", "double")})
    import deferpkg
    from deferpkg.plain import VALUE, double

    assert VALUE == 42 and not heavy.exists()
    assert isinstance(deferpkg.plain, DeferredModule)  # bound in its package, as imports are
    assert double(21) == 42  # the module's own function, imported by the first call
    assert heavy.read_text() == "imported\n"
    assert double.__name__ == "double" and double(1) == 2
    assert heavy.read_text() == "imported\n"


@pytest.fixture
def gathered(tmp_path, monkeypatch):
    """A package ``gathered`` whose ``__init__`` imports a function from each of its modules
    ``one`` and ``two`` (as py-evm's ``eth.precompiles.bls12_381``); each module logs its run
    in ``imports.log``, which the fixture returns."""
    package = tmp_path / "gathered"
    package.mkdir()
    (package / "__init__.py").write_text("from .one import first\nfrom .two import second\n")
    for module, function in (("one", "first"), ("two", "second")):
        (package / f"{module}.py").write_text(
            "from pathlib import Path\n"
            "with (Path(__file__).parent / 'imports.log').open('a') as log:\n"
            f"    log.write('{module}\\n')\n"
            f"def {function}(x):\n    return ('{module}', x)\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package / "imports.log"
    for name in ("gathered.one", "gathered.two", "gathered"):
        sys.modules.pop(name, None)


def test_modules_deferred_together_are_all_stood_in_before_their_package_is_imported(gathered):
    defer_together(
        {
            "gathered.one": {"first": forward("gathered.one", "first")},
            "gathered.two": {"second": forward("gathered.two", "second")},
        }
    )
    import gathered as package  # its __init__ imports a name from each

    assert not gathered.exists()  # neither module ran
    assert isinstance(package.one, DeferredModule) and isinstance(package.two, DeferredModule)
    assert package.second(3) == ("two", 3)
    assert gathered.read_text() == "two\n"  # only the module called
    assert package.first(4) == ("one", 4)
    assert gathered.read_text() == "two\none\n"


def test_what_tools_walking_sys_modules_read_is_answered_without_importing(heavy):
    defer("deferpkg.plain")
    stand_in = sys.modules["deferpkg.plain"]
    # as Hypothesis reads every module's __file__ when it collects tests
    assert Path(stand_in.__file__) == heavy.parent.parent / "plain.py"
    assert (stand_in.__package__, stand_in.__spec__.name) == ("deferpkg", "deferpkg.plain")
    assert not hasattr(stand_in, "__path__")  # a plain module, not a package
    assert not heavy.exists()


def test_an_imported_module_is_left_as_it_is():
    real = sys.modules["json"]
    defer("json")
    assert sys.modules["json"] is real


def test_a_module_not_installed_still_fails_where_it_is_imported():
    defer("rda_no_such_package.sub")
    defer("rda_no_such_module")
    assert "rda_no_such_package.sub" not in sys.modules
    assert "rda_no_such_module" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import rda_no_such_module  # noqa: F401


def test_a_module_left_out_is_not_importable(heavy):
    leave_out(["deferpkg.heavy"])
    try:
        with pytest.raises(ImportError):
            import deferpkg.heavy  # noqa: F401
        assert not heavy.exists()
    finally:
        del sys.modules["deferpkg.heavy"]


def test_leaving_out_an_imported_module_leaves_it_as_it_is():
    real = sys.modules["json"]
    leave_out(["json"])
    assert sys.modules["json"] is real


PROBE = """\
import json, sys
from schemas.published import published_schema_for_dataset
from validators.expectations import expectations
loaded = lambda: ["scipy.stats._stats_py" in sys.modules, "altair.vegalite" in sys.modules]
before_ge = "scipy" in sys.modules  # a process that never validates does not even look them up
expectations(published_schema_for_dataset("radio_kpi.v1"))  # GE imported, as validating does
at_import = loaded()
from great_expectations.expectations.core.expect_column_kl_divergence_to_be_less_than import stats
print(json.dumps({"before_ge": before_ge, "at_import": at_import,
                  "entropy": stats.entropy([1, 1], [1, 3]), "after_use": loaded()}))
"""


def run_probe(script: str, quiet: bool = False) -> dict:
    """What ``script`` prints as JSON, run in a fresh interpreter at the repository's root;
    ``quiet``: it writes nothing on stderr either."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert not quiet or result.stderr == ""
    return json.loads(result.stdout)


def test_great_expectations_imports_without_scipy_stats_or_altair_and_uses_them_on_demand():
    probe = run_probe(PROBE)
    assert probe["before_ge"] is False
    assert probe["at_import"] == [False, False]
    assert probe["entropy"] == pytest.approx(
        math.log(4 / 3) / 2
    )  # KL of (1/2, 1/2) from (1/4, 3/4)
    assert probe["after_use"] == [True, False]


BEAM_PROBE = """\
import json, sys
import pipelines.graph
import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
with beam.Pipeline(runner=FnApiRunner()) as pipeline:  # the runner `rda run` lands with
    assert_that(pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x * 10), equal_to([10, 20]))
connectors = ("bson", "pymongo", "apache_beam.io.gcp.bigquery", "apache_beam.io.gcp.pubsub")
print(json.dumps({
    "imported": [name for name in connectors if sys.modules.get(name) is not None],
    "file_io": [hasattr(beam.io, name) for name in ("ReadFromParquet", "WriteToText")],
}))
"""


def test_beam_imports_without_its_mongodb_and_google_cloud_connectors_and_says_nothing():
    assert run_probe(BEAM_PROBE, quiet=True) == {"imported": [], "file_io": [True, True]}


KEY_FILES_PROBE = """\
import json, sys, typing
from infra.chain import defer_key_files
defer_key_files()
import web3
from eth_account import Account
at_import = "py_ecc" in sys.modules
known = {n: v for n, v in vars(sys.modules["eth_keyfile.keyfile"]).items() if n[0] != "_"}
account = Account.create()
keystore = Account.encrypt(account.key, "secret", kdf="pbkdf2", iterations=2)
decrypted = Account.decrypt(keystore, "secret") == account.key
import eth_keyfile.keyfile as real
print(json.dumps({
    "at_import": at_import, "after_use": "py_ecc" in sys.modules, "decrypted": decrypted,
    "same_type": typing.get_args(known.pop("KDFType")) == typing.get_args(real.KDFType),
    "functions": sorted(name for name in known if callable(getattr(real, name))),
    "real_in_package": sys.modules["eth_keyfile"].keyfile is real,
}))
"""


def test_web3_imports_without_key_files_and_they_work_when_used():
    assert run_probe(KEY_FILES_PROBE) == {
        "at_import": False,  # py_ecc's BLS12-381 tables not built by importing web3
        "after_use": True,
        "decrypted": True,  # a key file written and read through the deferred names
        "same_type": True,
        "functions": [n for n in names_imported_from_key_files() if n != "KDFType"],
        "real_in_package": True,
    }


def names_imported_from_key_files() -> list[str]:
    """Every name eth-keyfile's package and eth-account import from eth-keyfile, read from
    their sources (a release that imports one more would load the module at import again)."""
    import eth_account
    import eth_keyfile

    sources = [Path(eth_keyfile.__file__), *Path(eth_account.__file__).parent.rglob("*.py")]
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in KEY_FILE_MODULES:
                names |= {alias.name for alias in node.names}
    return sorted(names)


KEY_FILE_MODULES = ("eth_keyfile", "eth_keyfile.keyfile")


BLS_PROBE = """\
import json, sys
from infra.chain import ChainConfig, connect
w3 = connect(ChainConfig("embedded"))
at_connect = "py_ecc.optimized_bls12_381" in sys.modules
# EIP-2537's G1ADD (address 0x0b): the generator plus the point at infinity is the generator
G1 = bytes.fromhex(
    "00000000000000000000000000000000"
    "17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
    "00000000000000000000000000000000"
    "08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1"
)
out = bytes(w3.eth.call({"to": "0x" + "0" * 38 + "0b", "data": G1 + bytes(128)}))
print(json.dumps({"at_connect": at_connect, "sum_is_generator": out == G1,
                  "after_call": "py_ecc.optimized_bls12_381" in sys.modules}))
"""


def test_the_embedded_chain_opens_without_bls_precompiles_and_runs_one_when_called():
    assert run_probe(BLS_PROBE) == {
        "at_connect": False,  # py_ecc's BLS12-381 tables not built by opening the chain
        "sum_is_generator": True,  # the real precompile, through its forwarder
        "after_call": True,
    }


def test_the_deferred_bls_precompiles_are_every_name_py_evm_imports_from_them():
    import eth.precompiles

    from infra.chain import BLS_PRECOMPILE_FUNCTIONS, BLS_PRECOMPILES

    imported: dict[str, set[str]] = {}
    deferred_dir = Path(eth.precompiles.__file__).parent / "bls12_381"
    for source in Path(eth.precompiles.__file__).parents[1].rglob("*.py"):
        if source.parent == deferred_dir and source.name != "__init__.py":
            continue  # the deferred modules' imports of one another run only once one is
        text = source.read_text()
        if "bls12_381" not in text:
            continue
        tree = ast.parse(text)
        package = ".".join(source.relative_to(Path(eth.__file__).parents[1]).parent.parts)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:  # relative: from the source's package
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    module = f"{base}.{module}" if module else base
                if module.startswith(f"{BLS_PRECOMPILES}."):
                    name = module.removeprefix(f"{BLS_PRECOMPILES}.")
                    imported.setdefault(name, set()).update(a.name for a in node.names)
    imported.pop("constants", None)  # the addresses and gas costs: no py_ecc
    assert imported == {m: set(names) for m, names in BLS_PRECOMPILE_FUNCTIONS.items()}


RUN_LOOP_PROBE = """\
import json, sys
import streaming.run_loop
print(json.dumps([name for name in ("web3", "eth", "eth_account") if name in sys.modules]))
"""


def test_the_run_loop_imports_no_chain_library_before_its_landing_children_are_forked():
    """web3 (~0.4 s) is imported by the thread that opens the chain beside the first landing:
    imported by ``streaming.run_loop``, it put off the first landing by as much."""
    assert run_probe(RUN_LOOP_PROBE) == []
