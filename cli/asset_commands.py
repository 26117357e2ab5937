"""``rda market mint|offer|buy|claim|withdraw|licences``: data assets and licences on chain.

Every command talks to a JSON-RPC node (``--rpc-url``, default: ``rda infra up``'s anvil) and
sends from an account the node holds (``--from``, default: its first, the publisher who
anchors). Contract refusals come back as one line naming the Solidity error.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from cli.output import UserError, emit_json, out
from infra.state import InfraState

_DURATION = re.compile(r"^([1-9][0-9]{0,9})([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def add_asset_parsers(m_sub: argparse._SubParsersAction, common) -> None:
    def chain_options(parser: argparse.ArgumentParser, handler) -> None:
        parser.add_argument("--rpc-url", help="JSON-RPC node (default: `rda infra up`'s)")
        parser.add_argument("--from", dest="sender", help="sending account (default: the first)")
        common(parser, handler)

    mint = m_sub.add_parser("mint", help="make a dataset a DataAsset token (ERC-721)")
    mint.add_argument("dataset")
    mint.add_argument("--node-share", type=float, default=30.0, help="%% of each sale to nodes")
    mint.add_argument(
        "--node-registry",
        help="node registry (ERC-721) whose owners are paid (default: the publisher identity's)",
    )
    mint.add_argument("--license", default="CC-BY-4.0", help="the asset's licence id")
    chain_options(mint, market_mint)
    offer = m_sub.add_parser("offer", help="offer licences to a minted dataset")
    offer.add_argument("dataset")
    offer.add_argument("--price", required=True, help='in whole units, e.g. "12.50"')
    offer.add_argument("--currency", default="tusd", help="tusd, native, or an ERC-20 address")
    offer.add_argument("--duration", default="30d", help="licence length: 3600, 90m, 12h, 30d")
    offer.add_argument("--terms-file", type=Path, help="permitted-use terms (hashed on chain)")
    chain_options(offer, market_offer)
    buy = m_sub.add_parser("buy", help="buy a licence (an ERC-1155 token) under an offer")
    buy.add_argument("offer", type=int, help="offer id")
    chain_options(buy, market_buy)
    claim = m_sub.add_parser("claim", help="a node owner's share of a dataset's sales")
    claim.add_argument("dataset")
    claim.add_argument("--node", required=True, help="node id, e.g. an-0007")
    claim.add_argument("--tree-size", type=int, help="checkpoint (default: the minted latest)")
    claim.add_argument("--currency", default="tusd", help="tusd, native, or an ERC-20 address")
    chain_options(claim, market_claim)  # --from: default the node's owner in the node registry
    withdraw = m_sub.add_parser("withdraw", help="the asset owner's share of sales")
    withdraw.add_argument("--currency", default="tusd", help="tusd, native, or an ERC-20 address")
    chain_options(withdraw, market_withdraw)
    licences = m_sub.add_parser("licences", help="licences bought on chain (synced first)")
    licences.add_argument("--wallet", help="only this wallet's")
    chain_options(licences, market_licences)


class _Context:
    """The node, the data directory's asset record and its contracts, for one command."""

    def __init__(self, args: argparse.Namespace, need_record: bool = True) -> None:
        from sinks.layout import DataLayout
        from streaming.assets import AssetRecord
        from streaming.chain import connect_node

        rpc_url = args.rpc_url or InfraState.load().rpc_url
        if not rpc_url:
            raise UserError(
                "no chain: pass --rpc-url, or start one with `rda infra up --chain anvil`"
            )
        try:
            self.w3 = connect_node("rpc", rpc_url)
        except (ValueError, ConnectionError) as error:
            raise UserError(str(error)) from None
        self.layout = DataLayout(args.data_dir)
        self.sender = args.sender or self.w3.eth.accounts[0]
        self.record = AssetRecord.load(self.layout)
        if need_record and (self.record is None or self.record.chain_id != self.w3.eth.chain_id):
            raise UserError(
                f"no data assets of {args.data_dir} on chain {self.w3.eth.chain_id}: "
                "`rda market mint DATASET` first"
            )
        if need_record:
            from market.onchain import ChainUnavailable, check_contracts

            try:
                check_contracts(self.w3, self.record)
            except ChainUnavailable as error:
                raise UserError(f"{AssetRecord.path(self.layout)}: {error}") from None

    def licences(self):
        from market.licence_chain import DataLicences

        return DataLicences(self.w3, self.record.data_licences, self.sender)

    def token(self, dataset: str) -> int:
        if dataset not in self.record.tokens:
            minted = ", ".join(self.record.tokens) or "none"
            raise UserError(f"{dataset} is not minted (minted: {minted})")
        return self.record.tokens[dataset]

    def currency(self, name: str) -> str:
        from market.licence_chain import NATIVE
        from proofs.anchor import checksum_address

        if name == "native":
            return NATIVE
        if name == "tusd":
            return self.record.stablecoin
        try:
            return checksum_address(name)
        except ValueError as error:
            raise UserError(f"--currency: {error}") from None


def _refused(call):
    from market.licence_chain import PriceError
    from market.minting import MintError
    from proofs.data_asset import ContractRefused

    try:
        return call()
    except ContractRefused as refused:
        raise UserError(f"the contract refused: {refused}") from None
    except (MintError, PriceError) as error:
        raise UserError(str(error)) from None


def _identity_call(call):
    """``call()``, a damaged publisher identity document said as one line (exit 2)."""
    from proofs.identity import IdentityError

    try:
        return call()
    except IdentityError as error:
        raise UserError(f"{error} (restore it, or pass --node-registry)") from None


def _show(args: argparse.Namespace, payload: dict[str, Any], line: str) -> int:
    if args.json:
        emit_json(payload)
    else:
        out.print(line)
    return 0


def market_mint(args: argparse.Namespace) -> int:
    from market.minting import deploy_contracts, mint
    from proofs.node_owners import node_registry_of
    from sinks.catalog import Catalog

    ctx = _Context(args, need_record=False)
    if not 0 <= args.node_share <= 100:
        raise UserError("--node-share is a percentage, 0 to 100")
    with Catalog(ctx.layout) as catalog:
        anchored = [c for c in catalog.checkpoints(args.dataset) if c["contract"]]
        if not anchored:
            raise UserError(f"{args.dataset} has no anchored checkpoint in {args.data_dir}")
        registry = anchored[-1]["contract"]
        node_registry = args.node_registry or _identity_call(
            lambda: node_registry_of(ctx.layout.published)
        )
        if node_registry is None and ctx.record is not None:
            node_registry = ctx.record.node_registry
        record = _refused(
            lambda: deploy_contracts(ctx.w3, ctx.layout, registry, node_registry, ctx.sender)
        )
        minted = _refused(
            lambda: mint(ctx.w3, ctx.layout, catalog, args.dataset, record, args.license,
                         round(args.node_share * 100), ctx.sender)
        )  # fmt: skip
    payload = {
        "dataset": args.dataset,
        "token_id": minted.token_id,
        "tree_size": minted.tree_size,
        "contribution_root": minted.table.root().hex(),
        "nodes": len(minted.table.rows_by_node),
        "data_asset": record.data_asset,
        "data_licences": record.data_licences,
        "stablecoin": record.stablecoin,
        "gas_used": minted.sent.gas_used if minted.sent else 0,
    }
    note = "" if minted.sent else " (already minted)"
    line = f"{args.dataset} is DataAsset token {minted.token_id} at {minted.tree_size} rows{note}"
    return _show(args, payload, line)


def market_offer(args: argparse.Namespace) -> int:
    import hashlib

    from market.licence_chain import to_units

    ctx = _Context(args)
    token, currency = ctx.token(args.dataset), ctx.currency(args.currency)
    licences = ctx.licences()
    terms = b""
    if args.terms_file is not None:
        try:
            terms = args.terms_file.read_bytes()
        except OSError as error:
            raise UserError(f"--terms-file: {error.strerror}") from None
    decimals = _refused(lambda: licences.currency_decimals(currency))
    price = _refused(lambda: to_units(args.price, decimals))
    duration = parse_duration(args.duration)
    sent = _refused(
        lambda: licences.create_offer(
            token, currency, price, duration, hashlib.sha256(terms).digest()
        )
    )
    offer = licences.describe_offer(licences.offer(int(sent.value)))
    price = f"{offer['price']} {offer['symbol']}"
    line = f"offer {offer['offer_id']}: {args.dataset}, {price} for {duration} s"
    return _show(args, {**offer, "gas_used": sent.gas_used}, line)


def market_buy(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    licences = ctx.licences()
    offer = _refused(lambda: licences.offer(args.offer)) if args.offer > 0 else None
    if offer is None:
        raise UserError("offer ids start at 1")
    sent = _refused(lambda: licences.buy(args.offer))
    expiry = licences.expires_at(ctx.sender, offer.asset_id)
    payload = {"offer_id": args.offer, "asset_id": offer.asset_id, "buyer": ctx.sender,
               "expires_at": expiry, "tx": sent.tx_hash, "block": sent.block_number,
               "gas_used": sent.gas_used}  # fmt: skip
    return _show(args, payload, f"licence to asset {offer.asset_id} until {expiry} (unix time)")


def market_claim(args: argparse.Namespace) -> int:
    from market.licence_chain import DataLicences
    from proofs.data_asset import DataAsset
    from streaming.assets import read_table

    ctx = _Context(args)
    token, currency = ctx.token(args.dataset), ctx.currency(args.currency)
    size = args.tree_size or DataAsset(ctx.w3, ctx.record.data_asset).info(token).latest_tree_size
    table = read_table(ctx.layout, args.dataset, size)
    if table is None:
        raise UserError(f"no contribution table for {args.dataset} at {size} rows")
    if args.node not in table.rows_by_node:
        raise UserError(f"node {args.node} has no rows in {args.dataset} at {size}")
    owner = node_owner(ctx, args.node)
    if args.sender and args.sender.lower() != owner.lower():
        raise UserError(f"node {args.node} is owned by {owner}, not {args.sender}")
    licences = DataLicences(ctx.w3, ctx.record.data_licences, owner)
    sent = _refused(lambda: licences.claim(token, table, args.node, currency))
    payload = {"dataset": args.dataset, "node": args.node, "owner": owner, "tree_size": size,
               "rows": table.rows_by_node[args.node], "amount_units": str(sent.value),
               "tx": sent.tx_hash, "gas_used": sent.gas_used}  # fmt: skip
    return _show(args, payload, f"claimed {sent.value} units for {args.node} ({size} rows)")


def node_owner(ctx: _Context, node: str) -> str:
    """Who a claim for ``node`` pays: its owner in the node registry DataLicences pays from."""
    from proofs.node_owners import RegistryNodeOwners

    registry = _refused(lambda: ctx.licences().node_registry())
    try:
        owner = RegistryNodeOwners(ctx.w3, registry).owner_of(node)
    except ValueError as error:
        raise UserError(str(error)) from None
    if owner is None:
        raise UserError(f"node {node} is not registered in node registry {registry}")
    return owner


def market_withdraw(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    sent = _refused(lambda: ctx.licences().withdraw(ctx.currency(args.currency)))
    payload = {"account": ctx.sender, "amount_units": str(sent.value), "tx": sent.tx_hash}
    return _show(args, payload, f"withdrew {sent.value} units to {ctx.sender}")


def market_licences(args: argparse.Namespace) -> int:
    from market.entitlements import LicenceSync, licences_of
    from market.store import MarketStore, market_path
    from proofs.data_asset import DataAsset

    ctx = _Context(args)
    store = MarketStore(market_path(args.data_dir))
    sync = LicenceSync(store, ctx.licences(), DataAsset(ctx.w3, ctx.record.data_asset),
                       ctx.record.registry, list(ctx.record.tokens))  # fmt: skip
    result = sync.sync()
    rows = licences_of(store, args.wallet)
    if args.json:
        emit_json({"synced_block": result.head, "licences": rows})
        return 0
    for row in rows:
        state = "valid" if row["valid"] else "expired"
        out.print(f"{row['wallet']}  {row['dataset']:<24} until {row['expires_at']}  {state}")
    if not rows:
        out.print(f"no licences bought yet (synced to block {result.head})")
    return 0


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None:
        raise UserError(f"--duration {text!r}: a whole number with s, m, h or d (e.g. 30d)")
    return int(match[1]) * _SECONDS[match[2]]
