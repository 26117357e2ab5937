"""Adapters decode vendor wire formats into canonical schemas; this is their registry."""

from __future__ import annotations

from collections.abc import Callable

from schemas.adapters import ems_csv, gnmi, node_json, ripe_atlas
from schemas.adapters.base import Adapter, DecodedRows, DecodeResult
from schemas.adapters.ems_csv import EmsCsvAdapter
from schemas.adapters.gnmi import GnmiJsonAdapter
from schemas.adapters.guard import GuardedAdapter
from schemas.adapters.node_json import NodeJsonAdapter
from schemas.adapters.ripe_atlas import RipeAtlasAdapter

AUTO = "auto"  # not a format: "no default, sniff the content"
# wire format -> (adapter factory, content sniff). Order matters for sniffing: first match wins.
_REGISTRY: dict[str, tuple[Callable[[], Adapter], Callable[[bytes], bool]]] = {
    NodeJsonAdapter.wire_format: (NodeJsonAdapter, node_json.looks_like),
    GnmiJsonAdapter.wire_format: (GnmiJsonAdapter, gnmi.looks_like),
    EmsCsvAdapter.wire_format: (EmsCsvAdapter, ems_csv.looks_like),
    RipeAtlasAdapter.wire_format: (RipeAtlasAdapter, ripe_atlas.looks_like),
}


def wire_formats() -> list[str]:
    """The wire formats an adapter reads, in sniffing order."""
    return list(_REGISTRY)


def format_choices() -> list[str]:
    """What a format setting may say: ``auto`` (sniff), then every wire format."""
    return [AUTO, *_REGISTRY]


def check_format(name: str) -> str:
    """``name`` if it is ``auto`` or a wire format; else ``ValueError`` listing the known ones."""
    if name not in format_choices():
        known = ", ".join(format_choices())
        raise ValueError(f"unknown wire format {name!r} (known: {known})")
    return name


def adapter_for(wire_format: str) -> GuardedAdapter:
    """The adapter registered for ``wire_format``, behind the guard (bounded input, no raise)."""
    try:
        factory, _ = _REGISTRY[wire_format]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no adapter for wire format {wire_format!r} (known: {known})") from None
    adapter = factory()
    # Nesting is bounded unless the adapter says its format has none (CSV).
    return GuardedAdapter(adapter, nested=getattr(adapter, "nested", True))


def sniff(value: bytes | None) -> str | None:
    """The wire format a whole message's content looks like, or None."""
    if not value:
        return None
    for wire_format, (_, looks_like) in _REGISTRY.items():
        if looks_like(value):
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
    "NodeJsonAdapter",
    "RipeAtlasAdapter",
    "adapter_for",
    "check_format",
    "format_choices",
    "sniff",
    "wire_formats",
]
