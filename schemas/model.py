"""How a canonical telemetry schema is described: fields with units, ranges and privacy classes.

A ``TelemetrySchema`` is the single source of truth for a dataset's columns. The Arrow schema,
the row checks in ``validators/``, the data dictionary in ``docs/`` and the fingerprint recorded
in every manifest are all derived from it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa


class Privacy(str, Enum):
    """What a field reveals, and so how it may be published (see the privacy issue)."""

    PUBLIC = "public"
    IDENTIFIER = "identifier"
    NETWORK_ADDRESS = "network_address"
    PRECISE_LOCATION = "precise_location"
    QUASI_IDENTIFIER = "quasi_identifier"


@dataclass(frozen=True)
class Field:
    """One column of a canonical schema."""

    name: str
    type: pa.DataType
    description: str
    unit: str | None = None
    required: bool = False
    minimum: int | float | None = None
    maximum: int | float | None = None
    privacy: Privacy = Privacy.PUBLIC
    allowed: tuple[str, ...] | None = None  # an enumeration's values
    # How the privacy class is applied (see docs/quality-and-privacy.md); None: the default.
    keep_prefix: int | None = None  # identifier: leading characters kept in clear (IMEI TAC)
    address: str | None = None  # network_address: "truncate" (default) or "pseudonym"
    coarsen: str | None = None  # timestamp: published floored to this unit, e.g. "1h"

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "type": str(self.type),
            "description": self.description,
            "unit": self.unit,
            "required": self.required,
            "minimum": _integral(self.minimum),
            "maximum": _integral(self.maximum),
            "privacy": self.privacy.value,
            "allowed": list(self.allowed) if self.allowed is not None else None,
        }
        # Listed only when set, so schemas without them keep their fingerprints.
        for key in ("keep_prefix", "address", "coarsen"):
            if getattr(self, key) is not None:
                described[key] = getattr(self, key)
        return described

    def arrow_field(self) -> pa.Field:
        metadata = {
            key: json.dumps(value)
            for key, value in self.describe().items()
            if key not in ("name", "type") and value is not None
        }
        return pa.field(self.name, self.type, nullable=not self.required, metadata=metadata)


# Every published row carries where it came from, so any row can be traced to one Kafka record
# and the offset ranges in a manifest can be checked against the rows themselves. A dataset whose
# quasi-identifiers are coarsened publishes a keyed pseudonym of the offset instead (an exact one
# would date its rows: schemas/published.py).
LINEAGE_FIELDS: tuple[Field, ...] = (
    Field("source_topic", pa.string(), "Kafka topic the record was read from", required=True),
    Field(
        "source_partition", pa.int32(), "Kafka partition of the record", required=True, minimum=0
    ),
    Field("source_offset", pa.int64(), "Kafka offset of the record", required=True, minimum=0),
    Field(
        "ingest_time",
        pa.timestamp("us", tz="UTC"),
        "Kafka record timestamp (when the broker received or the producer created it)",
        unit="UTC microseconds",
        required=True,
    ),
)


@dataclass(frozen=True)
class TelemetrySchema:
    """A versioned canonical schema. A dataset never mixes major versions."""

    name: str
    major: int
    minor: int
    description: str
    fields: tuple[Field, ...]
    natural_key: tuple[str, ...]
    lineage: tuple[Field, ...] = field(default=LINEAGE_FIELDS)
    # Groups of optional fields of which every row holds at least one (a speed test measured
    # the download, the upload or both). The row checks enforce it.
    at_least_one: tuple[tuple[str, ...], ...] = ()

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def dataset(self) -> str:
        """The dataset this schema's rows are published into (one per major version)."""
        return f"{self.name}.v{self.major}"

    @property
    def all_fields(self) -> tuple[Field, ...]:
        return self.fields + self.lineage

    def field(self, name: str) -> Field:
        for candidate in self.all_fields:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} v{self.version} has no field {name!r}")

    def arrow_schema(self) -> pa.Schema:
        return self._arrow_schema

    # Made once per schema (it is frozen): each field's metadata is JSON and the fingerprint a
    # hash of the whole description, ~0.3 ms a call, and a landing's chunk asks several times.
    @functools.cached_property
    def _arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [f.arrow_field() for f in self.all_fields],
            metadata={
                "rda.schema": self.name,
                "rda.version": self.version,
                "rda.fingerprint": self.fingerprint(),
            },
        )

    def reads_beside(self, older: TelemetrySchema) -> bool:
        """Whether rows of ``older`` can share this schema's dataset (the evolution rule).

        Within one major version a newer minor may only add optional fields: every older field
        stays, with its type, and is not newly required. Anything else is a new major version,
        which is a new dataset (``dataset`` names the major), so a dataset never mixes majors.
        """
        if (self.name, self.major) != (older.name, older.major) or self.minor < older.minor:
            return False
        if not set(self.at_least_one) <= set(older.at_least_one):
            return False  # a new "at least one of" rule makes older rows invalid
        mine = {f.name: f for f in self.all_fields}
        for old in older.all_fields:
            kept = mine.pop(old.name, None)
            if kept is None or kept.type != old.type or (kept.required and not old.required):
                return False
        return not any(f.required for f in mine.values())

    def conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Cast checked rows to exactly this schema (a safe cast: it fails rather than wrap)."""
        arrays = [batch.column(f.name).cast(f.type, safe=True) for f in self.all_fields]
        return pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema())

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "natural_key": list(self.natural_key),
            "fields": [f.describe() for f in self.all_fields],
        }
        if self.at_least_one:  # listed only when set, so other schemas keep their fingerprints
            described["at_least_one"] = [list(group) for group in self.at_least_one]
        return described

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical JSON of ``describe()``.

        The description holds only strings, booleans, null and integral or short decimal numbers,
        for which sorted-key compact JSON *is* the RFC 8785 form (a test checks this against the
        proof core's JCS encoder).
        """
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        canonical = json.dumps(
            self.describe(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _integral(value: int | float | None) -> int | float | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
