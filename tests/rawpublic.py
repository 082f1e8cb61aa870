"""A Nox client of the public routes, from nox-compat.md alone — no tkms import.

``GET /v0/public/{handle}`` (what the SDK's ``publicDecrypt`` calls),
``POST /v0/public/handles/status`` (readiness polling), and the contract's
``validateDecryptionProof`` by ``eth_call``. It uses httpx, eth-account,
eth-abi and eth-utils: if tkms and this file disagree about a byte, one of
them misreads the spec.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

SIGNATURE_LENGTH = 65


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def salt() -> str:
    return "0x" + os.urandom(32).hex()


def _types(domain: dict[str, Any]) -> list[dict[str, str]]:
    names = (
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
        ("salt", "bytes32"),
    )
    return [{"name": n, "type": t} for n, t in names if n in domain]


def recover(domain: dict[str, Any], types: dict[str, Any], primary: str, msg: Any, sig: str) -> str:
    full = {
        "types": {"EIP712Domain": _types(domain), **types},
        "primaryType": primary,
        "domain": domain,
        "message": msg,
    }
    signable = encode_typed_data(full_message=full)
    return str(Account.recover_message(signable, signature=h2b(sig))).lower()


def gateway_signer(chain_id: int, salt_hex: str, primary: str, types: Any, body: Any) -> str:
    """Who signed an answer ``{payload, signature}`` in the salted Handle Gateway domain."""
    domain = {"name": "Handle Gateway", "version": "1", "chainId": chain_id, "salt": salt_hex}
    return recover(domain, types, primary, body["payload"], body["signature"])


PUBLIC_RESULT = {"PublicDecryptionResult": [{"name": "decryptionProof", "type": "string"}]}
DECRYPTION_PROOF = {
    "DecryptionProof": [
        {"name": "handle", "type": "bytes32"},
        {"name": "decryptedResult", "type": "bytes"},
    ]
}
STATUS_REPORT = {
    "HandleStatusReport": [{"name": "statuses", "type": "HandleResolution[]"}],
    "HandleResolution": [
        {"name": "handle", "type": "string"},
        {"name": "resolved", "type": "bool"},
    ],
}


def store(
    url: str, chain_id: int, value: bytes, kind: str, owner: str, app: str
) -> tuple[str, str]:
    """``POST /v0/secrets``: (handle, proof) (its signature is not this file's concern)."""
    answer = httpx.post(
        f"{url}/v0/secrets",
        params={"chain_id": str(chain_id), "salt": salt()},
        json={
            "value": "0x" + value.hex(),
            "solidityType": kind,
            "owner": owner,
            "applicationContract": app,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    payload = answer.json()["payload"]
    return str(payload["handle"]), str(payload["proof"])


def public_decrypt(url: str, handle: str, *, chain_id: int, gateway: str, contract: str) -> bytes:
    """The SDK's ``publicDecrypt``: no Authorization; both signatures checked; the proof returned.

    Returns ``decryptionProof`` (sig ‖ plaintext); the plaintext is ``proof[65:]``.
    """
    s = salt()
    answer = httpx.get(f"{url}/v0/public/{handle}", params={"salt": s}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    signer = gateway_signer(chain_id, s, "PublicDecryptionResult", PUBLIC_RESULT, body)
    assert signer == gateway.lower(), "the answer is not signed by the gateway"
    proof = h2b(body["payload"]["decryptionProof"])
    sig, plaintext = proof[:SIGNATURE_LENGTH], proof[SIGNATURE_LENGTH:]
    domain = {"name": "NoxCompute", "version": "1", "chainId": chain_id}
    domain["verifyingContract"] = contract
    message = {"handle": h2b(handle), "decryptedResult": plaintext}
    assert recover(domain, DECRYPTION_PROOF, "DecryptionProof", message, "0x" + sig.hex()) == (
        gateway.lower()
    ), "the decryption proof is not signed by the gateway"
    return proof


def statuses(url: str, handles: list[str], *, chain_id: int, gateway: str) -> list[Any]:
    """``POST /v0/public/handles/status``: the signed statuses, in request order."""
    s = salt()
    answer = httpx.post(
        f"{url}/v0/public/handles/status", params={"salt": s}, json={"handles": handles}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert gateway_signer(chain_id, s, "HandleStatusReport", STATUS_REPORT, body) == gateway.lower()
    return list(body["payload"]["statuses"])


def validate_decryption_proof(rpc_url: str, contract: str, handle: str, proof: bytes) -> Any:
    """``eth_call validateDecryptionProof(bytes32,bytes)``: the plaintext, or the JSON-RPC error."""
    selector = keccak(text="validateDecryptionProof(bytes32,bytes)")[:4]
    data = selector + encode(["bytes32", "bytes"], [h2b(handle), proof])
    call = {"to": contract, "data": "0x" + data.hex()}
    reply = httpx.post(
        rpc_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]},
        timeout=30,
    ).json()
    if "error" in reply:
        return reply["error"]
    (value,) = decode(["bytes"], h2b(reply["result"]))
    return bytes(value)
