"""Five user-mode nodes linked to anvil, a gateway on the same chain, and what a malicious
gateway holding the real gateway wallet can send them (tests/test_node_user_mode.py)."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.chainnet import CHAIN_ID, ChainNet
from tests.cluster import Cluster, NodeSpec
from tests.gatewaynet import GatewayNet
from tests.procs import Service
from tkms.chain import proofs
from tkms.chain.tx import TxSigner
from tkms.client import Client
from tkms.client.recombine import decrypt_record
from tkms.crypto import ecies, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet, keccak256
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.delegation import check_partial_answer, sign_delegate_request
from tkms.protocol.keyset import VerifiedKeyset
from tkms.protocol.solidity import encode_value

N, T = 5, 3
REFRESH = 0.3
RUNNER_MAX_BLOCK_AGE = 16
V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"


class UserCluster(Cluster):
    """Nodes linked to the chain, mode unset: ``user`` is the default on a linked chain."""

    rpc_url = ""
    contract = b""
    runner: bytes | None = None  # RUNNER_ADDRESS at every node (purpose runner)

    def env(self, spec: NodeSpec) -> dict[str, str]:
        env = super().env(spec)
        del env[f"TKMS_NODE_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS"]
        stem = f"TKMS_NODE_CHAINS__{CHAIN_ID}__"
        if self.runner is not None:
            env[stem + "RUNNER_ADDRESS"] = to_hex(self.runner)
            env["TKMS_NODE_RUNNER_MAX_BLOCK_AGE"] = str(RUNNER_MAX_BLOCK_AGE)
        return env | {
            stem + "RPC_URL": self.rpc_url,
            stem + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(self.contract),
            stem + "CALL_TIMEOUT": "2s",
            stem + "CONNECT_TIMEOUT": "1s",
            stem + "REFRESH_INTERVAL": f"{REFRESH}s",
        }


@dataclass
class Net:
    chain: ChainNet
    cluster: UserCluster
    gnet: GatewayNet
    keyset: VerifiedKeyset
    gateway: Service

    def wallet(self, signer: TxSigner) -> Wallet:
        return next(
            w for w in map(Wallet, self.chain.anvil.private_keys) if w.address == signer.address
        )

    def client(self, signer: TxSigner) -> Client:
        return self.gnet.client(self.gateway.url, self.wallet(signer))


def gateway_env(
    gnet: GatewayNet, chain: ChainNet, port: int, runner: bytes | None = None
) -> dict[str, str]:
    env = gnet.env("", port)
    for old in (
        "SIGNER__WALLET_KEY",
        "CHAIN__ID",
        "CHAIN__NOX_COMPUTE_CONTRACT",
        "KMS__PUBLIC_KEY",
    ):
        env.pop("TKMS_GATEWAY_" + old)
    env.pop("TKMS_GATEWAY_DATABASE_URL")  # SQLite under the state directory
    return env | {
        V06 + "RPC_URL": chain.anvil.url,
        V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(chain.nox.address),
        V06 + "WALLET_KEY": to_hex(chain.gateway.private_key_bytes()),
        V06 + "CALL_TIMEOUT": "2s",
        V06 + "CONNECT_TIMEOUT": "1s",
        "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": str(CHAIN_ID),
        "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(runner or Wallet.generate().address),
    }


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- what a user and a malicious gateway hold -----------------------------------------------


def authorization(
    wallet: Wallet, key: str, contract: bytes, *, not_before: int | None = None, ttl: int = 600
) -> str:
    """A ``DataAccessAuthorization`` header value, as the SDK makes it."""
    start = int(time.time()) - 30 if not_before is None else not_before
    message = {
        "userAddress": to_hex(wallet.address),
        "encryptionPubKey": key,
        "notBefore": start,
        "expiresAt": start + ttl,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=contract)
    signature = eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    token = json.dumps({"payload": message, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(token.encode()).decode()


@dataclass
class Record:
    handle: bytes
    sealed: ecies.EciesRecord
    value: int

    def fields(self, **over: Any) -> dict[str, Any]:
        """The binding inputs as a delegation request carries them (never the ciphertext)."""
        return {
            "purpose": "user",
            "handle": to_hex(self.handle),
            "iv": to_hex(self.sealed.iv),
            "ciphertextDigest": to_hex(keccak256(self.sealed.ciphertext)),
        } | over


def registered_record(net: Net, owner: TxSigner, value: int) -> Record:
    """A bound record of ``owner``'s, its handle registered on chain through DemoApp."""
    sealed = ecies.encrypt(net.keyset.public_key, encode_value(value, "uint256"))
    handle = bound_input_handle(CHAIN_ID, "uint256", sealed)
    proof = proofs.input_proof(
        net.chain.gateway, CHAIN_ID, net.chain.nox.address, handle, owner.address,
        net.chain.app.address, net.chain.timestamp(),
    )  # fmt: skip
    net.chain.app.register(owner, handle, proof, "uint256")
    return Record(handle, sealed, value)


def ask_every_node(
    net: Net, k: bytes, target: str, fields: dict[str, Any], only: tuple[int, ...] | None = None
) -> dict[int, httpx.Response]:
    """The malicious gateway: its real wallet signs, the body says what it likes."""
    ephemeral = to_hex(k)
    signature = sign_delegate_request(net.chain.gateway, CHAIN_ID, ephemeral, target)
    body = {"ephemeralPubKey": ephemeral, "targetPubKey": target, **fields}
    return {
        i: httpx.post(
            spec.url + "/v1/delegate",
            params={"chain_id": str(CHAIN_ID), "salt": to_hex(secrets.token_bytes(32))},
            headers={"Authorization": f"Bearer {signature}"},
            json=body,
            timeout=10,
        )
        for i, spec in net.cluster.nodes.items()
        if only is None or i in only
    }


def audit_entries(spec: NodeSpec) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((spec.state_dir / "audit").glob("audit-*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line]
    return entries


def assert_refused(
    net: Net,
    answers: dict[int, httpx.Response],
    status: int,
    code: str,
    handle: bytes | None,
    requester: bytes,
) -> None:
    """Every node said no with this code, and each wrote it to its own audit log."""
    for i, answer in answers.items():
        assert (answer.status_code, answer.json()["error"]) == (status, code), (i, answer.text)
        assert "encryptedPartial" not in answer.text
    want = None if handle is None else to_hex(handle)

    def logged(spec: NodeSpec) -> bool:
        return any(
            e["decision"] == "refused"
            and e["reason"] == code
            and e["handle"] == want
            and e["requester"] == to_hex(requester)
            for e in audit_entries(spec)
        )

    for spec in net.cluster.nodes.values():
        wait_for(lambda spec=spec: logged(spec), 5)


def open_value(net: Net, key: rsa.RSAPrivateKey, record: Record, answers: dict[int, Any]) -> int:
    sealed = [
        check_partial_answer(
            a.json(), index=i, signer=net.cluster.nodes[i].wallet.address, chain_id=CHAIN_ID,
            salt=parse_hex(a.request.url.params["salt"], length=32),
        )
        for i, a in answers.items()
    ]  # fmt: skip
    plaintext = decrypt_record(net.keyset, key, record.sealed, sealed)
    return int.from_bytes(plaintext, "big")


def net_record(net: Net, handle: str) -> Record:
    """A record as the gateway stored it (the malicious gateway holds its database)."""
    db = next((net.gnet.root / "gateway-state").rglob("*.sqlite3"))
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT ephemeral_pubkey, iv, ciphertext FROM gateway_records WHERE handle = ?",
            (parse_hex(handle),),
        ).fetchone()
    assert row is not None
    return Record(parse_hex(handle), ecies.EciesRecord(*map(bytes, row)), 0)


def served(spec: NodeSpec, handle: str, requester: bytes) -> bool:
    return any(
        e["decision"] == "served" and e["handle"] == handle.lower()
        and e["requester"] == to_hex(requester)
        for e in audit_entries(spec)
    )  # fmt: skip
