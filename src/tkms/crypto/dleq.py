"""Chaum–Pedersen proof that ``log_G(Y_i) = log_K(S_i)`` (protocol.md §3.3).

A node proves its partial ``S_i = x_i·K`` was made with the share behind its
verification key ``Y_i``; the transcript, the Fiat–Shamir hash and the proof
layout ``c ‖ z`` are fixed by the protocol, so clients in any language verify it.
"""

from __future__ import annotations

import hashlib

from coincurve import PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from tkms.crypto import curve
from tkms.crypto.curve import GENERATOR, ORDER, Point

DST = b"KMS-DLEQ-secp256k1-SHA256-v1"
PROOF_LENGTH = 64

_G_ENC = curve.encode_point(GENERATOR)
# The hash prefix is the same for every proof: hash it once, copy per proof.
_PREFIX = hashlib.sha256(DST + _G_ENC)


class DleqError(ValueError):
    """Unusable inputs to a proof (never carries the secret)."""


def challenge(y_enc: bytes, k_enc: bytes, s_enc: bytes, a1_enc: bytes, a2_enc: bytes) -> int:
    """``c = SHA-256(DST ‖ enc(G) ‖ enc(Y_i) ‖ enc(K) ‖ enc(S_i) ‖ enc(A1) ‖ enc(A2)) mod n``."""
    h = _PREFIX.copy()
    h.update(y_enc + k_enc + s_enc + a1_enc + a2_enc)
    return int.from_bytes(h.digest(), "big") % ORDER


def prove(x_i: int, K: Point, *, Y_i: Point | None = None, S_i: Point | None = None) -> bytes:
    """The 64-byte proof ``c ‖ z``; ``Y_i``/``S_i`` are recomputed when not given.

    The nonce is always fresh from the OS CSPRNG: a repeated nonce reveals ``x_i``.
    """
    return _prove_from_parts(x_i, K, curve.random_scalar(), Y_i=Y_i, S_i=S_i)


def _prove_from_parts(
    x_i: int, K: Point, nonce: int, *, Y_i: Point | None = None, S_i: Point | None = None
) -> bytes:
    """:func:`prove` with a given nonce: for the test vectors only, never shipped to callers."""
    y_enc = curve.encode_point(Y_i if Y_i is not None else curve.base_mul(x_i))
    s_enc = curve.encode_point(S_i) if S_i is not None else curve.mul_secret_encoded(K, x_i)
    return _prove(x_i, K, curve.encode_point(K), y_enc, s_enc, nonce)


def _prove(x_i: int, K: Point, k_enc: bytes, y_enc: bytes, s_enc: bytes, r: int) -> bytes:
    if not 1 <= x_i < ORDER:
        raise DleqError("the share must lie in [1, n-1]")
    if not 1 <= r < ORDER:
        raise DleqError("the nonce must lie in [1, n-1]")
    a1 = curve.encode_point(curve.base_mul(r))
    a2 = curve.mul_secret_encoded(K, r)
    c = challenge(y_enc, k_enc, s_enc, a1, a2)
    z = (r + c * x_i) % ORDER
    return curve.scalar_to_bytes(c) + curve.scalar_to_bytes(z)


class Prover:
    """A node's partial-and-proof maker with its verification key encoded once.

    ``partial(K)`` returns ``(enc(S_i), c ‖ z)`` — the hot path of every
    threshold delegation. The share is never shown by repr.
    """

    __slots__ = ("_x", "_y_enc")

    def __init__(self, x_i: int) -> None:
        if not 1 <= x_i < ORDER:
            raise DleqError("the share must lie in [1, n-1]")
        self._x = x_i
        self._y_enc = curve.encode_point(curve.base_mul(x_i))

    @property
    def verification_key(self) -> bytes:
        return self._y_enc

    def partial(self, K: Point) -> tuple[bytes, bytes]:
        return self._partial_from_parts(K, curve.random_scalar())

    def _partial_from_parts(self, K: Point, nonce: int) -> tuple[bytes, bytes]:
        """:meth:`partial` with a given nonce: for the test vectors only."""
        s_enc = curve.mul_secret_encoded(K, self._x)
        proof = _prove(self._x, K, curve.encode_point(K), self._y_enc, s_enc, nonce)
        return s_enc, proof

    def __repr__(self) -> str:
        return "Prover(share=<hidden>)"


def _commitment(z_term: Point | None, point: Point, c: int) -> bytes | None:
    """``enc(z_term − c·point)``, or None at infinity (``z_term`` None is zero)."""
    terms = [] if z_term is None else [z_term]
    if c:
        terms.append(point.multiply(curve.scalar_to_bytes(ORDER - c)))
    if not terms:
        return None
    try:
        combined = terms[0] if len(terms) == 1 else PublicKey.combine_keys(terms)
    except ValueError:
        return None
    return bytes(combined.format(compressed=True))


def verify(Y_i: Point, K: Point, S_i: Point, proof: bytes) -> bool:
    """True iff ``proof`` is a valid §3.3 proof for ``(Y_i, K, S_i)``; never raises."""
    try:
        if not isinstance(proof, bytes | bytearray) or len(proof) != PROOF_LENGTH:
            return False
        c = int.from_bytes(proof[:32], "big")
        z = int.from_bytes(proof[32:], "big")
        if c >= ORDER or z >= ORDER:
            return False
        if c and z:  # every honest proof but with negligible probability
            commitments = _commitments(
                Y_i, K, S_i, bytes(proof[32:]), curve.scalar_to_bytes(ORDER - c)
            )
        else:
            commitments = _commitments_generic(Y_i, K, S_i, c, z)
        if commitments is None:
            return False
        y_enc = curve.encode_point(Y_i)
        k_enc = curve.encode_point(K)
        s_enc = curve.encode_point(S_i)
        return challenge(y_enc, k_enc, s_enc, *commitments) == c
    except Exception:  # hostile input must read as "invalid", whatever it trips
        return False


def _commitments_generic(
    Y_i: Point, K: Point, S_i: Point, c: int, z: int
) -> tuple[bytes, bytes] | None:
    a1 = _commitment(curve.base_mul(z) if z else None, Y_i, c)
    a2 = _commitment(K.multiply(curve.scalar_to_bytes(z)) if z else None, S_i, c)
    return None if a1 is None or a2 is None else (a1, a2)


_CTX = GLOBAL_CONTEXT.ctx
_new = ffi.new


def _commitments(
    Y_i: Point, K: Point, S_i: Point, z: bytes, minus_c: bytes
) -> tuple[bytes, bytes] | None:
    """``(enc(z·G − c·Y_i), enc(z·K − c·S_i))`` for ``z``, ``c`` in [1, n-1], None at infinity.

    The same four multiplications as :func:`_commitment`'s, on libsecp256k1 directly:
    coincurve's wrappers (a key object, a scalar check and a copy per step) cost
    about a fifth of a proof's check (bench/sdk_decrypt.py). Every value is public.
    """
    z_g, c_y = _new("secp256k1_pubkey *"), _new("secp256k1_pubkey *")
    z_k, c_s = _new("secp256k1_pubkey *"), _new("secp256k1_pubkey *")
    ffi.memmove(c_y, Y_i.public_key, 64)
    ffi.memmove(z_k, K.public_key, 64)
    ffi.memmove(c_s, S_i.public_key, 64)
    a1, a2 = _new("secp256k1_pubkey *"), _new("secp256k1_pubkey *")
    if not (
        lib.secp256k1_ec_pubkey_create(_CTX, z_g, z)
        and lib.secp256k1_ec_pubkey_tweak_mul(_CTX, c_y, minus_c)
        and lib.secp256k1_ec_pubkey_tweak_mul(_CTX, z_k, z)
        and lib.secp256k1_ec_pubkey_tweak_mul(_CTX, c_s, minus_c)
        and lib.secp256k1_ec_pubkey_combine(_CTX, a1, [z_g, c_y], 2)
        and lib.secp256k1_ec_pubkey_combine(_CTX, a2, [z_k, c_s], 2)
    ):
        return None  # a sum at infinity: no valid proof has one
    return _serialize(a1), _serialize(a2)


def _serialize(point: object) -> bytes:
    out, length = _new("unsigned char[33]"), _new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, length, point, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, 33))


def verify_encoded(y_enc: bytes, k_enc: bytes, s_enc: bytes, proof: bytes) -> bool:
    """:func:`verify` on wire encodings; anything that does not parse is invalid."""
    try:
        points = [curve.parse_point(e) for e in (y_enc, k_enc, s_enc)]
    except (curve.CurveError, TypeError):
        return False
    return verify(points[0], points[1], points[2], proof)
