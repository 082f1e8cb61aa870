"""``POST /v1/secrets``: a record the client encrypted itself (docs/gateway.md §5).

The client encrypts its value with ECIES to a ``Y`` it trusts apart from the
gateway (``kmsPublicKey()`` on chain) and derives the bound handle
(docs/binding.md); it sends only the record. The gateway never sees the
plaintext: it checks what it can check without it (the handle is an input
handle of a served chain and of the type named, ``K`` is a point, the sizes,
and the binding: the handle names exactly this record), stores it and signs
the usual ``HandleProof`` and ``HandleWithProof``, as for ``POST /v0/secrets``.

What it cannot check is that the ciphertext is sealed to ``Y``: only the
owner could, and a record sealed to another key only makes its owner's value
unreadable, to everyone. Refusals are 400 (413 for a value over the record
limit), never a 500.
"""

from __future__ import annotations

from typing import Any

from tkms.crypto import curve, ecies
from tkms.crypto.ecies import IV_LENGTH
from tkms.crypto.encoding import EncodingError, parse_hex
from tkms.gateway.service import Answer, GatewayService
from tkms.gateway.wire import body_address
from tkms.protocol.binding import ciphertext_digest, is_bound
from tkms.protocol.handle import HandleError, SolidityType, input_handle_prefix, parse_handle
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object
from tkms.web.params import parse_salt

TAG_LENGTH = 16  # AES-GCM's tag ends every ciphertext
PATH = "/v1/secrets"


def _hex(data: dict[str, Any], name: str, code: str, length: int | None = None) -> bytes:
    try:
        return parse_hex(data.get(name), name=name, length=length)
    except EncodingError as exc:
        raise ApiError(400, code, str(exc)) from None


async def create_client_encrypted(
    service: GatewayService, chain_id_raw: str | None, salt_raw: str | None, body: bytes
) -> Answer:
    """Checks in order: chain_id, salt, body, handle and its chain, type, record, binding."""
    query = service.chains.query_chain(chain_id_raw)
    salt = parse_salt(salt_raw)
    data = parse_json_object(body)
    chain, handle = service.chains.for_handle(data.get("handle"), query)
    try:
        kind = SolidityType.parse(data.get("solidityType"))
    except HandleError as exc:
        raise ApiError(400, "invalid_solidity_type", str(exc)) from None
    parsed = parse_handle(handle)
    if handle[:7] != input_handle_prefix(chain.chain_id, kind):
        raise ApiError(
            400,
            "invalid_handle",
            f"not an input handle of type {kind.name} (its type is {parsed.solidity_type.name})",
        )
    k = _hex(data, "ephemeralPubKey", "invalid_ephemeral_pubkey", 33)
    try:
        curve.parse_point(k)
    except curve.CurveError as exc:
        raise ApiError(400, "invalid_ephemeral_pubkey", f"ephemeralPubKey: {exc}") from None
    iv = _hex(data, "iv", "invalid_iv", IV_LENGTH)
    ciphertext = _hex(data, "ciphertext", "invalid_ciphertext")
    if len(ciphertext) < TAG_LENGTH:
        raise ApiError(400, "invalid_ciphertext", "ciphertext is shorter than its tag")
    if len(ciphertext) == TAG_LENGTH and chain.chain_acl is not None:
        # As POST /v0/secrets on a chain: nox refuses an empty value for every type.
        raise ApiError(400, "invalid_value", "value is empty (nox refuses it for every type)")
    if len(ciphertext) - TAG_LENGTH > service.max_record_bytes:
        raise ApiError(413, "payload_too_large", f"value exceeds {service.max_record_bytes} bytes")
    owner = body_address(data, "owner")
    app = body_address(data, "applicationContract")
    if not is_bound(handle, k, iv, ciphertext_digest(ciphertext)):
        raise ApiError(400, "binding_mismatch", "the handle is not this record's (binding.md)")
    record = ecies.EciesRecord(k, iv, ciphertext)
    return await service.store_new(chain, salt, handle, kind, owner, app, record)
