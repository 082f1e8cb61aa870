"""A gateway-side client of ``POST /v0/delegate`` (single-node mode, dev tooling).

It does what the Nox gateway does (the request and the proof check are
:mod:`tkms.protocol.delegation`'s): sign ``DelegateAuthorization`` over the
exact strings it sends, call the node, check the node's response proof and,
for the key holder, open the RSA-sealed x-coordinate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from tkms.client.errors import ServiceError, TransportError, UntrustedResponse
from tkms.crypto import rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.delegation import (
    V0_PATH,
    DelegationAnswerError,
    check_shared_secret_answer,
    delegate_request,
)


@dataclass(frozen=True)
class DelegationAnswer:
    encrypted_shared_secret: str
    proof: str
    signer: bytes  # the node wallet that signed the proof


def delegate_v0(
    node_url: str,
    gateway: Wallet,
    chain_id: int,
    ephemeral_pubkey: str,
    target_pubkey: str,
    *,
    salt: bytes | None = None,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> DelegationAnswer:
    salt = secrets.token_bytes(32) if salt is None else salt
    request = delegate_request(gateway, chain_id, ephemeral_pubkey, target_pubkey)
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.post(
            node_url.rstrip("/") + V0_PATH,
            params=request.query(salt),
            headers={"Authorization": request.authorization},
            json=request.body,
        )
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach {node_url}: {type(exc).__name__}") from None
    finally:
        if client is None:
            http.close()
    try:
        data = response.json()
    except ValueError:
        raise TransportError(f"{node_url} answered {response.status_code} without JSON") from None
    if response.status_code != 200:
        raise ServiceError(response.status_code, str(data.get("error")), str(data.get("message")))
    try:
        checked = check_shared_secret_answer(data, chain_id=chain_id, salt=salt)
    except DelegationAnswerError:
        raise UntrustedResponse("the node's response proof does not verify") from None
    return DelegationAnswer(checked.encrypted_shared_secret, to_hex(checked.proof), checked.signer)


def open_shared_secret(private_key: rsa.RSAPrivateKey, answer: DelegationAnswer) -> bytes:
    """The 32-byte x-coordinate of S, for the holder of the target RSA key."""
    shared_x = rsa.decrypt(private_key, parse_hex(answer.encrypted_shared_secret))
    if len(shared_x) != 32:
        raise UntrustedResponse("the sealed shared secret is not 32 bytes")
    return shared_x
