"""``rda serve``: the marketplace's web page and HTTP API, with its limits, until stopped."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from cli.market_commands import open_marketplace, reader_arguments, refused
from cli.output import UserError, emit_json, err


def add_serve_parser(sub: argparse._SubParsersAction, default_data_dir: Path) -> None:
    """Register ``serve`` on the ``rda`` parser."""
    serve = sub.add_parser("serve", help="the marketplace web page and HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    _serve_limit_arguments(serve)
    reader_arguments(serve, serve_market, default_data_dir)


def _serve_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """What one query, one buyer and one connection may spend (docs/marketplace.md)."""
    add = serve.add_argument
    add("--timeout", type=float, default=10.0, help="seconds per query, encoding included")
    add("--memory-limit", default="512MB", help="DuckDB buffer memory per query database")
    add("--max-rows", type=int, default=100_000, help="rows per result")
    add("--max-result-mb", type=float, default=128, help="encoded bytes per result (MiB)")
    add("--workers", type=int, default=4, help="query worker processes")
    add("--worker-memory-mb", type=int, default=1536, help="memory cap of each worker (MiB)")
    add("--per-buyer", type=int, default=2, help="queries one API key runs at once")
    add("--queued-per-buyer", type=int, default=32, help="queries one API key may queue")
    add("--max-connections", type=int, default=128, help="open connections")
    add("--max-connections-per-client", type=int, default=32,
        help="open connections from one address (behind a proxy: --max-connections)")  # fmt: skip
    add("--receive-timeout", type=float, default=15.0, help="seconds for a request to arrive")
    add("--rpc-url", help="sell licences on chain: the node of the minted assets")
    add("--chain-interval", type=float, default=1.0, help="seconds between licence syncs")


def serve_market(args: argparse.Namespace) -> int:
    from market.http import ServerLimits, start_server

    limits, pool = _serve_limits(args)
    market = open_marketplace(args, limits, pool)
    try:
        refused(market.assets)  # fail now, not on the first request, when there is no catalog
        server_limits = ServerLimits(
            max_connections=args.max_connections,
            receive_timeout_s=args.receive_timeout,
            max_connections_per_client=args.max_connections_per_client,
        )
        server = start_server(market, args.port, args.host, server_limits)
        _sell_on_chain(args, market, server.url)
    except OSError as error:
        market.close()
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    except UserError:
        market.close()
        raise
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.json:
        emit_json({"url": server.url, "data_dir": str(args.data_dir)})
    else:
        err.print(f"serving the marketplace on {server.url} (Ctrl-C stops)")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if market.chain is not None:
            market.chain.stop()
        server.shutdown()
        server.server_close()
        market.close()
    return 0


def _sell_on_chain(args: argparse.Namespace, market, origin: str) -> None:
    """With ``--rpc-url``: offers, wallet sign-in and the licence sync (every
    ``--chain-interval`` s) for the data directory's minted assets."""
    if not args.rpc_url:
        return
    from market.onchain import ChainMarket, ChainUnavailable
    from streaming.chain import connect_node

    if args.chain_interval <= 0:
        raise UserError("--chain-interval must be positive")
    try:
        w3 = connect_node("rpc", args.rpc_url)  # a dripping node stalls no sync for good
        market.chain = ChainMarket.open(
            w3, args.data_dir, market.store, origin, args.chain_interval
        )
        market.chain.start()
    except (ValueError, ConnectionError, ChainUnavailable) as error:
        raise UserError(str(error)) from None


def _serve_limits(args: argparse.Namespace):
    from market.pool import PoolLimits
    from market.sandbox import Limits

    positive = ("timeout", "max_rows", "max_result_mb", "workers", "worker_memory_mb",
                "per_buyer", "queued_per_buyer", "max_connections", "max_connections_per_client",
                "receive_timeout")  # fmt: skip
    for name in positive:
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    limits = Limits(
        timeout_s=args.timeout,
        memory_limit=args.memory_limit,
        max_rows=args.max_rows,
        max_result_bytes=int(args.max_result_mb * 1024 * 1024),
    )
    pool = PoolLimits(
        workers=args.workers,
        per_buyer=args.per_buyer,
        queued_per_buyer=args.queued_per_buyer,
        worker_memory_mb=args.worker_memory_mb,
    )
    return limits, pool
