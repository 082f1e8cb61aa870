"""A committee of real node processes on loopback, for the threshold tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.procs import Service, free_port, start, stop_all, wait_healthy
from tkms.client.relay import Committee, CommitteeNode
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

CHAIN_ID = 421614


@dataclass
class NodeSpec:
    index: int
    port: int
    wallet: Wallet
    state_dir: Path
    sealing_key: bytes
    log: Path
    service: Service | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    root: Path
    admin: Wallet
    gateway: Wallet
    nodes: dict[int, NodeSpec] = field(default_factory=dict)
    chain_ids: tuple[int, ...] = (CHAIN_ID,)
    """Each chain is a key of its own: a node never replaces one by a new DKG."""
    chain_gateways: dict[int, Wallet] = field(default_factory=dict)
    """A chain's own gateway wallet (one gateway serving several chains); else ``gateway``."""

    @classmethod
    def create(cls, root: Path, n: int, chain_ids: tuple[int, ...] = (CHAIN_ID,)) -> Cluster:
        cluster = cls(root, Wallet.generate(), Wallet.generate(), chain_ids=chain_ids)
        for i in range(1, n + 1):
            cluster.nodes[i] = NodeSpec(
                i,
                free_port(),
                Wallet.generate(),
                root / f"node{i}",
                secrets.token_bytes(32),
                root / f"node{i}.log",
            )
        return cluster

    def env(self, spec: NodeSpec) -> dict[str, str]:
        return {
            "TKMS_NODE_WALLET_KEY": to_hex(spec.wallet.private_key_bytes()),
            **{
                f"TKMS_NODE_CHAINS__{chain_id}__GATEWAY_ADDRESS": to_hex(
                    self.chain_gateways.get(chain_id, self.gateway).address
                )
                for chain_id in self.chain_ids
            },
            "TKMS_NODE_SERVER__HOST": "127.0.0.1",
            "TKMS_NODE_SERVER__PORT": str(spec.port),
            "TKMS_NODE_STATE_DIR": str(spec.state_dir),
            "TKMS_NODE_SEALING_KEY": to_hex(spec.sealing_key),
            "TKMS_NODE_DKG_ADMIN_ADDRESS": to_hex(self.admin.address),
        }

    def start(self, index: int) -> Service:
        spec = self.nodes[index]
        with spec.log.open("ab") as log:
            log.write(b"--- start\n")
        spec.service = start(["node"], self.env(spec), spec.log, spec.port)
        return spec.service

    def start_all(self) -> None:
        """Every node started, then each waited for until healthy.

        When one fails (it exits, never gets healthy, cannot be spawned, or the wait is
        interrupted) every node this call started is stopped and waited for before the
        error goes on unchanged: a fixture that fails here has not yielded, so its own
        cleanup never runs.
        """
        started: list[Service] = []
        try:
            for i in self.nodes:
                started.append(self.start(i))
            for service in started:
                wait_healthy(service, timeout=90.0)  # cold starts on a loaded 2-core box
        except BaseException:
            stop_all(started)
            raise

    def stop(self, index: int) -> None:
        service = self.nodes[index].service
        if service is not None:
            service.stop()

    def stop_all(self) -> None:
        """SIGTERM to every node at once, then each waited for."""
        stop_all(s.service for s in self.nodes.values() if s.service is not None)

    def committee(self, chain_id: int = CHAIN_ID) -> Committee:
        return Committee(
            chain_id, tuple(CommitteeNode(i, s.url) for i, s in sorted(self.nodes.items()))
        )

    def directory(self) -> dict[int, tuple[str, bytes]]:
        """index → (url, signer), as a client finds them in devnet.json."""
        return {i: (s.url, s.wallet.address) for i, s in self.nodes.items()}


@contextmanager
def running_cluster(root: Path, n: int) -> Iterator[Cluster]:
    """``n`` node processes, all up, stopped on the way out (a module fixture's body)."""
    cluster = Cluster.create(root, n)
    cluster.start_all()  # stops what it started when it fails
    try:
        yield cluster
    finally:
        cluster.stop_all()
