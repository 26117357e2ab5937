"""Sign-In with Ethereum (EIP-4361): a wallet proves itself and gets an API key bound to it.

The server hands out a nonce (random, single use, valid ``NONCE_TTL_S``, kept in the store so a
restart or a second server process honours it) with the message to sign for an address, and
binds the nonce to that exact message's SHA-256; the wallet signs it with ``personal_sign``
(EIP-191). ``verify`` parses the message strictly (the EIP-4361 layout, every field we issue,
nothing else), recovers the signer with eth-account, and refuses a message for another domain,
URI or chain, an expired or not-yet-valid one, one changed after it was issued (a page that
rewrites the statement or extends the expiry before the wallet signs), an unknown nonce and a
nonce already used (replay). The PyPI ``siwe`` package was not used: its
releases pin web3 < 8 and eth-account < 0.14, older than the project's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from market.entitlements import wallet_key
from market.store import MarketStore
from proofs.anchor import checksum_address

NONCE_TTL_S = 300
MESSAGE_TTL_S = 300
CLOCK_SKEW_S = 60
STATEMENT = "Sign in to the RDA marketplace: an API key bound to this wallet."
MAX_MESSAGE = 2048
_MESSAGE = re.compile(
    r"(?P<domain>[^\s/]+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n\n"
    r"(?P<statement>[^\n]+)\n\n"
    r"URI: (?P<uri>[^\s]+)\n"
    r"Version: 1\n"
    r"Chain ID: (?P<chain_id>[1-9][0-9]{0,18})\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{16,64})\n"
    r"Issued At: (?P<issued_at>[0-9TZ:.+-]{20,40})\n"
    r"Expiration Time: (?P<expiration>[0-9TZ:.+-]{20,40})"
)


class SignInRefused(ValueError):
    """The sign-in message or signature is not acceptable; the reason is safe to show."""


@dataclass(frozen=True)
class SignInPolicy:
    domain: str  # host[:port] the page is served from
    uri: str  # the origin, e.g. http://127.0.0.1:8787
    chain_id: int


def issue(store: MarketStore, policy: SignInPolicy, address: str) -> str:
    """A new nonce and the EIP-4361 message ``address`` signs with it. The nonce is bound to
    the SHA-256 of that exact message: whatever a page or wallet changes in it before signing
    (statement, expiry, URI, an added line) makes it a message this server never issued."""
    nonce = secrets.token_hex(16)
    message = message_for(policy, address, nonce)
    now = _now()
    with store._connect() as con:
        con.execute("DELETE FROM siwe_nonces WHERE expires_at < ?", [now])
        con.execute(
            "INSERT INTO siwe_nonces (nonce, issued_at, expires_at, used_at, message_sha256) "
            "VALUES (?, ?, ?, NULL, ?)",
            [nonce, now, now + dt.timedelta(seconds=NONCE_TTL_S), _digest(message)],
        )
    return message


def open_nonces(store: MarketStore) -> int:
    """Nonces handed out, neither used nor expired. The expired are deleted first: they hold no
    place (counted, ~10,000 requests never signed kept sign-in refused for good)."""
    with store._connect() as con:
        con.execute("DELETE FROM siwe_nonces WHERE expires_at < ?", [_now()])
        (count,) = con.execute("SELECT count(*) FROM siwe_nonces WHERE used_at IS NULL").fetchone()
    return int(count)


def message_for(policy: SignInPolicy, address: str, nonce: str) -> str:
    """The EIP-4361 message ``address`` signs to sign in with ``nonce``."""
    issued = _now().replace(microsecond=0)
    expires = issued + dt.timedelta(seconds=MESSAGE_TTL_S)
    return (
        f"{policy.domain} wants you to sign in with your Ethereum account:\n"
        f"{checksum_address(address)}\n\n{STATEMENT}\n\n"
        f"URI: {policy.uri}\nVersion: 1\nChain ID: {policy.chain_id}\nNonce: {nonce}\n"
        f"Issued At: {_iso(issued)}\nExpiration Time: {_iso(expires)}"
    )


def verify(store: MarketStore, policy: SignInPolicy, message: str, signature: str) -> str:
    """Check the signed message; consume its nonce; return the wallet (EIP-55 address)."""
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        raise SignInRefused("the message must be an EIP-4361 text of at most 2048 characters")
    fields = _MESSAGE.fullmatch(message)
    if fields is None:
        raise SignInRefused("not an EIP-4361 sign-in message of the form this server issues")
    if fields["domain"] != policy.domain or fields["uri"] != policy.uri:
        raise SignInRefused(f"the message is for {fields['domain']}, not {policy.domain}")
    if int(fields["chain_id"]) != policy.chain_id:
        raise SignInRefused(f"the message names chain {fields['chain_id']}, not {policy.chain_id}")
    now = _now()
    issued, expires = _time(fields["issued_at"]), _time(fields["expiration"])
    if issued > now + dt.timedelta(seconds=CLOCK_SKEW_S):
        raise SignInRefused("the message is issued in the future")
    if expires <= now:
        raise SignInRefused("the message has expired: sign in again")
    wallet = checksum_address(fields["address"])
    if _signer(message, signature) != wallet:
        raise SignInRefused("the signature is not by the address in the message")
    with store._connect() as con:
        used = con.execute(
            "UPDATE siwe_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL "
            "AND expires_at > ? AND message_sha256 = ? RETURNING nonce",
            [now, fields["nonce"], now, _digest(message)],
        ).fetchall()
        issued = con.execute(
            "SELECT message_sha256 FROM siwe_nonces WHERE nonce = ?", [fields["nonce"]]
        ).fetchone()
    if used:
        return wallet
    if issued is not None and issued[0] != _digest(message):
        raise SignInRefused("the message is not the one issued with its nonce: sign in again")
    raise SignInRefused("unknown, expired or already used nonce: ask for a new one")


def sign_in(store: MarketStore, policy: SignInPolicy, message: str, signature: str) -> dict:
    """``verify``, then a new API key bound to the wallet."""
    wallet = verify(store, policy, message, signature)
    return {"wallet": wallet, "buyer": wallet, "api_key": wallet_key(store, wallet)}


def _signer(message: str, signature: str) -> str | None:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    if not isinstance(signature, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
        raise SignInRefused("the signature must be 65 bytes as 0x and 130 hex digits")
    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # an invalid point or recovery id: no signer
        return None


def _digest(message: str) -> str:
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SignInRefused(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise SignInRefused(f"{text!r} has no time zone")
    return moment
