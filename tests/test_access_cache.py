"""Verified tokens kept (protocol/access_cache.py): what is kept, what is checked again."""

from __future__ import annotations

import base64
import json

import pytest

from tkms.crypto import eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.access import SignedDataAccess
from tkms.protocol.access_cache import VerifiedTokens
from tkms.web.errors import ApiError

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("11" * 20)
NOW = 1_800_000_000
KEY = to_hex(rsa.public_key_der(rsa.generate_private_key()))


def header(
    wallet: Wallet, *, user: bytes | None = None, not_before: int = NOW - 10, ttl: int = 600
) -> str:
    message = {
        "userAddress": to_hex(user or wallet.address),
        "encryptionPubKey": KEY,
        "notBefore": not_before,
        "expiresAt": not_before + ttl,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=CONTRACT)
    signature = eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    token = json.dumps({"payload": message, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(token.encode()).decode()


def decode(
    tokens: VerifiedTokens, value: str | None, now: int = NOW, chain_id: int = CHAIN_ID
) -> SignedDataAccess:
    return tokens.decode(value, chain_id=chain_id, verifying_contract=CONTRACT, now=now)


def flip_signature_byte(value: str) -> str:
    """The same token with one byte of its signature changed (still base64 of JSON)."""
    data = json.loads(base64.b64decode(value.split(" ", 1)[1]))
    sig = bytearray.fromhex(data["signature"][2:])
    sig[10] ^= 1
    data["signature"] = to_hex(bytes(sig))
    return "EIP712 " + base64.b64encode(json.dumps(data).encode()).decode()


def test_a_kept_token_is_the_same_decision() -> None:
    wallet, tokens = Wallet.generate(), VerifiedTokens()
    value = header(wallet)
    first = decode(tokens, value)
    assert first.ecdsa_valid and len(tokens) == 1
    again = decode(tokens, value)
    assert again.access == first.access and again.ecdsa_valid


def test_a_kept_token_past_its_expiry_is_refused() -> None:
    tokens = VerifiedTokens()
    value = header(Wallet.generate(), ttl=60)
    decode(tokens, value)
    with pytest.raises(ApiError) as refused:
        decode(tokens, value, now=NOW - 10 + 60)
    assert (refused.value.status, refused.value.code) == (401, "expired")
    with pytest.raises(ApiError) as early:
        decode(tokens, value, now=NOW - 11)
    assert early.value.code == "not_yet_valid"


def test_a_token_one_byte_away_is_checked_again() -> None:
    wallet, tokens = Wallet.generate(), VerifiedTokens()
    value = header(wallet)
    decode(tokens, value)
    forged = decode(tokens, flip_signature_byte(value))
    # Recovered to someone else (or to nobody): not the user's, and not kept.
    assert not forged.ecdsa_valid
    assert len(tokens) == 1


def test_another_domain_is_checked_again() -> None:
    tokens = VerifiedTokens()
    value = header(Wallet.generate())
    decode(tokens, value)
    assert not decode(tokens, value, chain_id=CHAIN_ID + 1).ecdsa_valid


def test_a_refused_or_contract_signed_token_is_never_kept() -> None:
    tokens = VerifiedTokens()
    with pytest.raises(ApiError):
        decode(tokens, "EIP712 bm90IGpzb24=")
    with pytest.raises(ApiError):
        decode(tokens, header(Wallet.generate(), ttl=7200))  # window too long
    # A contract user: ECDSA recovers to its owner, not to userAddress (ERC-1271's case).
    contract_user = bytes.fromhex("22" * 20)
    signed = decode(tokens, header(Wallet.generate(), user=contract_user))
    assert not signed.ecdsa_valid and signed.access.user == contract_user
    assert len(tokens) == 0


def test_the_cache_is_bounded_least_recent_first() -> None:
    tokens = VerifiedTokens(max_entries=2)
    a, b, c = (header(Wallet.generate()) for _ in range(3))
    decode(tokens, a)
    decode(tokens, b)
    decode(tokens, a)  # a is now the most recent
    decode(tokens, c)
    assert len(tokens) == 2
    assert tokens.holds(a, chain_id=CHAIN_ID, verifying_contract=CONTRACT)
    assert not tokens.holds(b, chain_id=CHAIN_ID, verifying_contract=CONTRACT)


def test_cached_is_a_hit_with_its_window_checked_or_none() -> None:
    """The gateway's one lookup per read: a hit without a recovery, else None to decode."""
    wallet, tokens = Wallet.generate(), VerifiedTokens()
    value = header(wallet, ttl=60)

    def cached(now: int = NOW) -> SignedDataAccess | None:
        return tokens.cached(value, chain_id=CHAIN_ID, verifying_contract=CONTRACT, now=now)

    assert cached() is None and len(tokens) == 0  # a miss keeps nothing
    first = decode(tokens, value)
    hit = cached()
    assert hit is not None and hit.access == first.access and hit.ecdsa_valid
    with pytest.raises(ApiError) as refused:
        cached(NOW + 3600)
    assert refused.value.status == 401 and refused.value.code == "expired"
    assert tokens.cached(None, chain_id=CHAIN_ID, verifying_contract=CONTRACT, now=NOW) is None
    other = tokens.cached(value, chain_id=CHAIN_ID + 1, verifying_contract=CONTRACT, now=NOW)
    assert other is None
