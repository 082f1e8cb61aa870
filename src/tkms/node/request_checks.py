"""The checks every delegate route runs on a request, v0 and v1 alike, in nox-kms's order.

chain → salt (the caller's) → Authorization present and well-formed → JSON
body → EIP-712 signer of ``DelegateAuthorization`` over the raw strings →
ephemeral point → RSA target key. Each refusal is an ``ApiError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tkms.crypto import curve, eip712, rsa
from tkms.crypto.delegation_digests import request_digest
from tkms.crypto.encoding import EncodingError, parse_hex
from tkms.crypto.wallet import SignatureError, recover_address
from tkms.node.audit import AuditNote
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object
from tkms.web.params import parse_chain_id


def chain_of_request(raw: str | None, chains: Mapping[int, Any]) -> int:
    """The request's chain: given and configured, or the only one configured."""
    if raw is None:
        if len(chains) == 1:
            only: int = next(iter(chains))
            return only
        raise ApiError(400, "missing_chain_id", "query parameter chain_id is required")
    chain_id = _chain_id(raw)
    if chain_id not in chains:
        raise ApiError(400, "unknown_chain", f"chain {chain_id} is not configured on this node")
    return chain_id


@lru_cache(maxsize=64)
def _chain_id(raw: str) -> int:
    """``parse_chain_id``, kept: a partial's route, ``ready`` and checks each resolve the
    same few strings (a refusal raises, and lru_cache keeps no exception)."""
    return parse_chain_id(raw)


def parse_bearer(header: str | None) -> bytes:
    if header is None:
        raise ApiError(401, "missing_authorization", "Authorization: Bearer 0x<signature> required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "invalid_authorization", "Authorization must be 'Bearer 0x<sig>'")
    try:
        return parse_hex(token.strip(), name="signature", length=65)
    except EncodingError as exc:
        raise ApiError(401, "invalid_authorization", str(exc)) from None


@dataclass(frozen=True, slots=True)
class DelegateBody:
    ephemeral_pubkey: str
    target_pubkey: str
    # The whole JSON object, parsed once: user mode reads its other fields (node/user_checks.py).
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_delegate_body(body: bytes) -> DelegateBody:
    data = parse_json_object(body)
    keys = []
    for name in ("ephemeralPubKey", "targetPubKey"):
        value = data.get(name)
        if not isinstance(value, str):
            raise ApiError(400, "invalid_body", f"{name} must be a string")
        if not value.isascii():  # hex on the wire; also keeps lone surrogates out of hashing
            raise ApiError(400, "invalid_body", f"{name} must be ASCII hex")
        keys.append(value)
    return DelegateBody(keys[0], keys[1], data)


class _OtherSigner(Exception):
    def __init__(self, signer: bytes) -> None:
        super().__init__("not the gateway")
        self.signer = signer


@lru_cache(maxsize=1024)
def _gateway_signed(
    chain_id: int, ephemeral_pubkey: str, target_pubkey: str, signature: bytes, gateway: bytes
) -> bytes:
    """``gateway``, if it signed this request; kept, as a pure function of its inputs.

    The gateway sends the same (K, user key) for every read of a handle by a user,
    with the same deterministic signature: the hash and the recovery (~100 µs) were
    done again each time. Only what the gateway signed is kept (lru_cache keeps no
    exception): nobody else can fill the cache, and a refusal is checked every time.
    """
    signer = recover_address(request_digest(chain_id, ephemeral_pubkey, target_pubkey), signature)
    if signer != gateway:
        raise _OtherSigner(signer)
    return signer


def check_authorization(
    chain_id: int,
    body: DelegateBody,
    signature: bytes,
    gateway: bytes,
    note: AuditNote | None = None,
) -> None:
    """The gateway signed these exact strings (prefix and case included).

    ``note`` learns the recovered signer (the audit log's requester), also when
    it is not the gateway.
    """
    try:
        signer = _gateway_signed(
            chain_id, body.ephemeral_pubkey, body.target_pubkey, signature, gateway
        )
    except (SignatureError, eip712.Eip712Error):
        raise ApiError(401, "invalid_signature", "authorization signature is invalid") from None
    except _OtherSigner as other:
        if note is not None:
            note.requester = other.signer
        raise ApiError(
            401, "unauthorized_signer", "authorization is not signed by the gateway"
        ) from None
    if note is not None:
        note.requester = signer


def parse_ephemeral_raw(text: str) -> tuple[bytes, curve.Point]:
    """K's 33 bytes as sent, and its point: the bytes are decoded once per request
    (the audit entry fingerprints them, user mode binds them)."""
    try:
        raw = parse_hex(text, name="ephemeralPubKey", length=33)
        return raw, curve.parse_point(raw)
    except (EncodingError, curve.CurveError) as exc:
        raise ApiError(400, "invalid_ephemeral_pubkey", f"ephemeralPubKey: {exc}") from None


def parse_target_raw(text: str) -> tuple[bytes, rsa.RSAPublicKey]:
    """The target key's DER as sent, and the key (the DER: for the audit entry)."""
    try:
        raw = parse_hex(text, name="targetPubKey")
        return raw, rsa.load_public_key(raw)
    except (EncodingError, rsa.RsaKeyError) as exc:
        raise ApiError(400, "invalid_target_pubkey", f"targetPubKey: {exc}") from None
