"""``rda prove`` and the auditor's ``rda verify``.

``rda prove`` selects rows with a SQL predicate (DuckDB over the dataset's Parquet files, in the
manifest's leaf order) and writes one proof bundle per row. ``rda verify`` pins the publisher
(``--publisher FILE``, ``--registry``, ``--publisher-key-id``: never the data's own word) and
gives a verdict, VERIFIED (exit 0), NOT VERIFIED (1) or INCOMPLETE (3): by default on each log
(every row re-hashed to the newest checkpoint, its history, every anchor and the registry's
``latest()``), with ``--bundle`` on proof bundles, with ``--history`` on the history only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.output import UserError, emit_json, out, shown, step
from infra.chain import redacted_url
from infra.state import InfraState


def verify(args: argparse.Namespace) -> int:
    """``rda verify``: bundles, a dataset's history only, or (default) whole logs."""
    args.data_dir = _readable(args.data_dir)
    if args.bundle:
        return _verify_bundles(args)
    if args.history:
        return _verify_histories(args)
    if args.contribution:
        return _verify_contribution(args)
    return _verify_datasets(args)


def _verify_contribution(args: argparse.Namespace) -> int:
    """``--contribution NODE``: the checkpoint, then NODE's count and the contribution table."""
    from proofs.contribution_audit import verify_contribution

    layout, _datasets = _selected_datasets(args)
    if not args.dataset:
        raise UserError("--contribution needs --dataset: the dataset the node is paid for")
    trust = _trust(args, _published_identity(layout))
    directory = layout.dataset_dir(args.dataset)
    if not directory.is_dir():
        raise UserError(f"no dataset {args.dataset!r} under {layout.published}")
    try:
        verdict = verify_contribution(
            directory, args.contribution, trust, args.manifest, _asset(layout, args, trust)
        )
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    return _report(
        args,
        trust,
        "datasets",
        [verdict.as_dict()],
        lambda v: f"{v['dataset']} @ {v['tree_size']} rows: node {args.contribution}",
    )


def _asset(layout, args: argparse.Namespace, trust):
    """The DataAsset token of the dataset, as the data directory records it (its claims are
    checked against the pinned registry), or None: the checkpoint's manifest may name it too
    (``proofs.contribution_audit``)."""
    from proofs.data_asset import DataAsset
    from proofs.documents import parse_document
    from proofs.manifest import read_document

    try:
        record = parse_document(read_document(layout.published / "data-assets.json"))
        token = record["tokens"][args.dataset]
        return DataAsset(trust.w3, record["data_asset"]), token
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _readable(data_dir):
    """The data directory as a local folder: an ``s3://`` one through a local copy of its
    published side (everything read there is checked against manifests and anchors)."""
    from sinks.storage import is_remote, readable_copy

    if not is_remote(data_dir):
        return data_dir
    try:
        return readable_copy(data_dir)
    except OSError as error:
        raise UserError(f"{data_dir}: the object store cannot be read ({error})") from None


# -- the trust root -----------------------------------------------------------------------------


def _trust(args: argparse.Namespace, published_identity: bytes | None = None):
    """The auditor's pins (``--publisher``/``RDA_PUBLISHER``, ``--registry``, ``--chain-id``,
    ``--publisher-key-id``) and the chain to read them on (``--rpc-url``, else `infra up`'s)."""
    from proofs.trust import Pin, TrustRoot

    pin = Pin(
        identity=_pinned_document(args),
        registry=_pinned_registry(args.registry),
        chain_id=args.chain_id,
        key_id=_pinned_key_id(args.publisher_key_id),
    )
    if args.offline:
        return TrustRoot(pin, None, "--offline", published_identity)
    rpc_url = args.rpc_url or InfraState.load().rpc_url
    try:
        return TrustRoot.over_rpc(pin, rpc_url, published_identity)
    except ValueError as error:  # a URL web3 cannot use
        raise UserError(f"--rpc-url {redacted_url(rpc_url)}: {error}") from None


def _pinned_document(args: argparse.Namespace) -> bytes | None:
    path = args.publisher or os.environ.get("RDA_PUBLISHER")
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"--publisher {path}: {error.strerror or error}") from None


def _pinned_registry(value: str | None) -> str | None:
    from proofs.anchor import checksum_address

    if value is None:
        return None
    try:
        return checksum_address(value)
    except ValueError as error:
        raise UserError(f"--registry: {error}") from None


def _pinned_key_id(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise UserError(f"--publisher-key-id must be 64 hex digits (SHA-256), not {value!r}")
    return value.lower()


def _published_identity(layout) -> bytes | None:
    """The data directory's copy of the identity: trusted only if a pinned key signed it."""
    from proofs.identity import FILE_NAME, read_identity_bytes

    path = layout.published / FILE_NAME
    return read_identity_bytes(path) if path.is_file() else None


# -- verify (whole logs) ------------------------------------------------------------------------


def _verify_datasets(args: argparse.Namespace) -> int:
    from proofs.audit import audit_log

    layout, datasets = _selected_datasets(args)
    trust = _trust(args, _published_identity(layout))
    verdicts = []
    for dataset in datasets:
        directory = layout.dataset_dir(dataset)
        if not directory.is_dir():
            raise UserError(f"no dataset {dataset!r} under {layout.published}")
        try:
            verdict = audit_log(directory, trust, args.manifest)
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
        verdicts.append(verdict.as_dict())
    return _report(
        args,
        trust,
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


# -- prove --------------------------------------------------------------------------------------


def prove(args: argparse.Namespace) -> int:
    from market.prove import ProveError, ProveRequest, prove_rows

    args.data_dir = _readable(args.data_dir)
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
    from proofs.documents import parse_document
    from proofs.manifest import read_document

    paths = _bundle_files(args.bundle)
    trust = _trust(args)
    verdicts = []
    for path in paths:
        try:
            bundle = parse_document(read_document(path))
        except (OSError, ValueError) as error:  # too large, too deep, or not JSON
            raise UserError(f"{path}: not a JSON proof bundle ({error})") from None
        verdict = verify_bundle(bundle, trust).as_dict()
        verdict["bundle"] = str(path)
        verdict["leaf_index"] = bundle.get("leaf_index") if isinstance(bundle, dict) else None
        verdicts.append(verdict)
    return _report(
        args,
        trust,
        "bundles",
        verdicts,
        lambda v: f"{Path(v['bundle']).name} (leaf {v['leaf_index']})",
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


# -- verify --history ---------------------------------------------------------------------------


def _verify_histories(args: argparse.Namespace) -> int:
    """``--history``: only the history of each log (no re-hash of the rows): the links between
    checkpoints, their consistency proofs, their anchors and the registry's ``latest()``."""
    from proofs.history import verify_history

    layout, datasets = _selected_datasets(args)
    trust = _trust(args, _published_identity(layout))
    verdicts = []
    for dataset in datasets:
        try:
            verdict = verify_history(layout.dataset_dir(dataset), trust)
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
        verdict.checks.insert(0, trust.identity_check())
        verdicts.append(verdict.as_dict())
    return _report(
        args,
        trust,
        "histories",
        verdicts,
        lambda v: f"history of {v['log']} up to {v['tree_size']} rows",
    )


# -- verdicts -----------------------------------------------------------------------------------


def _report(
    args: argparse.Namespace,
    trust: Any,
    kind: str,
    verdicts: list[dict[str, Any]],
    title: Callable[[dict[str, Any]], str],
) -> int:
    """Every verdict as one JSON object (``--json``) or printed with its checks; the exit code
    says VERIFIED (0), NOT VERIFIED (1) or INCOMPLETE (3)."""
    from proofs.verdict import EXIT_CODES, VERIFIED, overall

    verdict = overall(v["verdict"] for v in verdicts)
    if args.json:
        emit_json(
            {
                "verdict": verdict,
                "verified": verdict == VERIFIED,
                "publisher": trust.describe(),
                kind: verdicts,
            }
        )
    else:
        for entry in verdicts:
            _print(title(entry), entry)
        out.print(f"verdict: {_marked(verdict)}", soft_wrap=True)
    return EXIT_CODES[verdict]


def _marked(verdict: str) -> str:
    color = {"VERIFIED": "green", "NOT VERIFIED": "red"}.get(verdict, "yellow")
    return f"[{color}]{verdict}[/{color}]"


def _print(title: str, verdict: dict[str, Any]) -> None:
    out.print(f"{shown(title)}: {_marked(verdict['verdict'])}", soft_wrap=True)
    for check in verdict["checks"]:
        symbol = {True: "✓", False: "✗", None: "–"}[check["ok"]]
        out.print(f"  {symbol} {check['check']}: {shown(check['detail'])}", soft_wrap=True)
    for missing in verdict["not_checked"]:
        if missing["detail"] == "not reached":
            out.print(f"  – {missing['check']}: not reached", soft_wrap=True)
