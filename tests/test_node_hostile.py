"""Every hostile request gets its documented 4xx JSON; the node stays up and leaks nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa

from tests.conftest import CHAIN_ID, NodeKeys
from tests.procs import Service
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.delegation import sign_delegate_request


def _spki(key: Any) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return to_hex(der)


@dataclass
class Hostile:
    name: str
    status: int
    code: str
    method: str = "POST"
    path: str = "/v0/delegate"
    params: dict[str, str] = field(default_factory=lambda: {"chain_id": str(CHAIN_ID)})
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b""


def _signed(
    keys: NodeKeys, ephemeral: str, target: str, signer: Wallet | None = None, **kw: Any
) -> dict[str, Any]:
    """Headers and body of a request correctly signed over exactly these strings."""
    sig = sign_delegate_request(signer or keys.gateway, CHAIN_ID, ephemeral, target)
    body = json.dumps({"ephemeralPubKey": ephemeral, "targetPubKey": target}).encode()
    return {
        "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {sig}"},
        "body": body,
        **kw,
    }


def hostile_requests(keys: NodeKeys, good_target: str) -> list[Hostile]:
    good_k = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    ok = _signed(keys, good_k, good_target)
    sig = ok["headers"]["Authorization"].split()[1]
    sig_bytes = bytes.fromhex(sig[2:])
    high_s = (curve.ORDER - int.from_bytes(sig_bytes[32:64], "big")).to_bytes(32, "big")
    flipped_v = bytes([55 - sig_bytes[64]])  # 27 <-> 28: the twin (r, n-s) signature
    small = pyca_rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point: too small)
    big = pyca_rsa.generate_private_key(public_exponent=65537, key_size=4104)
    exp3 = pyca_rsa.generate_private_key(public_exponent=3, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    off_curve = "0x02" + "00" * 31 + "05"  # x = 5: x³+7 = 132 is not a square mod p
    json_headers = {"Content-Type": "application/json"}
    return [
        Hostile("unknown route", 404, "not_found", "GET", "/nope"),
        Hostile("unknown route POST", 404, "not_found", "POST", "/v0/delegate/extra"),
        Hostile("wrong method GET", 405, "method_not_allowed", "GET"),
        Hostile("wrong method DELETE", 405, "method_not_allowed", "DELETE"),
        Hostile("no content type", 415, "unsupported_media_type", headers={}, body=ok["body"]),
        Hostile(
            "text/plain", 415, "unsupported_media_type", headers={"Content-Type": "text/plain"}
        ),
        Hostile("unknown chain", 400, "unknown_chain", params={"chain_id": "999"}, **ok),
        Hostile("chain not a number", 400, "invalid_chain_id", params={"chain_id": "abc"}, **ok),
        Hostile("chain over u32", 400, "invalid_chain_id", params={"chain_id": "9" * 30}, **ok),
        Hostile("chain negative", 400, "invalid_chain_id", params={"chain_id": "-1"}, **ok),
        Hostile("chain missing, two chains", 400, "missing_chain_id", params={}, **ok),
        Hostile(
            "chain in Arabic-Indic digits",
            400,
            "invalid_chain_id",
            params={"chain_id": "\u0664\u0662\u0661\u0666\u0661\u0664"},
            **ok,
        ),
        Hostile(
            "lone surrogate in a field",
            400,
            "invalid_body",
            headers=ok["headers"],
            body=b'{"ephemeralPubKey": "\\ud800", "targetPubKey": "0x00"}',
        ),
        Hostile(
            "salt not hex",
            400,
            "invalid_salt",
            params={"chain_id": str(CHAIN_ID), "salt": "zz"},
            **ok,
        ),
        Hostile(
            "salt 31 bytes",
            400,
            "invalid_salt",
            params={"chain_id": str(CHAIN_ID), "salt": "0x" + "11" * 31},
            **ok,
        ),
        Hostile(
            "no authorization", 401, "missing_authorization", headers=json_headers, body=ok["body"]
        ),
        Hostile(
            "basic auth",
            401,
            "invalid_authorization",
            headers={**json_headers, "Authorization": "Basic Zm9vOmJhcg=="},
            body=ok["body"],
        ),
        Hostile(
            "bearer not hex",
            401,
            "invalid_authorization",
            headers={**json_headers, "Authorization": "Bearer 0xnothex"},
            body=ok["body"],
        ),
        Hostile(
            "bearer 64 bytes",
            401,
            "invalid_authorization",
            headers={**json_headers, "Authorization": "Bearer " + sig[:130]},
            body=ok["body"],
        ),
        Hostile(
            "v = 29",
            401,
            "invalid_signature",
            headers={**json_headers, "Authorization": "Bearer " + sig[:-2] + "1d"},
            body=ok["body"],
        ),
        Hostile(
            "high s",
            401,
            "invalid_signature",
            headers={
                **json_headers,
                "Authorization": "Bearer " + to_hex(sig_bytes[:32] + high_s + flipped_v),
            },
            body=ok["body"],
        ),
        Hostile("malformed json", 400, "malformed_json", headers=ok["headers"], body=b'{"ephem'),
        Hostile("not utf-8", 400, "malformed_json", headers=ok["headers"], body=b"\xff\xfe{}"),
        Hostile("json array", 400, "invalid_body", headers=ok["headers"], body=b"[1, 2]"),
        Hostile(
            "missing field",
            400,
            "invalid_body",
            headers=ok["headers"],
            body=b'{"ephemeralPubKey": "0x02"}',
        ),
        Hostile(
            "field not a string",
            400,
            "invalid_body",
            headers=ok["headers"],
            body=b'{"ephemeralPubKey": 5, "targetPubKey": "0x"}',
        ),
        Hostile(
            "signed by a stranger",
            401,
            "unauthorized_signer",
            **_signed(keys, good_k, good_target, Wallet.generate()),
        ),
        Hostile(
            "strings altered after signing (case)",
            401,
            "unauthorized_signer",
            headers=ok["headers"],
            body=ok["body"].replace(good_k.encode(), good_k.upper().replace("0X", "0x").encode()),
        ),
        Hostile(
            "K not hex", 400, "invalid_ephemeral_pubkey", **_signed(keys, "0xzz" * 10, good_target)
        ),
        Hostile(
            "K 32 bytes", 400, "invalid_ephemeral_pubkey", **_signed(keys, good_k[:-2], good_target)
        ),
        Hostile(
            "K off curve", 400, "invalid_ephemeral_pubkey", **_signed(keys, off_curve, good_target)
        ),
        Hostile(
            "K uncompressed",
            400,
            "invalid_ephemeral_pubkey",
            **_signed(keys, to_hex(curve.base_mul(7).format(compressed=False)), good_target),
        ),
        Hostile(
            "K infinity", 400, "invalid_ephemeral_pubkey", **_signed(keys, "0x00", good_target)
        ),
        Hostile(
            "K prefix 05",
            400,
            "invalid_ephemeral_pubkey",
            **_signed(keys, "0x05" + good_k[4:], good_target),
        ),
        Hostile(
            "target not DER", 400, "invalid_target_pubkey", **_signed(keys, good_k, "0x3082012200")
        ),
        Hostile("target not hex", 400, "invalid_target_pubkey", **_signed(keys, good_k, "hello")),
        Hostile(
            "target RSA-1024", 400, "invalid_target_pubkey", **_signed(keys, good_k, _spki(small))
        ),
        Hostile(
            "target RSA-4104", 400, "invalid_target_pubkey", **_signed(keys, good_k, _spki(big))
        ),
        Hostile("target e = 3", 400, "invalid_target_pubkey", **_signed(keys, good_k, _spki(exp3))),
        Hostile(
            "target EC key", 400, "invalid_target_pubkey", **_signed(keys, good_k, _spki(ec_key))
        ),
        Hostile(
            "body over 64 KiB", 413, "payload_too_large", headers=ok["headers"], body=b" " * 70_000
        ),
    ]


@pytest.fixture(scope="module")
def target(rsa_key: rsa.RSAPrivateKey) -> str:
    return to_hex(rsa.public_key_der(rsa_key))


def test_every_hostile_request_gets_its_documented_error(
    v0_node: Service, node_keys: NodeKeys, target: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    cases = hostile_requests(node_keys, target)
    assert len({c.name for c in cases}) >= 25
    failures = []
    with httpx.Client(base_url=v0_node.url, timeout=10) as client:
        for case in cases:
            response = client.request(
                case.method, case.path, params=case.params, headers=case.headers, content=case.body
            )
            body = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else None
            )
            if (
                response.status_code != case.status
                or not isinstance(body, dict)
                or body.get("error") != case.code
                or not isinstance(body.get("message"), str)
                or "Traceback" in response.text
            ):
                failures.append(f"{case.name}: {response.status_code} {response.text[:200]}")
        assert not failures, "\n".join(failures)

        # Still up, still right.
        k = curve.random_scalar()
        ephemeral = to_hex(curve.encode_point(curve.base_mul(k)))
        good = _signed(node_keys, ephemeral, target)
        response = client.post(
            "/v0/delegate",
            params={"chain_id": str(CHAIN_ID)},
            headers=good["headers"],
            content=good["body"],
        )
        assert response.status_code == 200, response.text
        sealed = bytes.fromhex(response.json()["encryptedSharedSecret"][2:])
        expected = curve.point_x(curve.mul(curve.base_mul(k), node_keys.kms_key))
        assert rsa.decrypt(rsa_key, sealed) == expected

        metrics = client.get("/metrics").text
        assert 'tkms_node_errors_total{code="invalid_target_pubkey"}' in metrics
        assert 'tkms_node_delegations_total{chain_id="421614",version="v0"}' in metrics
        # A zero-padded chain id is the same chain, and the same metric label.
        padded = _signed(node_keys, ephemeral, target)
        response = client.post(
            "/v0/delegate",
            params={"chain_id": "0" + str(CHAIN_ID)},
            headers=padded["headers"],
            content=padded["body"],
        )
        assert response.status_code == 200
        assert 'chain_id="0421614"' not in client.get("/metrics").text

    # Nothing secret reaches the log.
    log = v0_node.output().lower()
    for secret in (
        curve.scalar_to_bytes(node_keys.kms_key).hex(),
        curve.scalar_to_bytes(node_keys.other_kms_key).hex(),
        node_keys.node_wallet.private_key_bytes().hex(),
        expected.hex(),
    ):
        assert secret not in log
    assert "traceback" not in log


def test_slow_hostile_chunked_body_over_limit_is_refused(v0_node: Service) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 8192

    response = httpx.post(
        v0_node.url + "/v0/delegate",
        params={"chain_id": str(CHAIN_ID)},
        headers={"Content-Type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert httpx.get(v0_node.url + "/health").status_code == 200
