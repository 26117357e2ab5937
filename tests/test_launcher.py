"""The ``./rda`` launcher: what it does before it hands over to the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = sys.implementation.cache_tag


def _checkout(tmp_path: Path) -> Path:
    """A checkout with the launcher, this project's pyproject.toml and venv (installed), and a
    package of its own."""
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copy2(ROOT / "rda", root / "rda")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv").symlink_to(ROOT / ".venv")
    package = root / "mypackage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "module.py").write_text("VALUE = 1\n")
    (root / "notes").mkdir()  # not a package
    (root / "notes" / "scratch.py").write_text("x = 1\n")
    return root


def test_the_launcher_byte_compiles_the_packages_even_where_writing_bytecode_is_off(
    tmp_path: Path,
) -> None:
    root = _checkout(tmp_path)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [str(root / "rda"), "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: rda" in done.stdout
    compiled = root / "mypackage" / "__pycache__"
    assert sorted(p.name for p in compiled.iterdir()) == [
        f"__init__.{TAG}.pyc",
        f"module.{TAG}.pyc",
    ]
    assert not (root / "notes" / "__pycache__").exists()


def test_a_package_that_does_not_compile_does_not_stop_the_launcher(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    (root / "mypackage" / "broken.py").write_text("def (:\n")
    done = subprocess.run(
        [str(root / "rda"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (root / "mypackage" / "__pycache__" / f"module.{TAG}.pyc").exists()
