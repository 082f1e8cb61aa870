"""A gateway-side client of ``POST /v0/delegate`` (single-node mode, dev tooling).

It does what the Nox gateway does: sign ``DelegateAuthorization`` over the
exact strings it sends, call the node, check the node's response proof and,
for the key holder, open the RSA-sealed x-coordinate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from tkms.client.errors import ServiceError, TransportError, UntrustedResponse
from tkms.crypto import eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet


@dataclass(frozen=True)
class DelegationAnswer:
    encrypted_shared_secret: str
    proof: str
    signer: bytes  # the node wallet that signed the proof


def sign_delegate_request(
    gateway: Wallet, chain_id: int, ephemeral_pubkey: str, target_pubkey: str
) -> str:
    message = {"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey}
    return to_hex(
        eip712.sign(
            gateway, eip712.delegate_domain(chain_id), eip712.DELEGATE_AUTHORIZATION, message
        )
    )


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
    signature = sign_delegate_request(gateway, chain_id, ephemeral_pubkey, target_pubkey)
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.post(
            node_url.rstrip("/") + "/v0/delegate",
            params={"chain_id": str(chain_id), "salt": to_hex(salt)},
            headers={"Authorization": f"Bearer {signature}"},
            json={"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey},
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
        sealed = str(data["encryptedSharedSecret"])
        proof = parse_hex(data["proof"], name="proof", length=65)
        signer = eip712.recover(
            eip712.delegate_domain(chain_id, salt),
            eip712.DELEGATE_RESPONSE_PROOF,
            {"encryptedSharedSecret": sealed},
            proof,
        )
    except (KeyError, EncodingError, SignatureError, eip712.Eip712Error):
        raise UntrustedResponse("the node's response proof does not verify") from None
    return DelegationAnswer(sealed, to_hex(proof), signer)


def open_shared_secret(private_key: rsa.RSAPrivateKey, answer: DelegationAnswer) -> bytes:
    """The 32-byte x-coordinate of S, for the holder of the target RSA key."""
    shared_x = rsa.decrypt(private_key, parse_hex(answer.encrypted_shared_secret))
    if len(shared_x) != 32:
        raise UntrustedResponse("the sealed shared secret is not 32 bytes")
    return shared_x
