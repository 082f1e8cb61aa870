"""Ethereum-style ECDSA wallets on libsecp256k1: sign digests, recover addresses.

Signatures are 65 bytes r‖s‖v with v ∈ {27, 28}; 0/1 are accepted on input.
High-s signatures are rejected (they are the malleated twin of a low-s one).
"""

from __future__ import annotations

import sha3  # safe-pysha3: C keccak, ~7x faster per call than pycryptodome's
from coincurve import PrivateKey, PublicKey

from tkms.crypto import curve

_HALF_ORDER = curve.ORDER // 2


class SignatureError(ValueError):
    """A signature is malformed or does not recover to a key."""


_keccak_256 = sha3.keccak_256


def keccak256(data: bytes) -> bytes:
    return _keccak_256(data).digest()  # type: ignore[no-any-return]


def address_of(public_key: PublicKey) -> bytes:
    return keccak256(bytes(public_key.format(compressed=False))[1:])[12:]


def address_hex(address: bytes) -> str:
    return "0x" + address.hex()


class Wallet:
    """A node's, gateway's or user's signing key. Its repr never shows the key."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        curve.parse_scalar(private_key)
        self._key = PrivateKey(private_key)
        self.address: bytes = address_of(self._key.public_key)

    @classmethod
    def generate(cls) -> Wallet:
        return cls(curve.scalar_to_bytes(curve.random_scalar()))

    def private_key_bytes(self) -> bytes:
        """For writing a key file; never for logs."""
        return bytes(self._key.secret)

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise SignatureError("a digest is 32 bytes")
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])

    def __repr__(self) -> str:
        return f"Wallet(address={address_hex(self.address)})"


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made ``signature`` over ``digest``."""
    if len(signature) != 65:
        raise SignatureError("a signature is 65 bytes")
    if len(digest) != 32:
        raise SignatureError("a digest is 32 bytes")
    v = signature[64]
    if v in (27, 28):
        v -= 27
    elif v not in (0, 1):
        raise SignatureError("signature v must be 27, 28, 0 or 1")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < curve.ORDER and 0 < s <= _HALF_ORDER):
        raise SignatureError("signature r or s out of range (high s is rejected)")
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), digest, hasher=None
        )
    except Exception:
        raise SignatureError("signature does not recover to a key") from None
    return address_of(public_key)
