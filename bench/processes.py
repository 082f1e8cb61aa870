"""Real node processes on loopback for the benchmarks (no test code imported)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tkms.client.ceremony import Committee, CommitteeNode
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
