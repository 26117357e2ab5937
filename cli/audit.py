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
    from proofs.bundle import build_bundles
    from proofs.leaves import leaf_bytes_for_batch
    from proofs.log import LogRef
    from proofs.manifest import latest_manifest, load_manifest
    from sinks.layout import DataLayout

    dataset_dir = DataLayout(args.data_dir).dataset_dir(args.dataset)
    manifest_file = args.manifest or latest_manifest(dataset_dir)
    if manifest_file is None or not Path(manifest_file).exists():
        raise UserError(f"no checkpoint of {args.dataset!r} under {dataset_dir}")
    manifest, digest = load_manifest(Path(manifest_file))
    matches = _matching_rows(dataset_dir, manifest["files"], args.where)
    if len(matches) > args.limit:
        raise UserError(
            f"{len(matches)} rows match; at most --limit {args.limit} bundles are written: "
            "narrow --where or raise --limit"
        )
    checkpoint = {
        "tree_size": manifest["checkpoint"]["tree_size"],
        "root": manifest["checkpoint"]["root"],
        "manifest_sha256": digest.hex(),
    }
    anchor_info = _recorded_anchor(args.data_dir, manifest)
    log = LogRef(manifest.get("log", args.dataset), dataset_dir / "log")
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_index, rows in _by_file(matches).items():
        entry = manifest["files"][file_index]
        table = _read_rows(dataset_dir / entry["path"], rows)
        indices = [entry["leaf_start"] + row for row in rows]
        bundles = build_bundles(
            log, indices, leaf_bytes_for_batch(table), checkpoint, anchor_info, manifest["dataset"]
        )
        for bundle in bundles:
            path = out_dir / f"{args.dataset}-leaf-{bundle['leaf_index']:012d}.bundle.json"
            path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
            written.append(str(path))
        step(f"{entry['path']}: {len(bundles)} bundles", args.json)
    report = {
        "dataset": args.dataset,
        "log": log.log_id,
        "checkpoint": checkpoint,
        "anchored": anchor_info is not None,
        "matched": len(matches),
        "bundles": written,
        "out": str(out_dir),
    }
    if args.json:
        emit_json(report)
    else:
        out.print(
            f"{len(written)} proof bundles for {args.dataset} @ {checkpoint['tree_size']} rows "
            f"(root {checkpoint['root'][:16]}…) in {out_dir}"
        )
    return 0


def _matching_rows(dataset_dir: Path, files: list[dict], where: str) -> list[tuple[int, int]]:
    """(file index in the manifest, row number in the file) of every row matching ``where``."""
    import duckdb

    if not files:
        return []
    paths = [str(dataset_dir / f["path"]) for f in files]
    index = {path: i for i, path in enumerate(paths)}
    sql = (
        "SELECT filename, file_row_number FROM "
        "read_parquet(?, filename = true, file_row_number = true) "
        f"WHERE ({where}) ORDER BY filename, file_row_number"
    )
    try:
        found = duckdb.connect().execute(sql, [paths]).fetchall()
    except duckdb.Error as error:
        message = str(error).splitlines()[0]
        raise UserError(f"--where {where!r} is not a valid predicate: {message}") from None
    return sorted((index[name], row) for name, row in found)


def _by_file(matches: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for file_index, row in matches:
        grouped.setdefault(file_index, []).append(row)
    return grouped


def _read_rows(path: Path, rows: list[int]):
    """The rows exactly as published: Parquet read with its own Arrow schema, no SQL types."""
    import pyarrow.parquet as pq

    return pq.read_table(path).take(rows)


def _recorded_anchor(data_dir: Path, manifest: dict) -> dict | None:
    """Where the driver anchored this checkpoint, from the catalog (None if not anchored)."""
    from sinks.catalog import Catalog
    from sinks.layout import DataLayout

    layout = DataLayout(data_dir)
    if not layout.catalog.exists():
        return None
    log_id = manifest.get("log", manifest["dataset"])
    with Catalog(layout) as catalog:
        for checkpoint in catalog.checkpoints(log_id):
            if checkpoint["tree_size"] == manifest["checkpoint"]["tree_size"]:
                return checkpoint if checkpoint.get("contract") else None
    return None


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
    from cli.chain import open_chain

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
