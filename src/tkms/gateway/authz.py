"""Who is asking: the user's signed ``DataAccessAuthorization`` and ``AclGrant``.

Both are EIP-712 statements in the domain ``Handle Gateway``/``1``/chainId/
verifyingContract (the NoxCompute address): a signature made for another
chain or another deployment does not verify here. Both carry a validity
window of at most an hour, checked the way nox checks it. Every refusal is a
401 whose message says what is wrong with the token, never what it holds.
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
from tkms.gateway.acl import Role
from tkms.protocol.handle import HandleError, parse_handle
from tkms.web import jsonbody
from tkms.web.errors import ApiError

MAX_WINDOW = 3600
# An RSA-4096 SPKI key in hex is ~1.1 kB; base64 of the JSON token stays far below this.
MAX_TOKEN_LENGTH = 8192
UINT256_MAX = 2**256 - 1


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def _uint(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    # JSON numbers (the Nox SDK) or decimal strings (wallets serialise uint256 so),
    # in ASCII digits: "²" and "١٢٣" are refused like any other non-number.
    if isinstance(value, str):
        value = ascii_decimal(value, max_digits=78)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT256_MAX:
        raise _unauthorized("invalid_authorization", f"{name} must be a uint256")
    return value


def check_window(not_before: int, expires_at: int, now: int) -> None:
    if expires_at < not_before:
        raise _unauthorized("invalid_validity", "expiresAt is before notBefore")
    if expires_at - not_before > MAX_WINDOW:
        raise _unauthorized("validity_too_long", f"validity window exceeds {MAX_WINDOW} s")
    if now < not_before:
        raise _unauthorized("not_yet_valid", "authorization is not valid yet")
    if now >= expires_at:
        raise _unauthorized("expired", "authorization has expired")


def _recover(
    domain: eip712.Domain, statement: eip712.Statement, message: Mapping[str, Any], sig: object
) -> bytes:
    try:
        signature = parse_hex(sig, name="signature", length=65)
        return eip712.recover(domain, statement, message, signature)
    except (EncodingError, SignatureError, eip712.Eip712Error):
        raise _unauthorized("invalid_signature", "authorization signature is invalid") from None


@dataclass(frozen=True, slots=True)
class DataAccess:
    """A checked ``DataAccessAuthorization``: ``user`` signed it for ``encryption_pubkey``."""

    user: bytes
    encryption_pubkey: str  # exactly as signed: it goes to the nodes as ``targetPubKey``
    not_before: int
    expires_at: int


def _token(header: str | None, *, limit: int = MAX_TOKEN_LENGTH) -> Mapping[str, Any]:
    if header is None:
        raise _unauthorized(
            "missing_authorization", "Authorization: EIP712 <base64 token> required"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.upper() != "EIP712" or not token:
        raise _unauthorized("invalid_authorization", "Authorization must be 'EIP712 <token>'")
    token = token.strip()
    if len(token) > limit:
        raise _unauthorized("invalid_authorization", "authorization token is too long")
    try:
        data = jsonbody.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, jsonbody.JsonError):
        raise _unauthorized(
            "invalid_authorization", "authorization token is not base64 of JSON"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise _unauthorized("invalid_authorization", "token must be {payload, signature}")
    return data


def read_token(header: str | None, *, limit: int = MAX_TOKEN_LENGTH) -> Mapping[str, Any]:
    """``{payload, signature}`` of ``Authorization: EIP712 <base64 JSON>`` (401 if not)."""
    return _token(header, limit=limit)


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


def not_signed_by_user(signed: SignedDataAccess) -> ApiError:
    if signed.ecdsa_signer is None:
        return _unauthorized("invalid_signature", "authorization signature is invalid")
    return _unauthorized("invalid_signature", "authorization is not signed by userAddress")


def decode_data_access(
    header: str | None, *, chain_id: int, verifying_contract: bytes, now: int
) -> SignedDataAccess:
    """Parse ``Authorization: EIP712 <base64(JSON {payload, signature})>`` and its window."""
    data = _token(header)
    payload = data["payload"]
    try:
        user = parse_address(payload.get("userAddress"), name="userAddress")
    except EncodingError as exc:
        raise _unauthorized("invalid_authorization", str(exc)) from None
    key = payload.get("encryptionPubKey")
    if not isinstance(key, str):
        raise _unauthorized("invalid_authorization", "encryptionPubKey must be a string")
    not_before, expires_at = _uint(payload, "notBefore"), _uint(payload, "expiresAt")
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
        raise _unauthorized("invalid_signature", "authorization signature is invalid") from None
    if not 0 < len(signature) <= MAX_CONTRACT_SIGNATURE:
        raise _unauthorized("invalid_signature", "authorization signature is invalid")
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


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """A checked ``AclGrant``: ``granted_by`` signed it (not yet: may they grant?)."""

    handle: bytes
    role: Role
    account: bytes | None  # None for the public role
    granted_by: bytes


def check_grant(
    body: object, *, chain_id: int, verifying_contract: bytes, now: int
) -> GrantRequest:
    """Verify the body of ``POST /v1/acl/grant``: ``{payload: AclGrant, signature}``."""
    if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
        raise ApiError(400, "invalid_body", "request body must be {payload, signature}")
    payload = body["payload"]
    try:
        handle = parse_handle(payload.get("handle"), chain_id=chain_id).to_bytes()
    except HandleError as exc:
        raise ApiError(400, "invalid_handle", str(exc)) from None
    try:
        role = Role(payload.get("role"))
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_role", "role must be viewer, admin or public") from None
    try:
        account = parse_address(payload.get("account"), name="account")
        granted_by = parse_address(payload.get("grantedBy"), name="grantedBy")
    except EncodingError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    if (role is Role.PUBLIC) != (account == bytes(20)):
        raise ApiError(
            400, "invalid_account", "account is the zero address exactly for the public role"
        )
    not_before, expires_at = _uint(payload, "notBefore"), _uint(payload, "expiresAt")
    check_window(not_before, expires_at, now)
    message = {
        "handle": handle,
        "role": role.value,
        "account": account,
        "grantedBy": granted_by,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    domain = eip712.gateway_domain(chain_id, verifying_contract=verifying_contract)
    if _recover(domain, eip712.ACL_GRANT, message, body.get("signature")) != granted_by:
        raise _unauthorized("invalid_signature", "grant is not signed by grantedBy")
    return GrantRequest(handle, role, None if role is Role.PUBLIC else account, granted_by)


@dataclass(frozen=True, slots=True)
class AclReadRequest:
    """A checked ``AclRead``: ``reader`` signed it for ``handle`` (not yet: may they read?)."""

    handle: bytes
    reader: bytes


def check_acl_read(
    header: str | None, handle: bytes, *, chain_id: int, verifying_contract: bytes, now: int
) -> AclReadRequest:
    """Verify ``Authorization: EIP712 <base64(JSON {payload: AclRead, signature})>``.

    The statement names the handle, so a signature for one listing lists no other.
    """
    data = _token(header)
    payload = data["payload"]
    try:
        signed_handle = parse_hex(payload.get("handle"), name="handle", length=32)
        reader = parse_address(payload.get("reader"), name="reader")
    except EncodingError as exc:
        raise _unauthorized("invalid_authorization", str(exc)) from None
    if signed_handle != handle:
        raise _unauthorized("invalid_authorization", "the statement is for another handle")
    not_before, expires_at = _uint(payload, "notBefore"), _uint(payload, "expiresAt")
    check_window(not_before, expires_at, now)
    message = {
        "handle": handle,
        "reader": reader,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    domain = eip712.gateway_domain(chain_id, verifying_contract=verifying_contract)
    if _recover(domain, eip712.ACL_READ, message, data.get("signature")) != reader:
        raise _unauthorized("invalid_signature", "the statement is not signed by reader")
    return AclReadRequest(handle, reader)
