"""A gateway client written from protocol.md and nox-compat.md alone — no tkms import.

It uses httpx, eth-account, cryptography, coincurve and hashlib: if tkms and
this file disagree about a byte, one of them misreads the spec.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import httpx
from coincurve import PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.messages import encode_typed_data

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = PublicKey.from_secret((1).to_bytes(32, "big"))
DST = b"KMS-DLEQ-secp256k1-SHA256-v1"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
DOMAIN_FIELDS = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
]


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def recover(domain: dict[str, Any], types: dict[str, Any], primary: str, msg: Any, sig: str) -> str:
    full = {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS if n in domain],
            **types,
        },
        "primaryType": primary,
        "domain": domain,
        "message": msg,
    }
    return str(Account.recover_message(encode_typed_data(full_message=full), signature=h2b(sig)))


def fields(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": n, "type": t} for n, t in pairs]


def mul(p: PublicKey, k: int) -> PublicKey:
    return p.multiply((k % N).to_bytes(32, "big"))


def enc(p: PublicKey) -> bytes:
    return p.format(compressed=True)


def interpolate(points: dict[int, PublicKey], at: int) -> PublicKey:
    terms = []
    for i, p in points.items():
        num, den = 1, 1
        for j in points:
            if j != i:
                num = num * (at - j) % N
                den = den * (i - j) % N
        terms.append(mul(p, num * pow(den, -1, N)))
    return PublicKey.combine_keys(terms)


def dleq_ok(y_i: PublicKey, k: PublicKey, s_i: PublicKey, proof: bytes) -> bool:
    c, z = int.from_bytes(proof[:32], "big"), int.from_bytes(proof[32:], "big")
    if not (0 <= c < N and 0 < z < N):
        return False
    a1 = PublicKey.combine_keys([mul(G, z), mul(y_i, N - c)])
    a2 = PublicKey.combine_keys([mul(k, z), mul(s_i, N - c)])
    digest = hashlib.sha256(DST + enc(G) + enc(y_i) + enc(k) + enc(s_i) + enc(a1) + enc(a2))
    return int.from_bytes(digest.digest(), "big") % N == c


class RawClient:
    """``contract``: the NoxCompute address (the verifying contract); ``app``: the
    application that registers the handles stored (NoxCompute itself by default)."""

    def __init__(
        self,
        url: str,
        chain_id: int,
        gateway: str,
        contract: str,
        kms_key: str | bytes,
        *,
        account: Any = None,
        app: str | None = None,
    ):
        self.url, self.chain_id, self.gateway, self.contract = url, chain_id, gateway, contract
        self.app = app or contract
        self.y = PublicKey(h2b(kms_key) if isinstance(kms_key, str) else kms_key)
        self.account = account or Account.create()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def attest(self, answer: httpx.Response, salt: str, primary: str, types: Any) -> Any:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        domain = {"name": "Handle Gateway", "version": "1", "chainId": self.chain_id, "salt": salt}
        signer = recover(domain, types, primary, body["payload"], body["signature"])
        assert signer.lower() == self.gateway.lower(), "not signed by the trusted gateway"
        return body["payload"]

    def store(self, value: bytes, solidity_type: str) -> str:
        return self.store_with_proof(value, solidity_type)[0]

    def store_with_proof(self, value: bytes, solidity_type: str) -> tuple[str, bytes]:
        """POST /v0/secrets: the handle and its 137-byte input proof, both checked."""
        salt = "0x" + os.urandom(32).hex()
        answer = httpx.post(
            f"{self.url}/v0/secrets",
            params={"chain_id": str(self.chain_id), "salt": salt},
            json={
                "value": "0x" + value.hex(),
                "solidityType": solidity_type,
                "owner": self.account.address,
                "applicationContract": self.app,
            },
        )
        types = {"HandleWithProof": fields(("handle", "string"), ("proof", "string"))}
        payload = self.attest(answer, salt, "HandleWithProof", types)
        handle, proof = str(payload["handle"]), h2b(payload["proof"])
        self.check_input_proof(handle, proof)
        return handle, proof

    def check_input_proof(self, handle: str, proof: bytes) -> None:
        """owner ‖ app ‖ createdAt ‖ the gateway's HandleProof signature (NoxCompute domain)."""
        assert len(proof) == 137
        owner, app = "0x" + proof[:20].hex(), "0x" + proof[20:40].hex()
        assert owner.lower() == self.account.address.lower() and app.lower() == self.app.lower()
        created_at = int.from_bytes(proof[40:72], "big")
        assert abs(created_at - time.time()) < 300
        domain = {
            "name": "NoxCompute",
            "version": "1",
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }
        types = {
            "HandleProof": fields(
                ("handle", "bytes32"),
                ("owner", "address"),
                ("app", "address"),
                ("createdAt", "uint256"),
            )
        }
        message = {"handle": h2b(handle), "owner": owner, "app": app, "createdAt": created_at}
        signer = recover(domain, types, "HandleProof", message, "0x" + proof[72:].hex())
        assert signer.lower() == self.gateway.lower(), "input proof not signed by the gateway"

    def decrypt_v0(self, handle: str) -> bytes:
        """GET /v0/secrets/{handle} (a gateway in front of one node), as the Nox SDK: only
        the salt in the query; the answer's shared secret sealed to our RSA key."""
        salt = "0x" + os.urandom(32).hex()
        answer = httpx.get(
            f"{self.url}/v0/secrets/{handle}",
            params={"salt": salt},
            headers={"Authorization": self.authorization()},
        )
        types = {
            "HandleCryptoMaterial": fields(
                ("handle", "string"),
                ("ciphertext", "string"),
                ("encryptedSharedSecret", "string"),
                ("iv", "string"),
            )
        }
        material = self.attest(answer, salt, "HandleCryptoMaterial", types)
        assert material["handle"] == handle
        shared_x = self.rsa.decrypt(h2b(material["encryptedSharedSecret"]), OAEP)
        assert len(shared_x) == 32
        key = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1").derive(shared_x)
        return AESGCM(key).decrypt(h2b(material["iv"]), h2b(material["ciphertext"]), None)

    def refused(self, handle: str, version: str = "v1") -> httpx.Response:
        """A read the gateway must refuse: its answer, unchecked."""
        params = {"salt": "0x" + os.urandom(32).hex()}
        if version == "v1":
            params["chain_id"] = str(self.chain_id)
        return httpx.get(
            f"{self.url}/{version}/secrets/{handle}",
            params=params,
            headers={"Authorization": self.authorization()},
        )

    def keyset(self) -> tuple[dict[str, Any], dict[int, PublicKey]]:
        """§3.1: Y_i on one degree t-1 polynomial through the Y we trust; every signature valid."""
        ks = httpx.get(f"{self.url}/v1/keyset", params={"chain_id": self.chain_id}).json()
        assert PublicKey(h2b(ks["publicKey"])).format() == self.y.format()
        vks = {n["index"]: PublicKey(h2b(n["verificationKey"])) for n in ks["nodes"]}
        first = dict(sorted(vks.items())[: ks["threshold"]])
        assert enc(interpolate(first, 0)) == enc(self.y)
        for j, vk in vks.items():
            if j not in first:
                assert enc(interpolate(first, j)) == enc(vk)
        types = {
            "Keyset": fields(
                ("epoch", "uint256"),
                ("threshold", "uint256"),
                ("publicKey", "bytes"),
                ("nodes", "KeysetNode[]"),
            ),
            "KeysetNode": fields(
                ("index", "uint256"), ("signer", "address"), ("verificationKey", "bytes")
            ),
        }
        message = {k: ks[k] for k in ("epoch", "threshold", "publicKey", "nodes")}
        domain = {"name": "ProtocolKeyset", "version": "1", "chainId": self.chain_id}
        signers = {n["index"]: n["signer"].lower() for n in ks["nodes"]}
        for index, sig in ks["signatures"].items():
            assert recover(domain, types, "Keyset", message, sig).lower() == signers[int(index)]
        return ks, vks

    def authorization(self) -> str:
        spki = self.rsa.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        now = int(time.time())
        message = {
            "userAddress": self.account.address,
            "encryptionPubKey": "0x" + spki.hex(),
            "notBefore": now - 10,
            "expiresAt": now + 600,
        }
        domain = {
            "name": "Handle Gateway",
            "version": "1",
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }
        types = {
            "DataAccessAuthorization": fields(
                ("userAddress", "address"),
                ("encryptionPubKey", "string"),
                ("notBefore", "uint256"),
                ("expiresAt", "uint256"),
            )
        }
        full = {
            "types": {
                "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS if n in domain],
                **types,
            },
            "primaryType": "DataAccessAuthorization",
            "domain": domain,
            "message": message,
        }
        signed = Account.sign_message(encode_typed_data(full_message=full), self.account.key)
        token = {"payload": message, "signature": "0x" + bytes(signed.signature).hex()}
        return "EIP712 " + base64.b64encode(json.dumps(token).encode()).decode()

    def decrypt(self, handle: str) -> bytes:
        ks, vks = self.keyset()
        salt = "0x" + os.urandom(32).hex()
        answer = httpx.get(
            f"{self.url}/v1/secrets/{handle}",
            params={"chain_id": str(self.chain_id), "salt": salt},
            headers={"Authorization": self.authorization()},
        )
        types = {
            "HandleThresholdMaterial": fields(
                ("handle", "string"),
                ("ciphertext", "string"),
                ("iv", "string"),
                ("ephemeralPubKey", "string"),
                ("epoch", "uint256"),
                ("threshold", "uint256"),
                ("partials", "PartialShare[]"),
            ),
            "PartialShare": fields(
                ("index", "uint256"), ("encryptedPartial", "string"), ("proof", "string")
            ),
        }
        material = self.attest(answer, salt, "HandleThresholdMaterial", types)
        assert material["handle"] == handle and material["epoch"] == ks["epoch"]
        k = PublicKey(h2b(material["ephemeralPubKey"]))
        signers = {n["index"]: n["signer"].lower() for n in ks["nodes"]}
        proof_types = {
            "PartialDelegateResponseProof": fields(
                ("index", "uint256"), ("epoch", "uint256"), ("encryptedPartial", "string")
            )
        }
        node_domain = {"name": "ProtocolDelegate", "version": "1", "chainId": self.chain_id}
        good: dict[int, PublicKey] = {}
        for p in material["partials"]:
            statement = {
                "index": p["index"],
                "epoch": material["epoch"],
                "encryptedPartial": p["encryptedPartial"],
            }
            domain = {**node_domain, "salt": salt}  # the gateway forwarded our salt
            signer = recover(
                domain, proof_types, "PartialDelegateResponseProof", statement, p["proof"]
            )
            if signer.lower() != signers[p["index"]]:
                continue
            envelope = self.rsa.decrypt(h2b(p["encryptedPartial"]), OAEP)
            s_i = PublicKey(envelope[:33])
            if dleq_ok(vks[p["index"]], k, s_i, envelope[33:]):
                good[p["index"]] = s_i
        assert len(good) >= ks["threshold"]
        shared = interpolate(dict(sorted(good.items())[: ks["threshold"]]), 0)
        key = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1").derive(enc(shared)[1:])
        return AESGCM(key).decrypt(h2b(material["iv"]), h2b(material["ciphertext"]), None)
