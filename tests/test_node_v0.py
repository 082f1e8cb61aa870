"""POST /v0/delegate against a real node process, by a client written from nox-compat.md.

The client here uses only eth-account, cryptography, coincurve and httpx — no
tkms code — so it checks the wire contract, not our own reading of it.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import httpx
from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.conftest import CHAIN_ID, OTHER_CHAIN_ID, NodeKeys
from tests.procs import Service

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _typed(
    domain: dict[str, object],
    primary: str,
    fields: list[tuple[str, str]],
    message: dict[str, object],
) -> dict[str, object]:
    domain_types = [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ]
    if "salt" in domain:
        domain_types.append({"name": "salt", "type": "bytes32"})
    return {
        "types": {
            "EIP712Domain": domain_types,
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


def _request(
    node: Service,
    gateway_key: bytes,
    chain_id: int,
    kms_public: PublicKey,
    rsa_key: rsa.RSAPrivateKey,
    salt: bytes | None,
    *,
    bearer_prefix: str = "0x",
) -> tuple[httpx.Response, bytes]:
    """A signed request; ``salt`` None leaves it out, ``bearer_prefix`` "" drops the 0x."""
    k = PrivateKey()
    ephemeral = "0x" + k.public_key.format(compressed=True).hex()
    expected_x = kms_public.multiply(k.secret).format(compressed=True)[1:]
    target = (
        "0x"
        + rsa_key.public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        .hex()
    )
    auth = _typed(
        {"name": "ProtocolDelegate", "version": "1", "chainId": chain_id},
        "DelegateAuthorization",
        [("ephemeralPubKey", "string"), ("targetPubKey", "string")],
        {"ephemeralPubKey": ephemeral, "targetPubKey": target},
    )
    signature = Account.sign_message(encode_typed_data(full_message=auth), gateway_key).signature
    response = httpx.post(
        f"{node.url}/v0/delegate",
        params={"chain_id": str(chain_id)} | ({} if salt is None else {"salt": "0x" + salt.hex()}),
        headers={"Authorization": f"Bearer {bearer_prefix}" + bytes(signature).hex()},
        json={"ephemeralPubKey": ephemeral, "targetPubKey": target},
    )
    return response, expected_x


def _check_answer(
    response: httpx.Response,
    expected_x: bytes,
    rsa_key: rsa.RSAPrivateKey,
    chain_id: int,
    salt: bytes,
    signer: bytes,
) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"encryptedSharedSecret", "proof"}
    sealed = body["encryptedSharedSecret"]
    assert sealed.startswith("0x") and sealed == sealed.lower()
    assert len(bytes.fromhex(sealed[2:])) == 256  # RSA-2048
    assert rsa_key.decrypt(bytes.fromhex(sealed[2:]), OAEP) == expected_x
    proof = _typed(
        {
            "name": "ProtocolDelegate",
            "version": "1",
            "chainId": chain_id,
            "salt": "0x" + salt.hex(),
        },
        "DelegateResponseProof",
        [("encryptedSharedSecret", "string")],
        {"encryptedSharedSecret": sealed},
    )
    recovered = Account.recover_message(
        encode_typed_data(full_message=proof), signature=body["proof"]
    )
    assert recovered.lower() == "0x" + signer.hex()
    assert len(bytes.fromhex(body["proof"][2:])) == 65


def test_delegate_opens_to_the_x_coordinate(
    v0_node: Service, node_keys: NodeKeys, rsa_key: rsa.RSAPrivateKey
) -> None:
    kms_public = PublicKey.from_secret(node_keys.kms_key.to_bytes(32, "big"))
    salt = secrets.token_bytes(32)
    response, expected_x = _request(
        v0_node, node_keys.gateway.private_key_bytes(), CHAIN_ID, kms_public, rsa_key, salt
    )
    _check_answer(response, expected_x, rsa_key, CHAIN_ID, salt, node_keys.node_wallet.address)


def test_each_chain_has_its_own_key_and_gateway(
    v0_node: Service, node_keys: NodeKeys, rsa_key: rsa.RSAPrivateKey
) -> None:
    other_public = PublicKey.from_secret(node_keys.other_kms_key.to_bytes(32, "big"))
    salt = secrets.token_bytes(32)
    response, expected_x = _request(
        v0_node,
        node_keys.other_gateway.private_key_bytes(),
        OTHER_CHAIN_ID,
        other_public,
        rsa_key,
        salt,
    )
    _check_answer(
        response, expected_x, rsa_key, OTHER_CHAIN_ID, salt, node_keys.node_wallet.address
    )
    # The first chain's gateway is not authorised on the second chain.
    response, _ = _request(
        v0_node, node_keys.gateway.private_key_bytes(), OTHER_CHAIN_ID, other_public, rsa_key, salt
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized_signer"


def test_salt_defaults_to_zero_in_the_proof_domain(
    v0_node: Service, node_keys: NodeKeys, rsa_key: rsa.RSAPrivateKey
) -> None:
    kms_public = PublicKey.from_secret(node_keys.kms_key.to_bytes(32, "big"))
    response, expected_x = _request(
        v0_node,
        node_keys.gateway.private_key_bytes(),
        CHAIN_ID,
        kms_public,
        rsa_key,
        None,
        bearer_prefix="",  # a signature without 0x is accepted too
    )
    _check_answer(response, expected_x, rsa_key, CHAIN_ID, bytes(32), node_keys.node_wallet.address)


def test_root_health_and_metrics(v0_node: Service) -> None:
    root = httpx.get(v0_node.url + "/").json()
    assert root["service"] == "tkms-node"
    stamp = datetime.fromisoformat(root["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert httpx.get(v0_node.url + "/health").json() == {"status": "ok"}
    metrics = httpx.get(v0_node.url + "/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'tkms_node_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "tkms_node_http_request_duration_seconds_bucket" in text
