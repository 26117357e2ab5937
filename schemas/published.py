"""The published schema of a dataset: its canonical schema after the privacy policy.

What buyers and auditors see is not the canonical schema: identifiers become keyed pseudonyms,
network addresses are truncated, precise locations become H3 cells, declared timestamps are
coarsened, and every row carries its quality flags. Deriving the published schema from the
canonical one keeps the fingerprint, the data dictionary and the leaf encoding true to what is
really published. The transforms themselves are in ``pipelines/anonymize.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import pyarrow as pa

from schemas.model import Field, Privacy, TelemetrySchema
from schemas.registry import schema_for_dataset


@dataclass(frozen=True)
class PrivacySettings:
    """Deployment choices of the privacy policy (recorded in every manifest)."""

    k: int = 5  # k-anonymity over the quasi-identifiers
    h3_resolution: int = 8  # ~0.7 km² cells
    epoch_seconds: int = 86_400  # pseudonym keys rotate daily
    generalize_to: str = "1d"  # coarsened timestamps of too-small groups, before suppression
    dp_epsilon: float = 1.0  # per released count of the differentially private aggregates
    dp_max_counts_per_window: int = 1  # counts one subscriber may be in, per event-time window
    dp_budget_per_epoch: float = 8.0  # epsilon one subscriber may spend per key epoch (a day)
    # DP partition selection (pipelines/aggregate.py): the chance, per subscriber and window,
    # that a cell counting them alone is released anyway. The usual rule is delta well below
    # 1/n for n people: 1e-6 suits up to ~1e5 subscribers per partition (8e-6 a day at most
    # with the default budget of 8 counts); lower it for more — each factor 10 raises the
    # threshold by ln(10)/epsilon (2.3 at epsilon 1) from its default 1 + ln(500000) ~ 14.1.
    dp_delta: float = 1e-6


DEFAULT_PRIVACY = PrivacySettings()
PSEUDONYM_HEX_CHARS = 32  # 128 bits of HMAC-SHA256
H3_FIELD = "h3_cell"
EPOCH_FIELD = "pseudonym_epoch"
ROW_KEY_FIELD = "row_key"
FLAGS_FIELD = "quality_flags"

QUALITY_FLAGS = Field(
    FLAGS_FIELD,
    pa.string(),
    "Soft quality failures of this row, comma-separated (late, counter_reset, flat_line); "
    "null when none",
)


@functools.lru_cache(maxsize=256)  # a few schemas and settings; each landed chunk asks
def published_schema(
    schema: TelemetrySchema, settings: PrivacySettings = DEFAULT_PRIVACY
) -> TelemetrySchema:
    """``schema`` as published under its fields' privacy classes."""
    fields: list[Field] = []
    for f in schema.fields:
        if f.privacy is Privacy.PRECISE_LOCATION:
            if f.name == "latitude":  # latitude and longitude become one cell
                fields.append(_h3_field(f, settings))
            continue
        fields.append(_published_field(f))
    if has_identifiers(schema):
        fields.append(
            Field(
                EPOCH_FIELD,
                pa.int64(),
                f"Key epoch of this row's pseudonyms ({settings.epoch_seconds} s since the Unix "
                "epoch): pseudonyms link rows within one epoch only",
                required=True,
                minimum=0,
            )
        )
    natural_key = schema.natural_key
    if needs_row_key(schema):
        fields.append(
            Field(
                ROW_KEY_FIELD,
                pa.string(),
                f"Keyed pseudonym of the canonical natural key ({', '.join(natural_key)}): "
                "unique per row, reveals nothing",
                required=True,
            )
        )
        natural_key = (ROW_KEY_FIELD,)
    fields.append(QUALITY_FLAGS)
    lineage = schema.lineage
    unit = lineage_coarsening(schema)
    if unit:
        lineage = tuple(_concealed_lineage(f, unit) for f in lineage)
    return replace(schema, fields=tuple(fields), natural_key=natural_key, lineage=lineage)


def _concealed_lineage(f: Field, unit: str) -> Field:
    """A lineage field of a dataset with coarsened quasi-identifiers: an exact arrival time or
    offset would date its rows by the published rows around them in the stream."""
    if f.name == "ingest_time":
        return replace(f, description=f"{f.description} — floored to {unit}")
    if f.name == "source_offset":
        return replace(
            f,
            description="Keyed pseudonym of the record's Kafka offset (53 bits, under the row's "
            "key epoch): an exact offset would date the row",
        )
    return f


def lineage_coarsening(schema: TelemetrySchema) -> str | None:
    """The unit ingest times are floored to: that of the coarsened quasi-identifiers, if any."""
    for f in schema.fields:
        if f.privacy is Privacy.QUASI_IDENTIFIER and f.coarsen:
            return f.coarsen
    return None


def policy_transforms(schema: TelemetrySchema, settings: PrivacySettings) -> dict[str, str]:
    """Field -> the transform applied before publishing (public fields are left out)."""
    transforms = {}
    for f in schema.fields:
        if f.privacy is Privacy.IDENTIFIER:
            kept = f", first {f.keep_prefix} kept" if f.keep_prefix else ""
            transforms[f.name] = f"pseudonym{kept}"
        elif f.privacy is Privacy.NETWORK_ADDRESS:
            truncate = (f.address or "truncate") == "truncate"
            transforms[f.name] = "truncate /24 IPv4, /48 IPv6" if truncate else "pseudonym"
        elif f.privacy is Privacy.PRECISE_LOCATION:
            transforms[f.name] = f"h3 resolution {settings.h3_resolution} ({H3_FIELD})"
        elif f.coarsen:
            transforms[f.name] = f"floor {f.coarsen}"
        if f.privacy is Privacy.QUASI_IDENTIFIER:
            transforms[f.name] = (
                transforms.get(f.name, "") + f", k-anonymity k={settings.k}"
            ).lstrip(", ")
    unit = lineage_coarsening(schema)
    if unit:
        transforms["ingest_time"] = f"floor {unit}"
    return transforms


def published_schema_for_dataset(dataset: str) -> TelemetrySchema:
    return published_schema(schema_for_dataset(dataset))


def has_identifiers(schema: TelemetrySchema) -> bool:
    """Whether rows carry keyed pseudonyms (identifiers, or addresses published as pseudonyms),
    and so a pseudonym epoch."""
    return any(
        f.privacy is Privacy.IDENTIFIER
        or (f.privacy is Privacy.NETWORK_ADDRESS and f.address == "pseudonym")
        for f in schema.fields
    )


def needs_row_key(schema: TelemetrySchema) -> bool:
    """Whether the published natural key lost its uniqueness to coarsening or generalization."""
    changed = {
        f.name
        for f in schema.fields
        if f.coarsen or f.privacy in (Privacy.PRECISE_LOCATION, Privacy.NETWORK_ADDRESS)
    }
    return bool(changed & set(schema.natural_key))


def _published_field(f: Field) -> Field:
    if f.privacy is Privacy.IDENTIFIER:
        kept = f"; its first {f.keep_prefix} characters kept in clear" if f.keep_prefix else ""
        note = f"published as a keyed pseudonym (HMAC-SHA256, epoch key){kept}"
        return replace(f, description=f"{f.description} — {note}")
    if f.privacy is Privacy.NETWORK_ADDRESS:
        if (f.address or "truncate") == "pseudonym":
            note = "published as a keyed pseudonym (HMAC-SHA256, epoch key)"
        else:
            note = "truncated to its /24 (IPv4) or /48 (IPv6) network, in CIDR notation"
        return replace(f, description=f"{f.description} — {note}")
    if f.coarsen:
        note = f"floored to {f.coarsen}, or further for k-anonymity"
        return replace(f, description=f"{f.description} — {note}")
    return f


def _h3_field(latitude: Field, settings: PrivacySettings) -> Field:
    what = latitude.description.removesuffix(" latitude (WGS 84)")
    return Field(
        H3_FIELD,
        pa.string(),
        f"H3 cell (resolution {settings.h3_resolution}) holding the {what.lower()} location",
        required=latitude.required,
    )
