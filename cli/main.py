"""The ``rda`` command line."""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.markup import escape

from cli.output import UserError, err
from infra.process_exit import exit_now
from infra.state import InfraStateDamaged
from streaming.errors import SettingsError

DEFAULT_TOPIC = "node-telemetry"


def _add_quality_and_sessions(parser: argparse.ArgumentParser, quality_default: float) -> None:
    parser.add_argument(
        "--sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="subscriber sessions beside the radio telemetry (rda.node.v1 only)",
    )
    parser.add_argument(
        "--quality-defects",
        type=float,
        default=quality_default,
        help="fraction of reports with a quality defect (teleport, flat line, skew…)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _default_data_dir() -> Path:
    return Path(os.environ.get("RDA_DATA_DIR", "data"))


def build_parser() -> argparse.ArgumentParser:
    from cli import anchor_commands, nodes_commands, quality_commands, run_commands
    from cli.market_commands import add_market_parsers
    from cli.serve_commands import add_serve_parser

    parser = argparse.ArgumentParser(
        prog="rda", description="Network telemetry to verifiable Real Data Assets."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _infra_parsers(sub)
    _simulate_parser(sub)
    nodes_commands.add_parser(sub)
    run_commands.add_parsers(sub)  # `rda run` and `rda status`
    _demo_parser(sub)
    _verify_parser(sub)
    anchor_commands.add_parser(sub, _default_data_dir())
    quality_commands.add_parser(sub, _default_data_dir())
    _quarantine_parsers(sub)
    _schemas_parsers(sub)
    _prove_parser(sub)
    add_market_parsers(sub, _default_data_dir())
    add_serve_parser(sub, _default_data_dir())
    _bench_parser(sub)
    return parser


def _infra_parsers(sub: argparse._SubParsersAction) -> None:
    """``rda infra up|down|status``."""
    from cli import infra_commands as commands

    infra = sub.add_parser("infra", help="start, stop or inspect the local broker and chain")
    infra_sub = infra.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = infra_sub.add_parser("up", help="start the broker (and anvil with --chain anvil)")
    up.add_argument("--port", type=int, default=19092, help="broker port on 127.0.0.1")
    up.add_argument(
        "--storage",
        choices=("persistent", "memory"),
        default="persistent",
        help="broker storage: persistent (a local S3 store under the state directory: records "
        "and offsets survive a restart; default) or memory (lost when the broker stops)",
    )
    up.add_argument("--chain", choices=("embedded", "anvil"), default="embedded")
    up.add_argument("--chain-port", type=int, default=18545, help="anvil port on 127.0.0.1")
    _add_json(up)
    up.set_defaults(handler=commands.infra_up)
    down = infra_sub.add_parser("down", help="stop what `infra up` started")
    _add_json(down)
    down.set_defaults(handler=commands.infra_down)
    status = infra_sub.add_parser("status", help="what is running")
    _add_json(status)
    status.set_defaults(handler=commands.infra_status)
    tools = infra_sub.add_parser(
        "tools", help="install every tool the project runs (broker, chain, compiler, browser…)"
    )
    _add_json(tools)
    tools.set_defaults(handler=commands.infra_tools)


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    """``rda simulate``."""
    from cli import simulate_commands
    from simulator.fleet import SIMULATED_FORMATS

    sim = sub.add_parser("simulate", help="a fleet of nodes publishing telemetry to Kafka")
    sim.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from `infra up`)")
    sim.add_argument("--topic", default=DEFAULT_TOPIC)
    sim.add_argument("--partitions", type=int, default=4)
    sim.add_argument("--nodes", type=int, default=20)
    sim.add_argument("--duration", type=float, default=60.0, help="simulated seconds")
    sim.add_argument("--rate", type=float, default=1.0, help="reports per second per cell")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--start", help="first event time, ISO 8601 (default: now - duration)")
    sim.add_argument("--bad-fraction", type=float, default=0.0)
    sim.add_argument("--realtime", action="store_true", help="pace messages at event time")
    _add_quality_and_sessions(sim, quality_default=0.0)
    sim.add_argument(
        "--format",
        default="rda.node.v1",
        choices=SIMULATED_FORMATS,
        help="wire format (default rda.node.v1)",
    )
    sim.add_argument(
        "--hybrid",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the backhaul network too: relay platforms, gateways, link_kpi reports, fades "
        "and outages (rda.node.v1 only)",
    )
    sim.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every node signs its reports (rda-sig header, Ed25519 per signed batch)",
    )
    sim.add_argument(
        "--sign-window", type=float, default=10.0, help="seconds of event time per signed batch"
    )
    sim.add_argument(
        "--key-seed",
        type=int,
        default=0,
        help="the simulated nodes' keys derive from it (keep it: the registry holds them)",
    )
    sim.add_argument(
        "--node-registry",
        help="register the fleet's keys in this NodeRegistry (default: `infra up`'s, if any)",
    )
    sim.add_argument("--rpc-url", help="the node registry's chain (default: `infra up`'s)")
    _add_json(sim)
    sim.set_defaults(handler=simulate_commands.simulate)


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    """``rda demo``."""
    from cli import commands

    demo = sub.add_parser("demo", help="everything end to end on embedded defaults")
    demo.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    demo.add_argument("--nodes", type=int, default=40)
    demo.add_argument("--duration", type=float, default=300.0, help="simulated seconds")
    demo.add_argument("--bad-fraction", type=float, default=0.02)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--waves", type=int, default=2, help="micro-batches (checkpoints)")
    demo.add_argument("--chain", choices=("embedded", "anvil"), default="embedded")
    demo.add_argument(
        "--ripe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="public RIPE Atlas pings on a second topic, configured unsigned",
    )
    _add_quality_and_sessions(demo, quality_default=0.01)
    _add_json(demo)
    demo.set_defaults(handler=commands.demo)


def _verify_parser(sub: argparse._SubParsersAction) -> None:
    """``rda verify`` (whole logs by default, ``--bundle``, ``--history``)."""
    from cli import audit
    from sinks.storage import data_location

    verify = sub.add_parser(
        "verify",
        help="auditor: rows → root → manifest → anchor, on the publisher you pin",
        description="Pin the publisher once (--publisher FILE, or --registry ADDRESS with "
        "--rpc-url, or --publisher-key-id); nothing is trusted because the data or a bundle "
        "says so. Verdicts: VERIFIED (exit 0), NOT VERIFIED (exit 1, the failed link named), "
        "INCOMPLETE (exit 3, what could not be checked named); 2 is a usage error. By default "
        "each log's newest checkpoint is re-hashed row by row and its whole history checked "
        "against the registry, latest() included.",
    )
    verify.add_argument(
        "--data-dir",
        type=data_location,
        default=_default_data_dir(),
        help="data directory: a folder, or s3://BUCKET/PREFIX (read through a local copy)",
    )
    verify.add_argument("--dataset", help="dataset id, e.g. radio_kpi.v1 (default: all)")
    verify.add_argument("--manifest", type=Path, help="a checkpoint manifest (default: newest)")
    verify.add_argument(
        "--publisher",
        help="the publisher identity document to pin (default: $RDA_PUBLISHER)",
    )
    verify.add_argument("--publisher-key-id", help="pin a publisher signing key id (hex)")
    verify.add_argument("--registry", help="pin an AnchorRegistry: its identity is read from it")
    verify.add_argument("--chain-id", type=int, help="pin the chain id the registry is on")
    verify.add_argument("--rpc-url", help="the chain node to read (default: `infra up`'s)")
    verify.add_argument("--offline", action="store_true", help="read no chain (INCOMPLETE)")
    verify.add_argument("--bundle", type=Path, help="verify proof bundles (a file or a folder)")
    verify.add_argument(
        "--history", action="store_true", help="only the history of each log (no row re-hash)"
    )
    verify.add_argument(
        "--contribution",
        metavar="NODE",
        help="a node owner's check: NODE's row count in the contribution table, recounted "
        "from the published rows, and the root on the DataAsset (with --dataset)",
    )
    _add_json(verify)
    verify.set_defaults(handler=audit.verify)  # whole logs unless --bundle or --history


def _quarantine_parsers(sub: argparse._SubParsersAction) -> None:
    """``rda quarantine list|show|replay``."""
    from cli import commands
    from schemas.adapters import format_choices

    quarantine = sub.add_parser("quarantine", help="rejected records: list, show, replay")
    q_sub = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    q_list = q_sub.add_parser("list", help="quarantined records counted by topic and reason")
    q_show = q_sub.add_parser("show", help="quarantined records with their reasons")
    q_show.add_argument("--limit", type=int, default=20)
    q_replay = q_sub.add_parser("replay", help="standardize quarantined records again after a fix")
    q_replay.add_argument(
        "--format",
        default="auto",
        choices=format_choices(),
        help="wire format of records without an rda-format header (default auto: sniff)",
    )
    q_replay.add_argument(
        "--override-header",
        action="store_true",
        help="use --format for every record, whatever its header says (a header was wrong)",
    )
    q_replay.add_argument("--chain", choices=("embedded", "anvil", "rpc"))
    q_replay.add_argument("--rpc-url")
    q_replay.add_argument("--registry")
    q_replay.add_argument("--node-registry", help="NodeRegistry to check device signatures against")
    q_replay.add_argument(
        "--signatures",
        choices=("auto", "required", "unsigned"),
        default="auto",
        help="device signatures of the replayed records (auto: required with a node registry)",
    )
    for q_parser, handler in (
        (q_list, commands.quarantine_list),
        (q_show, commands.quarantine_show),
        (q_replay, commands.quarantine_replay),
    ):
        q_parser.add_argument("--data-dir", type=Path, default=_default_data_dir())
        if q_parser is not q_list:
            q_parser.add_argument("--reason", help="only this reason code")
            q_parser.add_argument("--topic", help="only this topic")
        _add_json(q_parser)
        q_parser.set_defaults(handler=handler)


def _schemas_parsers(sub: argparse._SubParsersAction) -> None:
    """``rda schemas list|show``."""
    from cli import commands

    schemas = sub.add_parser("schemas", help="the canonical schemas (data dictionary)")
    schemas_sub = schemas.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = schemas_sub.add_parser(
        "list", help="every schema version, its dataset and the adapters that feed it"
    )
    _add_json(listing)
    listing.set_defaults(handler=commands.schemas_list)
    show = schemas_sub.add_parser("show", help="one schema's fields, units, ranges, privacy")
    show.add_argument(
        "name",
        help="schema name (its current version), or a version: speed_test.v1, speed_test.v1.0",
    )
    _add_json(show)
    show.set_defaults(handler=commands.schemas_show)


def _prove_parser(sub: argparse._SubParsersAction) -> None:
    """``rda prove``."""
    from cli import audit
    from sinks.storage import data_location

    prove = sub.add_parser("prove", help="write proof bundles for the rows a SQL predicate selects")
    prove.add_argument(
        "--data-dir",
        type=data_location,
        default=_default_data_dir(),
        help="data directory: a folder, or s3://BUCKET/PREFIX (read through a local copy)",
    )
    prove.add_argument("--dataset", required=True, help="dataset id, e.g. radio_kpi.v1")
    prove.add_argument("--where", required=True, help='SQL predicate, e.g. "pci = 301"')
    prove.add_argument(
        "--manifest", type=Path, help="prove against this checkpoint (default: latest)"
    )
    prove.add_argument("--out", type=Path, default=Path("bundles"), help="folder for the bundles")
    prove.add_argument("--limit", type=int, default=10_000, help="refuse to write more bundles")
    _add_json(prove)
    prove.set_defaults(handler=audit.prove)


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    """``rda bench``."""
    from cli import commands

    bench = sub.add_parser("bench", help="benchmarks, as ratios to a baseline in the same run")
    bench.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    bench.add_argument("--quick", action="store_true", help="smaller inputs")
    _add_json(bench)
    bench.set_defaults(handler=commands.bench)


def configure_warnings() -> None:
    """Warnings on stderr: the project's, not its libraries' chatter."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Beam (which warns on the root logger itself) and kafka-python are chatty at WARNING about
    # things that are not the user's concern; `getLogger("root")` is the root logger.
    for noisy in ("kafka", "root", "apache_beam"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # The project's own loggers keep WARNING (they would inherit the root's ERROR otherwise):
    # a catalog view not made again, a Kafka consumer left unclosed are the user's concern.
    logging.getLogger("rda").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    configure_warnings()
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UserError, SettingsError, InfraStateDamaged) as error:
        return _error_line(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        err.print("rda: interrupted")
        return 130
    except Exception as error:
        from streaming.retry import failure_kind, short

        kind = failure_kind(error)
        if kind == "other":
            raise  # a bug: its traceback is what whoever fixes it needs
        return _error_line(f"{kind}: {short(error)}", EXIT_OUTSIDE_FAULT)


# Exit codes (README, "Exit codes"): 1 is a command's own "no" (verification failed, retries
# exhausted), 4 a batch that keeps killing its worker (streaming.errors.CrashLoop).
EXIT_USAGE = 2  # a mistake in the command, its settings or its inputs
EXIT_OUTSIDE_FAULT = 3  # the broker, the chain, the disk or the network failed, not retried


def _error_line(message: str, code: int) -> int:
    err.print(f"[red]rda: error:[/red] {escape(message)}", soft_wrap=True)
    return code


def entry() -> NoReturn:
    """``rda`` as a process (the console script, ``python -m cli.main``): ``main``, then an exit
    that skips the interpreter's teardown of every object still alive.

    Its last garbage collection walked web3's, py-evm's and Beam's object graphs for 0.6–0.8 s
    after ``rda run --once`` had finished (measured), and the teardown's writes to pages shared
    with the run's forked children cost ~0.05 s more: the atexit handlers and the flush of
    buffered output run, then the process ends (``infra/process_exit.py``). Not in ``main``:
    tests call that in-process.
    """
    from infra.gc_tuning import collect_less_often

    collect_less_often()  # before the imports that make most of a process's objects
    from infra.chain import defer_key_files

    defer_key_files()  # also where web3 is imported without infra.chain (rda verify, serve)
    arguments = sys.argv[1:]
    if (
        arguments[:1] == ["run"]
        and not {"-h", "--help"} & set(arguments)
        and not _quality_left_queued(arguments)
    ):
        from streaming import quality_launch

        quality_launch.prestart()  # GE's warm-up on the core the run's own start leaves idle
    code = main()
    gc.freeze()  # in case the exit is a usual one after all (a thread still running)
    exit_now(code)


def _quality_left_queued(arguments: list[str]) -> bool:
    """``--quality queue`` on the command line, or in the environment: no GE worker to start
    ahead (one a config file turns away is dismissed when the settings are read)."""
    flag = [value for name, value in itertools.pairwise(arguments) if name == "--quality"]
    flag += [a.removeprefix("--quality=") for a in arguments if a.startswith("--quality=")]
    return (flag[-1] if flag else os.environ.get("RDA_QUALITY", "").strip()) == "queue"


if __name__ == "__main__":
    entry()
