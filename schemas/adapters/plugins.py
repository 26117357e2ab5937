"""Adapters from installed packages: the ``rda.adapters`` entry point group.

A package adds a wire format without editing this one by declaring, in its ``pyproject.toml``::

    [project.entry-points."rda.adapters"]
    "iperf3.json" = "rda_iperf3.adapter:Iperf3Adapter"

The entry point's name is the wire format; its object is the adapter class (or any callable
returning an adapter): ``wire_format`` equal to that name, ``schemas`` (registered canonical
schemas only), ``decode(raw) -> DecodeResult`` and, optionally, ``looks_like(value: bytes) ->
bool`` to be sniffed under ``--format auto`` and ``nested = False`` for a format without JSON
nesting. ``docs/adapters.md`` is the guide. An adapter that cannot be loaded, or breaks one of
these rules, is refused with a reason (logged once, listed by ``rda schemas list``) and its
records are quarantined as ``unknown_format`` until it is fixed; it never stops a run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from schemas.adapters.base import Adapter
from schemas.model import TelemetrySchema
from schemas.registry import BY_DATASET, SCHEMAS, is_current

GROUP = "rda.adapters"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_log = logging.getLogger("rda.adapters")


@dataclass(frozen=True)
class Plugin:
    """An adapter an installed package registered, ready to use."""

    wire_format: str
    factory: Callable[[], Adapter]
    looks_like: Callable[[bytes], bool] | None
    schemas: tuple[TelemetrySchema, ...]
    origin: str  # "<distribution> <version>"


@dataclass(frozen=True)
class Refused:
    """An entry point that was not registered, and why."""

    wire_format: str
    origin: str
    reason: str


def discover(taken: set[str]) -> tuple[list[Plugin], list[Refused]]:
    """Every adapter of the ``rda.adapters`` group, by wire format; ``taken`` names are built in.

    Entry points are taken in name order; a name already taken (built in, or by an earlier
    distribution) is refused, as is anything that fails to load or to follow the contract.
    """
    plugins, refused = [], []
    taken = set(taken)
    for point in sorted(entry_points(group=GROUP), key=lambda p: (p.name, _origin(p))):
        try:
            plugin = _load(point, taken)
        except _Refusal as refusal:
            refused.append(Refused(point.name, _origin(point), str(refusal)))
            _log.warning("adapter %s from %s refused: %s", point.name, _origin(point), refusal)
            continue
        taken.add(plugin.wire_format)
        plugins.append(plugin)
    return plugins, refused


class _Refusal(Exception):
    pass


def _load(point: EntryPoint, taken: set[str]) -> Plugin:
    if not _NAME.match(point.name) or point.name == "auto":
        raise _Refusal("a wire format name is 1-64 of a-z 0-9 . _ - (and not 'auto')")
    if point.name in taken:
        raise _Refusal(f"the wire format {point.name} is already registered")
    try:
        factory = point.load()
        adapter = factory()
    except Exception as error:  # whatever a broken package raises, it must not stop a run
        raise _Refusal(f"loading failed: {type(error).__name__}: {error}"[:300]) from None
    if getattr(adapter, "wire_format", None) != point.name:
        found = getattr(adapter, "wire_format", None)
        raise _Refusal(f"its adapter says wire_format {found!r}, not {point.name!r}")
    if not callable(getattr(adapter, "decode", None)):
        raise _Refusal("its adapter has no decode(raw) method")
    schemas = tuple(getattr(adapter, "schemas", ()) or ())
    if not schemas:
        raise _Refusal("its adapter names no canonical schema (schemas)")
    for schema in schemas:
        registered = BY_DATASET.get(getattr(schema, "dataset", None))
        if registered is None or registered.fingerprint() != schema.fingerprint():
            what = getattr(schema, "dataset", repr(schema))
            raise _Refusal(f"it feeds {what}, which is not a registered canonical schema")
        if not is_current(registered):
            current = SCHEMAS[registered.name].dataset
            raise _Refusal(f"it feeds {registered.dataset}, superseded by {current}")
    sniff = getattr(factory, "looks_like", None) or getattr(adapter, "looks_like", None)
    return Plugin(
        point.name,
        factory,
        _contained(sniff, point.name) if callable(sniff) else None,
        schemas,
        _origin(point),
    )


def _contained(sniff: Callable[[bytes], bool], name: str) -> Callable[[bytes], bool]:
    """A sniff that cannot break routing: an exception is "not mine" (logged once)."""
    failed: list[bool] = []

    def looks_like(value: bytes) -> bool:
        try:
            return bool(sniff(value))
        except Exception as error:  # a plugin's sniff must not stop the routing of a batch
            if not failed:
                failed.append(True)
                _log.warning("the %s sniff failed (%s); treated as no match", name, error)
            return False

    return looks_like


def _origin(point: EntryPoint) -> str:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else point.value
