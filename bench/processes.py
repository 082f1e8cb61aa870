"""Real node processes on loopback for the benchmarks (no test code imported)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tkms.client.ceremony import Committee, CommitteeNode
from tkms.client.recombine import decrypt_record
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet import wait_healthy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class BenchCluster:
    chain_id: int
    admin: Wallet
    gateway: Wallet
    urls: dict[int, str]
    signers: dict[int, bytes]

    def committee(self) -> Committee:
        return Committee(self.chain_id, tuple(CommitteeNode(i, u) for i, u in self.urls.items()))

    def directory(self) -> dict[int, tuple[str, bytes]]:
        return {i: (u, self.signers[i]) for i, u in self.urls.items()}


@contextmanager
def node_cluster(n: int, chain_id: int = 421614) -> Iterator[BenchCluster]:
    """``n`` threshold-capable node processes (state dirs, sealing keys, one admin)."""
    admin, gateway = Wallet.generate(), Wallet.generate()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[int, str] = {}
    signers: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="tkms-bench-") as root:
        try:
            for i in range(1, n + 1):
                wallet = Wallet.generate()
                port = free_port()
                env = {
                    **base_env,
                    "TKMS_NODE_WALLET_KEY": to_hex(wallet.private_key_bytes()),
                    f"TKMS_NODE_CHAINS__{chain_id}__GATEWAY_ADDRESS": to_hex(gateway.address),
                    "TKMS_NODE_SERVER__PORT": str(port),
                    "TKMS_NODE_STATE_DIR": str(Path(root) / f"node{i}"),
                    "TKMS_NODE_SEALING_KEY": to_hex(secrets.token_bytes(32)),
                    "TKMS_NODE_DKG_ADMIN_ADDRESS": to_hex(admin.address),
                }
                log = (Path(root) / f"node{i}.log").open("wb")
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tkms", "node"], env=env, stdout=log, stderr=log
                    )
                )
                urls[i] = f"http://127.0.0.1:{port}"
                signers[i] = wallet.address
            for i, url in urls.items():
                wait_healthy(url, processes[i - 1])
            yield BenchCluster(chain_id, admin, gateway, urls, signers)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)


def process_rows(
    chain_id: int, n: int = 5, t: int = 3
) -> tuple[list[list[str]], list[tuple[str, float]]]:
    """(e) of bench/threshold.py: the DKG over HTTP, one node's round trip, a client decryption."""
    import asyncio
    import statistics

    import httpx

    from tkms.client.ceremony import run_ceremony
    from tkms.client.nodes import fetch_partials
    from tkms.dkg.keyset import verify_keyset
    from tkms.protocol.delegation import sign_delegate_request

    with node_cluster(n, chain_id) as cluster:
        start = time.perf_counter()
        outcome = run_ceremony(cluster.committee(), cluster.admin, t)
        wall = time.perf_counter() - start
        assert outcome.keyset is not None, outcome.errors
        dkg = [
            [
                str(n),
                str(t),
                f"{wall:.3f}",
                str(outcome.messages),
                f"{outcome.bytes_relayed / 1024:.1f}",
            ]
        ]
        keyset = verify_keyset(
            outcome.keyset, chain_id, bytes.fromhex(outcome.keyset["publicKey"][2:])
        )
        user = rsa.generate_private_key()
        target = to_hex(rsa.public_key_der(user))
        record = ecies.encrypt(keyset.public_key, b"bench")
        ephemeral = to_hex(record.ephemeral_pubkey)
        signature = sign_delegate_request(cluster.gateway, chain_id, ephemeral, target)
        body = {"ephemeralPubKey": ephemeral, "targetPubKey": target}
        url = cluster.urls[1] + "/v1/delegate"
        samples = []
        with httpx.Client() as http:
            for _ in range(300):
                begin = time.perf_counter()
                response = http.post(
                    url,
                    params={"chain_id": str(chain_id)},
                    headers={"Authorization": f"Bearer {signature}"},
                    json=body,
                )
                samples.append(time.perf_counter() - begin)
                assert response.status_code == 200
        one_node = statistics.median(samples)

        async def decrypt_many(rounds: int) -> list[float]:
            times = []
            async with httpx.AsyncClient() as http:
                for _ in range(rounds):
                    begin = time.perf_counter()
                    got = await fetch_partials(
                        cluster.directory(),
                        cluster.gateway,
                        chain_id,
                        ephemeral,
                        target,
                        client=http,
                    )
                    assert decrypt_record(keyset, user, record, got.answers) == b"bench"
                    times.append(time.perf_counter() - begin)
            return times

        whole = statistics.median(asyncio.run(decrypt_many(100)))
    rows = [
        ("one node: POST /v1/delegate round trip (median)", one_node),
        (f"client: fan-out to {n}, verify {t}, combine, decrypt (median)", whole),
    ]
    return dkg, rows
