"""The data dictionary: every canonical schema rendered as Markdown (``docs/data-dictionary.md``).

Generated from the schema objects so it can never drift from them; a test regenerates it and
compares. Rewrite it with ``python -m schemas.dictionary``.
"""

from __future__ import annotations

from pathlib import Path

from schemas.model import TelemetrySchema
from schemas.registry import ALL_SCHEMAS, SCHEMAS, is_current

DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"


def _bounds(minimum: object, maximum: object) -> str:
    if minimum is None and maximum is None:
        return ""
    low = "" if minimum is None else f"{minimum:g}"
    high = "" if maximum is None else f"{maximum:g}"
    return f"{low} … {high}"


def render_schema(schema: TelemetrySchema) -> str:
    lines = [
        f"## `{schema.name}` v{schema.version} — dataset `{schema.dataset}`",
        "",
        schema.description,
        "",
        f"Natural key: {', '.join(f'`{k}`' for k in schema.natural_key)}. "
        f"Fingerprint: `{schema.fingerprint()}`.",
        "",
    ]
    if not is_current(schema):
        current = SCHEMAS[schema.name]
        lines += [
            f"Superseded by v{current.version} (dataset `{current.dataset}`): no adapter feeds "
            "it any more; its published data stays readable, listed and verifiable.",
            "",
        ]
    for group in schema.at_least_one:
        lines += [f"Every row holds at least one of {', '.join(f'`{n}`' for n in group)}.", ""]
    lines += [
        "| field | type | unit | valid range / values | required | privacy | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in schema.all_fields:
        valid = ", ".join(f.allowed) if f.allowed else _bounds(f.minimum, f.maximum)
        lines.append(
            f"| `{f.name}` | {f.type} | {f.unit or ''} | {valid} | "
            f"{'yes' if f.required else ''} | {f.privacy.value} | {f.description} |"
        )
    return "\n".join(lines) + "\n"


def render() -> str:
    head = (
        "# Data dictionary\n\n"
        "Generated from `schemas/` by `python -m schemas.dictionary`; do not edit by hand.\n"
        "Every dataset also carries its schema (with this metadata) in each checkpoint manifest\n"
        "and in the Parquet files' field metadata. Lineage fields (`source_*`, `ingest_time`)\n"
        "tie each row to the Kafka record it came from.\n\n"
        "Privacy classes: `public`; `identifier` (published only as a keyed pseudonym);\n"
        "`network_address` (truncated); `precise_location` (generalized to H3 cells);\n"
        "`quasi_identifier` (k-anonymity).\n\n"
        "Probe networks: a RIPE Atlas measurement target inside the probe's own network — the\n"
        "same IPv4 /24 or IPv6 /48 as one of the probe's addresses (`from`, `src_addr`,\n"
        "`srcaddr`) — is published in `path_trace.target` and `link_kpi.peer` as that network\n"
        "(`192.0.2.0/24`, `2001:db8:1::/48`), in place of its address or its host name when\n"
        "the result gives the address the name resolved to. Other targets are published as\n"
        "measured.\n\n"
        "Versions: a schema's superseded major versions are listed with the current one; each\n"
        'major is its own dataset (see docs/pipeline.md, "Schema evolution").\n'
    )
    return head + "\n" + "\n".join(_with_published(s) for s in ALL_SCHEMAS)


def _with_published(schema: TelemetrySchema) -> str:
    """The canonical schema, then what is published of it (see docs/quality-and-privacy.md)."""
    from schemas.published import published_schema

    shown = published_schema(schema)
    lines = [
        "",
        f"Published as (privacy policy applied, quality flags added): natural key "
        f"{', '.join(f'`{k}`' for k in shown.natural_key)}, fingerprint `{shown.fingerprint()}`.",
        "",
        "| published field | type | description |",
        "|---|---|---|",
    ]
    lines += [f"| `{f.name}` | {f.type} | {f.description} |" for f in shown.all_fields]
    return render_schema(schema) + "\n".join(lines) + "\n"


if __name__ == "__main__":
    DICTIONARY.write_text(render())
    print(f"wrote {DICTIONARY}")
