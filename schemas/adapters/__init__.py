"""Adapters decode vendor wire formats into canonical schemas; this is their registry.

The built-in adapters are listed here; installed packages add more through the
``rda.adapters`` entry point group (``schemas/adapters/plugins.py``, ``docs/adapters.md``),
discovered once per process (``refresh()`` looks again).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.adapters import ems_csv, gnmi, mlab_ndt7, node_json, plugins, ripe_atlas
from schemas.adapters.base import Adapter, DecodedRows, DecodeResult
from schemas.adapters.ems_csv import EmsCsvAdapter
from schemas.adapters.gnmi import GnmiJsonAdapter
from schemas.adapters.guard import GuardedAdapter
from schemas.adapters.mlab_ndt7 import MlabNdt7Adapter
from schemas.adapters.node_json import NodeJsonAdapter
from schemas.adapters.ripe_atlas import RipeAtlasAdapter

AUTO = "auto"  # not a format: "no default, sniff the content"
BUILT_IN = "built-in"
# wire format -> (adapter factory, content sniff). Order matters for sniffing: first match wins;
# installed adapters come after these, in name order.
_REGISTRY: dict[str, tuple[Callable[[], Adapter], Callable[[bytes], bool] | None]] = {
    NodeJsonAdapter.wire_format: (NodeJsonAdapter, node_json.looks_like),
    GnmiJsonAdapter.wire_format: (GnmiJsonAdapter, gnmi.looks_like),
    EmsCsvAdapter.wire_format: (EmsCsvAdapter, ems_csv.looks_like),
    RipeAtlasAdapter.wire_format: (RipeAtlasAdapter, ripe_atlas.looks_like),
    MlabNdt7Adapter.wire_format: (MlabNdt7Adapter, mlab_ndt7.looks_like),
}
_discovered: tuple[list[plugins.Plugin], list[plugins.Refused]] | None = None


def _installed() -> tuple[list[plugins.Plugin], list[plugins.Refused]]:
    global _discovered
    if _discovered is None:
        _discovered = plugins.discover(set(_REGISTRY))
    return _discovered


def refresh() -> None:
    """Look for installed adapters again (after a package was installed or removed)."""
    global _discovered
    _discovered = None


def _all() -> dict[str, tuple[Callable[[], Adapter], Callable[[bytes], bool] | None]]:
    installed = {p.wire_format: (p.factory, p.looks_like) for p in _installed()[0]}
    return {**_REGISTRY, **{k: v for k, v in installed.items() if k not in _REGISTRY}}


def wire_formats() -> list[str]:
    """The wire formats an adapter reads, in sniffing order."""
    return list(_all())


def format_choices() -> list[str]:
    """What a format setting may say: ``auto`` (sniff), then every wire format."""
    return [AUTO, *_all()]


def registered() -> list[dict]:
    """Every adapter: wire format, origin (built-in or the package), datasets fed, sniffed."""
    origins = {p.wire_format: p.origin for p in _installed()[0]}
    found = []
    for wire_format, (factory, looks_like) in _all().items():
        schemas = factory().schemas
        found.append(
            {
                "wire_format": wire_format,
                "origin": origins.get(wire_format, BUILT_IN),
                "datasets": [schema.dataset for schema in schemas],
                "sniffed": looks_like is not None,
            }
        )
    return found


def refused() -> list[dict]:
    """Installed adapters that were not registered, with the reason."""
    return [vars(r) for r in _installed()[1]]


def check_format(name: str) -> str:
    """``name`` if it is ``auto`` or a wire format; else ``ValueError`` listing the known ones."""
    if name not in format_choices():
        known = ", ".join(format_choices())
        raise ValueError(f"unknown wire format {name!r} (known: {known})")
    return name


def adapter_for(wire_format: str) -> GuardedAdapter:
    """The adapter registered for ``wire_format``, behind the guard (bounded input, no raise)."""
    adapters = _all()
    try:
        factory, _ = adapters[wire_format]
    except KeyError:
        known = ", ".join(sorted(adapters))
        raise KeyError(f"no adapter for wire format {wire_format!r} (known: {known})") from None
    adapter = factory()
    # Nesting is bounded unless the adapter says its format has none (CSV).
    return GuardedAdapter(adapter, nested=getattr(adapter, "nested", True))


def sniff(value: bytes | None) -> str | None:
    """The wire format a whole message's content looks like, or None."""
    if not value:
        return None
    for wire_format, (_, looks_like) in _all().items():
        if looks_like is not None and looks_like(value):
            return wire_format
    return None


__all__ = [
    "AUTO",
    "Adapter",
    "DecodeResult",
    "DecodedRows",
    "EmsCsvAdapter",
    "GnmiJsonAdapter",
    "GuardedAdapter",
    "MlabNdt7Adapter",
    "NodeJsonAdapter",
    "RipeAtlasAdapter",
    "adapter_for",
    "check_format",
    "format_choices",
    "refresh",
    "refused",
    "registered",
    "sniff",
    "wire_formats",
]
