"""RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) with SPKI DER public keys.

The requester's key seals every shared secret and partial: 2048..4096-bit
moduli and public exponent 65537 only, as protocol.md §2 fixes.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

RSAPublicKey = _rsa.RSAPublicKey
RSAPrivateKey = _rsa.RSAPrivateKey

MIN_BITS = 2048
MAX_BITS = 4096
PUBLIC_EXPONENT = 65537

_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


class RsaKeyError(ValueError):
    """Not an acceptable RSA public or private key."""


class RsaDecryptError(ValueError):
    """A ciphertext does not open under this key."""


def _check(key: _rsa.RSAPublicKey) -> None:
    if not MIN_BITS <= key.key_size <= MAX_BITS:
        raise RsaKeyError(f"RSA modulus must be {MIN_BITS}..{MAX_BITS} bits, got {key.key_size}")
    if key.public_numbers().e != PUBLIC_EXPONENT:
        raise RsaKeyError("RSA public exponent must be 65537")


@lru_cache(maxsize=1024)
def load_public_key(spki_der: bytes) -> RSAPublicKey:
    """Parse and check an SPKI DER key; cached because clients reuse their key.

    ``load_der_public_key`` also takes a bare PKCS#1 ``RSAPublicKey``; the
    protocol says SPKI, so the key must re-encode to exactly the bytes given
    (which also refuses non-canonical DER and RSA-PSS key identifiers).
    """
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError):
        raise RsaKeyError("not an SPKI DER public key") from None
    except Exception:  # OpenSSL may raise its own errors on hostile DER
        raise RsaKeyError("not an SPKI DER public key") from None
    if not isinstance(key, _rsa.RSAPublicKey):
        raise RsaKeyError("not an RSA public key")
    if public_key_der(key) != spki_der:
        raise RsaKeyError("not an SPKI DER public key")
    _check(key)
    return key


def encrypt(public_key: RSAPublicKey, plaintext: bytes) -> bytes:
    return public_key.encrypt(plaintext, _OAEP)


def decrypt(private_key: RSAPrivateKey, ciphertext: bytes) -> bytes:
    try:
        return private_key.decrypt(ciphertext, _OAEP)
    except ValueError:
        raise RsaDecryptError("RSA-OAEP ciphertext does not open under this key") from None


def generate_private_key(bits: int = 2048) -> RSAPrivateKey:
    return _rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)


def public_key_der(key: RSAPrivateKey | RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, _rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_der(key: RSAPrivateKey) -> bytes:
    """PKCS#8 DER, unencrypted: for a client's own key file (mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pkcs8_der: bytes) -> RSAPrivateKey:
    try:
        key = serialization.load_der_private_key(pkcs8_der, password=None)
    except Exception:
        raise RsaKeyError("not a PKCS#8 DER private key") from None
    if not isinstance(key, _rsa.RSAPrivateKey):
        raise RsaKeyError("not an RSA private key")
    _check(key.public_key())
    return key
