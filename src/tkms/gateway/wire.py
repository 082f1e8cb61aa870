"""Parsing the gateway's request parts and signing its answers (nox-compat.md).

Every 200 answer of the secrets and ACL endpoints is ``{payload, signature}``:
the gateway wallet's EIP-712 signature of the payload in the domain
``Handle Gateway``/``1``/chainId/salt, where ``salt`` is the request's (zero
when absent). A client that picks a fresh salt per request therefore knows the
answer was made for its request, not replayed from another one.
"""

from __future__ import annotations

from typing import Any

from tkms.crypto import eip712
from tkms.crypto.delegation_digests import threshold_material_digest
from tkms.crypto.encoding import EncodingError, parse_address, to_hex
from tkms.crypto.wallet import Wallet
from tkms.web.errors import ApiError


def body_address(data: dict[str, Any], name: str) -> bytes:
    try:
        return parse_address(data.get(name), name=name)
    except EncodingError as exc:
        raise ApiError(400, f"invalid_{_snake(name)}", str(exc)) from None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def signed(
    wallet: Wallet,
    chain_id: int,
    salt: bytes,
    statement: eip712.Statement,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """``{payload, signature}`` under the salted ``Handle Gateway`` domain."""
    domain = eip712.gateway_domain(chain_id, salt=salt)
    return {
        "payload": payload,
        "signature": to_hex(eip712.sign(wallet, domain, statement, payload)),
    }


def signed_material(
    wallet: Wallet, chain_id: int, salt: bytes, payload: dict[str, Any]
) -> dict[str, Any]:
    """:func:`signed` of a ``HandleThresholdMaterial`` payload: every threshold read signs
    one, by its straight-line digest (crypto/delegation_digests.py), the same bytes."""
    signature = wallet.sign_digest(threshold_material_digest(chain_id, salt, payload))
    return {"payload": payload, "signature": to_hex(signature)}
