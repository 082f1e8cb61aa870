"""Single-node mode: the gateway speaks exactly what the Nox SDK expects (nox-compat.md).

The client here is written from nox-compat.md with eth-account, cryptography,
coincurve and httpx only — no tkms code — and behaves as ``@iexec-nox/handle``
does: a random salt per call, the gateway's signature checked against the
address it trusts, ``EIP712 <base64>`` authorizations, RSA-OAEP + AES-GCM.
The gateway runs as a process configured by the Nox gateway's variable names,
in front of the real v0 node of conftest.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_gateway
from tests.procs import Service

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
CONTRACT = "0x" + NOX_COMPUTE.hex()
TYPE_CODES = {"bool": 0, "uint16": 5, "uint256": 35, "int16": 37, "int256": 67}


@pytest.fixture(scope="module")
def gateway(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    with single_node_gateway(v0_node, node_keys, Path(tmp_path_factory.mktemp("gw"))) as g:
        yield g


def typed(domain: dict[str, Any], primary: str, fields: list[tuple[str, str]], message: Any) -> Any:
    order = [("name", "string"), ("version", "string"), ("chainId", "uint256")]
    order += [("verifyingContract", "address"), ("salt", "bytes32")]
    return {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in order if n in domain],
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


def attest(
    answer: httpx.Response,
    salt: str,
    primary: str,
    fields: list[str],
    gateway: str,
    unsigned: tuple[str, ...] = (),
) -> Any:
    """The SDK's check: signed by the gateway it trusts, for this request's salt.

    ``unsigned``: tkms's extra payload fields outside nox's statement (docs/binding.md).
    """
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"payload", "signature"}
    assert set(body["payload"]) == set(fields) | set(unsigned)
    domain = {"name": "Handle Gateway", "version": "1", "chainId": CHAIN_ID, "salt": salt}
    message = {f: body["payload"][f] for f in fields}
    data = typed(domain, primary, [(f, "string") for f in fields], message)
    signer = Account.recover_message(
        encode_typed_data(full_message=data), signature=body["signature"]
    )
    assert signer.lower() == gateway.lower()
    return body["payload"]


def nox_encrypt(url: str, gateway: str, owner: str, app: str, value: str, kind: str) -> str:
    salt = "0x" + os.urandom(32).hex()
    answer = httpx.post(  # the Nox SDK sends the salt only; the gateway has one chain
        f"{url}/v0/secrets",
        params={"salt": salt},
        json={"value": value, "solidityType": kind, "owner": owner, "applicationContract": app},
    )
    payload = attest(answer, salt, "HandleWithProof", ["handle", "proof"], gateway)
    handle = bytes.fromhex(payload["handle"][2:])
    assert payload["handle"] == payload["handle"].lower() and len(handle) == 32
    assert handle[0] == 0 and int.from_bytes(handle[1:5], "big") == CHAIN_ID
    assert handle[5] == TYPE_CODES[kind] and handle[6] == 1
    proof = bytes.fromhex(payload["proof"][2:])
    assert len(proof) == 137
    assert proof[:20] == bytes.fromhex(owner[2:]) and proof[20:40] == bytes.fromhex(app[2:])
    created_at = int.from_bytes(proof[40:72], "big")
    assert abs(created_at - time.time()) < 60
    statement = typed(
        {"name": "NoxCompute", "version": "1", "chainId": CHAIN_ID, "verifyingContract": CONTRACT},
        "HandleProof",
        [("handle", "bytes32"), ("owner", "address"), ("app", "address"), ("createdAt", "uint256")],
        {"handle": payload["handle"], "owner": owner, "app": app, "createdAt": created_at},
    )
    signer = Account.recover_message(
        encode_typed_data(full_message=statement), signature=proof[72:]
    )
    assert signer.lower() == gateway.lower()
    return str(payload["handle"])


def nox_authorization(user: Any, rsa_key: rsa.RSAPrivateKey) -> str:
    spki = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    message = {
        "userAddress": user.address,  # checksummed, as a wallet gives it
        "encryptionPubKey": "0x" + spki.hex(),
        "notBefore": now,
        "expiresAt": now + 3600,
    }
    data = typed(
        {
            "name": "Handle Gateway",
            "version": "1",
            "chainId": CHAIN_ID,
            "verifyingContract": CONTRACT,
        },
        "DataAccessAuthorization",
        [
            ("userAddress", "address"),
            ("encryptionPubKey", "string"),
            ("notBefore", "uint256"),
            ("expiresAt", "uint256"),
        ],
        message,
    )
    signature = Account.sign_message(encode_typed_data(full_message=data), user.key).signature
    token = json.dumps({"payload": message, "signature": "0x" + bytes(signature).hex()})
    return "EIP712 " + base64.b64encode(token.encode()).decode()


def nox_decrypt(url: str, gateway: str, user: Any, handle: str, *, salted: bool) -> bytes:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    params = {"chain_id": str(CHAIN_ID)}
    salt = "0x" + "00" * 32
    if salted:
        salt = params["salt"] = "0x" + os.urandom(32).hex()
    answer = httpx.get(
        f"{url}/v0/secrets/{handle}",
        params=params,
        headers={"Authorization": nox_authorization(user, rsa_key)},
    )
    fields = ["handle", "ciphertext", "encryptedSharedSecret", "iv"]
    payload = attest(
        answer, salt, "HandleCryptoMaterial", fields, gateway, unsigned=("ephemeralPubKey",)
    )
    assert payload["handle"] == handle
    shared_x = rsa_key.decrypt(bytes.fromhex(payload["encryptedSharedSecret"][2:]), OAEP)
    key = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1").derive(shared_x)
    iv = bytes.fromhex(payload["iv"][2:])
    assert len(iv) == 12
    return AESGCM(key).decrypt(iv, bytes.fromhex(payload["ciphertext"][2:]), None)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("bool", "0x01"),
        ("uint16", "0xbeef"),
        ("uint256", "0x" + "00" * 30 + "03e8"),
        ("int16", "0xff85"),
        ("int256", "0x" + "ff" * 32),
    ],
)
def test_the_nox_sdk_flow_round_trips(
    gateway: Service, node_keys: NodeKeys, kind: str, value: str
) -> None:
    owner = Account.create()
    gateway_address = "0x" + node_keys.gateway.address.hex()
    app = "0x" + os.urandom(20).hex()
    handle = nox_encrypt(gateway.url, gateway_address, owner.address, app, value, kind)
    for salted in (True, False):
        plaintext = nox_decrypt(gateway.url, gateway_address, owner, handle, salted=salted)
        assert plaintext == bytes.fromhex(value[2:])


def test_a_stranger_is_403_and_an_unknown_handle_404(gateway: Service, node_keys: NodeKeys) -> None:
    owner, stranger = Account.create(), Account.create()
    gateway_address = "0x" + node_keys.gateway.address.hex()
    handle = nox_encrypt(gateway.url, gateway_address, owner.address, CONTRACT, "0x00", "bool")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = httpx.get(
        f"{gateway.url}/v0/secrets/{handle}",
        headers={"Authorization": nox_authorization(stranger, rsa_key)},
    )
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    unknown = handle[:-6] + ("000000" if handle[-6:] != "000000" else "111111")
    missing = httpx.get(
        f"{gateway.url}/v0/secrets/{unknown}",
        headers={"Authorization": nox_authorization(owner, rsa_key)},
    )
    assert missing.status_code == 404 and set(missing.json()) == {"error", "message"}


def test_v1_routes_say_they_are_not_configured(gateway: Service, node_keys: NodeKeys) -> None:
    assert httpx.get(f"{gateway.url}/v1/keyset").status_code == 501
    owner = Account.create()
    gateway_address = "0x" + node_keys.gateway.address.hex()
    handle = nox_encrypt(gateway.url, gateway_address, owner.address, CONTRACT, "0x01", "bool")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = httpx.get(
        f"{gateway.url}/v1/secrets/{handle}",
        headers={"Authorization": nox_authorization(owner, rsa_key)},
    )
    assert answer.status_code == 501 and answer.json()["error"] == "not_configured"


def test_service_routes_and_open_cors(gateway: Service) -> None:
    root = httpx.get(gateway.url + "/").json()
    assert root["service"] == "Handle Gateway" and root["timestamp"].endswith("Z")
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    metrics = httpx.get(gateway.url + "/metrics").text
    assert "tkms_gateway_secrets_created_total" in metrics
    assert "tkms_gateway_http_requests_total" in metrics
    preflight = httpx.options(
        f"{gateway.url}/v0/secrets",
        headers={
            "Origin": "https://dapp.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    answer = httpx.get(gateway.url + "/health", headers={"Origin": "https://dapp.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    missing = httpx.get(gateway.url + "/nope", headers={"Origin": "https://dapp.example"})
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"
