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


# Device signatures (docs/pipeline.md, "Device signatures"): added in each schema's next minor
# version, so they are optional and older rows read beside newer ones.
DEVICE_SIGNED = Field(
    "device_signed",
    pa.bool_(),
    "True: the node's Ed25519 signature over this report was verified at ingest against the "
    "NodeRegistry; false: the report came from a topic configured unsigned (a source that "
    "cannot sign)",
)
DEVICE_PROOF_FIELDS = (
    Field(
        "device_key_id",
        pa.string(),
        "SHA-256 (hex) of the node's Ed25519 public key that signed the report (NodeRegistry)",
    ),
    Field(
        "device_payload_sha256",
        pa.string(),
        "Salted commitment to the report's exact bytes: SHA-256(the node's secret 16-byte nonce "
        "‖ Kafka record value), hex; confirms nothing about a guessed report without the nonce",
    ),
    Field(
        "device_batch_index",
        pa.int32(),
        "Position of the report's leaf in the node's signed batch",
        minimum=0,
    ),
    Field(
        "device_batch_size",
        pa.int32(),
        "Reports in the node's signed batch",
        minimum=1,
        maximum=65535,
    ),
    Field(
        "device_batch_path",
        pa.string(),
        "RFC 9162 audit path of the report's leaf to the batch root: 64 hex digits per hash, "
        "from the leaf up",
    ),
    Field(
        "device_signature",
        pa.string(),
        "The node's Ed25519 signature (hex) of its batch: node id, key id, size and root",
    ),
)
DEVICE_FIELDS = (DEVICE_SIGNED, *DEVICE_PROOF_FIELDS)
DEVICE_FIELD_NAMES = frozenset(f.name for f in DEVICE_FIELDS)
