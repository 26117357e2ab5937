"""Console output: human text and progress on stderr, machine-readable JSON on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def shown(text: str) -> str:
    """Untrusted text (a name or a detail taken from a data directory or a bundle) for a rich
    console: its brackets are not markup (``[/red]`` raised, ``[black on black]`` would hide what
    follows) and its control characters are escapes, not orders to the terminal."""
    return escape(printable(text))


def printable(text: str) -> str:
    """Untrusted text for a line printed without markup: its control characters (an escape
    sequence that clears the screen or retitles the terminal, a newline that forges a line)
    shown as escapes."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class UserError(Exception):
    """A mistake the user can fix: reported as one clear line, never a traceback."""


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def stage(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr while a stage runs (none when quiet or not a terminal)."""
    if quiet:
        yield
        return
    with err.status(message, spinner="dots"):
        yield
    err.print(f"[green]✓[/green] {message}")


def step(message: str, quiet: bool = False) -> None:
    if not quiet:
        err.print(f"  {message}", style="dim")
