"""Who owns a node: the one read of the node registry that revenue sharing needs.

A node's share of a sale is paid to the owner of its token in the node registry *at claim
time*: ``ownerOf(uint256(keccak256(UTF-8 node id)))`` of the ERC-721 that DataLicences was
deployed with (``INodeOwners`` in ``market/contracts/DataLicences.sol``). Selling or moving a
node's token therefore moves its future claims; the contribution tables name nodes, not wallets.
Off chain, ``RegistryNodeOwners`` makes the same read (``rda market claim`` sends from the
node's owner and says who it is). Any ERC-721 whose token id is the keccak-256 of the node id
fits: issue 20's ``NodeRegistry`` does, and so does the open ``OpenNodes`` that stands in for it
in tests and in ``rda bench``.

Where the registry comes from (``node_registry_of``): the publisher identity document
(identity version 2, ``PublisherIdentity.node_registry``); with a version-1 identity, ``rda
market mint`` needs ``--node-registry``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from proofs.anchor import checksum_address
from proofs.contributions import node_token_id

# The ERC-721 read DataLicences makes (INodeOwners): nothing else of the registry is assumed.
OWNER_OF_ABI = [
    {
        "type": "function",
        "name": "ownerOf",
        "stateMutability": "view",
        "inputs": [{"name": "tokenId", "type": "uint256"}],
        "outputs": [{"name": "", "type": "address"}],
    }
]


class NodeOwners(Protocol):
    """Node id -> the wallet its share of a sale is paid to (None: not registered)."""

    address: str

    def owner_of(self, node_id: str) -> str | None: ...


class RegistryNodeOwners:
    """The node registry on chain (any ERC-721 with token id = keccak-256 of the node id)."""

    def __init__(self, w3: Any, address: str) -> None:
        self.address = checksum_address(address)
        if not w3.eth.get_code(self.address):
            raise ValueError(f"no node registry at {self.address} on chain {w3.eth.chain_id}")
        self._contract = w3.eth.contract(address=self.address, abi=OWNER_OF_ABI)

    def owner_of(self, node_id: str) -> str | None:
        try:
            owner = self._contract.functions.ownerOf(node_token_id(node_id)).call()
        except Exception:  # ERC721NonexistentToken (or not an ERC-721): nobody is paid
            return None
        return checksum_address(owner) if int(owner, 16) else None


def node_registry_of(published: Path) -> str | None:
    """The node registry the publisher identity in ``published`` names; None when there is no
    identity there, or it names none.

    The document is parsed (and its signatures checked) by ``proofs.identity``; the address
    only chooses which registry a new DataLicences pays, so the publisher reading their own
    document is enough. A damaged document raises ``IdentityError``: a licence deployed as if
    there were none would never pay the nodes."""
    from proofs.identity import FILE_NAME, read_identity_file

    identity = read_identity_file(published / FILE_NAME)
    return identity.node_registry if identity is not None else None
