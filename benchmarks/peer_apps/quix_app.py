"""The peer: what a Python data engineer would write instead — Kafka → JSON → Parquet with Quix.

Run by ``benchmarks/peers.py`` in its own virtual environment (Quix Streams pins versions that
conflict with ours), as its own process, from a scratch working directory (Quix's
``LocalFileSink`` takes a relative directory name only). Prints one JSON line: records, seconds.

    python quix_app.py BOOTSTRAP TOPIC GROUP COUNT
"""

import json
import sys
import time

from quixstreams import Application
from quixstreams.sinks.community.file.local import LocalFileSink


def main() -> None:
    bootstrap, topic_name, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    started = time.perf_counter()
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        use_changelog_topics=False,
        state_dir="state",
        loglevel="ERROR",
        # As DESIGN.md measured for this broker: a group join takes about half the session
        # timeout, so the default 45 s session would add ~20 s of waiting to the peer.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    topic = app.topic(topic_name, value_deserializer="json")
    sdf = app.dataframe(topic)
    sdf.sink(LocalFileSink(directory="out", format="parquet"))
    app.run(count=count, timeout=300, collect=False)
    print(json.dumps({"records": count, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
