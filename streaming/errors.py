"""Errors of the streaming runtime that the user must fix: shown as one line, never a traceback."""

from __future__ import annotations


class SettingsError(ValueError):
    """A run setting, or what it points at (broker, chain, config file), is wrong or missing."""


class CrashLoop(RuntimeError):
    """A batch keeps killing the worker and bisecting it finds no record that does."""


class JournalDamaged(RuntimeError):
    """A journal object that cannot be read: the batches it holds are unknown, so the run stops
    rather than answer as if they were not there (which could plan their ranges again)."""
