"""The verifier's trust root: a pinned publisher identity, and the chain it names.

The auditor pins the publisher once, in one of three ways (``Pin``):

- the identity document itself (``rda verify --publisher FILE``), obtained from the publisher
  out of band;
- the registry (``--registry ADDRESS``, optionally ``--chain-id``): the document is read from
  the registry, which holds its exact bytes;
- a signing key id (``--publisher-key-id``): a copy of the document from anywhere (the data
  being verified included) is accepted only when that key signed it.

Everything else is checked against the pin, never taken from the data or a bundle: the chain's
id, the registry's code, owner and bound identity hash, then each anchor. Whatever could not be
read is reported as not checked (the verdict is then INCOMPLETE), never as passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proofs.anchor import Anchor, AnchorRegistry, checksum_address
from proofs.contract_code import registry_code_problem
from proofs.identity import IdentityError, PublisherIdentity, parse_identity
from proofs.verdict import Check

NO_PIN = (
    "no pinned publisher identity: pass --publisher FILE (the publisher's identity document), "
    "--registry ADDRESS with --rpc-url, or --publisher-key-id"
)
MAX_HISTORY = 1_000_000  # anchored checkpoints walked back from latest() before giving up


@dataclass(frozen=True)
class Pin:
    """What the auditor trusts, from outside the data being verified."""

    identity: bytes | None = None  # a pinned identity document's exact bytes
    registry: str | None = None  # a pinned registry address: the identity is read from it
    chain_id: int | None = None  # the chain the registry must be on
    key_id: str | None = None  # a signing key the identity must list (and have signed with)

    @property
    def empty(self) -> bool:
        return self.identity is None and self.registry is None and self.key_id is None


class ChainUnreadable(RuntimeError):
    """The chain did not answer a read (an outage, not a verdict)."""


class TrustRoot:
    """A pin, resolved against a chain (``w3``, a connected ``Web3``, or None when offline).

    ``published_identity`` is an untrusted copy of the identity document (e.g. the data
    directory's): used only when the pinned key id signed it.
    """

    def __init__(
        self,
        pin: Pin,
        w3: Any = None,
        why_no_chain: str = "no chain to read",
        published_identity: bytes | None = None,
    ) -> None:
        self.pin = pin
        self.w3 = w3
        self.why_no_chain = why_no_chain
        self.published_identity = published_identity
        self.identity: PublisherIdentity | None = None
        self.registry: AnchorRegistry | None = None  # set once the pinned registry is readable
        self._check: Check | None = None
        self._transactions: dict[str, tuple[str | None, int, int] | Check] = {}
        self._anchors: dict[tuple[str, int], Anchor] = {}

    @classmethod
    def over_rpc(
        cls, pin: Pin, rpc_url: str | None, published_identity: bytes | None = None
    ) -> TrustRoot:
        """Read the chain at ``rpc_url`` (None, or a node that does not answer: offline)."""
        if not rpc_url:
            return cls(pin, None, "no chain to read: pass --rpc-url", published_identity)
        from web3 import Web3

        from proofs.rpc import BoundedHTTPProvider, node_name

        w3 = Web3(BoundedHTTPProvider(rpc_url))
        if not w3.is_connected():
            shown = node_name(rpc_url)
            return cls(pin, None, f"the chain at {shown} does not answer", published_identity)
        return cls(pin, w3, "", published_identity)

    # -- the identity and the registry ------------------------------------------------------

    def identity_check(self) -> Check:
        """The pinned identity, and the registry bound to it on the chain (computed once)."""
        if self._check is None:
            try:
                self._check = self._resolve()
            except ChainUnreadable as error:
                self._check = Check("identity", None, f"not checked: {error}")
        return self._check

    def _resolve(self) -> Check:
        try:
            identity = self._pinned_identity()
        except IdentityError as error:
            return Check("identity", False, str(error))
        if identity is None:
            return Check("identity", None, f"not checked: {self._why_no_identity()}")
        problem = self._pin_mismatch(identity)
        if problem:
            return Check("identity", False, problem)
        self.identity = identity
        named = f"registry {identity.registry} on chain {identity.chain_id}"
        if self.w3 is None:
            return Check("identity", None, f"{named} not checked: {self.why_no_chain}")
        chain_id = _read(lambda: self.w3.eth.chain_id)
        if chain_id != identity.chain_id:
            return Check(
                "identity",
                False,
                f"the chain read has id {chain_id}; the publisher's identity names chain "
                f"{identity.chain_id}",
            )
        code = _read(lambda: self.w3.eth.get_code(identity.registry))
        if not code:
            return Check(
                "identity", False, f"no contract at {named}: the chain was reset, or is another"
            )
        self.registry = AnchorRegistry(self.w3, identity.registry)
        return self._binding_check(identity, named, code)

    def _binding_check(self, identity: PublisherIdentity, named: str, code: bytes) -> Check:
        registry = self.registry
        assert registry is not None
        if _read(lambda: registry.version) < 2:
            return Check(
                "identity",
                None,
                f"{named} is a version-1 registry: it binds no publisher identity, so only the "
                "pinned document ties it to the publisher",
            )
        if problem := registry_code_problem(code, identity.registry_owner):
            self.registry = None  # nothing it answers is read: no anchor, no history
            return Check("identity", False, f"{named}: {problem}")
        owner = _read(registry.owner)
        if owner != identity.registry_owner:
            return Check(
                "identity", False, f"{named} is owned by {owner}, not {identity.registry_owner}"
            )
        bound = _read(registry.identity_hash)
        if bound == identity.sha256:
            return Check(
                "identity",
                True,
                f"{named} (owner {owner}) is bound to the pinned identity "
                f"{identity.sha256.hex()[:16]}…",
            )
        if _read(lambda: registry.identity_published_at(identity.sha256)):
            return Check(
                "identity",
                None,
                f"not checked: {named} has replaced the pinned identity by "
                f"{bound.hex() if bound else 'none'}; pin its current identity document",
            )
        if bound is None:
            return Check("identity", False, f"{named} binds no publisher identity")
        return Check("identity", False, f"{named} is bound to another identity ({bound.hex()})")

    def _pinned_identity(self) -> PublisherIdentity | None:
        pin = self.pin
        if pin.identity is not None:
            return _parsed(pin.identity, "pinned identity document")
        if pin.registry is not None:
            return self._identity_from_registry(pin.registry)
        if pin.key_id is not None and self.published_identity is not None:
            identity = _parsed(self.published_identity, "published identity document")
            if pin.key_id not in identity.signed_by:
                raise IdentityError(
                    f"the published identity document is not signed by the pinned key {pin.key_id}"
                )
            return identity
        return None

    def _identity_from_registry(self, address: str) -> PublisherIdentity | None:
        if self.w3 is None:
            return None
        try:
            address = checksum_address(address)
        except ValueError as error:
            raise IdentityError(f"pinned registry: {error}") from None
        if not _read(lambda: self.w3.eth.get_code(address)):
            raise IdentityError(f"no contract at the pinned registry {address}")
        registry = AnchorRegistry(self.w3, address)
        if _read(lambda: registry.version) < 2:
            raise IdentityError(f"{address} is a version-1 registry: it holds no identity")
        document = _read(registry.identity_document)
        if document is None:
            raise IdentityError(f"the pinned registry {address} binds no publisher identity")
        return _parsed(document, f"identity document of registry {address}")

    def _pin_mismatch(self, identity: PublisherIdentity) -> str | None:
        pin = self.pin
        if pin.key_id is not None and identity.key(pin.key_id.lower()) is None:
            return f"the pinned key {pin.key_id} is not one of the publisher identity's keys"
        if pin.chain_id is not None and pin.chain_id != identity.chain_id:
            return f"the identity names chain {identity.chain_id}, not the pinned {pin.chain_id}"
        if pin.registry is not None:
            try:
                if checksum_address(pin.registry) != identity.registry:
                    return f"the identity names registry {identity.registry}, not {pin.registry}"
            except ValueError as error:
                return f"pinned registry: {error}"
        return None

    def _why_no_identity(self) -> str:
        if self.pin.registry is not None:
            return f"the pinned registry's identity is read from the chain: {self.why_no_chain}"
        if self.pin.key_id is not None:
            return (
                f"no identity document to check against the pinned key {self.pin.key_id}: pass "
                "--publisher FILE, or --registry ADDRESS with --rpc-url"
            )
        return NO_PIN

    # -- anchors -----------------------------------------------------------------------------

    def anchor_check(
        self, log: str, tree_size: int, root: str, manifest_sha256: str
    ) -> tuple[Check, Anchor | None]:
        """The checkpoint as anchored on the pinned registry (and the anchor, when found)."""
        registry = self._readable_registry()
        if isinstance(registry, Check):
            return registry, None
        where = f"registry {registry.address}"
        try:
            anchor = self._anchor(registry, log, tree_size)
        except ChainUnreadable as error:
            return Check("anchor", None, f"not checked: {error}"), None
        if anchor is None:
            missing = f"no anchor of {log} at size {tree_size} in {where}"
            return Check("anchor", False, missing), None
        if anchor.root.hex() != root:
            return Check(
                "anchor", False, f"anchored root {anchor.root.hex()} != checkpoint root {root}"
            ), anchor
        if anchor.manifest_hash.hex() != manifest_sha256:
            return Check(
                "anchor",
                False,
                f"anchored manifest hash {anchor.manifest_hash.hex()} != {manifest_sha256}",
            ), anchor
        return Check(
            "anchor",
            True,
            f"root and manifest hash anchored in {where}, block {anchor.block_number} "
            f"(time {anchor.anchored_at})",
        ), anchor

    def _anchor(self, registry: AnchorRegistry, log: str, tree_size: int) -> Anchor | None:
        """``getAnchor``, read once per (log, size): an anchor never changes once written."""
        key = (log, tree_size)
        if key not in self._anchors:
            found = _read(lambda: registry.get(log, tree_size))
            if found is None:
                return None  # not cached: it may be anchored by the next look
            self._anchors[key] = found
        return self._anchors[key]

    def latest(self, log: str) -> Anchor | Check | None:
        """The log's latest anchor on the pinned registry, or why it could not be read."""
        registry = self._readable_registry("latest")
        if isinstance(registry, Check):
            return registry
        try:
            return _read(lambda: registry.latest(log))
        except ChainUnreadable as error:
            return Check("latest", None, f"not checked: {error}")

    def anchored_sizes(self, log: str, latest: int, at_most: int = MAX_HISTORY) -> list[int] | None:
        """Every anchored size of ``log``, newest first, walked back from ``latest`` by each
        anchor's link to the one before it, up to ``at_most`` of them (a caller comparing them
        with its own checkpoints needs one more than it has); None on a version-1 registry.

        The registry only links an anchor to a smaller one: a node answering otherwise is not
        reading the registry, and would keep the walk going for as long as it likes."""
        registry = self.registry
        if registry is None or _read(lambda: registry.version) < 2:
            return None
        sizes, size = [], latest
        while size and len(sizes) < min(at_most, MAX_HISTORY):
            sizes.append(size)
            previous = _read(lambda s=size: registry.previous(log, s))
            if not 0 <= previous < size:
                raise ChainUnreadable(
                    f"the chain answered that anchor {size} of {log} follows anchor {previous}: "
                    "a registry links an anchor only to a smaller one"
                )
            size = previous
        return sizes

    def transaction_problem(self, tx_hash: str, block_number: int) -> Check | None:
        """None when ``tx_hash`` is a successful transaction to the pinned registry in
        ``block_number`` (the anchor's block); else the failed or unchecked anchor check."""
        if tx_hash not in self._transactions:
            self._transactions[tx_hash] = self._transaction(tx_hash)
        found = self._transactions[tx_hash]
        if isinstance(found, Check):
            return found
        to, block, status = found
        registry = self.registry.address if self.registry else None
        if status != 1 or to != registry or block != block_number:
            return Check(
                "anchor",
                False,
                f"transaction {tx_hash} is not the anchor's: it went to {to} in block {block} "
                f"(status {status}); the anchor is in block {block_number} of {registry}",
            )
        return None

    def _transaction(self, tx_hash: str) -> tuple[str | None, int, int] | Check:
        try:  # the receipt's fields read as part of the answer: a node may send any shape
            return _read(lambda: _receipt_fields(self.w3.eth.get_transaction_receipt(tx_hash)))
        except ChainUnreadable as error:
            if "not found" in str(error).lower():
                return Check("anchor", False, f"transaction {tx_hash} is not on the chain")
            return Check("anchor", None, f"not checked: transaction {tx_hash}: {error}")

    def signer_problem(self, key_id: str, anchored_at: int | None) -> str | None:
        """Why the pinned identity does not let ``key_id`` sign a checkpoint anchored then."""
        if self.identity is None:
            return None
        key = self.identity.key(key_id)
        if key is None:
            return f"key {key_id} is not one of the pinned publisher identity's keys"
        return None if anchored_at is None else key.problem_at(anchored_at)

    def _readable_registry(self, name: str = "anchor") -> AnchorRegistry | Check:
        identity = self.identity_check()
        if self.registry is not None:
            return self.registry
        if identity.ok is False:
            return Check(name, None, "not checked: the publisher identity did not check out")
        return Check(name, None, f"not checked: {identity.detail.removeprefix('not checked: ')}")

    def describe(self) -> dict[str, Any]:
        check = self.identity_check()
        pinned = {k: v for k, v in self.pin.__dict__.items() if v is not None and k != "identity"}
        if self.pin.identity is not None:
            pinned["identity_sha256"] = _sha(self.pin.identity)
        return {
            "pinned": pinned,
            "identity": self.identity.describe() if self.identity else None,
            "check": check.as_dict(),
        }


def _parsed(raw: bytes, what: str) -> PublisherIdentity:
    try:
        return parse_identity(raw)
    except IdentityError as error:
        raise IdentityError(f"{what}: {error}") from None


def _receipt_fields(receipt: Any) -> tuple[str | None, int, int]:
    """(to, block number, status) of a transaction receipt."""
    to = receipt.get("to")
    return checksum_address(to) if to else None, int(receipt["blockNumber"]), int(receipt["status"])


def _read(read):
    """A chain read; any failure to answer becomes ``ChainUnreadable`` (an outage)."""
    try:
        return read()
    except Exception as error:  # web3 raises many types for a node that does not answer
        text = str(error).strip().splitlines()
        raise ChainUnreadable(
            f"the chain did not answer ({type(error).__name__}: {text[0] if text else ''})"
        ) from error


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
