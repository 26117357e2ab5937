"""Device signatures: what checking them costs at ingest, against baselines from the same run.

- **verification rows/s per core** (``pipelines/device_signatures.check_records``: parse the
  ``rda-sig`` envelope, recompute the salted commitment and leaf, fold the audit path, check the
  node's Ed25519 signature once per signed batch, the key's validity) beside **bare Ed25519**:
  one ``verify`` per message of the same records, what signing every report on its own costs at
  the least;
- **ingest with verification against ingest without**, at the same batch: a chunk standardized
  and protected (decode, row checks, quality, privacy: what the Beam DoFn does after reading)
  with ``signatures = required`` and with ``unsigned``, in turns — once with the nodes signing
  every report on its own (batches of one), once with the default 10 s signing window;
- **gas** per node registration, key rotation and revocation on the in-process EVM;
- **bytes** per published row in Parquet with and without the per-report proof columns.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa

from benchmarks import device_ingest
from benchmarks.timing import best_pair_seconds, best_seconds, rate
from pipelines.device_envelopes import verify_ed25519
from pipelines.device_signatures import (
    REQUIRED,
    UNSIGNED,
    DeviceCheck,
    RegisteredKey,
    RegisteredNode,
    RegistrySnapshot,
)
from pipelines.graph import standardize_chunk
from pipelines.protect import Protection
from schemas.fields import DEVICE_PROOF_FIELDS
from schemas.records import RAW_RECORD_SCHEMA, SIGNATURE_HEADER
from simulator.fleet import fleet_nodes, generate
from simulator.messages import Message
from simulator.signing import FleetSigning
from sinks.parquet import write_parquet

START_MS = 1_764_000_000_000


def run(quick: bool = False) -> dict:
    nodes = 40 if quick else 120
    duration = 60 if quick else 120
    fleet = [n.node_id for n in fleet_nodes(nodes, 3)]
    results = {}
    windows = (("per_report", None), ("window_10s", 10_000), ("window_60s", 60_000))
    for label, window_ms in windows:
        signing = FleetSigning.for_nodes(fleet, 3, window_ms or 10_000)
        messages = _signed(nodes, duration, signing, per_report=window_ms is None)
        results[label] = _measure(messages, signing, quick)
    gas = _gas(8 if quick else 24)
    ingest = device_ingest.measure(20 if quick else 60, 60 if quick else 120, 2 if quick else 3)
    size = _bytes_per_row(results["window_10s"]["published_radio"])
    for r in results.values():
        r.pop("published_radio")
    chosen = results["window_10s"]
    summary = (
        f"ingest from Kafka with verification {ingest['with_rows_per_s']:,} rows/s = "
        f"{ingest['ratio']}x the same batch without ({ingest['without_rows_per_s']:,} rows/s, "
        f"{ingest['records']:,} records); "
        f"verification {chosen['verify_rows_per_s']:,} rows/s per core = "
        f"{chosen['verify_vs_bare']}x bare Ed25519 verify of the same messages "
        f"({chosen['bare_ed25519_rows_per_s']:,}/s); ingest with verification "
        f"{chosen['ingest_ratio']}x without (10 s signing window, batches of "
        f"{chosen['mean_batch']} reports; {results['window_60s']['ingest_ratio']}x with 60 s "
        f"windows of {results['window_60s']['mean_batch']}) vs "
        f"{results['per_report']['ingest_ratio']}x with every report signed on its own; "
        f"gas per node registration {gas['register']:,} ({gas['register_batched_per_node']:,} "
        "in a fleet's batch of 20) "
        f"(rotation {gas['rotate']:,}, revocation {gas['revoke_key']:,}); Parquet "
        f"{size['with_proof']} vs {size['without_proof']} bytes per radio row with/without "
        "the proof columns"
    )
    return {
        "name": "device_signatures",
        "goal": "ingest with verification >= 0.8x ingest without it at the same batch size",
        "ingest_from_kafka": ingest,
        "results": results,
        "gas": gas,
        "parquet_bytes_per_row": size,
        "summary": summary,
    }


def _signed(nodes: int, duration: int, signing: FleetSigning, per_report: bool) -> list[Message]:
    messages = generate(nodes, duration, 1, START_MS, 3, 0.0, hybrid=True, sessions=True)
    if not per_report:
        return list(signing.sign(messages))
    from simulator.signing import sign_batch

    return [sign_batch(signing.keys[m.key.decode()], [m], i)[0] for i, m in enumerate(messages)]


def _raw(messages: list[Message]) -> pa.RecordBatch:
    rows = [
        {
            "topic": "bench",
            "partition": 0,
            "offset": i,
            "timestamp_ms": m.timestamp_ms,
            "key": m.key,
            "value": m.value,
            "format": m.wire_format,
            "signature": dict(m.headers)[SIGNATURE_HEADER].decode(),
        }
        for i, m in enumerate(messages)
    ]
    return pa.RecordBatch.from_pylist(rows, schema=RAW_RECORD_SCHEMA)


def _snapshot(signing: FleetSigning) -> RegistrySnapshot:
    nodes = {
        s.node_id: RegisteredNode(
            s.node_id, {s.key_id.hex(): RegisteredKey(0, s.public_key, 0, None)}
        )
        for s in signing.keys.values()
    }
    return RegistrySnapshot("bench", 0, nodes)


def _measure(messages: list[Message], signing: FleetSigning, quick: bool) -> dict:
    raw = _raw(messages)
    snapshot = _snapshot(signing)
    n = raw.num_rows
    verify_s = best_seconds(lambda: DeviceCheck(REQUIRED, snapshot, "bench").check_records(raw), 3)
    bare = _bare_signatures(messages, signing)
    bare_s = best_seconds(lambda: [verify_ed25519(*b) for b in bare], 3)
    with tempfile.TemporaryDirectory() as private:
        protection = Protection(private)

        def ingest(policy: str):
            devices = DeviceCheck(policy, snapshot if policy == REQUIRED else None, "bench")
            return standardize_chunk(raw, "rda.node.v1", protection, None, devices)

        signed = ingest(REQUIRED)
        assert not signed.quarantined.num_rows, "every genuine report verifies"
        with_s, without_s = best_pair_seconds(
            lambda: ingest(REQUIRED), lambda: ingest(UNSIGNED), 3 if quick else 5
        )
    batches = {m.headers[-1][1].split(b";")[8] for m in messages}
    return {
        "records": n,
        "signed_batches": len(batches),
        "mean_batch": round(n / len(batches), 1),
        "verify_rows_per_s": round(rate(n, verify_s)),
        "bare_ed25519_rows_per_s": round(rate(n, bare_s)),
        "verify_vs_bare": round(bare_s / verify_s, 2),
        "ingest_with_rows_per_s": round(rate(n, with_s)),
        "ingest_without_rows_per_s": round(rate(n, without_s)),
        "ingest_ratio": round(without_s / with_s, 3),
        "published_radio": signed.published["radio_kpi.v1"],
    }


def _bare_signatures(messages: list[Message], signing: FleetSigning) -> list[tuple]:
    """One Ed25519 signature per message, over its bytes: the per-report baseline."""
    found = []
    for m in messages:
        signer = signing.keys[m.key.decode()]
        found.append((signer.public_key, signer.private_key.sign(m.value), m.value))
    return found


def _gas(count: int) -> dict:
    from web3 import EthereumTesterProvider, Web3

    from proofs.node_registry import NodeRegistry

    registry = NodeRegistry.deploy(Web3(EthereumTesterProvider()))
    signing = FleetSigning.for_nodes([f"gas-{i:04d}" for i in range(count + 1)], 9)
    register = []
    for i, signer in enumerate(signing.keys.values()):
        sent = registry.register(signer.node_id, "ground_airnode", 0x8828308281FFFFF + i,
                                 signer.public_key, START_MS)  # fmt: skip
        register.append(sent.gas_used)
    first = next(iter(signing.keys.values()))
    rotated = FleetSigning.for_nodes([first.node_id], 10).keys[first.node_id]
    rotate = registry.rotate(first.node_id, rotated.public_key, START_MS + 1000).gas_used
    revoke = registry.revoke_key(first.node_id, 1, START_MS + 2000).gas_used
    revoke_node = registry.revoke_node(first.node_id, START_MS + 3000).gas_used
    fleet = FleetSigning.for_nodes([f"fleet-{i:04d}" for i in range(20)], 9)
    entries = [(n, "ground_airnode", 0x8828308281FFFFF, k.public_key, None)
               for n, k in fleet.keys.items()]  # fmt: skip
    batched = registry.register_many(entries, START_MS).gas_used / len(entries)
    later = register[1:]  # the very first registration also creates the registry's list slot
    return {
        "register": round(sum(later) / len(later)),
        "register_first": register[0],
        "register_batched_per_node": round(batched),
        "rotate": rotate,
        "revoke_key": revoke,
        "revoke_node": revoke_node,
        "nodes": count + 1,
    }


def _bytes_per_row(rows: pa.RecordBatch) -> dict:
    proof = {f.name for f in DEVICE_PROOF_FIELDS}
    without = rows.select([n for n in rows.schema.names if n not in proof])
    with tempfile.TemporaryDirectory() as directory:
        sizes = {}
        for label, batch in (("with_proof", rows), ("without_proof", without)):
            path = Path(directory) / f"{label}.parquet"
            write_parquet(batch, path)  # as published: the sink's own writer options
            sizes[label] = round(path.stat().st_size / batch.num_rows, 1)
    return {**sizes, "rows": rows.num_rows}
