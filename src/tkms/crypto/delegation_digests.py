"""The delegation statements hashed on every request, straight-line.

``eip712.digest`` walks a statement's field list, encodes each field through a
generic encoder and takes a message dict; the delegation's statements are hashed
per request (a node its request's ``DelegateAuthorization`` when the recovered
signer is not cached, the proof of each answer it signs; the gateway and the SDK
the proof of each answer they check; the gateway the ``HandleThresholdMaterial`` it
signs over a read's partials). Here each is the few keccaks its type
fixes: the same bytes as ``eip712.digest`` (tests/test_delegation_digests.py;
eip712.digest is held to eth-account by tests/test_eip712_statements.py), and any
input the fast lines do not expect (a non-ASCII string, a type other than the
exact one) goes through ``eip712.digest``, which gives the same answer or the
same error.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.wallet import keccak256

_REQUEST = eip712.DELEGATE_AUTHORIZATION
_REQUEST_TYPE = _REQUEST.type_hashes[_REQUEST.primary]
_V0_ANSWER = eip712.DELEGATE_RESPONSE_PROOF
_V0_ANSWER_TYPE = _V0_ANSWER.type_hashes[_V0_ANSWER.primary]
_BATCH = eip712.BATCH_DELEGATE_AUTHORIZATION
_BATCH_TYPE = _BATCH.type_hashes[_BATCH.primary]
_BATCH_ANSWER = eip712.PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF
_BATCH_ANSWER_TYPE = _BATCH_ANSWER.type_hashes[_BATCH_ANSWER.primary]
_PARTIAL = eip712.PARTIAL_DELEGATE_RESPONSE_PROOF
_PARTIAL_TYPE = _PARTIAL.type_hashes[_PARTIAL.primary]
_MATERIAL = eip712.HANDLE_THRESHOLD_MATERIAL
_MATERIAL_TYPE = _MATERIAL.type_hashes[_MATERIAL.primary]
_SHARE_TYPE = _MATERIAL.type_hashes["PartialShare"]
_UINT256 = 2**256


# An exact str that is ASCII (``type(v) is str and v.isascii()``, written out where used:
# a helper would be a call per value) is its own UTF-8: ``encode()`` cannot raise on it, as
# it would on a lone surrogate, which the generic path answers for.


@lru_cache(maxsize=256)
def _request_separator(chain_id: int) -> bytes:
    """The request's domain has no salt: its separator is the chain's (exact ints only)."""
    return eip712.domain_separator(eip712.delegate_domain(chain_id))


def _answer_separator(chain_id: int, salt: bytes) -> bytes:
    return eip712.domain_separator(eip712.delegate_domain(chain_id, salt))


def _all_ascii(values: Sequence[object]) -> bool:
    for v in values:  # noqa: SIM110 (all() of a generator: one more frame per value)
        if type(v) is not str or not v.isascii():
            return False
    return True


def request_digest(chain_id: int, ephemeral_pubkey: str, target_pubkey: str) -> bytes:
    """``DelegateAuthorization(ephemeralPubKey, targetPubKey)`` in the chain's request domain."""
    if not (
        type(chain_id) is int
        and type(ephemeral_pubkey) is str
        and ephemeral_pubkey.isascii()
        and type(target_pubkey) is str
        and target_pubkey.isascii()
    ):
        message = {"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey}
        return eip712.digest(eip712.delegate_domain(chain_id), _REQUEST, message)
    struct = keccak256(
        _REQUEST_TYPE + keccak256(ephemeral_pubkey.encode()) + keccak256(target_pubkey.encode())
    )
    return keccak256(b"\x19\x01" + _request_separator(chain_id) + struct)


def v0_answer_digest(chain_id: int, salt: bytes, encrypted_shared_secret: str) -> bytes:
    """``DelegateResponseProof(encryptedSharedSecret)`` in the salted domain of the request."""
    if not (
        type(chain_id) is int
        and type(encrypted_shared_secret) is str
        and encrypted_shared_secret.isascii()
    ):
        message = {"encryptedSharedSecret": encrypted_shared_secret}
        return eip712.digest(eip712.delegate_domain(chain_id, salt), _V0_ANSWER, message)
    struct = keccak256(_V0_ANSWER_TYPE + keccak256(encrypted_shared_secret.encode()))
    return keccak256(b"\x19\x01" + _answer_separator(chain_id, salt) + struct)


def partial_answer_digest(
    chain_id: int, salt: bytes, index: int, epoch: int, encrypted_partial: str
) -> bytes:
    """``PartialDelegateResponseProof(index, epoch, encryptedPartial)``, salted domain: a
    node signs one per partial, the gateway checks t + spare of them per read, the SDK t."""
    if not (
        type(chain_id) is int
        and type(index) is int
        and type(epoch) is int
        and type(encrypted_partial) is str
        and encrypted_partial.isascii()
    ):
        message = {"index": index, "epoch": epoch, "encryptedPartial": encrypted_partial}
        return eip712.digest(eip712.delegate_domain(chain_id, salt), _PARTIAL, message)
    struct = keccak256(_partial_head(index, epoch) + keccak256(encrypted_partial.encode()))
    return keccak256(b"\x19\x01" + _answer_separator(chain_id, salt) + struct)


@lru_cache(maxsize=64)
def _partial_head(index: int, epoch: int) -> bytes:
    """``typeHash ‖ uint256(index) ‖ uint256(epoch)``: a node's, for each epoch it holds."""
    if not (0 <= index < 2**256 and 0 <= epoch < 2**256):
        raise eip712.Eip712Error("uint256 value out of range")
    return _PARTIAL_TYPE + index.to_bytes(32, "big") + epoch.to_bytes(32, "big")


def _strings(values: Sequence[str]) -> bytes:
    """A ``string[]`` field's encoding: keccak of its elements' keccaks, concatenated."""
    return keccak256(b"".join([keccak256(v.encode()) for v in values]))


def batch_request_digest(chain_id: int, ephemeral_pubkeys: Sequence[str], target: str) -> bytes:
    """``BatchDelegateAuthorization(ephemeralPubKeys, targetPubKey)``, the request domain."""
    if not (
        type(chain_id) is int
        and type(target) is str
        and target.isascii()
        and _all_ascii(ephemeral_pubkeys)
    ):
        message = {"ephemeralPubKeys": list(ephemeral_pubkeys), "targetPubKey": target}
        return eip712.digest(eip712.delegate_domain(chain_id), _BATCH, message)
    struct = keccak256(_BATCH_TYPE + _strings(ephemeral_pubkeys) + keccak256(target.encode()))
    return keccak256(b"\x19\x01" + _request_separator(chain_id) + struct)


def batch_answer_digest(
    chain_id: int, salt: bytes, index: int, epoch: int, encrypted_partials: Sequence[str]
) -> bytes:
    """``PartialBatchDelegateResponseProof(index, epoch, encryptedPartials)``, salted domain."""
    if (
        type(chain_id) is not int
        or type(index) is not int
        or type(epoch) is not int
        or not 0 <= index < 2**256
        or not 0 <= epoch < 2**256
        or not _all_ascii(encrypted_partials)
    ):
        message = {"index": index, "epoch": epoch, "encryptedPartials": list(encrypted_partials)}
        return eip712.digest(eip712.delegate_domain(chain_id, salt), _BATCH_ANSWER, message)
    struct = keccak256(
        _BATCH_ANSWER_TYPE
        + index.to_bytes(32, "big")
        + epoch.to_bytes(32, "big")
        + _strings(encrypted_partials)
    )
    return keccak256(b"\x19\x01" + _answer_separator(chain_id, salt) + struct)


def threshold_material_digest(chain_id: int, salt: bytes, payload: dict[str, Any]) -> bytes:
    """``HandleThresholdMaterial`` (a threshold read's answer: its record and partials) in
    the salted ``Handle Gateway`` domain; a payload the fast line does not take (a field
    missing or of another type, a non-ASCII string) goes through ``eip712.digest``. Keys
    outside the statement (``bindingSignature``) are not signed, on either path."""
    struct = _threshold_material_struct(payload)
    domain = eip712.gateway_domain(chain_id, salt=salt)
    if struct is None:
        return eip712.digest(domain, _MATERIAL, payload)
    return keccak256(b"\x19\x01" + eip712.domain_separator(domain) + struct)


def _text(value: object) -> bytes | None:
    """An exact ASCII str's keccak (ASCII is its own UTF-8), else None: the generic path."""
    if type(value) is not str or not value.isascii():
        return None
    return keccak256(value.encode())


def _uint(value: object) -> bytes | None:
    if type(value) is not int or not 0 <= value < _UINT256:
        return None
    return value.to_bytes(32, "big")


def _threshold_material_struct(payload: dict[str, Any]) -> bytes | None:
    """hashStruct(HandleThresholdMaterial), or None for what only the generic path answers."""
    fields = [
        _text(payload.get("handle")),
        _text(payload.get("ciphertext")),
        _text(payload.get("iv")),
        _text(payload.get("ephemeralPubKey")),
        _uint(payload.get("epoch")),
        _uint(payload.get("threshold")),
    ]
    partials = payload.get("partials")
    if type(partials) is not list:
        return None
    encoded = [field for field in fields if field is not None]
    for share in partials:
        if type(share) is not dict:
            return None
        index = _uint(share.get("index"))
        sealed = _text(share.get("encryptedPartial"))
        proof = _text(share.get("proof"))
        if index is None or sealed is None or proof is None:
            return None
        encoded.append(keccak256(_SHARE_TYPE + index + sealed + proof))
    if len(encoded) != len(fields) + len(partials):  # a field the fast line does not take
        return None
    head, shares = encoded[: len(fields)], encoded[len(fields) :]
    return keccak256(_MATERIAL_TYPE + b"".join(head) + keccak256(b"".join(shares)))
