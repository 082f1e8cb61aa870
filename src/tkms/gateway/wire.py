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
from tkms.crypto.encoding import EncodingError, parse_address, to_hex
from tkms.crypto.wallet import Wallet, keccak256
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


_MATERIAL = eip712.HANDLE_THRESHOLD_MATERIAL
_MATERIAL_TYPE = _MATERIAL.type_hashes[_MATERIAL.primary]
_SHARE_TYPE = _MATERIAL.type_hashes["PartialShare"]
_UINT256 = 2**256


def signed_material(
    wallet: Wallet, chain_id: int, salt: bytes, payload: dict[str, Any]
) -> dict[str, Any]:
    """:func:`signed` of a ``HandleThresholdMaterial`` payload, its digest straight-line.

    Every threshold read signs one: the generic struct walk of ``eip712.digest``
    (five structs, nineteen fields, one encoder call each) was most of the answer's
    cost after the signature. The same bytes as ``eip712.digest``
    (tests/test_gateway_wire.py); a payload of any other shape goes through it.
    """
    struct = _material_struct(payload)
    if struct is None:
        return signed(wallet, chain_id, salt, _MATERIAL, payload)
    domain = eip712.domain_separator(eip712.gateway_domain(chain_id, salt=salt))
    signature = wallet.sign_digest(keccak256(b"\x19\x01" + domain + struct))
    return {"payload": payload, "signature": to_hex(signature)}


def _text(value: object) -> bytes | None:
    """An exact ASCII str's keccak (ASCII is its own UTF-8), else None: the generic path."""
    if type(value) is not str or not value.isascii():
        return None
    return keccak256(value.encode())


def _uint(value: object) -> bytes | None:
    if type(value) is not int or not 0 <= value < _UINT256:
        return None
    return value.to_bytes(32, "big")


def _material_struct(payload: dict[str, Any]) -> bytes | None:
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
