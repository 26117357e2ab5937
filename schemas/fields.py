"""Fields several canonical schemas share, defined once so their meaning cannot drift apart."""

from __future__ import annotations

import pyarrow as pa

from schemas.model import Field, Privacy

UTC_MICROS = pa.timestamp("us", tz="UTC")

NODE_ID = Field("node_id", pa.string(), "Public identifier of the reporting node", required=True)


def event_time(description: str, name: str = "event_time") -> Field:
    return Field(name, UTC_MICROS, description, unit="UTC microseconds", required=True)


def cell_id(description: str, privacy: Privacy = Privacy.PUBLIC) -> Field:
    """The serving cell, as its 28-bit E-UTRAN Cell Identifier (ECI)."""
    return Field(
        "cell_id",
        pa.int64(),
        description,
        required=True,
        minimum=0,
        maximum=(1 << 28) - 1,
        privacy=privacy,
    )


def location(what: str, privacy: Privacy = Privacy.PUBLIC) -> tuple[Field, Field]:
    """Latitude and longitude (WGS 84) of ``what``."""
    return (
        Field(
            "latitude",
            pa.float64(),
            f"{what} latitude (WGS 84)",
            unit="degrees",
            minimum=-90,
            maximum=90,
            privacy=privacy,
        ),
        Field(
            "longitude",
            pa.float64(),
            f"{what} longitude (WGS 84)",
            unit="degrees",
            minimum=-180,
            maximum=180,
            privacy=privacy,
        ),
    )
