"""``rda nodes deploy|register|list|rotate|revoke|transfer``: the NodeRegistry on chain."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import UserError, emit_json, out
from infra.state import InfraState

CLASSES = ("ground_airnode", "high_altitude_relay", "backhaul")


def add_parser(sub: argparse._SubParsersAction) -> None:
    nodes = sub.add_parser(
        "nodes",
        help="the network's nodes on chain: register, list, rotate or revoke keys, transfer",
        description="Nodes are ERC-721 tokens of the NodeRegistry (deployed by `rda infra up "
        "--chain anvil`, or `rda nodes deploy`), each with its owner, class, H3 cell and Ed25519 "
        "signing keys. Times (--valid-from, --from) are event times: epoch milliseconds or ISO "
        "8601; a key signs reports of event times in [valid from, valid until).",
    )
    actions = nodes.add_subparsers(dest="action", required=True, metavar="ACTION")
    deploy = actions.add_parser("deploy", help="deploy a NodeRegistry (recorded for `infra up`)")
    listing = actions.add_parser("list", help="every registered node with its keys")
    register = actions.add_parser("register", help="register a node with its first key")
    register.add_argument("node_id")
    register.add_argument("--public-key", required=True, help="raw Ed25519 public key, hex")
    register.add_argument("--class", dest="node_class", choices=CLASSES, default=CLASSES[0])
    register.add_argument("--lat", type=float, required=True, help="claimed location (H3 cell)")
    register.add_argument("--lon", type=float, required=True)
    register.add_argument("--valid-from", help="first event time the key signs (default: now)")
    register.add_argument("--owner", help="the owner's wallet (default: the registrar)")
    rotate = actions.add_parser("rotate", help="a new key from an event time on")
    rotate.add_argument("node_id")
    rotate.add_argument("--public-key", required=True, help="the new raw Ed25519 key, hex")
    rotate.add_argument("--from", dest="from_time", help="event time the new key starts")
    revoke = actions.add_parser("revoke", help="revoke a key (--key N) or the whole node")
    revoke.add_argument("node_id")
    revoke.add_argument("--key", type=int, help="the key's index (default: the whole node)")
    revoke.add_argument("--from", dest="from_time", help="first event time refused")
    transfer = actions.add_parser("transfer", help="give the node to another owner")
    transfer.add_argument("node_id")
    transfer.add_argument("--to", required=True, help="the new owner's wallet")
    for parser in (deploy, listing, register, rotate, revoke, transfer):
        parser.add_argument("--rpc-url", help="the chain (default: `infra up`'s)")
        if parser is not deploy:
            parser.add_argument("--node-registry", help="NodeRegistry address (default: infra's)")
        parser.add_argument("--account", help="send from this unlocked account (default: first)")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        parser.set_defaults(handler=nodes_command)


def nodes_command(args: argparse.Namespace) -> int:
    from proofs.node_registry import NodeRegistryRefused
    from streaming.nodes import refused

    try:
        result = _ACTIONS[args.action](args)
    except NodeRegistryRefused as error:
        raise refused(error) from None
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        emit_json(result)
    elif args.action == "list":
        for node in result["nodes"]:
            _print_node(node)
        out.print(f"{len(result['nodes'])} nodes in NodeRegistry {result['node_registry']}")
    else:
        out.print(_summary(args, result))
    return 0


def _registry(args: argparse.Namespace):
    from streaming.nodes import connect_registry

    state = InfraState.load()
    rpc_url = args.rpc_url or state.rpc_url
    address = args.node_registry or (
        state.node_registry_address if rpc_url == state.rpc_url else None
    )
    if not rpc_url or not address:
        raise UserError(
            "no node registry: pass --rpc-url and --node-registry (or `rda infra up --chain "
            "anvil`, which deploys one)"
        )
    return connect_registry(rpc_url, address, args.account)


def _deploy(args: argparse.Namespace) -> dict[str, Any]:
    from proofs.node_registry import NodeRegistry
    from streaming.chain import connect_node

    state = InfraState.load()
    rpc_url = args.rpc_url or state.rpc_url
    if not rpc_url:
        raise UserError("no chain: pass --rpc-url (or `rda infra up --chain anvil`)")
    try:
        w3 = connect_node("rpc", rpc_url)
    except (ConnectionError, ValueError) as error:
        raise UserError(str(error)) from None
    registry = NodeRegistry.deploy(w3, args.account)
    if rpc_url == state.rpc_url:
        state.node_registry_address = registry.address  # later commands use it by default
        state.save()
    return {"node_registry": registry.address, "admin": registry.sender}


def _list(args: argparse.Namespace) -> dict[str, Any]:
    registry = _registry(args)
    return {"node_registry": registry.address, "nodes": [n.describe() for n in registry.nodes()]}


def _register(args: argparse.Namespace) -> dict[str, Any]:
    from streaming.nodes import event_time_ms, h3_cell, public_key, sent_dict

    registry = _registry(args)
    sent = registry.register(
        args.node_id,
        args.node_class,
        h3_cell(args.lat, args.lon),
        public_key(args.public_key),
        event_time_ms(args.valid_from),
        args.owner,
    )
    return {"node": registry.node(args.node_id).describe(), **sent_dict(sent)}


def _rotate(args: argparse.Namespace) -> dict[str, Any]:
    from streaming.nodes import event_time_ms, public_key, sent_dict

    registry = _registry(args)
    sent = registry.rotate(args.node_id, public_key(args.public_key), event_time_ms(args.from_time))
    return {"node": registry.node(args.node_id).describe(), **sent_dict(sent)}


def _revoke(args: argparse.Namespace) -> dict[str, Any]:
    from streaming.nodes import event_time_ms, sent_dict

    registry = _registry(args)
    from_ms = event_time_ms(args.from_time)
    if args.key is None:
        sent = registry.revoke_node(args.node_id, from_ms)
    else:
        sent = registry.revoke_key(args.node_id, args.key, from_ms)
    return {"node": registry.node(args.node_id).describe(), **sent_dict(sent)}


def _transfer(args: argparse.Namespace) -> dict[str, Any]:
    from streaming.nodes import sent_dict

    registry = _registry(args)
    sent = registry.transfer(args.node_id, args.to)
    return {"node": registry.node(args.node_id).describe(), **sent_dict(sent)}


_ACTIONS = {
    "deploy": _deploy,
    "list": _list,
    "register": _register,
    "rotate": _rotate,
    "revoke": _revoke,
    "transfer": _transfer,
}


def _print_node(node: dict[str, Any]) -> None:
    revoked = f", revoked from {node['revoked_from_ms']} ms" if node["revoked_from_ms"] else ""
    out.print(
        f"{node['node_id']}  {node['class']}  h3 {node['h3_cell']}  owner {node['owner']}{revoked}"
    )
    for key in node["keys"]:
        until = key["valid_until_ms"] if key["valid_until_ms"] is not None else "…"
        out.print(f"  key {key['index']} {key['key_id'][:16]}…  [{key['valid_from_ms']}, {until})")


def _summary(args: argparse.Namespace, result: dict[str, Any]) -> str:
    if args.action == "deploy":
        return f"NodeRegistry deployed at {result['node_registry']} (admin {result['admin']})"
    done = {"register": "registered", "rotate": "rotated", "revoke": "revoked"}.get(
        args.action, "transferred"
    )
    where = f"tx {result['tx']}, block {result['block']}, gas {result['gas_used']}"
    return f"{args.node_id} {done} ({where})"
