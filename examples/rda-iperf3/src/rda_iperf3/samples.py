"""iperf3 results as ``iperf3 --json`` prints them, for tests (this package's and rda's)."""

from __future__ import annotations

import json

CLIENT = "192.0.2.77"  # the tester's own address: it must not be published


def iperf3_result(
    reverse: int = 1,
    protocol: str = "TCP",
    pretty: bool = False,
    cookie: str = "wdfifvb7sh435efbnv53mi2ingad5fb2xzm3",
) -> bytes:
    """What ``iperf3 --json`` prints (trimmed to what the adapter reads, and a little more)."""
    summary = {"start": 0, "end": 10.04, "seconds": 10.04, "bytes": 117_500_000}
    summary |= {"bits_per_second": 93_625_498.0, "sender": True}
    if protocol == "UDP":
        summary |= {"jitter_ms": 0.42, "lost_percent": 0.1}
    document = {
        "start": {
            "connected": [
                {"socket": 5, "local_host": CLIENT, "local_port": 50_123,
                 "remote_host": "198.51.100.20", "remote_port": 5201}
            ],
            "version": "iperf 3.9",
            "timestamp": {"time": "Mon, 24 Nov 2025 16:00:00 UTC", "timesecs": 1_764_000_000},
            "connecting_to": {"host": "iperf.example.net", "port": 5201},
            "cookie": cookie,
            "test_start": {"protocol": protocol, "num_streams": 1, "duration": 10,
                           "reverse": reverse},
        },
        "intervals": [],
        "end": {
            "streams": [{"sender": {"bytes": 117_600_000, "min_rtt": 12_345, "sender": True}}],
            "sum_sent": {**summary, "retransmits": 3},
            ("sum" if protocol == "UDP" else "sum_received"): summary,
        },
    }  # fmt: skip
    return json.dumps(document, indent="\t" if pretty else None).encode()
