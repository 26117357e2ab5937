"""All canonical schemas, by name."""

from __future__ import annotations

from schemas.aggregates import SESSION_COUNTS_DP_V1
from schemas.model import TelemetrySchema
from schemas.network import LINK_KPI_V1, PATH_TRACE_V1
from schemas.node import NODE_HEARTBEAT_V1
from schemas.radio import RADIO_KPI_V1
from schemas.service import SPEED_TEST_V1, SUBSCRIBER_SESSION_V1

SCHEMAS: dict[str, TelemetrySchema] = {
    schema.name: schema
    for schema in (
        NODE_HEARTBEAT_V1,
        RADIO_KPI_V1,
        LINK_KPI_V1,
        PATH_TRACE_V1,
        SPEED_TEST_V1,
        SUBSCRIBER_SESSION_V1,
        SESSION_COUNTS_DP_V1,  # derived from the sessions (pipelines/aggregate.py)
    )
}


def get_schema(name: str) -> TelemetrySchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        known = ", ".join(sorted(SCHEMAS))
        raise KeyError(f"unknown schema {name!r} (known: {known})") from None


def schema_for_dataset(dataset: str) -> TelemetrySchema:
    """The schema whose rows make up ``dataset`` (``<schema name>.v<major>``)."""
    name, _, major = dataset.rpartition(".v")
    schema = get_schema(name)
    if str(schema.major) != major:
        raise KeyError(f"dataset {dataset!r} is not of {schema.name} v{schema.major}")
    return schema


def all_datasets() -> list[str]:
    return [schema.dataset for schema in SCHEMAS.values()]
