"""A Nox runner written from nox-compat.md ("The runner") alone — no tkms import.

It signs ``OperandAccessAuthorization`` / ``ResultPublishingAuthorization`` in
the unsalted ``Handle Gateway`` domain, checks every answer's gateway
signature under its own salt, opens each operand (RSA-OAEP → x(S) → HKDF →
AES-GCM) and encrypts results itself with ECIES to ``kmsPublicKey()`` as the
Nox runner does. httpx, eth-account, eth-utils, cryptography and coincurve only.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import httpx
from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
INFO = b"ECIES:AES_GCM:v1"
MATERIAL = [("handle", "string"), ("ciphertext", "string")]
MATERIAL += [("encryptedSharedSecret", "string"), ("iv", "string")]
RUNNER_FIELDS = [("chainId", "uint256"), ("blockNumber", "uint256")]
RUNNER_FIELDS += [("caller", "address"), ("transactionHash", "string")]
OPERAND_FIELDS = [*RUNNER_FIELDS, ("operands", "string[]"), ("rsaPublicKey", "string")]


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _types(**structs: list[tuple[str, str]]) -> dict[str, Any]:
    return {k: [{"name": n, "type": t} for n, t in v] for k, v in structs.items()}


def _domain_types(domain: dict[str, Any]) -> list[dict[str, str]]:
    order = [("name", "string"), ("version", "string"), ("chainId", "uint256")]
    order += [("verifyingContract", "address"), ("salt", "bytes32")]
    return [{"name": n, "type": t} for n, t in order if n in domain]


def typed(domain: dict[str, Any], primary: str, types: dict[str, Any], msg: Any) -> Any:
    full = {"EIP712Domain": _domain_types(domain), **types}
    return {"types": full, "primaryType": primary, "domain": domain, "message": msg}


def value_tag(handle: str, value: bytes) -> bytes:
    """keccak256(handle ‖ value as 32 bytes) (the value left-padded to a word)."""
    return keccak(h2b(handle) + value.rjust(32, b"\0"))


def ecies_encrypt(y: PublicKey, plaintext: bytes) -> tuple[bytes, bytes, bytes]:
    """(K, iv, ciphertext) under a fresh k: x(k·Y) → HKDF-SHA256 → AES-256-GCM."""
    k = PrivateKey()
    shared_x = y.multiply(k.secret).format(compressed=True)[1:]
    key = HKDF(hashes.SHA256(), 32, bytes(32), INFO).derive(shared_x)
    iv = os.urandom(12)
    return k.public_key.format(compressed=True), iv, AESGCM(key).encrypt(iv, plaintext, None)


class RawRunner:
    def __init__(self, url: str, chain_id: int, gateway: str, kms_key: str, key: bytes) -> None:
        self.url, self.chain_id, self.gateway = url, chain_id, gateway
        self.y = PublicKey(h2b(kms_key))
        self.account = Account.from_key(key)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        spki = self.rsa.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.rsa_hex = "0x" + spki.hex()

    def _header(self, primary: str, fields: list[tuple[str, str]], message: Any) -> str:
        domain = {"name": "Handle Gateway", "version": "1", "chainId": self.chain_id}
        data = typed(domain, primary, _types(**{primary: fields}), message)
        sig = Account.sign_message(encode_typed_data(full_message=data), self.account.key)
        token = {"payload": message, "signature": "0x" + bytes(sig.signature).hex()}
        return "EIP712 " + base64.b64encode(json.dumps(token).encode()).decode()

    def _statement(self, block: int) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "blockNumber": block,
            "caller": "0x" + "ca" * 20,
            "transactionHash": "0x" + os.urandom(32).hex(),
        }

    def attest(self, answer: httpx.Response, salt: str, primary: str, types: Any) -> Any:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        domain = {"name": "Handle Gateway", "version": "1", "chainId": self.chain_id, "salt": salt}
        data = typed(domain, primary, types, body["payload"])
        signer = Account.recover_message(
            encode_typed_data(full_message=data), signature=h2b(body["signature"])
        )
        assert signer.lower() == self.gateway.lower(), "not signed by the trusted gateway"
        return body["payload"]

    def request_operands(self, handles: list[str], block: int, salt: str) -> httpx.Response:
        message = {**self._statement(block), "operands": handles, "rsaPublicKey": self.rsa_hex}
        header = self._header("OperandAccessAuthorization", OPERAND_FIELDS, message)
        return httpx.get(
            f"{self.url}/v0/compute/operands",
            params={"salt": salt},
            headers={"Authorization": header},
            timeout=30,
        )

    def operands(self, handles: list[str], block: int) -> list[bytes]:
        """The plaintexts of ``handles``, in order, every answer checked."""
        salt = "0x" + os.urandom(32).hex()
        answer = self.request_operands(handles, block, salt)
        types = _types(
            ComputeOperands=[("operands", "HandleCryptoMaterial[]")], HandleCryptoMaterial=MATERIAL
        )
        payload = self.attest(answer, salt, "ComputeOperands", types)
        assert [m["handle"] for m in payload["operands"]] == handles
        values = []
        for m in payload["operands"]:
            shared_x = self.rsa.decrypt(h2b(m["encryptedSharedSecret"]), OAEP)
            key = HKDF(hashes.SHA256(), 32, bytes(32), INFO).derive(shared_x)
            values.append(AESGCM(key).decrypt(h2b(m["iv"]), h2b(m["ciphertext"]), None))
        return values

    def result(self, handle: str, value: bytes, tag: bytes | None = None) -> dict[str, str]:
        k, iv, ciphertext = ecies_encrypt(self.y, value)
        return {
            "handle": handle,
            "handleValueTag": "0x" + (tag or value_tag(handle, value)).hex(),
            "ciphertext": "0x" + ciphertext.hex(),
            "publicKey": "0x" + k.hex(),
            "nonce": "0x" + iv.hex(),
        }

    def request_publish(
        self, results: list[dict[str, str]], block: int, salt: str
    ) -> httpx.Response:
        header = self._header(
            "ResultPublishingAuthorization", RUNNER_FIELDS, self._statement(block)
        )
        return httpx.post(
            f"{self.url}/v0/compute/results",
            params={"salt": salt},
            headers={"Authorization": header},
            json=results,
            timeout=30,
        )

    def publish(self, results: list[dict[str, str]], block: int) -> str:
        """The gateway's report, its signature checked."""
        salt = "0x" + os.urandom(32).hex()
        answer = self.request_publish(results, block, salt)
        types = _types(ResultPublishingReport=[("message", "string")])
        return str(self.attest(answer, salt, "ResultPublishingReport", types)["message"])


def read_v0_answer(user: Any, handle: str, salt: str) -> httpx.Response:
    return httpx.get(
        f"{user.url}/v0/secrets/{handle}",
        params={"salt": salt},
        headers={"Authorization": user.authorization()},
        timeout=30,
    )


def read_v0(user: Any, handle: str) -> bytes:
    """``GET /v0/secrets/{h}`` as the Nox SDK reads it; ``user``: a tests.rawclient.RawClient."""
    salt = "0x" + os.urandom(32).hex()
    answer = read_v0_answer(user, handle, salt)
    payload = user.attest(
        answer, salt, "HandleCryptoMaterial", _types(HandleCryptoMaterial=MATERIAL)
    )
    assert payload["handle"] == handle
    shared_x = user.rsa.decrypt(h2b(payload["encryptedSharedSecret"]), OAEP)
    key = HKDF(hashes.SHA256(), 32, bytes(32), INFO).derive(shared_x)
    return AESGCM(key).decrypt(h2b(payload["iv"]), h2b(payload["ciphertext"]), None)
