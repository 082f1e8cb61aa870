"""ECIES on secp256k1 with HKDF-SHA256 and AES-256-GCM (protocol.md §1)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tkms.crypto import curve

HKDF_INFO_DATA = b"ECIES:AES_GCM:v1"
"""The info string of data records; other uses (DKG shares, sealing) take their own."""

_ZERO_SALT = bytes(32)
IV_LENGTH = 12


class EciesError(ValueError):
    """A record does not decrypt (wrong key, or altered)."""


@dataclass(frozen=True, slots=True)
class EciesRecord:
    ephemeral_pubkey: bytes
    iv: bytes
    ciphertext: bytes


def derive_key(shared_x: bytes, *, info: bytes = HKDF_INFO_DATA) -> bytes:
    """The AES-256 key from the 32-byte x-coordinate of the shared point."""
    if len(shared_x) != 32:
        raise EciesError("shared secret x-coordinate is 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_ZERO_SALT, info=info).derive(shared_x)


def encrypt(
    public_key: curve.Point, plaintext: bytes, *, info: bytes = HKDF_INFO_DATA
) -> EciesRecord:
    """Encrypt to ``public_key`` under a fresh ephemeral key and IV."""
    return _encrypt_from_parts(
        public_key, plaintext, curve.random_scalar(), os.urandom(IV_LENGTH), info=info
    )


def _encrypt_from_parts(
    public_key: curve.Point,
    plaintext: bytes,
    k: int,
    iv: bytes,
    *,
    info: bytes = HKDF_INFO_DATA,
) -> EciesRecord:
    """:func:`encrypt` with given ``k`` and ``iv``: for the test vectors only (as
    pyca keeps Fernet's ``_encrypt_from_parts``); a reused pair breaks AES-GCM."""
    if len(iv) != IV_LENGTH:
        raise EciesError("iv is 12 bytes")
    ephemeral = curve.base_mul(k)
    shared_x = curve.mul_secret_x(public_key, k)
    ciphertext = AESGCM(derive_key(shared_x, info=info)).encrypt(iv, plaintext, None)
    return EciesRecord(curve.encode_point(ephemeral), iv, ciphertext)


def decrypt_with_shared_x(
    shared_x: bytes, iv: bytes, ciphertext: bytes, *, info: bytes = HKDF_INFO_DATA
) -> bytes:
    """Decrypt a record given x(S), as a delegation client does."""
    if len(iv) != IV_LENGTH:
        raise EciesError("iv is 12 bytes")
    try:
        return AESGCM(derive_key(shared_x, info=info)).decrypt(iv, ciphertext, None)
    except InvalidTag:
        raise EciesError("ciphertext does not authenticate under this key") from None


def decrypt(private_key: int, record: EciesRecord, *, info: bytes = HKDF_INFO_DATA) -> bytes:
    """Decrypt with the whole private key (single-node mode, tests)."""
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    shared_x = curve.mul_secret_x(ephemeral, private_key)
    return decrypt_with_shared_x(shared_x, record.iv, record.ciphertext, info=info)
