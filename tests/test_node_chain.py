"""A node on a real chain (anvil + our NoxCompute), as real processes: nox-kms v0.6's
start-up checks, the gateway read from ``gateway()`` and followed without a restart, and
a threshold node that serves ``/v1/delegate`` only while its keyset's Y is on chain."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chainnet import CHAIN_ID, ChainNet, start_chain
from tests.cluster import Cluster, NodeSpec
from tests.procs import Service, free_port, running, wait_healthy
from tkms.chain.anvil import Anvil
from tkms.chain.contract import NoxCompute, decode_kms_public_key, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.client.delegation import delegate_v0, open_shared_secret
from tkms.client.errors import ServiceError
from tkms.client.nodes import fetch_partials
from tkms.client.recombine import decrypt_record
from tkms.client.relay import run_ceremony
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.node.chain import ChainWatch, StartView, kms_key_hex
from tkms.node.config import ChainConfig, load_node_config
from tkms.protocol.delegation import sign_delegate_request
from tkms.protocol.keyset import verify_keyset
from tkms.web.errors import ApiError

REFRESH = 0.3  # …__REFRESH_INTERVAL of the nodes here: a key check is trusted for 0.6 s
PREFIX = f"NOX_KMS_CHAINS__{CHAIN_ID}__"


@pytest.fixture(scope="module")
def net() -> Iterator[ChainNet]:
    chain = start_chain()
    yield chain
    chain.rpc.close()
    chain.anvil.stop()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


def deploy(net: ChainNet, kms_public_key: bytes, gateway: bytes) -> NoxCompute:
    return deploy_nox_compute(
        net.admin,
        admin=net.admin.address,
        upgrader=net.upgrader.address,
        kms_public_key=kms_public_key,
        gateway=gateway,
    )


def zero_gateway_slot(rpc: Any, nox: NoxCompute) -> None:
    """Make ``gateway()`` read zero, as an uninitialised proxy would (ours refuses to set it)."""
    gateway = nox.gateway().rjust(32, b"\0")
    for slot in range(16):
        word = rpc.request("eth_getStorageAt", [to_hex(nox.address), hex(slot), "latest"])
        if bytes.fromhex(word[2:]) == gateway:
            rpc.request("anvil_setStorageAt", [to_hex(nox.address), hex(slot), "0x" + "00" * 32])
            assert nox.gateway() == bytes(20)
            return
    raise AssertionError("gateway slot not found")


def v0_env(rpc_url: str, contract: bytes, kms_secret: int, port: int) -> dict[str, str]:
    return {
        "NOX_KMS_WALLET_KEY": to_hex(Wallet.generate().private_key_bytes()),
        PREFIX + "ECC_KEY": to_hex(curve.scalar_to_bytes(kms_secret)),
        PREFIX + "RPC_URL": rpc_url,
        PREFIX + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(contract),
        PREFIX + "CALL_TIMEOUT": "2s",
        PREFIX + "CONNECT_TIMEOUT": "1s",
        "TKMS_NODE_CHAINS__421614__REFRESH_INTERVAL": f"{REFRESH}s",
        "NOX_KMS_SERVER__HOST": "127.0.0.1",
        "NOX_KMS_SERVER__PORT": str(port),
    }


def refused(env: dict[str, str]) -> str:
    """The node refuses to start: exit 2, one line, no traceback; returns the line."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "node"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for name, value in env.items():
        if name.endswith("_KEY"):
            assert value not in lines[0]  # never a secret in the message
    return lines[0]


def v0_status(node: Service, gateway: Wallet, kms_secret: int, key: rsa.RSAPrivateKey) -> int:
    """200 (and the right shared secret) or the node's error status."""
    k = curve.random_scalar()
    try:
        answer = delegate_v0(
            node.url,
            gateway,
            CHAIN_ID,
            to_hex(curve.encode_point(curve.base_mul(k))),
            to_hex(rsa.public_key_der(key)),
        )
    except ServiceError as exc:
        return exc.status
    expected = curve.point_x(curve.mul(curve.base_mul(kms_secret), k))
    assert open_shared_secret(key, answer) == expected
    return 200


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- configuration (no chain needed) ----------------------------------------------------


KEY = "0x" + "11" * 32


@pytest.mark.parametrize(
    ("extra", "variable", "why"),
    [
        ({PREFIX + "RPC_URL": "http://127.0.0.1:1"}, "NOX_COMPUTE_CONTRACT_ADDRESS", "required"),
        (
            {
                PREFIX + "RPC_URL": "http://127.0.0.1:1",
                PREFIX + "NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "00" * 20,
            },
            "NOX_COMPUTE_CONTRACT_ADDRESS",
            "zero address",
        ),
        ({PREFIX + "NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "66" * 20}, "RPC_URL", "required"),
        ({PREFIX + "RPC_URL": "127.0.0.1:8545"}, "RPC_URL", "http"),
        ({PREFIX + "CALL_TIMEOUT": "soon"}, "CALL_TIMEOUT", "duration"),
        ({PREFIX + "REFRESH_INTERVAL": "0"}, "REFRESH_INTERVAL", "greater"),
    ],
)
def test_chain_settings_are_checked_with_one_line(
    extra: dict[str, str], variable: str, why: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_node_config({"NOX_KMS_WALLET_KEY": KEY} | extra)
    message = str(err.value)
    assert message.startswith(PREFIX + variable), message
    assert why in message and "\n" not in message


def test_a_linked_chain_needs_no_gateway_address() -> None:
    config = load_node_config(
        {
            "NOX_KMS_WALLET_KEY": KEY,
            PREFIX + "ECC_KEY": KEY,
            PREFIX + "RPC_URL": "https://rpc.example/v3/abc",
            PREFIX + "NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "66" * 20,
        }
    )
    assert config.chains[CHAIN_ID].linked and config.chains[CHAIN_ID].gateway_address is None


def test_the_on_chain_key_is_compared_as_a_point() -> None:
    point = curve.base_mul(curve.random_scalar())
    compressed = curve.encode_point(point)
    uncompressed = point.format(compressed=False)
    assert kms_key_hex(compressed) == kms_key_hex(uncompressed) == to_hex(compressed)
    assert curve.points_equal(decode_kms_public_key(uncompressed), point)
    for bad in (b"", compressed[:32], b"\x02" + b"\xff" * 32, b"\x05" + compressed[1:]):
        assert kms_key_hex(bad) is None


# --- start-up refusals ------------------------------------------------------------------


def test_refuses_a_contract_whose_key_is_another(net: ChainNet) -> None:
    mine, other = curve.random_scalar(), curve.random_scalar()
    nox = deploy(net, curve.encode_point(curve.base_mul(other)), net.gateway.address)
    line = refused(v0_env(net.anvil.url, nox.address, mine, free_port()))
    assert line.startswith(f"error: invalid configuration: {PREFIX}ECC_KEY: its public key")
    assert "is not kmsPublicKey()" in line
    assert to_hex(curve.encode_point(curve.base_mul(other))) in line


def test_refuses_a_key_that_is_not_a_point(net: ChainNet) -> None:
    nox = deploy(net, b"\x02" + b"\xff" * 32, net.gateway.address)
    line = refused(v0_env(net.anvil.url, nox.address, curve.random_scalar(), free_port()))
    assert f"{PREFIX}ECC_KEY: kmsPublicKey()" in line and "not a secp256k1 point" in line


def test_refuses_a_zero_gateway(net: ChainNet) -> None:
    secret = curve.random_scalar()
    nox = deploy(net, curve.encode_point(curve.base_mul(secret)), net.gateway.address)
    zero_gateway_slot(net.rpc, nox)
    line = refused(v0_env(net.anvil.url, nox.address, secret, free_port()))
    assert f"{PREFIX}NOX_COMPUTE_CONTRACT_ADDRESS: gateway()" in line
    assert "is the zero address" in line


def test_refuses_a_configured_gateway_that_is_not_the_contracts(net: ChainNet) -> None:
    secret = curve.random_scalar()
    nox = deploy(net, curve.encode_point(curve.base_mul(secret)), net.gateway.address)
    configured = Wallet.generate().address
    env = v0_env(net.anvil.url, nox.address, secret, free_port())
    env[PREFIX + "GATEWAY_ADDRESS"] = to_hex(configured)
    line = refused(env)
    assert f"{PREFIX}GATEWAY_ADDRESS: {to_hex(configured)} is not gateway()" in line
    assert to_hex(net.gateway.address) in line


def test_refuses_an_rpc_of_another_chain(net: ChainNet) -> None:
    env = v0_env(net.anvil.url, net.nox.address, curve.random_scalar(), free_port())
    env = {k.replace(f"__{CHAIN_ID}__", "__5__"): v for k, v in env.items()}
    line = refused(env)
    assert "NOX_KMS_CHAINS__5__RPC_URL: the RPC serves chain 421614, not 5" in line


def test_refuses_an_unreachable_rpc() -> None:
    env = v0_env(f"http://127.0.0.1:{free_port()}", bytes(19) + b"\1", 1, free_port())
    line = refused(env)
    assert f"{PREFIX}RPC_URL: cannot read chain {CHAIN_ID}" in line and "unreachable" in line


def test_refuses_a_silent_rpc_in_its_call_timeout() -> None:
    with socket.socket() as server:  # listens, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = v0_env(url, bytes(19) + b"\1", 1, free_port()) | {PREFIX + "CALL_TIMEOUT": "500ms"}
        line = refused(env)
    assert f"{PREFIX}RPC_URL: cannot read chain {CHAIN_ID}" in line and "timed out" in line


def test_a_silent_rpc_is_one_shared_503_not_a_hang_nor_an_allow() -> None:
    y = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        chain = ChainConfig(
            rpc_url=f"http://127.0.0.1:{server.getsockname()[1]}",
            nox_compute_contract_address="0x" + "66" * 20,
            call_timeout=0.3,
            refresh_interval=0.1,
        )
        now = [0.0]
        watch = ChainWatch(CHAIN_ID, chain, StartView(b"\1" * 20, y), print, lambda: now[0])

        async def go() -> None:
            await watch.require_key(y)  # the start-up read is fresh and matches
            now[0] = 1.0  # older than two intervals: must be read again
            began = time.monotonic()
            results = await asyncio.gather(
                *(watch.require_key(y) for _ in range(5)), return_exceptions=True
            )
            assert time.monotonic() - began < 1.0  # one read for all five, not five in a row
            for result in results:
                assert isinstance(result, ApiError), result
                assert (result.status, result.code) == (503, "chain_unavailable")
            await watch.aclose()

        asyncio.run(go())


def test_refuses_a_contract_without_code(net: ChainNet) -> None:
    address = secrets.token_bytes(20)
    line = refused(v0_env(net.anvil.url, address, curve.random_scalar(), free_port()))
    assert f"{PREFIX}NOX_COMPUTE_CONTRACT_ADDRESS: no contract at {to_hex(address)}" in line


# --- v0: the gateway comes from the chain, and follows it -------------------------------


def test_v0_follows_gateway_updated_without_restart(
    net: ChainNet, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    secret = curve.random_scalar()
    gateway_a, gateway_b = Wallet.generate(), Wallet.generate()
    nox = deploy(net, curve.encode_point(curve.base_mul(secret)), gateway_a.address)
    port = free_port()
    env = v0_env(net.anvil.url, nox.address, secret, port)
    with running(["node"], env, tmp_path / "node.log", port) as node:
        assert v0_status(node, gateway_a, secret, rsa_key) == 200
        assert v0_status(node, gateway_b, secret, rsa_key) == 401
        nox.set_gateway(net.upgrader, gateway_b.address)
        wait_for(lambda: v0_status(node, gateway_b, secret, rsa_key) == 200, 4 * REFRESH + 2)
        assert v0_status(node, gateway_a, secret, rsa_key) == 401
        # A zero gateway() read later is ignored (with a warning): B stays.
        zero_gateway_slot(net.rpc, nox)
        wait_for(lambda: "reads the zero address" in node.output(), 4 * REFRESH + 2)
        assert v0_status(node, gateway_b, secret, rsa_key) == 200
        assert v0_status(node, gateway_a, secret, rsa_key) == 401
        assert httpx.get(node.url + "/health").json() == {"status": "ok"}
    assert "Traceback" not in node.output()


# --- v1: served only while the keyset's Y is kmsPublicKey() -----------------------------


class ChainCluster(Cluster):
    """The test cluster, each node on the chain instead of a configured gateway."""

    rpc_url = ""
    contract = b""

    def env(self, spec: NodeSpec) -> dict[str, str]:
        env = super().env(spec)
        del env[f"TKMS_NODE_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS"]
        return env | {
            f"TKMS_NODE_CHAINS__{CHAIN_ID}__RPC_URL": self.rpc_url,
            f"TKMS_NODE_CHAINS__{CHAIN_ID}__NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(self.contract),
            f"TKMS_NODE_CHAINS__{CHAIN_ID}__CALL_TIMEOUT": "1s",
            f"TKMS_NODE_CHAINS__{CHAIN_ID}__CONNECT_TIMEOUT": "1s",
            f"TKMS_NODE_CHAINS__{CHAIN_ID}__REFRESH_INTERVAL": f"{REFRESH}s",
            # These tests are about the key check: requests signed by the gateway only.
            "TKMS_NODE_AUTHORIZATION_MODE": "gateway",
        }


def v1_answer(spec: NodeSpec, gateway: Wallet, key: rsa.RSAPrivateKey) -> httpx.Response:
    ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    target = to_hex(rsa.public_key_der(key))
    signature = sign_delegate_request(gateway, CHAIN_ID, ephemeral, target)
    return httpx.post(
        spec.url + "/v1/delegate",
        params={"chain_id": str(CHAIN_ID), "salt": to_hex(secrets.token_bytes(32))},
        headers={"Authorization": f"Bearer {signature}"},
        json={"ephemeralPubKey": ephemeral, "targetPubKey": target},
        timeout=10,
    )


def test_v1_serves_once_the_keyset_is_on_chain_and_stops_when_the_chain_is_gone(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    cluster = ChainCluster.create(tmp_path, 3)
    assert isinstance(cluster, ChainCluster)
    anvil = Anvil.start(chain_id=CHAIN_ID, accounts=2)
    rpc = anvil.rpc()
    try:  # anvil is stopped when a deployment fails too
        admin, upgrader = (TxSigner(rpc, key, chain_id=CHAIN_ID) for key in anvil.private_keys)
        placeholder = curve.encode_point(curve.base_mul(curve.random_scalar()))
        nox = deploy_nox_compute(
            admin,
            admin=admin.address,
            upgrader=upgrader.address,
            kms_public_key=placeholder,
            gateway=cluster.gateway.address,
        )
        cluster.rpc_url, cluster.contract = anvil.url, nox.address
        cluster.start_all()  # no keyset yet: up and healthy, v1 is dkg_incomplete
        first = cluster.nodes[1]
        answer = v1_answer(first, cluster.gateway, rsa_key)
        assert (answer.status_code, answer.json()["error"]) == (503, "dkg_incomplete")

        outcome = run_ceremony(cluster.committee(), cluster.admin, 2)
        assert outcome.succeeded, outcome.errors
        assert outcome.keyset is not None
        y = bytes.fromhex(outcome.keyset["publicKey"][2:])
        keyset = verify_keyset(outcome.keyset, CHAIN_ID, y)

        # The ceremony is over but kmsPublicKey() is still another key.
        for spec in cluster.nodes.values():
            answer = v1_answer(spec, cluster.gateway, rsa_key)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "kms_key_mismatch"
            health = httpx.get(spec.url + "/health")
            assert health.status_code == 503
            assert health.json() == {
                "status": "degraded",
                "checks": {f"chain:{CHAIN_ID}": "kms_key_mismatch"},
            }
            # The keyset stays readable: it is how the operator learns Y.
            keyset_answer = httpx.get(spec.url + "/v1/keyset", params={"chain_id": CHAIN_ID})
            assert keyset_answer.status_code == 200

        # The upgrader publishes Y: served without a restart.
        nox.set_kms_public_key(upgrader, y)
        # Each node picks it up on its own: its next read (a poll, or a request at
        # most RETRY after its last mismatching read).
        for spec in cluster.nodes.values():
            wait_for(lambda spec=spec: v1_answer(spec, cluster.gateway, rsa_key).status_code == 200)
        record = ecies.encrypt(keyset.public_key, b"on-chain key")
        partials = asyncio.run(
            fetch_partials(
                cluster.directory(),
                cluster.gateway,
                CHAIN_ID,
                to_hex(record.ephemeral_pubkey),
                to_hex(rsa.public_key_der(rsa_key)),
            )
        )
        assert partials.failures == {}
        assert decrypt_record(keyset, rsa_key, record, partials.answers) == b"on-chain key"
        for spec in cluster.nodes.values():
            assert httpx.get(spec.url + "/health").json() == {"status": "ok"}

        # The chain goes away: at most a key check's trust (2 intervals) later, 503.
        anvil.stop()
        stopped = time.monotonic()
        statuses: list[tuple[float, int, str]] = []
        while time.monotonic() < stopped + 4 * REFRESH + 1:
            asked = time.monotonic()
            answer = v1_answer(first, cluster.gateway, rsa_key)
            code = answer.json().get("error", "") if answer.status_code != 200 else ""
            statuses.append((asked - stopped, answer.status_code, code))
        assert {status for _, status, _ in statuses} <= {200, 503}, statuses
        assert all(when < 2 * REFRESH + 0.5 for when, status, _ in statuses if status == 200), (
            statuses
        )
        assert statuses[-1][1:] == (503, "chain_unavailable"), statuses[-5:]
        assert {code for _, status, code in statuses if status == 503} == {"chain_unavailable"}
        health = httpx.get(first.url + "/health")
        assert health.status_code == 503
        assert health.json()["checks"] == {f"chain:{CHAIN_ID}": "chain_unavailable"}
        for spec in cluster.nodes.values():
            assert spec.service is not None and spec.service.process.poll() is None
            assert "Traceback" not in spec.service.output()
    finally:
        cluster.stop_all()
        rpc.close()
        anvil.stop()


def test_a_held_keyset_is_checked_at_restart(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    """A node that restarts with its share serves only if kmsPublicKey() is its Y."""
    cluster = ChainCluster.create(tmp_path, 2)
    assert isinstance(cluster, ChainCluster)
    anvil = Anvil.start(chain_id=CHAIN_ID, accounts=2)
    rpc = anvil.rpc()
    try:  # anvil is stopped when a deployment fails too
        admin, upgrader = (TxSigner(rpc, key, chain_id=CHAIN_ID) for key in anvil.private_keys)
        nox = deploy_nox_compute(
            admin,
            admin=admin.address,
            upgrader=upgrader.address,
            kms_public_key=curve.encode_point(curve.base_mul(curve.random_scalar())),
            gateway=cluster.gateway.address,
        )
        cluster.rpc_url, cluster.contract = anvil.url, nox.address
        cluster.start_all()
        outcome = run_ceremony(cluster.committee(), cluster.admin, 2)
        assert outcome.succeeded and outcome.keyset is not None
        nox.set_kms_public_key(upgrader, bytes.fromhex(outcome.keyset["publicKey"][2:]))
        cluster.stop(1)
        service = cluster.start(1)
        wait_healthy(service)
        assert v1_answer(cluster.nodes[1], cluster.gateway, rsa_key).status_code == 200
        # Another key on chain: the restarted node starts, says why, and does not serve.
        nox.set_kms_public_key(upgrader, curve.encode_point(curve.base_mul(2)))
        cluster.stop(1)
        service = cluster.start(1)
        wait_for(lambda: "held keyset's Y is not kmsPublicKey()" in service.output(), 30)
        wait_for(lambda: httpx.get(service.url + "/health").status_code == 503, 30)
        answer = v1_answer(cluster.nodes[1], cluster.gateway, rsa_key)
        assert (answer.status_code, answer.json()["error"]) == (503, "kms_key_mismatch")
    finally:
        cluster.stop_all()
        rpc.close()
        anvil.stop()
