"""All canonical schemas, by name and version.

A schema name may have several major versions (``speed_test`` v1 and v2): each is its own
dataset (``speed_test.v1``, ``speed_test.v2``), and a superseded major stays registered so its
data is still read, listed and verified. ``SCHEMAS`` maps each name to its current (newest)
version; ``ALL_SCHEMAS`` holds every version.
"""

from __future__ import annotations

import re

from schemas.aggregates import SESSION_COUNTS_DP_V1
from schemas.model import TelemetrySchema
from schemas.network import LINK_KPI_V1, PATH_TRACE_V1
from schemas.node import NODE_HEARTBEAT_V1
from schemas.radio import RADIO_KPI_V1
from schemas.service import SPEED_TEST_V1, SPEED_TEST_V2, SUBSCRIBER_SESSION_V1

ALL_SCHEMAS: tuple[TelemetrySchema, ...] = (
    NODE_HEARTBEAT_V1,
    RADIO_KPI_V1,
    LINK_KPI_V1,
    PATH_TRACE_V1,
    SPEED_TEST_V1,  # superseded by v2: its data stays readable, listed and verifiable
    SPEED_TEST_V2,
    SUBSCRIBER_SESSION_V1,
    SESSION_COUNTS_DP_V1,  # derived from the sessions (pipelines/aggregate.py)
)
BY_DATASET: dict[str, TelemetrySchema] = {schema.dataset: schema for schema in ALL_SCHEMAS}
# Datasets the pipeline computes from others, which no adapter feeds.
DERIVED: dict[str, str] = {SESSION_COUNTS_DP_V1.dataset: SUBSCRIBER_SESSION_V1.dataset}
# The newest major of each name is its current version.
SCHEMAS: dict[str, TelemetrySchema] = {
    schema.name: max((s for s in ALL_SCHEMAS if s.name == schema.name), key=lambda s: s.major)
    for schema in ALL_SCHEMAS
}

# "speed_test", "speed_test.v1" (a dataset id) or "speed_test.v1.0" (an exact version).
_VERSIONED = re.compile(r"^(?P<name>[a-z0-9_]+)(\.v(?P<major>\d+)(\.(?P<minor>\d+))?)?$")


def versions(name: str) -> list[TelemetrySchema]:
    """Every registered version of schema ``name``, oldest first."""
    return sorted((s for s in ALL_SCHEMAS if s.name == name), key=lambda s: s.major)


def is_current(schema: TelemetrySchema) -> bool:
    return SCHEMAS.get(schema.name) is schema


def get_schema(name: str) -> TelemetrySchema:
    """A schema by name (its current version), dataset id (``speed_test.v1``) or exact version
    (``speed_test.v1.0``); ``KeyError`` naming what is known."""
    match = _VERSIONED.match(name.strip())
    if match is None or match["name"] not in SCHEMAS:
        known = ", ".join(sorted(SCHEMAS))
        raise KeyError(f"unknown schema {name!r} (known: {known})")
    if match["major"] is None:
        return SCHEMAS[match["name"]]
    schema = BY_DATASET.get(f"{match['name']}.v{int(match['major'])}")
    if schema is None or (match["minor"] is not None and int(match["minor"]) != schema.minor):
        held = ", ".join(f"{s.name}.v{s.version}" for s in versions(match["name"]))
        raise KeyError(f"no version {name!r} of {match['name']} (registered: {held})")
    return schema


def schema_for_dataset(dataset: str) -> TelemetrySchema:
    """The schema whose rows make up ``dataset`` (``<schema name>.v<major>``)."""
    try:
        return BY_DATASET[dataset]
    except KeyError:
        pass
    name = dataset.rpartition(".v")[0]
    majors = " or ".join(f"v{s.major}" for s in versions(name))
    if not majors:
        get_schema(name)  # raises, naming the known schemas
    raise KeyError(f"dataset {dataset!r} is not of {name} {majors}")


def all_datasets() -> list[str]:
    """Every dataset a registered schema version makes, superseded majors included."""
    return list(BY_DATASET)
