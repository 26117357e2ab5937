"""The data card of a dataset: what it is, where and when it was measured, how it was
collected and processed, how often it is updated, its quality and privacy per checkpoint,
what was quarantined (how much k-anonymity suppressed stays private), who published it and
whether their signatures hold.

Everything comes from the pipeline's own records: the catalog (every anchored checkpoint, the
quarantine register), the checkpoint manifests (schema, files with their Kafka offsets, batch,
quality and privacy sections, publisher key) and their signatures, checked here with the
publisher key each manifest names (``proofs.signing``). Quarantined records are counted per
topic and reason only; their payloads stay private.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from market.assets import Asset
from proofs.manifest import signature_path
from proofs.signing import verify_signature
from sinks.layout import DataLayout


@dataclass(frozen=True)
class CatalogFacts:
    """What the catalog says beyond the latest checkpoints: every anchored checkpoint of each
    dataset, and quarantined record counts per topic and reason."""

    checkpoints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quarantine: dict[str, dict[str, int]] = field(default_factory=dict)


def catalog_facts(data_dir: Path) -> CatalogFacts:
    layout = DataLayout(data_dir)
    try:
        con = duckdb.connect(str(layout.catalog), read_only=True)
    except duckdb.Error:
        return CatalogFacts()
    with con:
        cursor = con.execute(
            "SELECT * FROM checkpoints WHERE anchor_tx IS NOT NULL ORDER BY dataset, tree_size"
        )
        names = [d[0] for d in cursor.description]
        checkpoints: dict[str, list[dict[str, Any]]] = {}
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            checkpoints.setdefault(record["dataset"], []).append(record)
        quarantine: dict[str, dict[str, int]] = {}
        try:
            counted = con.execute(  # the reason's code only: its text may quote the record
                "SELECT topic, reason_code, count(*) FROM quarantine GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        except duckdb.Error:  # a catalog from before the quarantine register
            counted = []
        for topic, reason, count in counted:
            quarantine.setdefault(topic, {})[reason] = count
    return CatalogFacts(checkpoints, quarantine)


def checkpoint_history(asset: Asset, facts: CatalogFacts) -> list[dict[str, Any]]:
    """Every anchored checkpoint, oldest first, with what its manifest says of its batch."""
    history = []
    for record in facts.checkpoints.get(asset.dataset, []):
        path = asset.manifest_path.parents[3] / record["manifest_path"]  # the data root
        manifest = _manifest(path)
        quality = manifest.get("quality") or {}
        history.append({
            "tree_size": record["tree_size"],
            "root": record["root"],
            "anchor_tx": record["anchor_tx"],
            "anchor_block": record["anchor_block"],
            "chain_id": record["chain_id"],
            "contract": record["contract"],
            "manifest_sha256": record["manifest_sha256"],
            "batch": (manifest.get("batch") or {}).get("id"),
            "planned_at": (manifest.get("batch") or {}).get("planned_at"),
            "quality_score": quality.get("score"),
            "expectations": attested_expectations(asset.dataset_dir, quality),
            "counts": quality.get("counts"),
            "signature": signature_status(path, manifest)["status"],
        })  # fmt: skip
    return history


def attested_expectations(dataset_dir: Path, quality: dict[str, Any]) -> Any:
    """What GE found at a checkpoint: from its attestation, ``"pending"`` until the quality
    worker has written it (it runs after the anchor), or from a version-1 manifest's section."""
    if "attestation_path" not in quality:
        return quality.get("expectations")
    try:
        document = json.loads((dataset_dir / quality["attestation_path"]).read_bytes())
        return document["statement"]["expectations"]
    except FileNotFoundError:
        return "pending"
    except (ValueError, KeyError, TypeError):
        return None


def signature_status(manifest_file: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """``valid``, ``invalid`` or ``missing``, with a reason, for the manifest's signature by
    the publisher key the manifest names."""
    path = signature_path(manifest_file)
    if not manifest or not path.is_file():
        return {"status": "missing", "detail": f"no signature beside {manifest_file.name}"}
    signature = json.loads(path.read_bytes())
    publisher = manifest.get("publisher") or {}
    if publisher.get("public_key") != signature.get("public_key"):
        return {"status": "invalid", "detail": "signed by a key other than the manifest's"}
    problem = verify_signature(signature, manifest_file.read_bytes())
    if problem is not None:
        return {"status": "invalid", "detail": problem}
    return {"status": "valid", "detail": f"Ed25519 signature by key {signature['key_id']}"}


def _sources(asset: Asset, manifest: dict[str, Any]) -> set[tuple[str, int]]:
    """The Kafka (topic, partition) pairs a checkpoint's rows come from: its files' sources, or
    for a checkpoint over shards, its shards' (a legacy shard: its own manifest's files)."""
    files = list(manifest.get("files", []))
    found = set()
    for head in manifest.get("shards", []):
        topic, dot_p, partition = head["shard"].partition("/")[2].rpartition(".p")
        if dot_p:
            found.add((topic, int(partition)))
        else:  # the legacy shard: the dataset's own version-1 log
            files += _manifest(asset.dataset_dir / head["manifest_path"]).get("files", [])
    found |= {(f["source"]["topic"], f["source"]["partition"]) for f in files if f.get("source")}
    return found


def publisher(asset: Asset) -> dict[str, Any]:
    manifest = _manifest(asset.manifest_path)
    key = manifest.get("publisher") or {}
    return {**key, "signature": signature_status(asset.manifest_path, manifest)}


def data_card(
    asset: Asset, facts: CatalogFacts, coverage: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, Any]:
    manifest = _manifest(asset.manifest_path)
    sources = _sources(asset, manifest)
    topics = sorted({topic for topic, _ in sources})
    partitions = sorted({partition for _, partition in sources})
    privacy = manifest.get("privacy") or {}
    quarantined = {t: facts.quarantine.get(t, {}) for t in topics}
    return {
        "what": asset.schema.get("description", ""),
        "where": _where(coverage),
        "when": _when(coverage),
        "how_collected": (
            f"Reports of the fleet's nodes, read from Kafka topic(s) {', '.join(topics) or '?'} "
            f"(partitions {', '.join(map(str, partitions)) or '?'}) in bounded offset ranges, "
            "decoded and converted to the canonical schema "
            f"{asset.schema.get('name')} {asset.schema.get('version')}."
        ),
        "cadence": _cadence(history),
        "methodology": [
            "Each record is decoded with bounded parsing, then validated: types, units and "
            "ranges of the canonical schema, plausibility and sequence checks; a record that "
            "fails is quarantined with its reason, never published.",
            "Soft failures (late, flat line, counter reset) are published with quality_flags.",
            "The privacy policy of each field is applied before anything is written (see Privacy).",
            "Each batch is appended to the dataset's RFC 9162 Merkle log; each checkpoint "
            "(tree size, root) is written in a manifest signed by the publisher and anchored "
            "on chain. A Great Expectations suite generated from the schema validates the "
            "rows each checkpoint adds.",
        ],
        "privacy": privacy,
        "quarantine": {
            "topics": quarantined,
            "total": sum(sum(r.values()) for r in quarantined.values()),
            "note": "Records quarantined from the topic(s) this dataset is read from; a record "
            "that cannot be parsed cannot be told apart by dataset.",
        },
        "known_limits": _known_limits(asset, privacy, coverage),
    }


def summarize_report(report: dict[str, Any] | None, tree_size: int) -> dict[str, Any] | None:
    """The validation report as a buyer reads it: which expectations, on which column, met."""
    if not report:
        return None
    expectations = []
    for result in report.get("results", []):
        kwargs = result.get("kwargs") or {}
        observed = (result.get("result") or {}).get("observed_value")
        unexpected = (result.get("result") or {}).get("unexpected_count")
        expectations.append({
            "expectation": str(result.get("expectation", "")).removeprefix("expect_"),
            "column": kwargs.get("column"),
            "success": bool(result.get("success")),
            "detail": _detail(kwargs, observed, unexpected),
        })  # fmt: skip
    return {
        "suite": report.get("suite"),
        "success": report.get("success"),
        "statistics": report.get("statistics"),
        "rows_validated": report.get("rows_validated"),
        "scope": f"the rows added by the batch of the checkpoint at tree size {tree_size} "
        f"({report.get('rows_validated')} rows validated), not the whole dataset",
        "expectations": expectations,
    }


def _detail(kwargs: dict[str, Any], observed: Any, unexpected: Any) -> str:
    bounds = [f"{k} {kwargs[k]}" for k in ("min_value", "max_value") if kwargs.get(k) is not None]
    parts = bounds + ([f"{unexpected} unexpected"] if unexpected else [])
    if observed is not None and not isinstance(observed, (list, dict)):
        parts.append(f"observed {observed}")
    if "value_set" in kwargs:
        parts.append("in " + ", ".join(map(str, kwargs["value_set"][:8])))
    return "; ".join(parts)


def _where(coverage: dict[str, Any]) -> str:
    cells = coverage.get("h3_cells") or []
    if not cells:
        return "No locations are published in this dataset."
    return (
        f"{len(cells)} H3 cells of resolution {coverage.get('h3_resolution')} "
        f"(about 250 km² each) around the nodes' published locations; see the coverage map."
    )


def _when(coverage: dict[str, Any]) -> str:
    start, end = coverage.get("time_start"), coverage.get("time_end")
    if not start:
        return "No event time is published in this dataset."
    return f"{start} to {end} ({coverage.get('time_column')}, UTC)"


def _cadence(history: list[dict[str, Any]]) -> dict[str, Any]:
    times = [datetime.fromisoformat(h["planned_at"]) for h in history if h.get("planned_at")]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    median = statistics.median(gaps) if gaps else None
    text = f"{len(history)} anchored checkpoint(s)"
    if median is not None:
        text += f", a new one every {_duration(median)} (median)"
    if times:
        text += f"; latest batch planned {times[-1].isoformat()}"
    return {"checkpoints": len(history), "median_interval_s": median, "text": text}


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}s"
    return f"{seconds:.0f} s"


def _known_limits(asset: Asset, privacy: dict[str, Any], coverage: dict[str, Any]) -> list[str]:
    limits = [
        "Sold at the latest anchored checkpoint: rows landed after it are not visible until "
        "they are anchored too.",
        "Telemetry from a simulated fleet of community-run nodes (the demo pipeline); node "
        "clocks may be skewed, late reports are flagged late.",
    ]
    pseudonyms = privacy.get("pseudonyms")
    if pseudonyms:
        limits.append(
            f"Pseudonyms link rows within one key epoch ({pseudonyms.get('epoch_seconds')} s) "
            "only: the same subscriber has another pseudonym in the next epoch."
        )
    anonymity = privacy.get("k_anonymity")
    if anonymity:
        limits.append(
            f"Quasi-identifiers ({', '.join(anonymity.get('quasi_identifiers', []))}) are "
            f"generalized for k-anonymity (k={anonymity.get('k')}); rows in groups smaller "
            "than k are suppressed, so rare combinations are missing."
        )
    dp = privacy.get("differential_privacy")
    if dp:
        tau = (dp.get("partition_selection") or {}).get("tau")
        released = (
            f" A cell is listed only when its noisy count reaches {tau:.1f}, so cells with few "
            "subscribers are mostly missing."
            if isinstance(tau, int | float)
            else ""
        )
        limits.append(
            f"Counts carry Laplace noise (ε={dp.get('epsilon')}, δ={dp.get('delta')}): small "
            "counts are unreliable, and every query of the same count spends privacy budget "
            f"only once (the noise is fixed in the published rows).{released}"
        )
    if coverage.get("h3_cells") == [] and any(
        f["name"] == "h3_cell" for f in asset.schema.get("fields", [])
    ):
        limits.append("Locations are published as H3 cells only.")
    return limits


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
