"""Canonical ``subscriber_session`` rows, and node reports of sessions, for the tests."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from schemas.service import SUBSCRIBER_SESSION_V1
from simulator.messages import Message

UTC = dt.timezone.utc
IMSI = "262011234567800"  # the first row's subscriber; the others have their own


def sessions(rows: list[dict]) -> pa.RecordBatch:
    """Canonical session rows; unspecified fields get plausible values, and each row its own
    subscriber (k-anonymity counts subscribers)."""
    filled = []
    for i, row in enumerate(rows):
        start = row.get("session_start", dt.datetime(2025, 11, 24, 10, 5, tzinfo=UTC))
        filled.append(
            {
                "imsi": f"{IMSI[:-2]}{i:02d}",
                "msisdn": "4915112345678",
                "imei": "353320110123457",
                "ue_ip": "100.64.12.7",
                "mac": None,
                "node_id": "an-0001",
                "cell_id": 7,
                "session_end": start + dt.timedelta(minutes=10),
                "bytes_up": 1,
                "bytes_down": 2,
                "source_topic": "t",
                "source_partition": 0,
                "source_offset": i,
                "ingest_time": start + dt.timedelta(minutes=11),
                **row,
                "session_start": start,
            }
        )
    return pa.RecordBatch.from_pylist(filled, schema=SUBSCRIBER_SESSION_V1.arrow_schema())


def session_at(ms: int, cell: int, imsi: str) -> Message:
    """A node's report of one session ending at ``ms`` (its Kafka timestamp too)."""
    report = {
        "format": "rda.node.v1",
        "kind": "subscriber_session",
        "node": "an-0000",
        "ts_ms": ms,
        "subscriber": {"imsi": imsi, "msisdn": "4915112345678", "imei": "353320110123457"},
        "session": {"cell": cell, "start_ms": ms - 60_000, "end_ms": ms, "ue_ip": "100.64.1.2"},
    }
    return Message(b"an-0000", json.dumps(report).encode(), ms)
