"""Who is asking: the user's signed ``DataAccessAuthorization`` and ``AclGrant``.

Both are EIP-712 statements in the domain ``Handle Gateway``/``1``/chainId/
verifyingContract (the NoxCompute address): a signature made for another
chain or another deployment does not verify here. Both carry a validity
window of at most an hour, checked the way nox checks it. Every refusal is a
401 whose message says what is wrong with the token, never what it holds.

The ``DataAccessAuthorization`` decoding lives in :mod:`tkms.protocol.access`
(the nodes check the same token in ``user`` mode); it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex
from tkms.gateway.acl import Role
from tkms.protocol.access import (
    MAX_TOKEN_LENGTH,
    MAX_WINDOW,
    DataAccess,
    SignedDataAccess,
    check_data_access,
    check_window,
    decode_data_access,
    not_signed_by_user,
    recover_statement,
    token,
    uint_field,
    unauthorized,
)
from tkms.protocol.handle import HandleError, parse_handle
from tkms.web.errors import ApiError

__all__ = [
    "MAX_WINDOW",
    "AclReadRequest",
    "DataAccess",
    "GrantRequest",
    "SignedDataAccess",
    "check_acl_read",
    "check_data_access",
    "check_grant",
    "check_window",
    "decode_data_access",
    "not_signed_by_user",
    "read_token",
]


def read_token(header: str | None, *, limit: int = MAX_TOKEN_LENGTH) -> Mapping[str, Any]:
    """``{payload, signature}`` of ``Authorization: EIP712 <base64 JSON>`` (401 if not)."""
    return token(header, limit=limit)


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
    not_before, expires_at = uint_field(payload, "notBefore"), uint_field(payload, "expiresAt")
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
    if recover_statement(domain, eip712.ACL_GRANT, message, body.get("signature")) != granted_by:
        raise unauthorized("invalid_signature", "grant is not signed by grantedBy")
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
    data = token(header)
    payload = data["payload"]
    try:
        signed_handle = parse_hex(payload.get("handle"), name="handle", length=32)
        reader = parse_address(payload.get("reader"), name="reader")
    except EncodingError as exc:
        raise unauthorized("invalid_authorization", str(exc)) from None
    if signed_handle != handle:
        raise unauthorized("invalid_authorization", "the statement is for another handle")
    not_before, expires_at = uint_field(payload, "notBefore"), uint_field(payload, "expiresAt")
    check_window(not_before, expires_at, now)
    message = {
        "handle": handle,
        "reader": reader,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    domain = eip712.gateway_domain(chain_id, verifying_contract=verifying_contract)
    if recover_statement(domain, eip712.ACL_READ, message, data.get("signature")) != reader:
        raise unauthorized("invalid_signature", "the statement is not signed by reader")
    return AclReadRequest(handle, reader)
