"""Handlers for ``rda market …`` and ``rda query`` (``rda serve``: ``cli/serve_commands.py``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cli.asset_commands import add_asset_parsers
from cli.output import UserError, emit_json, err, out, printable

API_KEY_ENV = "RDA_API_KEY"


def reader_arguments(parser: argparse.ArgumentParser, handler, default_data_dir: Path) -> None:
    """``--data-dir`` (read as buyers read it) and ``--json``; ``handler`` runs the command."""
    parser.add_argument(
        "--data-dir",
        type=_readers_data_dir,
        default=default_data_dir,
        help="data directory: a folder, or s3://BUCKET/PREFIX (read through a local copy)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(handler=handler)


def add_market_parsers(sub: argparse._SubParsersAction, default_data_dir: Path) -> None:
    """Register ``market`` and ``query`` on the ``rda`` parser."""

    def common(parser: argparse.ArgumentParser, handler) -> None:
        reader_arguments(parser, handler, default_data_dir)

    market = sub.add_parser("market", help="listings, buyers, API keys and entitlements")
    m_sub = market.add_subparsers(dest="action", required=True, metavar="ACTION")
    _buyer_parsers(m_sub, common)
    _listing_parsers(m_sub, common)
    add_asset_parsers(m_sub, common)  # mint, offer, buy, claim, withdraw, licences (on chain)
    _query_parser(sub, common)


def _readers_data_dir(value: str) -> Path:
    """A folder as given; an ``s3://`` data directory through a local copy of its published
    side (buyers read it as they read a local one: every row is checked against its anchor)."""
    from sinks.storage import is_remote, readable_copy

    if not is_remote(value):
        return Path(value)
    try:
        return readable_copy(value)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"the object store cannot be read ({error})") from None


def _buyer_parsers(m_sub: argparse._SubParsersAction, common) -> None:
    """``rda market add-buyer|buyers|grant|revoke``."""
    add = m_sub.add_parser("add-buyer", help="create a buyer and print their API key (once)")
    add.add_argument("name")
    common(add, market_add_buyer)
    common(m_sub.add_parser("buyers", help="buyers and their licensed datasets"), market_buyers)
    for action, handler, text in (
        ("grant", market_grant, "license a dataset to a buyer"),
        ("revoke", market_revoke, "withdraw a buyer's license to a dataset"),
    ):
        parser = m_sub.add_parser(action, help=text)
        parser.add_argument("name", help="buyer name")
        parser.add_argument("dataset", help="dataset id, e.g. radio_kpi.v1")
        common(parser, handler)


def _listing_parsers(m_sub: argparse._SubParsersAction, common) -> None:
    """``rda market terms|list|export``."""
    terms = m_sub.add_parser("terms", help="set a dataset's license, price or title")
    terms.add_argument("dataset")
    terms.add_argument("--license", help="SPDX id or license name, e.g. CC-BY-4.0")
    terms.add_argument("--price", type=float, help="price in USD")
    terms.add_argument("--price-unit", help='what the price buys, e.g. "per month"')
    terms.add_argument("--license-file", type=Path, help="the licence's full text (UTF-8)")
    terms.add_argument("--title")
    common(terms, market_terms)
    requests = m_sub.add_parser("requests", help="buyers' requests for access")
    requests.add_argument("--status", choices=("pending", "granted", "declined"))
    common(requests, market_requests)
    decline = m_sub.add_parser("decline", help="decline a buyer's pending access request")
    decline.add_argument("name", help="buyer name")
    decline.add_argument("dataset")
    common(decline, market_decline)
    common(m_sub.add_parser("list", help="the listings buyers see"), market_list)
    export = m_sub.add_parser("export", help="listing metadata as Data Package or Croissant")
    export.add_argument("dataset")
    export.add_argument("--format", choices=("datapackage", "croissant"), default="datapackage")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    common(export, market_export)


def _query_parser(sub: argparse._SubParsersAction, common) -> None:
    """``rda query``."""
    query = sub.add_parser("query", help="buyer SQL over licensed datasets (sandboxed)")
    query.add_argument("sql", help="one SELECT statement")
    query.add_argument("--key", help=f"API key (default: ${API_KEY_ENV})")
    query.add_argument("--format", choices=("json", "csv", "arrow", "parquet"), default="json")
    query.add_argument("--output", type=Path, help="file to write (needed for arrow, parquet)")
    query.add_argument("--max-rows", type=int)
    query.add_argument(
        "--proofs", action="store_true", help="write an inclusion proof bundle per returned row"
    )
    query.add_argument(
        "--bundles-dir", type=Path, default=Path("bundles"), help="where --proofs writes bundles"
    )
    common(query, buyer_query)


def _store(args: argparse.Namespace):
    from market.store import MarketStore, market_path

    return MarketStore(market_path(args.data_dir))


def _known_dataset(args: argparse.Namespace, dataset: str) -> None:
    from market.assets import CatalogUnavailable, load_assets

    try:
        assets = load_assets(args.data_dir)
    except CatalogUnavailable as error:
        raise UserError(str(error)) from None
    if dataset not in assets:
        known = ", ".join(assets) or "none yet"
        raise UserError(f"no anchored dataset {dataset!r} (anchored: {known})")


def _market_call(call):
    from market.store import MarketError

    try:
        return call()
    except MarketError as error:
        raise UserError(str(error)) from None


def market_add_buyer(args: argparse.Namespace) -> int:
    key = _market_call(lambda: _store(args).add_buyer(args.name))
    if args.json:
        emit_json({"buyer": args.name, "api_key": key})
    else:
        out.print(f"buyer {args.name} created. API key (shown once, store it now):")
        out.print(key, soft_wrap=True)
    return 0


def market_buyers(args: argparse.Namespace) -> int:
    buyers = _store(args).buyers()
    if args.json:
        emit_json({"buyers": buyers})
    else:
        for b in buyers:
            out.print(f"{b['name']:<20} {b['key_hint']:<12} {', '.join(b['datasets']) or '—'}")
        if not buyers:
            out.print("no buyers yet: `rda market add-buyer NAME`")
    return 0


def market_grant(args: argparse.Namespace) -> int:
    _known_dataset(args, args.dataset)
    changed = _market_call(lambda: _store(args).grant(args.name, args.dataset))
    return _report_entitlement(args, "granted", changed)


def market_revoke(args: argparse.Namespace) -> int:
    changed = _market_call(lambda: _store(args).revoke(args.name, args.dataset))
    return _report_entitlement(args, "revoked", changed)


def _report_entitlement(args: argparse.Namespace, verb: str, changed: bool) -> int:
    if args.json:
        emit_json({"buyer": args.name, "dataset": args.dataset, verb: True, "changed": changed})
    else:
        note = "" if changed else " (no change)"
        out.print(
            f"{args.dataset} {verb} {'to' if verb == 'granted' else 'from'} {args.name}{note}"
        )
    return 0


def market_terms(args: argparse.Namespace) -> int:
    _known_dataset(args, args.dataset)
    text = None
    if args.license_file is not None:
        try:
            text = args.license_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read {args.license_file}: {error}") from None
    terms = _market_call(
        lambda: _store(args).set_terms(
            args.dataset, args.license, args.price, args.title, args.price_unit, text
        )
    )
    payload = {"dataset": args.dataset, **terms.__dict__}
    if args.json:
        emit_json(payload)
    else:
        unit = f" {terms.price_unit}" if terms.price_unit else ""
        out.print(f"{args.dataset}: {terms.license}, ${terms.price_usd:.2f}{unit}")
    return 0


def market_requests(args: argparse.Namespace) -> int:
    requests = _store(args).access_requests(args.status)
    if args.json:
        emit_json({"requests": requests})
        return 0
    for r in requests:
        out.print(
            f"#{r['id']:<4} {r['requested_at'][:19]} {printable(r['buyer']):<20} "
            f"{printable(r['dataset']):<24} {r['status']:<8} {printable(r['message'] or '')}",
            markup=False,
            soft_wrap=True,  # a long message wrapped by rich would start a line like a row
        )
    if not requests:
        out.print("no access requests")
    else:
        out.print(
            "answer with `rda market grant NAME DATASET` or `rda market decline NAME DATASET`"
        )
    return 0


def market_decline(args: argparse.Namespace) -> int:
    closed = _market_call(lambda: _store(args).decide(args.name, args.dataset, "declined"))
    if args.json:
        emit_json({"buyer": args.name, "dataset": args.dataset, "declined": closed})
    elif closed:
        out.print(f"declined {args.name}'s request for {args.dataset}")
    else:
        raise UserError(f"{args.name} has no pending request for {args.dataset}")
    return 0


def open_marketplace(args: argparse.Namespace, limits=None, pool=None):
    """The marketplace over ``--data-dir`` (with ``rda serve``'s limits and query pool)."""
    from market.service import Marketplace

    return Marketplace(args.data_dir, limits, pool)


def refused(call):
    """``call()``; the marketplace's refusal said as one line (exit 2)."""
    from market.policy import QueryRefused

    try:
        return call()
    except QueryRefused as refusal:
        raise UserError(f"{refusal.code}: {refusal.message}") from None


def market_list(args: argparse.Namespace) -> int:
    from market.listings import build_listing

    market = open_marketplace(args)
    assets = refused(market.assets)
    listings = [build_listing(a, market.market().terms_for(d)) for d, a in assets.items()]
    if args.json:
        emit_json({"listings": listings})
    else:
        for item in listings:
            cp, cov = item["checkpoint"], item["coverage"]
            out.print(
                f"[bold]{item['dataset']}[/bold] {item['rows']} rows, {cov['nodes']} nodes, "
                f"{len(cov['h3_cells'])} H3 cells, {item['license']} ${item['price_usd']:.2f}, "
                f"root {cp['root'][:16]}… anchor {cp['anchor_tx']}"
            )
    return 0


def market_export(args: argparse.Namespace) -> int:
    document = refused(lambda: open_marketplace(args).export(args.dataset, args.format))
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output:
        args.output.write_text(text)
        if args.json:
            emit_json({"dataset": args.dataset, "format": args.format, "output": str(args.output)})
        else:
            err.print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def buyer_query(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get(API_KEY_ENV)
    if not key:
        raise UserError(f"an API key is needed: --key KEY or ${API_KEY_ENV}")
    if args.format in ("arrow", "parquet") and not args.output:
        raise UserError(f"--format {args.format} is binary: pass --output FILE")
    if args.json and args.format != "json" and not args.output:
        raise UserError("--json prints one JSON object: use --format json, or pass --output FILE")
    market = open_marketplace(args)
    try:
        buyer = refused(lambda: market.authenticate(key))
        result = refused(
            lambda: market.query(buyer, args.sql, args.format, args.proofs, args.max_rows)
        )
    finally:
        market.close()
    body = result.read_body()
    if args.proofs:
        _write_bundles(json.loads(body)["proofs"], args.bundles_dir)
    if args.output:
        args.output.write_bytes(body)
        if args.json:
            emit_json(
                {"output": str(args.output), "format": args.format,
                 "row_count": result.row_count, "checkpoints": result.checkpoints}
            )  # fmt: skip
    else:
        sys.stdout.write(body.decode() + ("\n" if args.format == "json" else ""))
    for c in result.checkpoints:
        err.print(
            f"computed on {c['dataset']} tree size {c['tree_size']} root {c['root']} "
            f"anchor tx {c['anchor_tx']}",
            style="dim",
        )
    return 0


def _write_bundles(bundles: list[dict], directory: Path) -> None:
    """One file per bundle, named as ``rda prove`` names them, for ``rda verify --bundle``."""
    directory.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        name = f"{bundle['dataset']}-leaf-{bundle['leaf_index']:012d}.bundle.json"
        (directory / name).write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
    err.print(f"{len(bundles)} proof bundles in {directory} (check: rda verify --bundle)")
