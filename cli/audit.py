"""``rda prove`` and the auditor's ``rda verify --bundle | --history``.

``rda prove`` selects rows with a SQL predicate (DuckDB over the dataset's Parquet files, in the
manifest's leaf order) and writes one proof bundle per row; ``rda verify --bundle`` checks
bundles offline and, given a chain, against the anchor; ``rda verify --history`` checks that
every checkpoint extends the one before it; plain ``rda verify`` re-hashes whole datasets up to
their anchored roots.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.output import UserError, emit_json, out, step
from infra.state import InfraState


def verify(args: argparse.Namespace) -> int:
    """``rda verify``: a bundle, a dataset's history, or (default) whole datasets."""
    if args.bundle:
        return _verify_bundles(args)
    if args.history:
        return _verify_histories(args)
    return _verify_datasets(args)


# -- verify (whole datasets) --------------------------------------------------------------------


def _verify_datasets(args: argparse.Namespace) -> int:
    from proofs.verify import verify_dataset

    layout, datasets = _selected_datasets(args)
    lookup, why_not = _anchor_lookup(args)
    verdicts = []
    for dataset in datasets:
        directory = layout.dataset_dir(dataset)
        if not directory.is_dir():
            raise UserError(f"no dataset {dataset!r} under {layout.published}")
        try:
            verdict = verify_dataset(
                directory, args.manifest, lookup, why_not, publisher_key_id=args.publisher_key_id
            )
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
        verdicts.append(verdict.as_dict())
    return _report(
        args,
        "datasets",
        verdicts,
        lambda v: f"{v['dataset']} @ {v['tree_size']} rows, root {v['root']}",
    )


def _selected_datasets(args: argparse.Namespace):
    """The data dir's layout and the datasets to check: ``--dataset``, or every published one."""
    from sinks.layout import DataLayout

    layout = DataLayout(args.data_dir)
    if not layout.published.is_dir():
        raise UserError(f"{layout.published} does not exist: nothing to verify")
    if args.dataset:
        return layout, [args.dataset]
    return layout, sorted(p.name for p in layout.published.iterdir() if p.is_dir())


def _anchor_lookup(args: argparse.Namespace):
    """How to read anchors: the chain of ``--rpc-url``/``--registry`` or of ``rda infra up``."""
    if args.offline:
        return None, "--offline"
    state = InfraState.load()
    rpc_url = args.rpc_url or state.rpc_url
    registry = args.registry or state.registry_address
    if not rpc_url or not registry:
        return None, (
            "no persistent chain to read: the embedded EVM lives only inside the "
            "process that anchored (use `rda infra up --chain anvil`, or --rpc-url "
            "and --registry)"
        )
    return _open_rpc(rpc_url, registry).lookup, ""


# -- prove --------------------------------------------------------------------------------------


def prove(args: argparse.Namespace) -> int:
    from market.prove import ProveError, ProveRequest, prove_rows

    request = ProveRequest(
        args.data_dir, args.dataset, args.where, args.out, args.manifest, args.limit
    )
    try:
        report = prove_rows(request, progress=lambda m: step(m, args.json))
    except ProveError as error:
        raise UserError(str(error)) from None
    if args.json:
        emit_json(report)
    else:
        checkpoint = report["checkpoint"]
        out.print(
            f"{len(report['bundles'])} proof bundles for {args.dataset} @ "
            f"{checkpoint['tree_size']} rows (root {checkpoint['root'][:16]}…) in {args.out}"
        )
    return 0


# -- verify --bundle ----------------------------------------------------------------------------


def _verify_bundles(args: argparse.Namespace) -> int:
    from proofs.bundle import verify_bundle

    paths = _bundle_files(args.bundle)
    verdicts = []
    for path in paths:
        try:
            bundle = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"{path}: not a JSON proof bundle ({error})") from None
        lookup, why_not = _bundle_lookup(args, bundle)
        verdict = verify_bundle(bundle, lookup, why_not).as_dict()
        verdict["bundle"] = str(path)
        verdict["leaf_index"] = bundle.get("leaf_index") if isinstance(bundle, dict) else None
        verdicts.append(verdict)
    return _report(
        args, "bundles", verdicts, lambda v: f"{Path(v['bundle']).name} (leaf {v['leaf_index']})"
    )


def _bundle_files(target: Path) -> list[Path]:
    if target.is_dir():
        found = sorted(target.glob("*.bundle.json"))
        if not found:
            raise UserError(f"no *.bundle.json under {target}")
        return found
    if not target.exists():
        raise UserError(f"{target} does not exist")
    return [target]


def _bundle_lookup(args: argparse.Namespace, bundle: Any):
    """A view-call lookup on the chain the bundle names, or None and why not."""
    anchor = bundle.get("anchor") if isinstance(bundle, dict) else None
    if args.offline:
        return None, "--offline"
    rpc_url = args.rpc_url or InfraState.load().rpc_url
    if not anchor:
        return None, "the bundle names no anchor"
    if not rpc_url:
        return None, "no chain to read: pass --rpc-url (the embedded EVM does not outlive its run)"
    chain = _open_rpc(rpc_url, args.registry or anchor["contract"])
    if chain.chain_id != anchor["chain_id"]:
        raise UserError(
            f"the chain at {rpc_url} has id {chain.chain_id}; "
            f"the bundle was anchored on chain {anchor['chain_id']}"
        )
    return chain.lookup, ""


def _open_rpc(rpc_url: str, registry: str):
    from streaming.chain import open_chain

    try:
        return open_chain("rpc", rpc_url, registry)
    except ConnectionError as error:
        raise UserError(f"the chain at {rpc_url} does not answer: {error}") from None


# -- verify --history ---------------------------------------------------------------------------


def _verify_histories(args: argparse.Namespace) -> int:
    from proofs.history import verify_history

    layout, datasets = _selected_datasets(args)
    lookup, why_not = _anchor_lookup(args)
    verdicts = []
    for dataset in datasets:
        try:
            verdicts.append(verify_history(layout.dataset_dir(dataset), lookup, why_not).as_dict())
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
    return _report(
        args, "histories", verdicts, lambda v: f"history of {v['log']} up to {v['tree_size']} rows"
    )


# -- verdicts -----------------------------------------------------------------------------------


def _report(
    args: argparse.Namespace,
    kind: str,
    verdicts: list[dict[str, Any]],
    title: Callable[[dict[str, Any]], str],
) -> int:
    """Every verdict as one JSON object (``--json``) or printed with its checks; exit 0 only
    when all verified."""
    ok = all(v["verified"] for v in verdicts)
    if args.json:
        emit_json({"verified": ok, kind: verdicts})
    else:
        for verdict in verdicts:
            _print(title(verdict), verdict)
    return 0 if ok else 1


def _print(title: str, verdict: dict[str, Any]) -> None:
    mark = "[green]VERIFIED[/green]" if verdict["verified"] else "[red]FAILED[/red]"
    out.print(f"{title}: {mark}", soft_wrap=True)
    for check in verdict["checks"]:
        symbol = {True: "✓", False: "✗", None: "–"}[check["ok"]]
        out.print(f"  {symbol} {check['check']}: {check['detail']}", soft_wrap=True)
