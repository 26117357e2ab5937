"""The folder layout is the architecture: it must stay true as the code changes.

Each room imports only from rooms upstream of it in the data flow (README "Layout"); the proof
core needs nothing an auditor would not have; and no merge leftover is ever committed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Upstream first: a module may import from its own room and from rooms before it.
ROOMS = (
    "infra",
    "simulator",
    "schemas",
    "validators",
    "pipelines",
    "sinks",
    "proofs",
    "streaming",
    "market",
    "benchmarks",
    "cli",
)
# What an auditor's copy of proofs/ may need besides the standard library: pyarrow to read
# Parquet, cryptography for Ed25519 signatures, web3 (and its eth_* parts) to read anchors.
PROOFS_THIRD_PARTY = {"pyarrow", "cryptography", "web3", "eth_abi", "eth_utils"}
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ", "||||||| ")
LEFTOVER_SUFFIXES = (".orig", ".rej", ".BACKUP", ".BASE", ".LOCAL", ".REMOTE")


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def room_modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def test_every_room_of_the_layout_exists_and_holds_code():
    assert all(room_modules(room) for room in ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_only_from_rooms_upstream_of_it(room):
    downstream = set(ROOMS[ROOMS.index(room) + 1 :])
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) & downstream)
        for path in room_modules(room)
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_proof_core_imports_no_other_room_and_only_what_an_auditor_has():
    other_rooms = set(ROOMS) - {"proofs"}
    allowed = set(sys.stdlib_module_names) | PROOFS_THIRD_PARTY | {"proofs"}
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            (imported_top_levels(path) - allowed) | (imported_top_levels(path) & other_rooms)
        )
        for path in room_modules("proofs")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_layout_check_sees_an_upstream_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from streaming.driver import run_batch\n")
    assert "streaming" in imported_top_levels(module)


def project_files() -> list[Path]:
    """Every file of the checkout that git would commit (tracked or not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked archive): walk the tree
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def merge_leftovers(files: list[Path]) -> list[str]:
    """Files a merge left behind, and lines holding conflict markers."""
    found = [str(p) for p in files if p.name.endswith(LEFTOVER_SUFFIXES)]
    for path in files:
        if not path.is_file():  # deleted in the work tree, not yet staged
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue  # binary
        found.extend(
            f"{path}:{number}"
            for number, line in enumerate(lines, 1)
            if line.startswith(CONFLICT_MARKERS) or line == "======="
        )
    return found


def test_no_merge_leftover_is_in_the_checkout():
    assert merge_leftovers(project_files()) == []


def test_the_leftover_check_finds_orig_files_and_conflict_markers(tmp_path):
    orig = tmp_path / "driver.py.orig"
    orig.write_text("x = 1\n")
    conflicted = tmp_path / "README.md"
    conflicted.write_text("a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> other\n")
    clean = tmp_path / "ok.md"
    clean.write_text("Title\n=====\n")
    assert merge_leftovers([orig, conflicted, clean]) == [
        str(orig),
        f"{conflicted}:2",
        f"{conflicted}:4",
        f"{conflicted}:6",
    ]
