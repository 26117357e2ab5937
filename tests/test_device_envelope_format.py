"""The ``rda-sig`` envelope is what docs/pipeline.md "Device signatures" says it is: rebuilt here
from the document alone (with the proof core's RFC 9162 functions) for a node signing with RFC
8032's first test key, and compared with what the simulated node sent."""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from proofs.merkle import leaf_hash, root
from proofs.merkle_proofs import inclusion_proof
from simulator.messages import Message
from simulator.signing import NodeSigner, sign_batch

RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def documented_leaf(node: str, key_id: bytes, event_ms: int, commitment: bytes) -> bytes:
    encoded = node.encode()
    return leaf_hash(
        b"rda.report.v1" + bytes([len(encoded)]) + encoded + key_id
        + struct.pack(">q", event_ms) + commitment
    )  # fmt: skip


@given(
    count=st.integers(min_value=1, max_value=40), node=st.sampled_from(["an-0001", "haps-x.y:z"])
)
def test_the_envelope_is_rebuilt_from_the_document_alone(count, node):
    signer = NodeSigner(node, RFC8032_SECRET)
    assert signer.public_key.hex() == RFC8032_PUBLIC
    sent = [
        Message(node.encode(), b'{"n":%d}' % i, 1_764_000_000_000 + 250 * i, wire_format="x")
        for i in range(count)
    ]
    signed = sign_batch(signer, sent)
    fields = [dict(m.headers)["rda-sig"].decode().split(";") for m in signed]
    key_id = hashlib.sha256(bytes.fromhex(RFC8032_PUBLIC)).digest()
    leaves = []
    for message, f in zip(signed, fields, strict=True):
        version, node_id, key, ms, nonce, _index, size, _path, _signature = f
        assert (version, node_id, key, int(size)) == ("v1", node, key_id.hex(), count)
        assert int(ms) == message.timestamp_ms and len(nonce) == 32
        commitment = hashlib.sha256(bytes.fromhex(nonce) + message.value).digest()
        leaves.append(documented_leaf(node, key_id, int(ms), commitment))
    batch_root = root(leaves)
    for i, f in enumerate(fields):
        assert int(f[5]) == i
        assert f[7] == b"".join(inclusion_proof(leaves, i)).hex()
    encoded = node.encode()
    message = (
        b"rda.batch.v1" + bytes([len(encoded)]) + encoded + key_id
        + struct.pack(">I", count) + batch_root
    )  # fmt: skip
    signature = bytes.fromhex(fields[0][8])
    assert {f[8] for f in fields} == {fields[0][8]}  # one signature for the batch
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(RFC8032_PUBLIC)).verify(signature, message)
