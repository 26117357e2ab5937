"""What a dataset checkpoint over shards says of them: its quality and its privacy sections.

The dataset's score covers every shard's rows (their cumulative counts, summed); the privacy
policy is the data directory's, applied by each shard (pseudonym epochs merged, the DP
compositions of the partitions' ledgers added up).
"""

from __future__ import annotations

from typing import Any

from pipelines.protect import Protection
from proofs import quality_attestation
from sinks.quality_report import checkpoint_quality


def dataset_quality(
    tree_size: int, manifests: list[dict[str, Any]], windows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The dataset's score over every shard's rows (the shards' cumulative counts, summed), the
    event-time windows the batch closed in its shards, and where GE's report on the rows the
    checkpoint adds and its attestation will be once the quality worker is done."""
    total: dict[str, int] = {}
    for manifest in manifests:
        for code, n in ((manifest.get("quality") or {}).get("counts") or {}).items():
            total[code] = total.get(code, 0) + n
    return {
        "report_path": quality_attestation.report_name(tree_size),
        "attestation_path": quality_attestation.attestation_name(tree_size),
        **checkpoint_quality([], {"counts": dict(sorted(total.items()))}, windows),
    }


def merged_privacy(
    protection: Protection, schema: Any, manifests: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The policy as every shard applied it: pseudonym epochs merged (the transforms, k and
    the key id are the data directory's, the same in each)."""
    sections = [m["privacy"] for m in manifests if m.get("privacy")]
    if not sections:
        return None
    merged = protection.manifest_section(schema, [], None)
    if "pseudonyms" in merged:
        epochs = {e for s in sections for e in (s.get("pseudonyms") or {}).get("epochs", [])}
        merged["pseudonyms"]["epochs"] = sorted(epochs)
    if "differential_privacy" in merged:
        merged["differential_privacy"]["composition"] = _composed(sections)
    return merged


def _composed(sections: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' DP compositions over the dataset: each partition keeps its own budget
    ledger, so a subscriber seen in several partitions may spend in each — the bound adds up."""
    found = [(s.get("differential_privacy") or {}).get("composition") or {} for s in sections]
    return {
        "rule": "basic sequential composition: a subscriber's epsilons and deltas add up, over "
        "the windows of every partition",
        "windows_released": sum(c.get("windows_released", 0) for c in found),
        "epochs": sorted({e for c in found for e in c.get("epochs", [])}),
        "max_epsilon_per_subscriber": sum(c.get("max_epsilon_per_subscriber", 0) for c in found),
        "max_delta_per_subscriber": sum(c.get("max_delta_per_subscriber", 0) for c in found),
    }
