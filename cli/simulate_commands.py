"""``rda simulate``: the simulated fleet publishes to Kafka, its nodes signing (and registered
in the node registry when one is known)."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from cli.output import UserError, emit_json, out, stage
from infra.state import InfraState


def _bootstrap(args: argparse.Namespace) -> str:
    bootstrap = args.bootstrap or InfraState.load().kafka_bootstrap
    if not bootstrap:
        raise UserError("no Kafka broker: run `rda infra up` first, or pass --bootstrap HOST:PORT")
    return bootstrap


def simulate(args: argparse.Namespace) -> int:
    from simulator.fleet import THIRD_PARTY_FORMATS, generate
    from simulator.producer import produce

    if args.start:
        try:
            start = dt.datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError as error:
            raise UserError(f"--start: {error}") from None
        start_ms = int(start.replace(tzinfo=start.tzinfo or dt.timezone.utc).timestamp() * 1000)
    else:
        start_ms = (int(time.time()) - int(args.duration)) * 1000
    native = args.format == "rda.node.v1"
    hybrid = args.hybrid and native
    # M-Lab's servers write NDT7 results: a node cannot sign them (their topic is unsigned).
    signable = args.format not in THIRD_PARTY_FORMATS
    signing = _fleet_signing(args, hybrid, start_ms) if args.sign and signable else None
    try:
        messages = generate(
            args.nodes,
            args.duration,
            args.rate,
            start_ms,
            args.seed,
            args.bad_fraction,
            args.format,
            sessions=args.sessions and native,
            quality_fraction=args.quality_defects,
            hybrid=hybrid,
            signing=signing,
        )
        pace = _realtime_pacer() if args.realtime else None
        with stage(f"{args.nodes} nodes publishing to {args.topic}", args.json):
            report = produce(_bootstrap(args), args.topic, messages, args.partitions, pace)
    except ValueError as error:
        raise UserError(str(error)) from None
    result = {**report.as_dict(), "signed": signing is not None, "hybrid": hybrid}
    if getattr(args, "registered", None) is not None:
        result["node_registry"] = args.registered
    if args.json:
        emit_json(result)
    else:
        out.print(
            f"published {report.messages} messages ({report.bytes} bytes) to "
            f"{report.topic} in {report.seconds:.2f}s; defects: {dict(report.defects)}"
        )
    return 0


def _fleet_signing(args: argparse.Namespace, hybrid: bool, start_ms: int):
    """The fleet's keys; registered in the node registry when one is known (not twice)."""
    from simulator.fleet import fleet_nodes
    from simulator.signing import FleetSigning
    from streaming.nodes import connect_registry, register_fleet

    if args.sign_window <= 0:
        raise UserError("--sign-window must be positive")
    nodes = fleet_nodes(args.nodes, args.seed, hybrid)
    window_ms = round(args.sign_window * 1000)
    signing = FleetSigning.for_nodes([n.node_id for n in nodes], args.key_seed, window_ms)
    state = InfraState.load()
    rpc_url = args.rpc_url or state.rpc_url
    address = args.node_registry or (
        state.node_registry_address if rpc_url == state.rpc_url else None
    )
    if rpc_url and address:
        registry = connect_registry(rpc_url, address)
        with stage(f"registering {len(nodes)} nodes in NodeRegistry {address}", args.json):
            done = register_fleet(registry, nodes, signing, valid_from_ms=start_ms - 86_400_000)
        args.registered = {"address": address, **done.as_dict()}
    return signing


def _realtime_pacer():
    first: list[tuple[float, int]] = []

    def pace(message) -> None:
        if not first:
            first.append((time.monotonic(), message.timestamp_ms))
        wall0, event0 = first[0]
        delay = (message.timestamp_ms - event0) / 1000 - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)

    return pace
