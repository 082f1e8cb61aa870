"""What ``user`` mode costs a node per partial (docs/node-authorization.md), same run, same node.

    .venv/bin/python bench/user_mode.py          (also section (f) of bench/threshold.py)

Three node processes linked to a real anvil chain (NoxCompute deployed, a real
DKG, t = 2). Node 1 is asked ``ROUNDS`` times for a partial in each of three
modes, restarted on the same share between blocks of ``BLOCK`` requests and the
modes taken in turn, so that the machine's load falls on all alike:

* ``user``: binding, the user's token recovered, target = encryptionPubKey and
  ``isViewer``, whose true answer the node keeps (``TKMS_NODE_ACL_CACHE_SECONDS``,
  60 s: the requests repeat one handle and user, so one ``eth_call`` per start);
* ``user (no ACL cache)``: the same with ``TKMS_NODE_ACL_CACHE_SECONDS=0``, one
  ``isViewer`` by ``eth_call`` to anvil per partial (the transport's cost);
* ``gateway``: the gateway's signature only.

Per mode: the node process's CPU per partial (utime + stime from /proc, over all
requests) and the p50 and p90 round trip. anvil's own CPU for the ``eth_call`` is
not in the node's figure (it is the RPC endpoint's cost): it is reported apart.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import deploy_demo_app, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.client.relay import Committee, CommitteeNode, run_ceremony
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.processes import Service, free_port, start, stop_all, wait_service_healthy
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.delegation import sign_delegate_request, user_fields

CHAIN_ID = 421614
ROUNDS = 400
BLOCK = 50
UNCACHED = "user (no ACL cache)"
MODES = ("user", UNCACHED, "gateway")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _token(wallet: Wallet, key: str, contract: bytes) -> str:
    now = int(time.time()) - 30
    message = {
        "userAddress": to_hex(wallet.address),
        "encryptionPubKey": key,
        "notBefore": now,
        "expiresAt": now + 3600,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=contract)
    signature = eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    payload = json.dumps({"payload": message, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(payload.encode()).decode()


class _Nodes:
    def __init__(self, root: Path, anvil: Anvil, contract: bytes, admin: Wallet) -> None:
        self.root, self.anvil, self.contract, self.admin = root, anvil, contract, admin
        self.wallets = {i: Wallet.generate() for i in (1, 2, 3)}
        self.ports = {i: free_port() for i in (1, 2, 3)}
        self.sealing = {i: secrets.token_bytes(32) for i in (1, 2, 3)}
        self.services: dict[int, Service] = {}

    def env(self, i: int, mode: str) -> dict[str, str]:
        stem = f"TKMS_NODE_CHAINS__{CHAIN_ID}__"
        cache = "0" if mode == UNCACHED else "60"
        return {
            "TKMS_NODE_ACL_CACHE_SECONDS": cache,
            "TKMS_NODE_WALLET_KEY": to_hex(self.wallets[i].private_key_bytes()),
            stem + "RPC_URL": self.anvil.url,
            stem + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(self.contract),
            stem + "REFRESH_INTERVAL": "0.5s",
            "TKMS_NODE_SERVER__PORT": str(self.ports[i]),
            "TKMS_NODE_STATE_DIR": str(self.root / f"node{i}"),
            "TKMS_NODE_SEALING_KEY": to_hex(self.sealing[i]),
            "TKMS_NODE_DKG_ADMIN_ADDRESS": to_hex(self.admin.address),
            "TKMS_NODE_AUTHORIZATION_MODE": "user" if mode == UNCACHED else mode,
        }

    def start(self, i: int, mode: str) -> Service:
        log = self.root / f"node{i}-{MODES.index(mode)}.log"
        service = start(["node"], self.env(i, mode), log, self.ports[i], name=f"node {i}")
        wait_service_healthy(service)
        self.services[i] = service
        return service

    def stop(self, i: int) -> None:
        stop_all([self.services.pop(i)])

    def committee(self) -> Committee:
        return Committee(
            CHAIN_ID, tuple(CommitteeNode(i, s.url) for i, s in sorted(self.services.items()))
        )


def _measure(
    url: str, pid: int, requests: list[tuple[dict[str, str], dict[str, str]]]
) -> tuple[float, list[float]]:
    samples = []
    with httpx.Client() as http:
        begin = cpu_seconds(pid)
        for headers, body in requests:
            t0 = time.perf_counter()
            answer = http.post(
                url,
                params={"chain_id": str(CHAIN_ID), "salt": to_hex(secrets.token_bytes(32))},
                headers=headers,
                json=body,
            )
            samples.append(time.perf_counter() - t0)
            assert answer.status_code == 200, answer.text
        cpu = cpu_seconds(pid) - begin
    return cpu / len(requests), samples


def user_mode_rows(rounds: int = ROUNDS) -> list[tuple[str, float]]:
    """(label, seconds) rows: node CPU per partial and p50/p90 in each mode, anvil's CPU."""
    anvil = Anvil.start(chain_id=CHAIN_ID, accounts=3)
    rpc = anvil.rpc()
    admin, user_signer = (TxSigner(rpc, k, chain_id=CHAIN_ID) for k in anvil.private_keys[:2])
    gateway = Wallet.generate()
    root_dir = tempfile.TemporaryDirectory(prefix="tkms-bench-user-")
    root = Path(root_dir.name)
    placeholder = curve.encode_point(curve.base_mul(curve.random_scalar()))
    nox = deploy_nox_compute(
        admin, admin=admin.address, upgrader=admin.address,
        kms_public_key=placeholder, gateway=gateway.address,
    )  # fmt: skip
    app = deploy_demo_app(admin, nox.address)
    nodes = _Nodes(root, anvil, nox.address, Wallet.generate())
    try:
        for i in (1, 2, 3):
            nodes.start(i, "user")
        outcome = run_ceremony(nodes.committee(), nodes.admin, 2)
        assert outcome.keyset is not None, outcome.errors
        y = parse_hex(outcome.keyset["publicKey"], length=33)
        nox.set_kms_public_key(admin, y)
        record = ecies.encrypt(curve.parse_point(y), (1000).to_bytes(32, "big"))
        handle = bound_input_handle(CHAIN_ID, "uint256", record)
        block = rpc.request("eth_getBlockByNumber", ["latest", False])
        proof = proofs.input_proof(
            gateway, CHAIN_ID, nox.address, handle, user_signer.address, app.address,
            int(block["timestamp"], 16),
        )  # fmt: skip
        app.register(user_signer, handle, proof, "uint256")
        user = next(w for w in map(Wallet, anvil.private_keys) if w.address == user_signer.address)
        key = to_hex(rsa.public_key_der(rsa.generate_private_key()))
        token = _token(user, key, nox.address)
        ephemeral = to_hex(record.ephemeral_pubkey)
        signature = sign_delegate_request(gateway, CHAIN_ID, ephemeral, key)
        headers = {"Authorization": f"Bearer {signature}"}
        body = {
            "ephemeralPubKey": ephemeral,
            "targetPubKey": key,
            **user_fields(handle, record.iv, record.ciphertext, token),
        }
        requests = [(headers, body)] * BLOCK
        results: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in MODES}
        anvil_cpu = dict.fromkeys(MODES, 0.0)
        service = nodes.services[1]
        time.sleep(1.0)  # the key check has read kmsPublicKey() again
        _measure(service.url + "/v1/delegate", service.process.pid, requests[:20])  # warm up
        for round_ in range(len(MODES) * (rounds // BLOCK)):
            # The modes in turn, a block each: stop and start node 1 on the same share.
            mode = MODES[round_ % len(MODES)]
            if round_:
                nodes.stop(1)
                service = nodes.start(1, mode)
                time.sleep(0.6)
                _measure(service.url + "/v1/delegate", service.process.pid, requests[:10])
            a0 = cpu_seconds(anvil.process.pid)
            cpu, samples = _measure(service.url + "/v1/delegate", service.process.pid, requests)
            anvil_cpu[mode] += cpu_seconds(anvil.process.pid) - a0
            results[mode][0].append(cpu)
            results[mode][1].extend(samples)
        rows = []
        for name in ("gateway", UNCACHED, "user"):
            cpus, samples = results[name]
            samples.sort()
            rows += [
                (f"{name} mode: node CPU per partial", statistics.mean(cpus)),
                (f"{name} mode: round trip p50", samples[len(samples) // 2]),
                (f"{name} mode: round trip p90", samples[int(len(samples) * 0.9)]),
            ]
        per = rounds // BLOCK * BLOCK
        for name in (UNCACHED, "user"):
            rows.append((f"{name} mode: anvil CPU per partial (eth_call)", anvil_cpu[name] / per))
        return rows
    finally:
        stop_all(list(nodes.services.values()))
        rpc.close()
        anvil.stop()
        root_dir.cleanup()


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), {ROUNDS} partials per mode")
    for label, seconds in user_mode_rows():
        print(f"  {label:<60} {seconds * 1e6:>9,.0f} µs")


if __name__ == "__main__":
    main()
