"""A user's signed ``DataAccessAuthorization``, decoded and its window checked (pure, no I/O).

One implementation for the two places that check it: the gateway, before it reads
a record, and each node in ``user`` mode (docs/node-authorization.md), before it
computes a partial. The statement is EIP-712 in the domain ``Handle Gateway``/``1``/
chainId/verifyingContract (the NoxCompute address): a signature made for another
chain or deployment does not verify. The window is at most an hour, checked the
way nox checks it. Every refusal is a 401 ``ApiError`` whose message says what is
wrong with the token, never what it holds. ERC-1271 (a contract user) needs the
chain, so it is left to the caller: :class:`SignedDataAccess` says whether ECDSA
alone verified.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, ascii_decimal, parse_address, parse_hex
from tkms.crypto.wallet import SignatureError, recover_address
from tkms.web import jsonbody
from tkms.web.errors import ApiError

MAX_WINDOW = 3600
# An RSA-4096 SPKI key in hex is ~1.1 kB; base64 of the JSON token stays far below this.
MAX_TOKEN_LENGTH = 8192
UINT256_MAX = 2**256 - 1


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def uint_field(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    # JSON numbers (the Nox SDK) or decimal strings (wallets serialise uint256 so),
    # in ASCII digits: "²" and "١٢٣" are refused like any other non-number.
    if isinstance(value, str):
        value = ascii_decimal(value, max_digits=78)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT256_MAX:
        raise unauthorized("invalid_authorization", f"{name} must be a uint256")
    return value


def check_window(not_before: int, expires_at: int, now: int) -> None:
    if expires_at < not_before:
        raise unauthorized("invalid_validity", "expiresAt is before notBefore")
    if expires_at - not_before > MAX_WINDOW:
        raise unauthorized("validity_too_long", f"validity window exceeds {MAX_WINDOW} s")
    if now < not_before:
        raise unauthorized("not_yet_valid", "authorization is not valid yet")
    if now >= expires_at:
        raise unauthorized("expired", "authorization has expired")


def recover_statement(
    domain: eip712.Domain, statement: eip712.Statement, message: Mapping[str, Any], sig: object
) -> bytes:
    try:
        signature = parse_hex(sig, name="signature", length=65)
        return eip712.recover(domain, statement, message, signature)
    except (EncodingError, SignatureError, eip712.Eip712Error):
        raise unauthorized("invalid_signature", "authorization signature is invalid") from None


@dataclass(frozen=True, slots=True)
class DataAccess:
    """A checked ``DataAccessAuthorization``: ``user`` signed it for ``encryption_pubkey``."""

    user: bytes
    encryption_pubkey: str  # exactly as signed: it goes to the nodes as ``targetPubKey``
    not_before: int
    expires_at: int


def token(header: str | None, *, limit: int = MAX_TOKEN_LENGTH) -> Mapping[str, Any]:
    if header is None:
        raise unauthorized("missing_authorization", "Authorization: EIP712 <base64 token> required")
    scheme, _, token = header.strip().partition(" ")
    if scheme.upper() != "EIP712" or not token:
        raise unauthorized("invalid_authorization", "Authorization must be 'EIP712 <token>'")
    token = token.strip()
    if len(token) > limit:
        raise unauthorized("invalid_authorization", "authorization token is too long")
    try:
        data = jsonbody.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, jsonbody.JsonError):
        raise unauthorized(
            "invalid_authorization", "authorization token is not base64 of JSON"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise unauthorized("invalid_authorization", "token must be {payload, signature}")
    return data


MAX_CONTRACT_SIGNATURE = 4096  # bytes: an ERC-1271 signature may be longer than 65


@dataclass(frozen=True, slots=True)
class SignedDataAccess:
    """A decoded ``DataAccessAuthorization`` whose window is valid, before its signer is.

    ``ecdsa_signer`` is who the signature recovers to (None if it is not an ECDSA
    signature); when that is not ``userAddress``, the user may still be a contract
    that accepts ``signature`` over ``digest`` by ERC-1271.
    """

    access: DataAccess
    digest: bytes
    signature: bytes
    ecdsa_signer: bytes | None

    @property
    def ecdsa_valid(self) -> bool:
        return self.ecdsa_signer == self.access.user


@dataclass(frozen=True, slots=True)
class VerifiedDataAccess:
    """A token whose ECDSA signature recovered to its ``userAddress`` (made by :func:`verified`).

    Its own type, so that only a value that passed the signature check can be kept
    (:mod:`tkms.protocol.access_cache`); it vouches for the signature, not for the
    window, which every use checks against its own ``now``.
    """

    signed: SignedDataAccess


def verified(signed: SignedDataAccess) -> VerifiedDataAccess | None:
    """The verified value of an ECDSA-signed token; None when only ERC-1271 could accept it."""
    return VerifiedDataAccess(signed) if signed.ecdsa_valid else None


def not_signed_by_user(signed: SignedDataAccess) -> ApiError:
    if signed.ecdsa_signer is None:
        return unauthorized("invalid_signature", "authorization signature is invalid")
    return unauthorized("invalid_signature", "authorization is not signed by userAddress")


def decode_data_access(
    header: str | None, *, chain_id: int, verifying_contract: bytes, now: int
) -> SignedDataAccess:
    """Parse ``Authorization: EIP712 <base64(JSON {payload, signature})>`` and its window."""
    data = token(header)
    payload = data["payload"]
    try:
        user = parse_address(payload.get("userAddress"), name="userAddress")
    except EncodingError as exc:
        raise unauthorized("invalid_authorization", str(exc)) from None
    key = payload.get("encryptionPubKey")
    if not isinstance(key, str):
        raise unauthorized("invalid_authorization", "encryptionPubKey must be a string")
    not_before, expires_at = uint_field(payload, "notBefore"), uint_field(payload, "expiresAt")
    check_window(not_before, expires_at, now)
    message = {
        "userAddress": user,
        "encryptionPubKey": key,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    domain = eip712.gateway_domain(chain_id, verifying_contract=verifying_contract)
    try:
        signature = parse_hex(data.get("signature"), name="signature")
        digest = eip712.digest(domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    except (EncodingError, eip712.Eip712Error):
        raise unauthorized("invalid_signature", "authorization signature is invalid") from None
    if not 0 < len(signature) <= MAX_CONTRACT_SIGNATURE:
        raise unauthorized("invalid_signature", "authorization signature is invalid")
    signer = None
    if len(signature) == 65:
        try:
            signer = recover_address(digest, signature)
        except SignatureError:
            signer = None
    return SignedDataAccess(
        DataAccess(user, key, not_before, expires_at), digest, signature, signer
    )


def check_data_access(
    header: str | None, *, chain_id: int, verifying_contract: bytes, now: int
) -> DataAccess:
    """The authorization, signed by ``userAddress`` with ECDSA (no chain: no ERC-1271)."""
    signed = decode_data_access(
        header, chain_id=chain_id, verifying_contract=verifying_contract, now=now
    )
    if not signed.ecdsa_valid:
        raise not_signed_by_user(signed)
    return signed.access
