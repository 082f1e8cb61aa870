"""Handles bound to their records (docs/binding.md): the 25 "random" bytes of a handle
are derived from the record it names.

``random = keccak256(DOMAIN ‖ handle[0:7] ‖ K ‖ iv ‖ keccak256(ciphertext))[0:25]``

Every input is of fixed length (7, 33, 12, 32 bytes after a fixed tag), so the
concatenation is unambiguous without length prefixes. keccak256, not SHA-256:
it is the hash the chain side computes natively (a contract, or a runner that
publishes a result, can recompute a binding at the EVM's keccak cost, where
SHA-256 is a precompile call), and the ciphertext's digest is what a
delegation request will carry to a node in place of the whole ciphertext.

Nothing here is secret (the handle, K, iv and ciphertext are all public), so
the check compares with ``==``: a timing difference tells nothing an attacker
does not already have. Pure: no I/O.
"""

from __future__ import annotations

from tkms.crypto.ecies import IV_LENGTH, EciesRecord
from tkms.crypto.wallet import keccak256
from tkms.protocol.handle import (
    HANDLE_LENGTH,
    RANDOM_LENGTH,
    SolidityType,
    input_handle_prefix,
)

DOMAIN = b"tkms/handle-binding/v1"
PREFIX_LENGTH = HANDLE_LENGTH - RANDOM_LENGTH  # version ‖ chainId ‖ type ‖ attributes
DIGEST_LENGTH = 32
POINT_LENGTH = 33


class BindingError(ValueError):
    """The inputs of a binding have the wrong shape (not: the binding does not match)."""


def ciphertext_digest(ciphertext: bytes) -> bytes:
    """The 32-byte digest of a record's ciphertext (what a node is given instead of it)."""
    return keccak256(ciphertext)


def record_digest(prefix: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes) -> bytes:
    """The whole 32-byte hash a binding is cut from: what a runner signs for a result
    handle, whose 25 last bytes come from the chain (protocol/result_binding.py).

    ``ephemeral_pubkey`` is K compressed (33 bytes); ``digest`` is
    :func:`ciphertext_digest` of the ciphertext.
    """
    if len(prefix) != PREFIX_LENGTH:
        raise BindingError(f"handle prefix must be {PREFIX_LENGTH} bytes")
    if len(ephemeral_pubkey) != POINT_LENGTH or ephemeral_pubkey[0] not in (2, 3):
        raise BindingError("K must be a 33-byte compressed point")
    if len(iv) != IV_LENGTH:
        raise BindingError(f"iv must be {IV_LENGTH} bytes")
    if len(digest) != DIGEST_LENGTH:
        raise BindingError(f"ciphertext digest must be {DIGEST_LENGTH} bytes")
    return keccak256(DOMAIN + prefix + ephemeral_pubkey + iv + digest)


def binding(prefix: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes) -> bytes:
    """The 25 bytes that follow ``prefix`` (a handle's first 7 bytes) in a bound handle."""
    return record_digest(prefix, ephemeral_pubkey, iv, digest)[:RANDOM_LENGTH]


def bound_handle(prefix: bytes, ephemeral_pubkey: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """The whole 32-byte handle of a record: ``prefix`` then its binding."""
    return prefix + binding(prefix, ephemeral_pubkey, iv, ciphertext_digest(ciphertext))


def is_bound(handle: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes) -> bool:
    """Whether ``handle`` names this record (K, iv, ciphertext digest).

    A record of the wrong shape is simply not bound (False), never an error:
    the caller treats both the same way. ``==`` suffices: nothing compared is secret.
    """
    if len(handle) != HANDLE_LENGTH:
        return False
    try:
        expected = binding(handle[:PREFIX_LENGTH], ephemeral_pubkey, iv, digest)
    except BindingError:
        return False
    return handle[PREFIX_LENGTH:] == expected


def bound_input_handle(
    chain_id: int, solidity_type: SolidityType | str, record: EciesRecord
) -> bytes:
    """The handle of a new gateway input: the layout of :func:`new_handle`, bound to ``record``."""
    return bound_handle(
        input_handle_prefix(chain_id, solidity_type),
        record.ephemeral_pubkey,
        record.iv,
        record.ciphertext,
    )
