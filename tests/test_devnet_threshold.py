"""`tkms devnet` with 5 nodes, driven by a client written only from protocol.md.

The client below uses coincurve, cryptography, eth-account, hashlib and httpx
— no tkms code — to check the keyset, ask every node, verify each DLEQ proof,
interpolate in the exponent and decrypt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.procs import (
    check_devnet_chain,
    check_devnet_secrets,
    free_port_block,
    start_devnet,
    wait_printed,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = PublicKey.from_secret((1).to_bytes(32, "big"))
DST = b"KMS-DLEQ-secp256k1-SHA256-v1"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def mul(p: PublicKey, k: int) -> PublicKey:
    return p.multiply((k % N).to_bytes(32, "big"))


def enc(p: PublicKey) -> bytes:
    return p.format(compressed=True)


def lagrange_at_zero(indices: list[int]) -> dict[int, int]:
    out = {}
    for i in indices:
        num, den = 1, 1
        for j in indices:
            if j != i:
                num = num * j % N
                den = den * (j - i) % N
        out[i] = num * pow(den, -1, N) % N
    return out


def combine(points: dict[int, PublicKey]) -> PublicKey:
    lam = lagrange_at_zero(sorted(points))
    return PublicKey.combine_keys([mul(p, lam[i]) for i, p in points.items()])


def dleq_ok(y_i: PublicKey, k: PublicKey, s_i: PublicKey, proof: bytes) -> bool:
    c, z = int.from_bytes(proof[:32], "big"), int.from_bytes(proof[32:], "big")
    if not (0 < c < N and 0 < z < N):
        return False
    a1 = PublicKey.combine_keys([mul(G, z), mul(y_i, N - c)])
    a2 = PublicKey.combine_keys([mul(k, z), mul(s_i, N - c)])
    h = hashlib.sha256(DST + enc(G) + enc(y_i) + enc(k) + enc(s_i) + enc(a1) + enc(a2)).digest()
    return int.from_bytes(h, "big") % N == c


def check_keyset(keyset: dict[str, Any], trusted_y: str) -> dict[int, PublicKey]:
    assert keyset["publicKey"] == trusted_y
    t = keyset["threshold"]
    vks = {n["index"]: PublicKey(bytes.fromhex(n["verificationKey"][2:])) for n in keyset["nodes"]}
    first = sorted(vks)[:t]
    y = PublicKey(bytes.fromhex(trusted_y[2:]))
    assert enc(combine({i: vks[i] for i in first})) == enc(y)
    # Every other Y_j on the same polynomial: interpolate at j from the first t.
    for j in sorted(vks)[t:]:
        terms = []
        for i in first:
            num, den = 1, 1
            for m in first:
                if m != i:
                    num = num * (j - m) % N
                    den = den * (i - m) % N
            terms.append(mul(vks[i], num * pow(den, -1, N)))
        assert enc(PublicKey.combine_keys(terms)) == enc(vks[j])
    return vks


def independent_decrypt(manifest: dict[str, Any]) -> bytes:
    chain_id = manifest["chainId"]
    y = PublicKey(bytes.fromhex(manifest["publicKey"][2:]))
    # Encrypt (protocol.md §1).
    k = PrivateKey()
    shared = mul(y, int.from_bytes(k.secret, "big"))
    key = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1").derive(enc(shared)[1:])
    iv = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(iv, b"protocol.md is enough", None)
    ephemeral = "0x" + enc(k.public_key).hex()

    nodes = manifest["nodes"]
    keyset = httpx.get(nodes[0]["url"] + "/v1/keyset", params={"chain_id": chain_id}).json()
    vks = check_keyset(keyset, manifest["publicKey"])
    user = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    target = (
        "0x"
        + user.public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        .hex()
    )
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "DelegateAuthorization": [
                {"name": "ephemeralPubKey", "type": "string"},
                {"name": "targetPubKey", "type": "string"},
            ],
        },
        "primaryType": "DelegateAuthorization",
        "domain": {"name": "ProtocolDelegate", "version": "1", "chainId": chain_id},
        "message": {"ephemeralPubKey": ephemeral, "targetPubKey": target},
    }
    gateway_key = Path(manifest["gatewayKeyFile"]).read_text().strip()
    sig = Account.sign_message(encode_typed_data(full_message=typed), gateway_key)
    partials: dict[int, PublicKey] = {}
    for node in nodes:
        answer = httpx.post(
            node["url"] + "/v1/delegate",
            params={"chain_id": chain_id, "salt": "0x" + "00" * 32},
            headers={"Authorization": "Bearer 0x" + bytes(sig.signature).hex()},
            json={"ephemeralPubKey": ephemeral, "targetPubKey": target},
        ).json()
        envelope = user.decrypt(bytes.fromhex(answer["encryptedPartial"][2:]), OAEP)
        assert len(envelope) == 97 and answer["index"] == node["index"]
        s_i = PublicKey(envelope[:33])
        assert dleq_ok(vks[node["index"]], k.public_key, s_i, envelope[33:])
        partials[node["index"]] = s_i
    chosen = dict(sorted(partials.items())[-manifest["threshold"] :])
    combined = combine(chosen)
    assert enc(combined) == enc(shared)
    key2 = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1").derive(enc(combined)[1:])
    return AESGCM(key2).decrypt(iv, ciphertext, None)


def _all_down(manifest: dict[str, Any]) -> bool:
    for node in manifest["nodes"]:
        try:
            httpx.get(node["url"] + "/health", timeout=1)
            return False
        except httpx.HTTPError:
            pass
    return True


def check_devnet_chain_written(state: Path) -> None:
    """anvil wrote its state as the devnet stopped it."""
    assert (state / "chain" / "state.json").stat().st_size > 0


def test_five_node_devnet_serves_an_independent_client_and_restarts_with_its_keys(
    tmp_path: Path,
) -> None:
    base = free_port_block(6)  # the devnet's gateway slot and nodes 1..5
    state = tmp_path / "state"
    # protocol.md §3.2 alone is the gateway-mode request: the independent client asks with
    # the gateway's key and nothing else, which a user-mode node refuses (run 2).
    process = start_devnet(state, base, tmp_path / "run1.log", "--node-mode", "gateway")
    try:
        text = wait_printed(tmp_path / "run1.log", process)
        assert "sign keyset" in text  # the progress display of the ceremony
        manifest = json.loads((state / "devnet.json").read_text())
        assert set(manifest) >= {"chainId", "threshold", "publicKey", "gatewayKeyFile", "nodes"}
        check_devnet_secrets(state)
        check_devnet_chain(state)  # kmsPublicKey() is the ceremony's Y
        assert manifest["threshold"] == 3 and len(manifest["nodes"]) == 5
        assert independent_decrypt(manifest) == b"protocol.md is enough"
        shown = re.search(r"tkms delegate --devnet \S+", text)
        assert shown is not None
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert _all_down(manifest), "a node outlived the devnet"
    check_devnet_chain_written(state)

    # Without its chain's saved state, the devnet deploys again (the same addresses: the
    # admin key's first transactions) and sets the held Y before the nodes start.
    (state / "chain" / "state.json").unlink()
    process = start_devnet(state, base, tmp_path / "run2.log")
    try:
        text = wait_printed(tmp_path / "run2.log", process)
        assert "reusing the key shares" in text and "sign keyset" not in text
        again = json.loads((state / "devnet.json").read_text())
        assert again["publicKey"] == manifest["publicKey"]
        assert (again["noxCompute"], again["app"]) == (manifest["noxCompute"], manifest["app"])
        check_devnet_chain(state)
        # In user mode (the default) the gateway's key alone gets nothing; the demo asks
        # as the devnet's runner, for a record it made (docs/node-authorization.md).
        with pytest.raises(KeyError):
            independent_decrypt(again)
        demo = subprocess.run(
            [str(Path(sys.executable).parent / "tkms"), "delegate", "--devnet",
             str(state / "devnet.json")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert "decrypted:        hello from the tkms devnet" in demo.stdout, demo
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert _all_down(manifest)
