"""All canonical schemas, by name."""

from __future__ import annotations

from schemas.model import TelemetrySchema
from schemas.radio import RADIO_KPI_V1

SCHEMAS: dict[str, TelemetrySchema] = {schema.name: schema for schema in (RADIO_KPI_V1,)}


def get_schema(name: str) -> TelemetrySchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        known = ", ".join(sorted(SCHEMAS))
        raise KeyError(f"unknown schema {name!r} (known: {known})") from None
