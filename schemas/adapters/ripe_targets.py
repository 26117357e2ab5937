"""A RIPE Atlas target inside the probe's own network is published as that network.

A probe that measures a host of its own network (the same IPv4 /24 or IPv6 /48 as one of its
addresses: ``from``, its public address; ``src_addr``/``srcaddr``, its local one) would reveal
that network through ``path_trace.target`` or ``link_kpi.peer``, although the adapter drops the
probe's addresses. Such a target — an address, or a host name when the result also gives the
address it resolved to — is published as the network: ``192.0.2.0/24``, ``2001:db8:1::/48``.
The rule is stated in ``docs/data-dictionary.md``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PROBE_ADDRESSES = ("from", "src_addr", "srcaddr")
PREFIX = {4: 24, 6: 48}
_DOTTED_QUAD = r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$"
_NOT_A_BARE_QUAD = r":|^\s|\s$"  # IPv6 (mapped IPv4 too), or spaces an address parses past


def published_target(document: dict, target: str | None, address: str | None) -> str | None:
    """``target``, or the probe's own network when the target (or its address) lies in it."""
    probes = [network for name in PROBE_ADDRESSES if (network := _network(document.get(name)))]
    if not probes:
        return target
    for candidate in (address, target):
        network = _network(candidate)
        if network is not None and network in probes:
            return str(network)
    return target


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if type(value) is not str:
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
        ip = ip.ipv4_mapped
    return ipaddress.ip_network(f"{ip}/{PREFIX[ip.version]}", strict=False)


def own_network_mask(targets: list[pa.Array], probes: list[pa.Array]) -> pa.Array:
    """Per row: whether some target column's value is in some probe column's network.

    Dotted quads are compared without Python (their /24 is the text before the last dot);
    the rare rows holding an address written otherwise (IPv6, IPv4-mapped, spaces around it)
    are checked one by one, as addresses: a regex on the text let " 192.0.2.5" or
    "::ffff:192.0.2.5" pass for another network than the probe's 192.0.2.1.
    """
    mask = pa.array([False] * len(targets[0]))
    for target in targets:
        for probe in probes:
            mask = pc.or_(mask, pc.fill_null(_same_slash_24(target, probe), False))
    other = pc.or_(_any_other_text(targets), _any_other_text(probes))
    rows = pc.indices_nonzero(pc.fill_null(other, False)).to_pylist()
    if not rows:
        return mask
    flags = mask.to_pylist()
    for row in rows:
        networks = {_network(probe[row].as_py()) for probe in probes} - {None}
        flags[row] = flags[row] or any(_network(t[row].as_py()) in networks for t in targets)
    return pa.array(flags)


def _same_slash_24(target: pa.Array, probe: pa.Array) -> pa.Array:
    both = pc.and_(pc.match_substring_regex(target, _DOTTED_QUAD),
                   pc.match_substring_regex(probe, _DOTTED_QUAD))  # fmt: skip
    prefix = lambda column: pc.replace_substring_regex(column, r"\.[0-9]+$", "")  # noqa: E731
    return pc.and_(both, pc.equal(prefix(target), prefix(probe)))


def _any_other_text(columns: list[pa.Array]) -> pa.Array:
    """Per row: whether some column holds an address not written as a bare dotted quad: IPv6
    (an IPv4-mapped one too), or one with spaces around it. (A host name is no address.)"""
    found = pa.array([False] * len(columns[0]))
    for column in columns:
        other = pc.match_substring_regex(column, _NOT_A_BARE_QUAD)
        found = pc.or_(found, pc.fill_null(other, False))
    return found
