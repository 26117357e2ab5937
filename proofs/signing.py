"""The publisher's Ed25519 key: signs every checkpoint manifest (the ``cryptography`` edge).

The private key is generated on first use under the data directory's private side
(``private/keys/publisher-ed25519.pem``, PKCS#8, mode 0600) and never leaves it. The public key
is published (``published/publisher.json``) and written into every manifest, so the anchored
manifest hash also commits to who signed it. The key id is SHA-256 of the raw 32-byte public key.

Ed25519 signatures are deterministic (RFC 8032): re-signing the same manifest bytes after a
crash gives the same signature bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs.ed25519_points import small_order

ALGORITHM = "Ed25519"
KEY_FILE = Path("keys") / "publisher-ed25519.pem"
PUBLIC_FILE = "publisher.json"


def key_id(public_key: bytes) -> str:
    """SHA-256 (hex) of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class PublisherKey:
    private_key: Any  # cryptography's Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def describe(self) -> dict[str, str]:
        """The public part, as manifests and ``publisher.json`` carry it."""
        return {"algorithm": ALGORITHM, "public_key": self.public_key.hex(), "key_id": self.key_id}

    def sign(self, data: bytes) -> dict[str, str]:
        """The signature document stored beside a manifest."""
        return {**self.describe(), "signature": self.private_key.sign(data).hex()}


def publisher_key(data_root: Path) -> PublisherKey:
    """The data directory's publisher key, generated (and its public part published) once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = data_root / "private" / KEY_FILE
    if path.exists():
        key = PublisherKey(serialization.load_pem_private_key(path.read_bytes(), password=None))
    else:
        key = PublisherKey(Ed25519PrivateKey.generate())
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(partial, path)
    public = data_root / "published" / PUBLIC_FILE
    if not public.exists():
        public.parent.mkdir(parents=True, exist_ok=True)
        public.write_text(json.dumps(key.describe(), indent=2, sort_keys=True) + "\n")
    return key


def verify_signature(signature: dict[str, Any], data: bytes) -> str | None:
    """None when ``signature`` is a valid Ed25519 signature of ``data`` by the key it names and
    its key id is SHA-256 of that key; otherwise what is wrong, in a few words."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if signature.get("algorithm") != ALGORITHM:
        return f"algorithm {signature.get('algorithm')!r} is not {ALGORITHM}"
    try:
        public = bytes.fromhex(signature["public_key"])
        value = bytes.fromhex(signature["signature"])
        key = Ed25519PublicKey.from_public_bytes(public)
    except (KeyError, TypeError, ValueError) as error:
        return f"malformed signature document ({error})"
    if signature.get("key_id") != key_id(public):
        return "key_id is not SHA-256 of the public key"
    if small_order(public):  # any signature verifies under it: ``proofs/ed25519_points.py``
        return "the public key is an Ed25519 point of small order: it vouches for nothing"
    try:
        key.verify(value, data)
    except InvalidSignature:
        return "the Ed25519 signature does not match the manifest bytes"
    return None
