"""Shared fixtures: dev keys and a real v0 node process on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import reaper
from tests.procs import Service, free_port, running
from tkms.crypto import curve, rsa
from tkms.crypto.wallet import Wallet

pytest_plugins = ["tests.conftest_pg"]

CHAIN_ID = 421614
OTHER_CHAIN_ID = 11155111


def pytest_sessionstart(session: pytest.Session) -> None:
    """Services a killed test process left running are stopped first (tests/reaper.py)."""
    reaper.reap_orphans()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker went down: what it started is stopped now if it was killed."""
    reaper.reap_orphans()


@dataclass
class NodeKeys:
    kms_key: int
    other_kms_key: int
    node_wallet: Wallet
    gateway: Wallet
    other_gateway: Wallet

    @property
    def public_key(self) -> curve.Point:
        return curve.base_mul(self.kms_key)

    def env(self, port: int) -> dict[str, str]:
        return {
            "NOX_KMS_WALLET_KEY": "0x" + self.node_wallet.private_key_bytes().hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__ECC_KEY": curve.scalar_to_bytes(self.kms_key).hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS": "0x" + self.gateway.address.hex(),
            f"NOX_KMS_CHAINS__{OTHER_CHAIN_ID}__ECC_KEY": "0x"
            + curve.scalar_to_bytes(self.other_kms_key).hex(),
            f"NOX_KMS_CHAINS__{OTHER_CHAIN_ID}__GATEWAY_ADDRESS": "0x"
            + self.other_gateway.address.hex().upper(),
            "NOX_KMS_SERVER__HOST": "127.0.0.1",
            "NOX_KMS_SERVER__PORT": str(port),
        }


@pytest.fixture(scope="session")
def node_keys() -> NodeKeys:
    return NodeKeys(
        curve.random_scalar(),
        curve.random_scalar(),
        Wallet.generate(),
        Wallet.generate(),
        Wallet.generate(),
    )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


@pytest.fixture(scope="session")
def v0_node(node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("node")) / "node.log"
    with running(["node"], node_keys.env(port), log, port) as service:
        yield service
