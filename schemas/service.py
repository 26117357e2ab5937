"""What subscribers experience: speed tests and sessions."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import DEVICE_FIELDS, DEVICE_SIGNED, cell_id, event_time, location
from schemas.model import Field, Privacy, TelemetrySchema

SPEED_TEST_V1 = TelemetrySchema(
    name="speed_test",
    major=1,
    minor=0,
    # Superseded by v2; kept as it was (its fingerprint is in every manifest of its data).
    description="A throughput and latency test run from a node against a test server.",
    natural_key=("node_id", "event_time"),
    fields=(
        Field("node_id", pa.string(), "Node that ran the test", required=True),
        event_time("When the test ran"),
        Field(
            "download_mbps",
            pa.float64(),
            "Download throughput",
            unit="Mbit/s",
            required=True,
            minimum=0,
            maximum=10000,
        ),
        Field(
            "upload_mbps",
            pa.float64(),
            "Upload throughput",
            unit="Mbit/s",
            required=True,
            minimum=0,
            maximum=10000,
        ),
        Field(
            "latency_ms",
            pa.float64(),
            "Round-trip latency to the server",
            unit="ms",
            required=True,
            minimum=0,
            maximum=100000,
        ),
        Field("jitter_ms", pa.float64(), "Latency variation", unit="ms", minimum=0, maximum=100000),
        Field("server", pa.string(), "Test server host name"),
        *location("Test site", Privacy.PRECISE_LOCATION),
    ),
)


def _throughput(direction: str) -> Field:
    return Field(
        f"{direction}_mbps",
        pa.float64(),
        f"{direction.capitalize()} throughput (null when the test did not measure this direction)",
        unit="Mbit/s",
        minimum=0,
        maximum=10000,
    )


# v2 is a new major (a new dataset): throughputs and latency became optional and the natural
# key changed, which no minor version may do (docs/pipeline.md, "Schema evolution").
SPEED_TEST_V2 = TelemetrySchema(
    name="speed_test",
    major=2,
    minor=1,  # 2.1 added the device signature fields
    description=(
        "A throughput and latency test, from a node of this network or a third-party source "
        "(M-Lab NDT7, an installed adapter): download, upload or both."
    ),
    natural_key=("source", "test_id"),
    at_least_one=(("download_mbps", "upload_mbps"),),
    fields=(
        Field(
            "source",
            pa.string(),
            "Who ran the test: rda.node (a node of this network), mlab.ndt7 (an M-Lab NDT7 "
            "test), or the source an installed adapter names",
            required=True,
        ),
        Field(
            "test_id",
            pa.string(),
            "The test's identifier within its source (M-Lab: the NDT7 test UUID; rda.node: "
            "the node id and the event time in epoch ms, as an-0007/1764000000000)",
            required=True,
        ),
        Field("node_id", pa.string(), "Node that ran the test (null for third-party sources)"),
        event_time("When the test started"),
        Field(
            "duration_s",
            pa.float64(),
            "How long the test ran",
            unit="s",
            minimum=0,
            maximum=3600,
        ),
        _throughput("download"),
        _throughput("upload"),
        Field(
            "latency_ms",
            pa.float64(),
            "Round-trip latency to the server (M-Lab: the kernel's minimum RTT)",
            unit="ms",
            minimum=0,
            maximum=100000,
        ),
        Field("jitter_ms", pa.float64(), "Latency variation", unit="ms", minimum=0, maximum=100000),
        Field(
            "retransmit_pct",
            pa.float64(),
            "Share of the bytes the sender sent that were retransmitted (a first-order loss "
            "estimate; M-Lab: downloads only, where the server is the sender)",
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Field("server", pa.string(), "Test server: host name or address"),
        Field(
            "server_site",
            pa.string(),
            "Site of the test server (M-Lab: the site code, e.g. lga03, when the result names "
            "its machine)",
        ),
        Field(
            "client_network",
            pa.string(),
            "The testing client's network: the IPv4 /24 or IPv6 /48 holding its address",
            privacy=Privacy.NETWORK_ADDRESS,
            address="pseudonym",
        ),
        Field(
            "client_name",
            pa.string(),
            "Client software that ran the test (M-Lab: client_name metadata, when it names a known "
            "ndt7 client; else null)",
        ),
        Field(
            "source_version",
            pa.string(),
            "Version of the software that produced the result (M-Lab: the ndt-server version)",
        ),
        *location("Test site", Privacy.PRECISE_LOCATION),
        *DEVICE_FIELDS,
    ),
)

SUBSCRIBER_SESSION_V1 = TelemetrySchema(
    name="subscriber_session",
    major=1,
    minor=1,  # 1.1 added device_signed (no per-report proof: see docs)
    description=(
        "A subscriber's data session on a cell. Holds personal data: published only after the "
        "privacy policy of each field is applied (pseudonyms, truncation, k-anonymity)."
    ),
    natural_key=("imsi", "session_start"),
    fields=(
        Field(
            "imsi",
            pa.string(),
            "International Mobile Subscriber Identity (MCC + MNC + MSIN, 15 digits)",
            required=True,
            privacy=Privacy.IDENTIFIER,
        ),
        Field("msisdn", pa.string(), "Subscriber phone number", privacy=Privacy.IDENTIFIER),
        Field(
            "imei",
            pa.string(),
            "Device identity (its first 8 digits are the TAC: the device model)",
            privacy=Privacy.IDENTIFIER,
            keep_prefix=8,
        ),
        Field(
            "ue_ip",
            pa.string(),
            "IP address (IPv4 or IPv6) assigned to the device",
            privacy=Privacy.NETWORK_ADDRESS,
            address="truncate",
        ),
        Field("mac", pa.string(), "Device MAC address (Wi-Fi offload)", privacy=Privacy.IDENTIFIER),
        Field("node_id", pa.string(), "Node serving the session", required=True),
        cell_id("Serving cell (28-bit ECI)", Privacy.QUASI_IDENTIFIER),
        Field(
            "session_start",
            pa.timestamp("us", tz="UTC"),
            "Session start",
            unit="UTC microseconds",
            required=True,
            privacy=Privacy.QUASI_IDENTIFIER,
            coarsen="1h",
        ),
        Field(
            "session_end",
            pa.timestamp("us", tz="UTC"),
            "Session end",
            unit="UTC microseconds",
            privacy=Privacy.QUASI_IDENTIFIER,
            coarsen="1h",
        ),
        Field("bytes_up", pa.int64(), "Bytes sent by the device", unit="bytes", minimum=0),
        Field("bytes_down", pa.int64(), "Bytes received by the device", unit="bytes", minimum=0),
        DEVICE_SIGNED,
    ),
)
