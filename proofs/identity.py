"""The publisher identity document: the trust root an auditor pins once.

It names the chain (EVM chain id), the ``AnchorRegistry`` that holds the publisher's anchors,
the registry's owner (the only account that can anchor there), and the publisher's Ed25519
signing keys with the interval of chain time in which each may sign. Version 2 also names the
``NodeRegistry`` whose nodes signed the published reports (``node_registry``): what an auditor
checks each row's device signature against. It is signed by the keys it
lists, and its exact bytes are published *in* the registry (``publishIdentity``), so the
registry binds itself to it: a verifier that pins the document (or the registry, or a key id)
checks the chain against it, never a registry named by the data or a bundle being verified.

File (``published/publisher-identity.json``, docs/proof-format.md §14): the RFC 8785 bytes of
``{"identity": {...}, "signatures": [...]}``; its SHA-256 is the identity hash stored on chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proofs.documents import parse_document
from proofs.jcs import canonicalize

if TYPE_CHECKING:
    from proofs.signing import PublisherKey

IDENTITY_VERSION = 1
IDENTITY_VERSION_NODES = 2  # version 1 and a node_registry
FILE_NAME = "publisher-identity.json"
MAX_BYTES = 64 * 1024  # a document is well under 2 KB; refuse to parse anything huge
_HEX64 = frozenset("0123456789abcdef")


class IdentityError(ValueError):
    """The document is not a well-formed, correctly signed publisher identity."""


@dataclass(frozen=True)
class SigningKey:
    algorithm: str
    public_key: str  # hex
    key_id: str  # SHA-256 of the raw public key, hex
    valid_from: int  # chain time (unix seconds) from which anchors may carry its signature
    valid_until: int | None  # chain time from which they may not; None: still valid

    def problem_at(self, anchored_at: int) -> str | None:
        """Why a checkpoint anchored at ``anchored_at`` may not carry this key's signature."""
        if anchored_at < self.valid_from:
            return f"key {self.key_id[:16]}… is valid only from {self.valid_from}"
        if self.valid_until is not None and anchored_at >= self.valid_until:
            return f"key {self.key_id[:16]}… was valid only until {self.valid_until}"
        return None


@dataclass(frozen=True)
class PublisherIdentity:
    raw: bytes  # the document's exact bytes (RFC 8785), as pinned and as stored on chain
    chain_id: int
    registry: str  # EIP-55 checksum address
    registry_owner: str
    keys: tuple[SigningKey, ...]
    signed_by: tuple[str, ...]  # key ids of the document's (valid) signatures
    node_registry: str | None = None  # version 2: the NodeRegistry of the signing nodes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    def key(self, key_id: str) -> SigningKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def describe(self) -> dict[str, Any]:
        described = {
            "identity_sha256": self.sha256.hex(),
            "chain_id": self.chain_id,
            "registry": self.registry,
            "registry_owner": self.registry_owner,
            "key_ids": [k.key_id for k in self.keys],
        }
        if self.node_registry is not None:
            described["node_registry"] = self.node_registry
        return described


def build_identity(
    chain_id: int,
    registry: str,
    registry_owner: str,
    keys: list[dict[str, Any]],
    signers: list[PublisherKey],
    node_registry: str | None = None,
) -> bytes:
    """The signed document's bytes. ``keys``: ``{algorithm, public_key, key_id, valid_from,
    valid_until}`` each; every key in ``signers`` signs (at least one, and only listed keys).
    With ``node_registry`` the document is version 2."""
    from proofs.anchor import checksum_address

    identity = {
        "identity_version": IDENTITY_VERSION,
        "chain_id": chain_id,
        "registry": checksum_address(registry),
        "registry_owner": checksum_address(registry_owner),
        "keys": keys,
    }
    if node_registry is not None:
        identity["identity_version"] = IDENTITY_VERSION_NODES
        identity["node_registry"] = checksum_address(node_registry)
    body = canonicalize(identity)
    signatures = [signer.sign(body) for signer in signers]
    raw = canonicalize({"identity": identity, "signatures": signatures})
    parse_identity(raw)  # never publish a document a verifier would refuse
    return raw


def key_entry(signer: PublisherKey, valid_from: int = 0, valid_until: int | None = None) -> dict:
    """A ``keys[]`` entry for ``signer``; ``valid_from`` 0: from the registry's beginning."""
    return {**signer.describe(), "valid_from": valid_from, "valid_until": valid_until}


def parse_identity(raw: bytes) -> PublisherIdentity:
    """Check the document (shape, canonical bytes, every signature) and return it."""
    if not isinstance(raw, bytes) or len(raw) > MAX_BYTES:
        raise IdentityError(f"an identity document is bytes of at most {MAX_BYTES}")
    try:
        envelope = parse_document(raw)
    except ValueError as error:  # UnicodeDecodeError too
        raise IdentityError(f"not JSON ({error})") from None
    if not isinstance(envelope, dict) or set(envelope) != {"identity", "signatures"}:
        raise IdentityError("the document must be an object with identity and signatures")
    try:
        canonical = canonicalize(envelope)
    except ValueError as error:
        raise IdentityError(f"not I-JSON ({error})") from None
    if canonical != raw:
        raise IdentityError("the document's bytes are not its RFC 8785 canonical form")
    identity = _identity(envelope["identity"])
    signed_by = _check_signatures(
        envelope["signatures"], canonicalize(envelope["identity"]), identity
    )
    return PublisherIdentity(raw, *identity, signed_by, _node_registry(envelope["identity"]))


def read_identity_file(path: Path) -> PublisherIdentity | None:
    """The identity document at ``path``, checked; None only when there is no file.

    A file that is there but is not a valid document raises ``IdentityError`` naming it: taken
    for "none yet", a damaged copy made a new identity that dropped the keys it listed (the
    older checkpoints' signers), or a data licence that paid no node registry."""
    try:
        raw = read_identity_bytes(path)
    except OSError as error:
        raise IdentityError(f"{path} cannot be read: {error.strerror or error}") from None
    if raw is None:
        return None
    try:
        return parse_identity(raw)
    except IdentityError as error:
        raise IdentityError(f"{path} is not a valid publisher identity: {error}") from None


def read_identity_bytes(path: Path) -> bytes | None:
    """The file's bytes, never more than one past ``MAX_BYTES`` (a copy in a data directory
    being verified is untrusted: a huge one is refused, not loaded); None when there is none."""
    try:
        with path.open("rb") as file:
            return file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None


def _node_registry(doc: dict) -> str | None:
    from proofs.anchor import checksum_address

    if doc["identity_version"] == IDENTITY_VERSION:
        return None
    try:
        return checksum_address(doc["node_registry"])
    except ValueError as error:
        raise IdentityError(f"node_registry: {error}") from None


def _identity(doc: Any) -> tuple[int, str, str, tuple[SigningKey, ...]]:
    from proofs.anchor import checksum_address

    if not isinstance(doc, dict):
        raise IdentityError("identity must be an object")
    expected = {"identity_version", "chain_id", "registry", "registry_owner", "keys"}
    version = doc.get("identity_version")
    if version == IDENTITY_VERSION_NODES and not isinstance(version, bool):
        expected.add("node_registry")
    elif version != IDENTITY_VERSION or isinstance(version, bool):
        raise IdentityError(
            f"identity_version must be {IDENTITY_VERSION} or {IDENTITY_VERSION_NODES} "
            "(with node_registry)"
        )
    if set(doc) != expected:
        raise IdentityError(f"identity must have exactly {', '.join(sorted(expected))}")
    chain_id = doc["chain_id"]
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise IdentityError("chain_id must be a positive integer")
    try:
        registry = checksum_address(doc["registry"])
        owner = checksum_address(doc["registry_owner"])
    except ValueError as error:
        raise IdentityError(str(error)) from None
    if not isinstance(doc["keys"], list) or not doc["keys"]:
        raise IdentityError("keys must be a non-empty list")
    keys = tuple(_key(entry) for entry in doc["keys"])
    if len({k.key_id for k in keys}) != len(keys):
        raise IdentityError("a key is listed twice")
    return chain_id, registry, owner, keys


def _key(entry: Any) -> SigningKey:
    names = {"algorithm", "public_key", "key_id", "valid_from", "valid_until"}
    if not isinstance(entry, dict) or set(entry) != names:
        raise IdentityError(f"each key must have exactly {', '.join(sorted(names))}")
    if entry["algorithm"] != "Ed25519":
        raise IdentityError("keys must be Ed25519")
    public, key_id = entry["public_key"], entry["key_id"]
    if not _is_hex(public, 32) or not _is_hex(key_id, 32):
        raise IdentityError("public_key and key_id must be 64 lowercase hex digits")
    if hashlib.sha256(bytes.fromhex(public)).hexdigest() != key_id:
        raise IdentityError("a key_id is not SHA-256 of its public key")
    start, end = entry["valid_from"], entry["valid_until"]
    if not _is_time(start) or not (end is None or (_is_time(end) and end > start)):
        raise IdentityError("valid_from must be a time ≥ 0, valid_until null or a later time")
    return SigningKey("Ed25519", public, key_id, start, end)


def _check_signatures(signatures: Any, body: bytes, identity: tuple) -> tuple[str, ...]:
    """The key ids of the signatures, once each is checked over ``body``."""
    from proofs.signing import verify_signature

    keys = {k.key_id for k in identity[3]}
    if not isinstance(signatures, list) or not signatures:
        raise IdentityError("signatures must be a non-empty list")
    for signature in signatures:
        key_id = signature.get("key_id") if isinstance(signature, dict) else None
        if not isinstance(key_id, str) or key_id not in keys:
            raise IdentityError("a signature is by a key the identity does not list")
        problem = verify_signature(signature, body)
        if problem is not None:
            problem = problem.replace("does not match the manifest bytes", "does not verify")
            raise IdentityError(f"signature by {key_id[:16]}…: {problem} over the identity")
    return tuple(signature["key_id"] for signature in signatures)


def _is_hex(value: Any, size: int) -> bool:
    return isinstance(value, str) and len(value) == 2 * size and set(value) <= _HEX64


def _is_time(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
