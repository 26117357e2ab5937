"""Wallet sign-in (EIP-4361) under attack: replay, expiry, another domain, URI or chain, and a
page that rewrites the message before the wallet signs it. Real signatures (eth-account), a real
marketplace store (DuckDB); no chain is needed to sign in."""

from __future__ import annotations

import datetime as dt

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from market import entitlements
from market.siwe import SignInPolicy, SignInRefused, issue, message_for, sign_in, verify
from market.store import KEY_PREFIX, MarketStore

POLICY = SignInPolicy("127.0.0.1:8787", "http://127.0.0.1:8787", 31337)
WALLET = Account.from_key(b"\x01" * 32)
OTHER = Account.from_key(b"\x02" * 32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return MarketStore(tmp_path_factory.mktemp("siwe") / "market.duckdb")


def signed(message: str, account=WALLET) -> str:
    return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()


def test_a_signed_message_gives_a_key_bound_to_the_wallet_once(store):
    message = issue(store, POLICY, WALLET.address)
    answer = sign_in(store, POLICY, message, signed(message))
    assert answer["wallet"] == WALLET.address and answer["api_key"].startswith(KEY_PREFIX)
    with pytest.raises(SignInRefused, match="already used"):
        verify(store, POLICY, message, signed(message))


def _with_times(message: str, issued: dt.datetime, expires: dt.datetime) -> str:
    lines = message.split("\n")
    lines[-2] = "Issued At: " + issued.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines[-1] = "Expiration Time: " + expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return "\n".join(lines)


def test_an_expired_message_is_refused(store):
    now = dt.datetime.now(dt.timezone.utc)
    message = _with_times(
        issue(store, POLICY, WALLET.address), now - dt.timedelta(hours=2), now - dt.timedelta(1)
    )
    with pytest.raises(SignInRefused, match="expired"):
        verify(store, POLICY, message, signed(message))


def test_a_message_issued_in_the_future_is_refused(store):
    now = dt.datetime.now(dt.timezone.utc)
    message = _with_times(
        issue(store, POLICY, WALLET.address), now + dt.timedelta(hours=1), now + dt.timedelta(2)
    )
    with pytest.raises(SignInRefused, match="future"):
        verify(store, POLICY, message, signed(message))


def test_an_expired_nonce_is_refused(store):
    message = issue(store, POLICY, WALLET.address)
    nonce = message.split("Nonce: ")[1].split("\n")[0]
    with store._connect() as con:  # the nonce's five minutes are over
        con.execute(
            "UPDATE siwe_nonces SET expires_at = now() - INTERVAL 1 SECOND WHERE nonce = ?",
            [nonce],
        )
    with pytest.raises(SignInRefused, match="unknown, expired or already used nonce"):
        verify(store, POLICY, message, signed(message))


def test_a_nonce_this_server_never_issued_is_refused(store):
    message = message_for(POLICY, WALLET.address, "a" * 32)
    with pytest.raises(SignInRefused, match="unknown, expired or already used nonce"):
        verify(store, POLICY, message, signed(message))


@pytest.mark.parametrize(
    ("policy", "refusal"),
    [
        (SignInPolicy("evil.example", "https://evil.example", 31337), "not 127.0.0.1:8787"),
        (SignInPolicy("127.0.0.1:8787", "https://127.0.0.1:8787", 31337), "not 127.0.0.1:8787"),
        (SignInPolicy("127.0.0.1:8787", "http://127.0.0.1:8787", 1), "names chain 1, not 31337"),
    ],
    ids=["another domain", "another URI", "another chain"],
)
def test_a_message_for_another_domain_uri_or_chain_is_refused(store, policy, refusal):
    message = issue(store, policy, WALLET.address)  # as another server would issue it
    with pytest.raises(SignInRefused, match=refusal):
        verify(store, POLICY, message, signed(message))


def test_a_signature_by_another_wallet_is_refused(store):
    message = issue(store, POLICY, WALLET.address)
    with pytest.raises(SignInRefused, match="not by the address"):
        verify(store, POLICY, message, signed(message, OTHER))


_REWRITES = {
    # A hostile page (or script in it) edits what the wallet shows before it is signed.
    "statement": lambda m: m.replace("Sign in to the RDA marketplace", "Claim your free tokens"),
    "longer expiry": lambda m: (
        m[: m.rindex("Expiration Time: ")] + "Expiration Time: 2099-01-01T00:00:00Z"
    ),
    "address swapped": lambda m: m.replace(WALLET.address, OTHER.address),
}


@pytest.mark.parametrize("rewrite", sorted(_REWRITES))
def test_a_message_rewritten_before_signing_is_refused(store, rewrite):
    message = issue(store, POLICY, WALLET.address)
    changed = _REWRITES[rewrite](message)
    signer = OTHER if rewrite == "address swapped" else WALLET
    with pytest.raises(SignInRefused, match="not the one issued"):
        verify(store, POLICY, changed, signed(changed, signer))
    answer = sign_in(store, POLICY, message, signed(message))  # the nonce was not burnt
    assert answer["wallet"] == WALLET.address


@pytest.mark.parametrize(
    "hostile",
    [
        "appended line",
        "CRLF",
        "oversized",
        "not text",
        "bad signature",
    ],
)
def test_hostile_message_shapes_are_refused_before_any_signature_check(store, hostile):
    message = issue(store, POLICY, WALLET.address)
    signature = signed(message)
    shaped = {
        "appended line": (message + "\nResources:\n- https://evil.example", signature),
        "CRLF": (message.replace("\n", "\r\n"), signature),
        "oversized": (message + "x" * 5000, signature),
        "not text": ({"message": message}, signature),
        "bad signature": (message, "0x" + "zz" * 65),
    }[hostile]
    with pytest.raises(SignInRefused):
        verify(store, POLICY, *shaped)
    assert sign_in(store, POLICY, message, signature)["wallet"] == WALLET.address


def test_wallets_holding_no_licence_are_kept_up_to_a_cap_the_oldest_going_first(
    tmp_path, monkeypatch
):
    """A sign-in is free (a throwaway wallet signs) and made a buyer the server reads again on
    every change: 300 in a minute (red team). Past the cap the longest-standing unlicensed
    wallet buyers go; a licensed one stays, and signing in again brings one back."""
    monkeypatch.setattr(entitlements, "MAX_UNLICENSED_WALLETS", 3)
    store = MarketStore(tmp_path / "market.duckdb")
    wallets = [Account.from_key(bytes([9 + i]) * 32) for i in range(5)]

    def sign_in_as(account) -> str:
        message = issue(store, POLICY, account.address)
        return sign_in(store, POLICY, message, signed(message, account))["api_key"]

    keys = [sign_in_as(wallets[0])]
    store.grant(wallets[0].address, "radio_kpi.v1")  # licensed: never pruned
    keys += [sign_in_as(account) for account in wallets[1:]]
    snapshot = store.snapshot()
    known = {w.address for w, key in zip(wallets, keys, strict=True) if snapshot.buyer_for_key(key)}
    assert known == {wallets[i].address for i in (0, 2, 3, 4)}
    again = sign_in_as(wallets[1])
    assert store.snapshot().buyer_for_key(again).name == wallets[1].address
    assert store.snapshot().buyer_for_key(keys[2]) is None  # the oldest unlicensed now
