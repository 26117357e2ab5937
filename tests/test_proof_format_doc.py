"""docs/proof-format.md's worked example: every hex value in it is computed here.

The document must contain each value exactly; if the encoding or hashing ever changes, this
test fails until the document is regenerated (``python tests/test_proof_format_doc.py`` prints
the values).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa

from proofs.bundle import verify_bundle
from proofs.jcs import canonicalize
from proofs.leaves import leaf_bytes_for_batch
from proofs.merkle import leaf_hash, node_hash, root
from proofs.merkle_proofs import consistency_proof, inclusion_proof
from proofs.merkle_verify import verify_consistency

DOC = Path(__file__).resolve().parents[1] / "docs" / "proof-format.md"
# RFC 8032 section 7.1, test 1: a public test key, so the example signature is reproducible.
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"


def example_rows() -> pa.Table:
    return pa.table(
        {
            "node_id": ["node-00042", "node-00042", "node-00077"],
            "ts": pa.array(
                [1_795_568_523_000_000, 1_795_568_524_000_000, 1_795_568_523_500_000],
                pa.timestamp("us", tz="UTC"),
            ),
            "rsrp_dbm": pa.array([-97.5, -101.25, None], pa.float64()),
            "pci": pa.array([301, 301, 17], pa.int16()),
        }
    )


def worked_example() -> dict[str, str]:
    data = leaf_bytes_for_batch(example_rows())
    hashes = [leaf_hash(d) for d in data]
    tree_root = root(hashes)
    manifest = {"example": "a checkpoint manifest", "tree_size": 3, "root": tree_root.hex()}
    manifest_bytes = canonicalize(manifest)
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    bundle = {
        "bundle_version": 1,
        "dataset": "radio_kpi.v1",
        "log": "radio_kpi.v1",
        "row": json.loads(data[1]),
        "leaf_index": 1,
        "leaf_hash": hashes[1].hex(),
        "audit_path": [h.hex() for h in inclusion_proof(hashes, 1)],
        "checkpoint": {
            "log": "radio_kpi.v1",
            "tree_size": 3,
            "root": tree_root.hex(),
            "manifest_sha256": manifest_sha256,
        },
        "anchor": None,
    }
    assert verify_bundle(bundle).first_failure is None  # INCOMPLETE: no anchor, nothing pinned
    consistency = consistency_proof(hashes, 2)
    assert verify_consistency(2, 3, root(hashes[:2]), tree_root, consistency)
    dataset_id = hashlib.sha256(b"radio_kpi.v1").digest()
    calldata = _selector("getAnchor(bytes32,uint64)") + dataset_id + (3).to_bytes(32, "big")
    secret, public, signature = _signature(manifest_bytes)
    identity = _identity_document()
    return {
        "leaf_0": data[0].decode(),
        "leaf_1": data[1].decode(),
        "leaf_2": data[2].decode(),
        "leaf_hash_0": hashes[0].hex(),
        "leaf_hash_1": hashes[1].hex(),
        "leaf_hash_2": hashes[2].hex(),
        "node_01": node_hash(hashes[0], hashes[1]).hex(),
        "root_2": root(hashes[:2]).hex(),
        "root_3": tree_root.hex(),
        "consistency_2_3": " ".join(h.hex() for h in consistency),
        "manifest_bytes": manifest_bytes.decode(),
        "manifest_sha256": manifest_sha256,
        "bundle": json.dumps(bundle, indent=2, sort_keys=True),
        "dataset_id": dataset_id.hex(),
        "selector": _selector("getAnchor(bytes32,uint64)").hex(),
        "calldata": calldata.hex(),
        "secret": secret,
        "public_key": public.hex(),
        "key_id": hashlib.sha256(public).hexdigest(),
        "signature": signature.hex(),
        "identity_document": identity.decode(),
        "identity_sha256": hashlib.sha256(identity).hexdigest(),
        "latest_calldata": (_selector("latest(bytes32)") + dataset_id).hex(),
        "previous_calldata": (
            _selector("previousTreeSize(bytes32,uint64)") + dataset_id + (3).to_bytes(32, "big")
        ).hex(),
    }


def _identity_document() -> bytes:
    """The example publisher identity (§14): anvil's first registry and account, signed by the
    RFC 8032 test key; ``parse_identity`` must accept it as a verifier would."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from proofs.identity import build_identity, key_entry, parse_identity
    from proofs.signing import PublisherKey

    signer = PublisherKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET)))
    raw = build_identity(
        31337,
        "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        [key_entry(signer)],
        [signer],
    )
    assert parse_identity(raw).registry == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    return raw


def _selector(signature: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=signature)[:4]


def _signature(data: bytes) -> tuple[str, bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return RFC8032_SECRET, public, key.sign(data)


def test_every_value_of_the_worked_example_is_in_the_document():
    text = DOC.read_text()
    missing = [name for name, value in worked_example().items() if value not in text]
    assert missing == []


def test_the_documented_calldata_is_what_web3_sends():
    from web3 import Web3

    from proofs.anchor import load_artifact

    contract = Web3().eth.contract(abi=load_artifact()["abi"])
    example = worked_example()
    encoded = contract.encode_abi("getAnchor", [bytes.fromhex(example["dataset_id"]), 3])
    assert encoded.removeprefix("0x") == example["calldata"]


def test_the_example_key_is_rfc_8032_test_1():
    assert worked_example()["public_key"] == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )


def test_every_documented_selector_is_the_keccak_of_its_signature():
    import re

    rows = re.findall(r"\| `(\w+\([^`]*\))` \| `([0-9a-f]{8})` \|", DOC.read_text())
    assert len(rows) == 8
    for signature, selector in rows:
        types = ",".join(
            part.split()[0] for part in signature[signature.index("(") + 1 : -1].split(", ") if part
        )
        canonical = signature[: signature.index("(")] + f"({types})"
        assert _selector(canonical).hex() == selector, signature


if __name__ == "__main__":
    for name, value in worked_example().items():
        print(f"--- {name}\n{value}")
