"""``rda anchor``: is the chain the one the data directory is anchored on; ``--reanchor`` moves
every existing checkpoint onto a new chain (after a reset, or to another network)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.output import UserError, emit_json, out, step
from infra.chain import redacted_url
from infra.state import InfraState


def add_parser(sub: argparse._SubParsersAction, default_data_dir: Path) -> None:
    anchor = sub.add_parser(
        "anchor",
        help="check the chain holds the data directory's anchors; --reanchor to move them",
        description="Without --reanchor: says whether the chain (and its AnchorRegistry) holds "
        "the anchors of the data directory's checkpoints (exit 0), or what is missing (exit 1). "
        "With --reanchor: anchors every existing checkpoint, in order, on the chain: in the "
        "given registry if this publisher owns it, else in a new one (recorded for later "
        "commands when it is `infra up`'s chain); publishes the publisher identity there and "
        "updates the catalog. Nothing is anchored that is not the data directory's own log.",
    )
    anchor.add_argument("--data-dir", type=Path, default=default_data_dir)
    anchor.add_argument("--reanchor", action="store_true", help="anchor every checkpoint again")
    anchor.add_argument("--chain", choices=("anvil", "rpc"), help="default: `infra up`'s chain")
    anchor.add_argument("--rpc-url", help="JSON-RPC URL of the chain")
    anchor.add_argument("--registry", help="AnchorRegistry address (default: `infra up`'s)")
    anchor.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    anchor.set_defaults(handler=anchor_command)


def anchor_command(args: argparse.Namespace) -> int:
    from streaming.chain import ChainContext, connect_node
    from streaming.chain_binding import reanchor_data_dir, registry_for_reanchor

    if not (args.data_dir / "catalog.duckdb").exists():
        raise UserError(f"no catalog under {args.data_dir}: nothing has been anchored from there")
    state = InfraState.load()
    rpc_url = args.rpc_url or state.rpc_url
    if not rpc_url:
        raise UserError(
            "no chain: pass --rpc-url (the embedded EVM lives only inside one process, so "
            "there is nothing to check or re-anchor on it)"
        )
    kind = args.chain or ("anvil" if state.chain_kind == "anvil" and not args.rpc_url else "rpc")
    try:
        w3 = connect_node(kind, rpc_url)
    except (ConnectionError, ValueError) as error:
        raise UserError(f"the chain at {redacted_url(rpc_url)}: {error}") from None
    address = args.registry or (state.registry_address if rpc_url == state.rpc_url else None)
    if args.reanchor:
        registry = registry_for_reanchor(w3, address)
        chain = ChainContext(kind, rpc_url, w3.eth.chain_id, registry)
        report = reanchor_data_dir(chain, args.data_dir, lambda m: step(m, args.json))
        if rpc_url == state.rpc_url and state.registry_address != registry.address:
            state.registry_address = registry.address  # later `rda run`s anchor there too
            state.save()
        _show(args, report, f"{report['checkpoints']} checkpoints anchored in {registry.address}")
        return 0
    return _check(args, w3, kind, rpc_url, address)


def _check(args: argparse.Namespace, w3, kind: str, rpc_url: str, address: str | None) -> int:
    """Whether the registry holds every anchor of the data directory: exit 0, else 1."""
    from proofs.anchor import AnchorRegistry
    from streaming.chain import ChainContext
    from streaming.chain_binding import check_data_dir

    if not address:
        raise UserError("no registry: pass --registry (or `rda infra up --chain anvil`)")
    try:
        registry = AnchorRegistry.at(w3, address)
    except ValueError as error:
        problem = f"{error}: the chain was reset or is another"
    else:
        chain = ChainContext(kind, rpc_url, w3.eth.chain_id, registry)
        problem = check_data_dir(chain, args.data_dir)
    report = {"rpc_url": rpc_url, "registry": address, "holds_every_anchor": problem is None,
              "problem": problem}  # fmt: skip
    if problem is not None:
        report["fix"] = f"rda anchor --reanchor --data-dir {args.data_dir}"
    _show(args, report, problem or f"registry {address} holds every anchor of {args.data_dir}")
    return 0 if problem is None else 1


def _show(args: argparse.Namespace, report: dict, line: str) -> None:
    if args.json:
        emit_json(report)
    else:
        out.print(line, soft_wrap=True)
        if report.get("fix"):
            out.print(f"to anchor the existing checkpoints on this chain: {report['fix']}")
