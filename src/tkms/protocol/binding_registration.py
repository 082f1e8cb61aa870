"""The admin's registration of the bindings of imported records (docs/binding.md, "Records
imported from a nox deployment").

A nox deployment's handles are random: nothing in them names their record, so check 5 of a
``user``-mode node (docs/node-authorization.md) cannot recompute their binding. During the
migration the committee's admin (``TKMS_NODE_DKG_ADMIN_ADDRESS``) tells every node, once,
which record each imported handle names: per entry the handle and ``record``, the very
32-byte hash a bound handle is cut from (:func:`tkms.protocol.binding.record_digest`). The
statement is EIP-712 in the DKG's domain (``tkms DKG``/``1``/chainId: the chain is the
domain's)::

    BindingRegistration(bytes32 entriesDigest, uint256 count, bytes32 nonce, uint256 expiresAt)
    entriesDigest = keccak256(handle_1 ‖ record_1 ‖ … ‖ handle_n ‖ record_n)   (64 bytes each)

Every entry is 64 bytes, so the concatenation is unambiguous; ``count`` is signed too so
that a wallet shows how many handles it vouches for. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import SignatureError, Wallet, keccak256
from tkms.protocol.binding import PREFIX_LENGTH, ciphertext_digest, record_digest
from tkms.protocol.handle import HANDLE_LENGTH

MAX_ENTRIES = 1000
"""The most entries of one ``POST /v1/bindings/register`` (its body limit follows)."""
MAX_LIFETIME = 24 * 3600
"""How far ahead a registration may expire (as a DKG start)."""
RECORD_LENGTH = 32


@dataclass(frozen=True, slots=True)
class BindingEntry:
    handle: bytes
    record: bytes

    def to_json(self) -> dict[str, str]:
        return {"handle": to_hex(self.handle), "record": to_hex(self.record)}


def record_of(handle: bytes, ephemeral_pubkey: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """The ``record`` of an entry: the binding hash of this record under ``handle``'s prefix."""
    if len(handle) != HANDLE_LENGTH:
        raise ValueError(f"handle must be {HANDLE_LENGTH} bytes")
    return record_digest(
        handle[:PREFIX_LENGTH], ephemeral_pubkey, iv, ciphertext_digest(ciphertext)
    )


def entries_digest(entries: Sequence[BindingEntry]) -> bytes:
    return keccak256(b"".join(e.handle + e.record for e in entries))


def _message(entries: Sequence[BindingEntry], nonce: bytes, expires_at: int) -> dict[str, Any]:
    return {
        "entriesDigest": entries_digest(entries),
        "count": len(entries),
        "nonce": nonce,
        "expiresAt": expires_at,
    }


def registration_body(
    admin: Wallet, chain_id: int, entries: Sequence[BindingEntry], nonce: bytes, expires_at: int
) -> dict[str, Any]:
    """The body of ``POST /v1/bindings/register``, signed by the admin."""
    signature = eip712.sign(
        admin,
        eip712.dkg_domain(chain_id),
        eip712.BINDING_REGISTRATION,
        _message(entries, nonce, expires_at),
    )
    return {
        "chainId": chain_id,
        "entries": [e.to_json() for e in entries],
        "nonce": to_hex(nonce),
        "expiresAt": expires_at,
        "authorization": to_hex(signature),
    }


def registration_digest(
    chain_id: int, entries: Sequence[BindingEntry], nonce: bytes, expires_at: int
) -> bytes:
    """The EIP-712 digest the admin signs (the node recovers its signer from it)."""
    return eip712.digest(
        eip712.dkg_domain(chain_id),
        eip712.BINDING_REGISTRATION,
        _message(entries, nonce, expires_at),
    )


def registration_signer(
    chain_id: int,
    entries: Sequence[BindingEntry],
    nonce: bytes,
    expires_at: int,
    signature: bytes,
) -> bytes | None:
    """Who signed this registration (None: not a signature)."""
    try:
        return eip712.recover(
            eip712.dkg_domain(chain_id),
            eip712.BINDING_REGISTRATION,
            _message(entries, nonce, expires_at),
            signature,
        )
    except (SignatureError, eip712.Eip712Error, ValueError):
        return None


def summary(answer: Mapping[str, Any]) -> tuple[int, int, list[str]]:
    """(created, unchanged, conflicted handles) of a node's answer; ValueError if malformed."""
    created, unchanged, conflicted = (answer.get(k) for k in ("created", "unchanged", "conflicted"))
    if not isinstance(created, int) or not isinstance(unchanged, int):
        raise ValueError("created and unchanged must be integers")
    if not isinstance(conflicted, list) or not all(isinstance(h, str) for h in conflicted):
        raise ValueError("conflicted must be a list of handles")
    return created, unchanged, conflicted
