"""Handlers for each ``rda`` subcommand: parse options, call the rooms, report."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.output import UserError, emit_json, out, printable, shown, stage, step
from infra.chain import redacted_url
from infra.state import InfraState

# -- run --------------------------------------------------------------------------------------


def _chain_for(kind: str | None, rpc_url: str | None, registry: str | None):
    from streaming.chain import open_chain

    state = InfraState.load()
    kind = kind or state.chain_kind
    if kind != "embedded":
        rpc_url = rpc_url or state.rpc_url
        registry = registry or state.registry_address
        if not rpc_url:
            raise UserError(f"--chain {kind} needs --rpc-url (or `rda infra up --chain anvil`)")
    try:
        return open_chain(kind, rpc_url, registry)
    except ConnectionError as error:
        raise UserError(f"the chain at {redacted_url(rpc_url)} does not answer: {error}") from None


def _node_cache(chain, address: str | None):
    """The NodeRegistry on ``chain`` (``address``, else `rda infra up`'s on that chain), if any."""
    state = InfraState.load()
    if address is None and chain.kind != "embedded" and chain.rpc_url == state.rpc_url:
        address = state.node_registry_address
    if address is None:
        return None
    chain.use_node_registry(address)
    return chain.nodes


# -- demo -------------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    # Checked before the demo's imports (~2 s of CPU)
    if not 0.0 <= args.bad_fraction <= 1.0:
        raise UserError("--bad-fraction must be between 0 and 1")
    if not 0.0 <= args.quality_defects <= 1.0:
        raise UserError("--quality-defects must be between 0 and 1")
    from streaming.demo import DemoOptions, Reporter, run_demo

    options = DemoOptions(
        sessions=args.sessions,
        quality_fraction=args.quality_defects,
        data_dir=args.data_dir,
        nodes=args.nodes,
        duration_s=args.duration,
        seed=args.seed,
        bad_fraction=args.bad_fraction,
        waves=args.waves,
        chain=args.chain,
        ripe_topic="ripe-atlas" if args.ripe else None,
    )
    quiet = args.json  # --json: stdout carries one JSON object, and no progress is shown
    report = Reporter(stage=lambda m: stage(m, quiet), step=lambda m: step(m, quiet))
    summary = run_demo(options, report)
    if args.json:
        emit_json(summary)
    else:
        _print_demo(summary)
    return 0 if summary["verified"] else 1


def _print_demo(summary: dict[str, Any]) -> None:
    from rich.table import Table

    out.print()
    out.print(
        f"[bold]Real Data Asset demo[/bold] — {summary['wall_seconds']}s, data in "
        f"{summary['data_dir']}"
    )
    out.print(
        f"records read {summary['records_read']} = published "
        f"{summary['records_published']} + quarantined {summary['records_quarantined']}"
        f" + suppressed {summary.get('records_suppressed', 0)} (k-anonymity)"
        f" + held {summary.get('records_held', 0)} (for an event-time window)"
    )
    if summary["quarantine_reasons"]:
        out.print(
            "quarantine reasons: "
            + ", ".join(f"{code} {n}" for code, n in summary["quarantine_reasons"].items())
        )
    if summary.get("quality_flags"):
        out.print(
            "quality flags: "
            + ", ".join(f"{flag} {n}" for flag, n in summary["quality_flags"].items())
        )
    table = Table(
        "dataset", "tree size", "root", "quality", "anchor tx", title="anchored checkpoints"
    )
    for c in summary["checkpoints"]:
        table.add_row(
            c["dataset"],
            str(c["tree_size"]),
            c["root"][:16] + "…",
            str(c.get("quality_score", "")),
            str(c["anchor_tx"])[:18] + "…",
        )
    out.print(table)
    chain = summary["chain"]
    out.print(
        f"chain: {chain['kind']} (id {chain['chain_id']}), AnchorRegistry {chain['contract']}"
    )
    _print_demo_devices(summary)
    color = "green" if summary["verified"] else "red"
    out.print(
        f"verification: [{color}]{summary['verdict']}[/{color}] — every row re-hashed to the "
        "anchored root, every checkpoint's history and anchor checked against the registry, "
        "and the device signatures of the proven rows against the NodeRegistry"
    )


def _print_demo_devices(summary: dict[str, Any]) -> None:
    """Nodes on chain, what the device signatures refused, the unsigned source, proven rows."""
    nodes = summary.get("nodes")
    if not nodes:
        return
    classes = ", ".join(f"{n} {c}" for c, n in sorted(nodes["classes"].items()))
    out.print(
        f"nodes: {classes} registered in NodeRegistry {nodes['address']} "
        f"(gas per registration {nodes['gas_per_registration']:,})"
    )
    reasons = summary["quarantine_reasons"]
    refused = ("bad_signature", "revoked_key", "unsigned", "unknown_node")
    revoked = nodes.get("revoked") or {}
    out.print(
        "device signatures refused: "
        + ", ".join(f"{code} {reasons.get(code, 0)}" for code in refused)
        + (f" ({revoked['node']} revoked from {revoked['from_ms']} ms)" if revoked else "")
    )
    for topic, counts in summary.get("topics", {}).items():
        out.print(
            f"  topic {topic}: read {counts['read']}, published {counts['published']}, "
            f"quarantined {counts['quarantined']}"
        )
    for proven in summary.get("proven_rows", []):
        device = proven["device"] or {"detail": "no device check"}
        detail = device["detail"].split("; NodeRegistry")[0]  # the registry is named above
        out.print(
            f"  proven {proven['dataset']} leaf {proven['leaf_index']}: {proven['verdict']} — "
            f"{detail}"
        )


# -- quarantine ---------------------------------------------------------------------------------


def _open_catalog(data_dir):
    from sinks.catalog import Catalog
    from sinks.layout import DataLayout

    layout = DataLayout(data_dir)
    if not layout.catalog.exists():
        raise UserError(f"no catalog at {layout.catalog}: nothing has been landed there")
    return Catalog(layout)


def quarantine_list(args: argparse.Namespace) -> int:
    with _open_catalog(args.data_dir) as catalog:
        pending = catalog.quarantine.pending()
    counts = pending.group_by(["topic", "reason_code"]).aggregate([("offset", "count")])
    rows = sorted(
        (
            {"topic": r["topic"], "reason_code": r["reason_code"], "records": r["offset_count"]}
            for r in counts.to_pylist()
        ),
        key=lambda r: (r["topic"], r["reason_code"]),
    )
    if args.json:
        emit_json({"total": pending.num_rows, "by_reason": rows})
        return 0
    out.print(f"{pending.num_rows} records in quarantine")
    for row in rows:
        out.print(f"  {shown(row['topic'])}  {shown(row['reason_code']):<18} {row['records']}")
    return 0


def quarantine_show(args: argparse.Namespace) -> int:
    with _open_catalog(args.data_dir) as catalog:
        pending = catalog.quarantine.pending(args.reason, args.topic).slice(0, args.limit)
    rows = [
        {
            "topic": r["topic"],
            "partition": r["partition"],
            "offset": r["offset"],
            "key": _preview(r["key"], 60, missing="<no key>"),
            "format_header": r["format"],
            "reason_code": r["reason_code"],
            "reason": r["reason"],
            "value_bytes": None if r["value"] is None else len(r["value"]),
            "value_preview": _preview(r["value"]),
        }
        for r in pending.to_pylist()
    ]
    if args.json:
        emit_json({"records": rows})
        return 0
    for row in rows:
        out.print(
            f"[bold]{shown(row['topic'])}[/bold] partition {row['partition']} offset "
            f"{row['offset']}  [bold]{shown(row['reason_code'])}[/bold]: {shown(row['reason'])}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        # The header is the record's own (untrusted) bytes: an escape sequence or a newline in
        # it would be an order to the terminal, or a forged line.
        header = printable(row["format_header"]) if row["format_header"] is not None else "<none>"
        size = "tombstone" if row["value_bytes"] is None else f"{row['value_bytes']:,} bytes"
        out.print(
            f"    key {row['key']}  rda-format header {header}  value ({size}): "
            f"{row['value_preview']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _preview(value: bytes | None, limit: int = 120, missing: str = "<tombstone>") -> str:
    """Bytes as printable text: escapes for what is not printable ASCII, cut at ``limit``."""
    if value is None:
        return missing
    text = repr(value[:limit])[2:-1]
    return text + ("…" if len(value) > limit else "")


def quarantine_replay(args: argparse.Namespace) -> int:
    from streaming.chain_binding import bind as bind_chain
    from streaming.replay import replay

    if not (args.data_dir / "catalog.duckdb").exists():
        raise UserError(f"no catalog under {args.data_dir}: nothing has been landed there")
    if args.override_header and args.format == "auto":
        raise UserError("--override-header needs --format naming the records' real wire format")
    chain = _chain_for(args.chain, args.rpc_url, args.registry)
    bind_chain(chain, args.data_dir)  # the chain its checkpoints are anchored on, or stop
    summary = replay(
        args.data_dir,
        args.format,
        chain.anchor,
        args.reason,
        args.topic,
        progress=lambda m: step(m, args.json),
        override=args.override_header,
        signatures=args.signatures,
        nodes=_node_cache(chain, args.node_registry),
    )
    if args.json:
        emit_json(summary.as_dict())
    else:
        out.print(
            f"replayed {summary.considered} records: {summary.published} published, "
            f"still quarantined {summary.still_quarantined or 'none'}"
        )
        if summary.not_replayed:
            out.print(f"not replayed (no replay decides them): {summary.not_replayed}")
    return 0


# -- schemas ------------------------------------------------------------------------------------


def schemas_list(args: argparse.Namespace) -> int:
    from schemas import adapters
    from schemas.registry import ALL_SCHEMAS, DERIVED, SCHEMAS, is_current

    feeding = adapters.registered()
    rows = [
        {
            "name": s.name,
            "version": s.version,
            "dataset": s.dataset,
            "current": is_current(s),
            "superseded_by": None if is_current(s) else SCHEMAS[s.name].dataset,
            "adapters": [a["wire_format"] for a in feeding if s.dataset in a["datasets"]],
            "derived_from": DERIVED.get(s.dataset),
            "fields": len(s.all_fields),
            "fingerprint": s.fingerprint(),
            "description": s.description,
        }
        for s in ALL_SCHEMAS
    ]
    if args.json:
        emit_json({"schemas": rows, "adapters": feeding, "refused": adapters.refused()})
        return 0
    from rich.table import Table

    table = Table("schema", "version", "dataset", "fed by", "fields")
    for row in rows:
        fed_by = ", ".join(row["adapters"]) or "—"
        if row["derived_from"]:
            fed_by = f"derived from {row['derived_from']}"
        if not row["current"]:
            fed_by = f"— superseded by {row['superseded_by']} (its data stays readable)"
        table.add_row(row["name"], row["version"], row["dataset"], fed_by, str(row["fields"]))
    out.print(table)
    origins = Table("wire format", "from", "feeds", "sniffed (--format auto)")
    for adapter in feeding:
        origins.add_row(
            adapter["wire_format"], adapter["origin"], ", ".join(adapter["datasets"]),
            "yes" if adapter["sniffed"] else "no (needs its rda-format header or --format)",
        )  # fmt: skip
    out.print(origins)
    for refusal in adapters.refused():
        out.print(
            f"refused: {refusal['wire_format']} from {refusal['origin']}: {refusal['reason']}"
        )
    return 0


def schemas_show(args: argparse.Namespace) -> int:
    from schemas.registry import get_schema

    try:
        schema = get_schema(args.name)
    except KeyError as error:
        raise UserError(str(error.args[0])) from None
    if args.json:
        emit_json(
            {**schema.describe(), "dataset": schema.dataset, "fingerprint": schema.fingerprint()}
        )
        return 0
    from rich.markdown import Markdown

    from schemas.dictionary import render_schema

    out.print(Markdown(render_schema(schema)))
    return 0


# -- bench ------------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from benchmarks.runner import BENCHMARKS, run_benchmarks

    unknown = sorted(set(args.only or []) - set(BENCHMARKS))
    if unknown:  # one line, not run_benchmarks' traceback
        known = ", ".join(sorted(BENCHMARKS))
        raise UserError(f"no benchmark {', '.join(unknown)}: --only takes one of {known}")
    results = run_benchmarks(
        only=args.only, quick=args.quick, progress=lambda m: step(m, args.json)
    )
    if args.json:
        emit_json(results)
    else:
        for result in results["benchmarks"]:
            out.print(f"[bold]{result['name']}[/bold]: {escape(bench_summary(result))}")
    return 0


def bench_summary(result: dict) -> str:
    """A benchmark's line: its summary, or its figures as JSON when it has none (a missing one
    threw away the whole run's output after its last benchmark)."""
    if "summary" in result:
        return str(result["summary"])
    return json.dumps({k: v for k, v in result.items() if k != "name"}, default=str)
