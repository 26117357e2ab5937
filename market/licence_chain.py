"""Licences bought on chain: the DataLicences (ERC-1155) and test stablecoin clients.

Prices are integers in the currency's smallest unit on chain; people write them in whole
units ("12.50"), converted with the token's own ``decimals()`` (18 for the native coin), and
a price with more fractional digits than the currency has is refused rather than rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from proofs.contributions import ContributionTable, node_token_id
from proofs.data_asset import Contract, Sent

CONTRACTS = Path(__file__).parent / "contracts"
NATIVE = "0x" + "00" * 20
NATIVE_DECIMALS = 18
MAX_UINT = 2**256 - 1
MAX_SYMBOL = 16


class PriceError(ValueError):
    """A price that cannot be expressed in the currency's units."""


def to_units(amount: str | int | Decimal, decimals: int) -> int:
    """``"12.50"`` with 6 decimals -> 12_500_000; more digits than ``decimals``: PriceError."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise PriceError(f"{amount!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise PriceError(f"a price must be a positive number, not {amount!r}")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise PriceError(f"{amount} has more than the currency's {decimals} decimal places")
    units = int(scaled)
    if units > MAX_UINT:
        raise PriceError(f"{amount} is too large")
    return units


def from_units(units: int, decimals: int) -> str:
    text = format(Decimal(units).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class TestStablecoin(Contract):
    __test__ = False  # not a pytest class, whatever its name
    artifact_path = CONTRACTS / "TestStablecoin.json"


class ERC20(Contract):
    """Any ERC-20 (the stablecoin's ABI covers the standard functions)."""

    artifact_path = CONTRACTS / "TestStablecoin.json"


@dataclass(frozen=True)
class Offer:
    offer_id: int
    asset_id: int
    seller: str
    currency: str
    price: int
    duration: int
    terms_hash: bytes
    active: bool

    @property
    def native(self) -> bool:
        return int(self.currency, 16) == 0


class DataLicences(Contract):
    artifact_path = CONTRACTS / "DataLicences.json"

    def create_offer(
        self, asset_id: int, currency: str, price: int, duration_s: int, terms_hash: bytes
    ) -> Sent:
        return self.send("createOffer", asset_id, currency, price, duration_s, terms_hash)

    def set_active(self, offer_id: int, active: bool) -> Sent:
        return self.send("setOfferActive", offer_id, active)

    def offer(self, offer_id: int) -> Offer:
        asset, seller, currency, price, duration, terms, active = self.view("offers", offer_id)
        if int(seller, 16) == 0:
            raise ValueError(f"no offer {offer_id}")
        return Offer(offer_id, asset, seller, currency, price, duration, bytes(terms), active)

    def offer_ids(self, asset_id: int, from_block: int, to_block: int) -> set[int]:
        """The ids of the offers made for ``asset_id`` in ``[from_block, to_block]``, from the
        (indexed) ``OfferCreated`` logs: the node filters them, so other assets' offers, any
        number of them, cost nothing here."""
        event = self.contract.events.OfferCreated
        found = event.get_logs(
            from_block=from_block, to_block=to_block, argument_filters={"assetId": asset_id}
        )
        return {int(e["args"]["offerId"]) for e in found}

    def buy(self, offer_id: int) -> Sent:
        """Buy one licence as ``sender``, approving an ERC-20 price first when needed."""
        offer = self.offer(offer_id)
        if offer.native:
            return self.send("buy", offer_id, value=offer.price)
        token = ERC20(self.w3, offer.currency, self.sender)
        if token.view("allowance", self.sender, self.address) < offer.price:
            token.send("approve", self.address, offer.price)
        return self.send("buy", offer_id)

    def node_registry(self) -> str:
        """The node registry this contract pays node owners from (fixed at deployment)."""
        return str(self.view("nodes"))

    def expires_at(self, holder: str, asset_id: int) -> int:
        return int(self.view("expiresAt", holder, asset_id))

    def owed(self, account: str, currency: str = NATIVE) -> int:
        return int(self.view("owed", account, currency))

    def withdraw(self, currency: str = NATIVE) -> Sent:
        return self.send("withdraw", currency)

    def pool(self, asset_id: int, tree_size: int, currency: str = NATIVE) -> int:
        return int(self.view("nodePool", asset_id, tree_size, currency))

    def claimed(self, asset_id: int, tree_size: int, node_id: str, currency: str = NATIVE) -> int:
        return int(self.view("claimed", asset_id, tree_size, currency, node_token_id(node_id)))

    def claim(
        self,
        asset_id: int,
        table: ContributionTable,
        node_id: str,
        currency: str = NATIVE,
        rows: int | None = None,
    ) -> Sent:
        """Claim ``node_id``'s share of the pool of ``table``'s checkpoint, as its owner.

        ``rows`` overrides the table's count (what a tampered claim would send)."""
        counted, path = table.path(node_id)
        return self.send(
            "claim",
            asset_id,
            table.tree_size,
            currency,
            node_token_id(node_id),
            counted if rows is None else rows,
            list(path.siblings),
            list(path.sums),
            path.left_mask,
        )

    def currency_decimals(self, currency: str) -> int:
        if int(currency, 16) == 0:
            return NATIVE_DECIMALS
        return int(ERC20(self.w3, currency).view("decimals"))

    def currency_symbol(self, currency: str) -> str:
        """The token's ``symbol()`` as shown to buyers: printable characters, at most
        ``MAX_SYMBOL`` of them, "?" when it has none (the offer's maker chose the token)."""
        try:
            raw = ERC20(self.w3, currency).view("symbol")
        except Exception:  # no symbol(): the address is still the currency
            return "?"
        shown = "".join(c for c in str(raw) if c.isprintable())[:MAX_SYMBOL]
        return shown or "?"

    def purchases(self, from_block: int, to_block: int, asset_ids: list[int]) -> list[Any]:
        """``LicencePurchased`` events of ``asset_ids`` in ``[from_block, to_block]`` (decoded,
        with their block hash, transaction hash and log index). The contract is shared: anyone
        can mint an asset and buy its licences at a wei, so the node filters on the (indexed)
        asset id, and none is read of an asset that is not asked for."""
        if not asset_ids:
            return []
        event = self.contract.events.LicencePurchased
        found = event.get_logs(
            from_block=from_block, to_block=to_block, argument_filters={"assetId": asset_ids}
        )
        return list(found)

    def describe_offer(self, offer: Offer) -> dict[str, Any]:
        decimals = self.currency_decimals(offer.currency)  # unreadable: no price to show
        symbol = "native" if offer.native else self.currency_symbol(offer.currency)
        return {
            "offer_id": offer.offer_id,
            "asset_id": offer.asset_id,
            "seller": offer.seller,
            "currency": offer.currency,
            "symbol": symbol,
            "decimals": decimals,
            "price_units": str(offer.price),
            "price": from_units(offer.price, decimals),
            "duration_s": offer.duration,
            "terms_sha256": offer.terms_hash.hex(),
            "active": offer.active,
        }


def buy_transactions(licences: DataLicences, offer: Offer, buyer: str) -> list[dict[str, Any]]:
    """The transactions a wallet sends to buy ``offer`` (EIP-1193 ``eth_sendTransaction``
    parameters): an ERC-20 ``approve`` when the allowance is short, then ``buy``."""
    txs = []
    value = 0
    if offer.native:
        value = offer.price
    else:
        token = ERC20(licences.w3, offer.currency)
        if token.view("allowance", buyer, licences.address) < offer.price:
            data = token.contract.encode_abi("approve", [licences.address, offer.price])
            txs.append({"from": buyer, "to": token.address, "data": data, "value": "0x0"})
    data = licences.contract.encode_abi("buy", [offer.offer_id])
    txs.append({"from": buyer, "to": licences.address, "data": data, "value": hex(value)})
    return txs
