"""Real node processes on loopback for the benchmarks (no test code imported)."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tkms.client.recombine import decrypt_record
from tkms.client.relay import Committee, CommitteeNode
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.processes import Service, free_port, start, stop_all, wait_service_healthy


@dataclass
class BenchCluster:
    chain_id: int
    admin: Wallet
    gateway: Wallet
    urls: dict[int, str]
    signers: dict[int, bytes]
    pids: list[int] = field(default_factory=list)  # the node processes (for CPU accounting)

    def committee(self) -> Committee:
        return Committee(self.chain_id, tuple(CommitteeNode(i, u) for i, u in self.urls.items()))

    def directory(self) -> dict[int, tuple[str, bytes]]:
        return {i: (u, self.signers[i]) for i, u in self.urls.items()}


@contextmanager
def node_cluster(n: int, chain_id: int = 421614) -> Iterator[BenchCluster]:
    """``n`` threshold-capable node processes (state dirs, sealing keys, one admin)."""
    admin, gateway = Wallet.generate(), Wallet.generate()
    services: list[Service] = []
    signers: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="tkms-bench-") as root:
        try:
            for i in range(1, n + 1):
                wallet = Wallet.generate()
                port = free_port()
                env = {
                    "TKMS_NODE_WALLET_KEY": to_hex(wallet.private_key_bytes()),
                    f"TKMS_NODE_CHAINS__{chain_id}__GATEWAY_ADDRESS": to_hex(gateway.address),
                    "TKMS_NODE_SERVER__PORT": str(port),
                    "TKMS_NODE_STATE_DIR": str(Path(root) / f"node{i}"),
                    "TKMS_NODE_SEALING_KEY": to_hex(secrets.token_bytes(32)),
                    "TKMS_NODE_DKG_ADMIN_ADDRESS": to_hex(admin.address),
                }
                log = Path(root) / f"node{i}.log"
                services.append(start(["node"], env, log, port, name=f"node {i}"))
                signers[i] = wallet.address
            for service in services:
                wait_service_healthy(service, timeout=90.0)  # cold starts on a loaded machine
            urls = {i: s.url for i, s in enumerate(services, start=1)}
            pids = [s.process.pid for s in services]
            yield BenchCluster(chain_id, admin, gateway, urls, signers, pids)
        finally:
            stop_all(services)


def process_rows(
    chain_id: int, n: int = 5, t: int = 3
) -> tuple[list[list[str]], list[tuple[str, float]]]:
    """(e) of bench/threshold.py: the DKG over HTTP, one node's round trip, a client decryption."""
    import asyncio
    import statistics

    import httpx

    from tkms.client.nodes import fetch_partials
    from tkms.client.relay import run_ceremony
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
