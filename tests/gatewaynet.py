"""A threshold committee (real node processes, a real DKG) with a gateway process in front.

One committee and one ceremony serve a whole test module; gateways are cheap
to start, so a module may run several (one per database back end, or with
other settings) in front of the same nodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.adversary import serve_in_thread
from tests.cluster import CHAIN_ID, Cluster
from tests.conftest import NodeKeys
from tests.procs import Service, free_port, start_healthy
from tkms.client import Client
from tkms.client.relay import run_ceremony
from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

N, T = 5, 3
NOX_COMPUTE = bytes.fromhex("5e1f0a7e" * 5)  # the stand-in NoxCompute address of the domains


@dataclass
class GatewayNet:
    root: Path
    cluster: Cluster
    keyset: dict[str, Any]
    contract: bytes = field(default_factory=lambda: Wallet.generate().address)

    @classmethod
    def create(cls, root: Path, n: int = N, t: int = T) -> GatewayNet:
        cluster = Cluster.create(root, n)
        try:  # a node that never got healthy, or a ceremony that failed: stop every node
            cluster.start_all()
            outcome = run_ceremony(cluster.committee(), cluster.admin, t)
            if outcome.keyset is None:
                raise RuntimeError(f"ceremony failed: {outcome.errors}")
        except BaseException:
            cluster.stop_all()
            raise
        return cls(root, cluster, outcome.keyset)

    @property
    def public_key(self) -> str:
        return str(self.keyset["publicKey"])

    def nodes_json(self, urls: dict[int, str] | None = None) -> str:
        urls = urls or {}
        return json.dumps(
            [
                {"index": i, "url": urls.get(i, s.url), "signer": to_hex(s.wallet.address)}
                for i, s in sorted(self.cluster.nodes.items())
            ]
        )

    def env(self, database: str, port: int, **extra: str) -> dict[str, str]:
        env = {
            "TKMS_GATEWAY_SIGNER__WALLET_KEY": to_hex(self.cluster.gateway.private_key_bytes()),
            "TKMS_GATEWAY_CHAIN__ID": str(CHAIN_ID),
            "TKMS_GATEWAY_CHAIN__NOX_COMPUTE_CONTRACT": to_hex(self.contract),
            "TKMS_GATEWAY_KMS__PUBLIC_KEY": self.public_key,
            "TKMS_GATEWAY_NODES": self.nodes_json(),
            "TKMS_GATEWAY_DATABASE_URL": database,
            "TKMS_GATEWAY_STATE_DIR": str(self.root / "gateway-state"),
            "TKMS_GATEWAY_SERVER__HOST": "127.0.0.1",
            "TKMS_GATEWAY_SERVER__PORT": str(port),
        }
        env.update(extra)
        return env

    def start_gateway(self, database: str, log: Path, **extra: str) -> Service:
        port = free_port()
        return start_healthy(["gateway"], self.env(database, port, **extra), log, port)

    @contextmanager
    def gateway(self, database: str, log: Path, **extra: str) -> Iterator[Service]:
        service = self.start_gateway(database, log, **extra)
        try:
            yield service
        finally:
            service.stop()

    def client(self, url: str, wallet: Wallet | None = None, **kw: Any) -> Client:
        return Client(
            url,
            wallet or Wallet.generate(),
            chain_id=CHAIN_ID,
            gateway_signer=self.cluster.gateway.address,
            verifying_contract=self.contract,
            kms_public_key=self.public_key,
            **kw,
        )

    def delegations(self) -> dict[int, float]:
        """``tkms_node_delegations_total`` of every node, once no late answer is in flight.

        The gateway answers at t + spare and lets the last node finish in the
        background: read until two reads 0.1 s apart agree.
        """
        last = self._delegations()
        for _ in range(50):
            time.sleep(0.1)
            now = self._delegations()
            if now == last:
                return now
            last = now
        raise AssertionError("node delegation counters never settle")

    def _delegations(self) -> dict[int, float]:
        counts: dict[int, float] = {}
        for i, spec in self.cluster.nodes.items():
            text = httpx.get(spec.url + "/metrics", timeout=5).text
            counts[i] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("tkms_node_delegations_total{")
            )
        return counts

    def close(self) -> None:
        self.cluster.stop_all()


def module_net(name: str, n: int = N, t: int = T) -> Any:
    """A test module's ``net`` fixture: ``net = module_net("name")`` at the module's top.

    One committee of ``n`` node processes and one ceremony (threshold ``t``) for the
    whole module, under a temp dir named ``name``; every node is stopped after the
    module's last test, or at once when the setup fails (``GatewayNet.create``).
    """

    @pytest.fixture(scope="module", name="net")
    def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayNet]:
        built = GatewayNet.create(Path(tmp_path_factory.mktemp(name)), n, t)
        try:
            yield built
        finally:
            built.close()

    return net


GARBAGE = (
    b"\x00\xffnot json at all",
    b'{"index": 2, "epoch": 1, "encryptedPartial": "0xdead", "proof": "0x' + b"11" * 65 + b'"}',
    b"[1, 2, 3]",
    b'{"index": 2, "epoch": 1, "encryptedPartial": "' + b"ab" * 20000 + b'"}',
    b'{"' * 5000,
)


@contextmanager
def garbage_node() -> Iterator[str]:
    """A 'node' that answers every delegation with 200 and junk, a different kind each time."""
    calls = 0

    async def delegate(_: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(GARBAGE[calls % len(GARBAGE)], 200, media_type="application/json")

    async def health(_: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    app = Starlette(
        routes=[Route("/v1/delegate", delegate, methods=["POST"]), Route("/health", health)]
    )
    with serve_in_thread(app, free_port()) as url:
        yield url


def single_node_env(
    node: Service, keys: NodeKeys, root: Path, port: int, **extra: str
) -> dict[str, str]:
    """A gateway in front of the v0 node of conftest, configured by nox's names."""
    env = {
        "NOX_HANDLE_GATEWAY_SIGNER__WALLET_KEY": to_hex(keys.gateway.private_key_bytes()),
        "NOX_HANDLE_GATEWAY_CHAIN__ID": str(CHAIN_ID),
        "NOX_HANDLE_GATEWAY_CHAIN__NOX_COMPUTE_CONTRACT": to_hex(NOX_COMPUTE),
        "NOX_HANDLE_GATEWAY_KMS__URL": node.url,
        "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": to_hex(keys.node_wallet.address),
        "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
        "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port),
        "TKMS_GATEWAY_KMS__PUBLIC_KEY": to_hex(curve.encode_point(keys.public_key)),
        "TKMS_GATEWAY_STATE_DIR": str(root / "gateway-state"),
    }
    env.update(extra)
    return env


@contextmanager
def single_node_gateway(
    node: Service, keys: NodeKeys, root: Path, **extra: str
) -> Iterator[Service]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = single_node_env(node, keys, root, port, **extra)
    service = start_healthy(["gateway"], env, root / "gw.log", port)
    try:
        yield service
    finally:
        service.stop()
