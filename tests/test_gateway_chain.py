"""The gateway on a real chain: anvil, our NoxCompute and DemoApp, a 3-node committee (a real
DKG) and a gateway process configured by nox v0.6's names. No mocks.

The ACL is the contract's: a stranger is refused (403) before the record is looked up and
before any node is asked; a viewer added on chain decrypts on the next read; a publicly
decryptable handle reads for anyone; a contract wallet's user decrypts through ERC-1271; the
gateway refuses to start when ``gateway()`` or ``kmsPublicKey()`` disagree; and with the
chain down a read is a 503 ``chain_unavailable`` (the last test: it stops anvil).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start_healthy
from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import (
    DemoApp,
    NoxCompute,
    deploy_contract_wallet,
    deploy_demo_app,
    deploy_nox_compute,
    type_code,
)
from tkms.chain.rpc import RpcClient
from tkms.chain.tx import TxSigner
from tkms.client import AccessDenied, Client, NotFound, Unauthorized, Unavailable
from tkms.client.gateway_open import Encrypted
from tkms.crypto import curve
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.chain_acl import ChainAcl, ChainAclUnavailable
from tkms.protocol.handle import new_handle

CHAIN_KEYS: list[bytes] = []  # the anvil accounts' keys, once the chain runs
V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"


@dataclass
class Chain:
    anvil: Anvil
    rpc: RpcClient
    admin: TxSigner
    alice: TxSigner
    bob: TxSigner
    carol: TxSigner
    stranger: TxSigner
    nox: NoxCompute
    app: DemoApp

    def wallet(self, signer: TxSigner) -> Wallet:
        """The anvil account's key as a tkms wallet."""
        return next(w for w in map(Wallet, self.anvil.private_keys) if w.address == signer.address)

    def deploy(self, *, gateway: bytes, kms_public_key: bytes) -> NoxCompute:
        return deploy_nox_compute(
            self.admin,
            admin=self.admin.address,
            upgrader=self.admin.address,
            kms_public_key=kms_public_key,
            gateway=gateway,
        )


@pytest.fixture(scope="module")
def gnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayNet]:
    net = GatewayNet.create(tmp_path_factory.mktemp("gwchain"), n=3, t=2)
    yield net
    net.close()


@pytest.fixture(scope="module")
def chain(gnet: GatewayNet) -> Iterator[Chain]:
    # anvil is stopped when a deployment fails too, not only after the module.
    with Anvil.start(chain_id=CHAIN_ID, accounts=6) as anvil, anvil.rpc() as rpc:
        CHAIN_KEYS[:] = anvil.private_keys
        admin, alice, bob, carol, stranger = (
            TxSigner(rpc, key, chain_id=CHAIN_ID) for key in anvil.private_keys[:5]
        )
        y = parse_hex(gnet.public_key, length=33)
        nox = deploy_nox_compute(
            admin,
            admin=admin.address,
            upgrader=admin.address,
            kms_public_key=y,
            gateway=gnet.cluster.gateway.address,
        )
        gnet.contract = nox.address  # the domain of the clients' statements
        app = deploy_demo_app(admin, nox.address)
        yield Chain(anvil, rpc, admin, alice, bob, carol, stranger, nox, app)


def chain_env(gnet: GatewayNet, chain: Chain, port: int, **extra: str) -> dict[str, str]:
    """The committee's gateway, its chain given by v0.6's per-chain names."""
    env = gnet.env("", port)
    for old in ("SIGNER__WALLET_KEY", "CHAIN__ID", "CHAIN__NOX_COMPUTE_CONTRACT"):
        env.pop("TKMS_GATEWAY_" + old)
    env.pop("TKMS_GATEWAY_KMS__PUBLIC_KEY")  # read from kmsPublicKey()
    env.pop("TKMS_GATEWAY_DATABASE_URL")  # SQLite under the state directory
    env.update(
        {
            V06 + "RPC_URL": chain.anvil.url,
            V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(chain.nox.address),
            V06 + "WALLET_KEY": to_hex(gnet.cluster.gateway.private_key_bytes()),
            V06 + "CALL_TIMEOUT": "2s",
            V06 + "CONNECT_TIMEOUT": "1s",
            V06 + "S3__BUCKET": "unused",
            "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": str(CHAIN_ID),
            "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(Wallet.generate().address),
            "NOX_HANDLE_GATEWAY_SERVER__CORS_ALLOWED_HEADERS": "content-type,authorization",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def gateway(gnet: GatewayNet, chain: Chain) -> Iterator[Service]:
    port = free_port()
    log = gnet.root / "gw-chain.log"
    service = start_healthy(["gateway"], chain_env(gnet, chain, port), log, port)
    try:
        yield service
    finally:
        service.stop()


def client(gnet: GatewayNet, gateway: Service, signer: TxSigner | Wallet) -> Client:
    if isinstance(signer, TxSigner):
        signer = next(w for w in map(Wallet, CHAIN_KEYS) if w.address == signer.address)
    return gnet.client(gateway.url, signer)


def registered(gnet: GatewayNet, chain: Chain, gateway: Service, owner: TxSigner) -> Encrypted:
    """A value encrypted through the gateway and registered by its owner through the DemoApp."""
    with client(gnet, gateway, owner) as c:
        secret = c.encrypt(1000, "uint256", application=chain.app.address)
    chain.app.register(owner, parse_hex(secret.handle), parse_hex(secret.proof), "uint256")
    return secret


def test_start_log_names_the_unsupported_s3_settings_once(
    gnet: GatewayNet, gateway: Service
) -> None:
    text = (gnet.root / "gw-chain.log").read_text()
    s3 = [line for line in text.splitlines() if "S3__BUCKET" in line]
    assert len(s3) == 1 and "not supported" in s3[0]


def test_a_stranger_is_refused_before_any_node_is_asked(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    secret = registered(gnet, chain, gateway, chain.alice)
    with client(gnet, gateway, chain.alice) as alice:
        assert alice.decrypt(secret) == 1000  # an admin, by DemoApp's allow
    before = gnet.delegations()
    with client(gnet, gateway, chain.bob) as bob, pytest.raises(AccessDenied):
        bob.decrypt(secret)
    # nox v0.6's order: the ACL before the record. A stranger learns nothing of existence.
    unknown = to_hex(new_handle(CHAIN_ID, "uint256"))
    with client(gnet, gateway, Wallet.generate()) as stranger, pytest.raises(AccessDenied):
        stranger.decrypt(unknown)
    assert gnet.delegations() == before


def test_a_viewer_added_on_chain_decrypts(gnet: GatewayNet, chain: Chain, gateway: Service) -> None:
    secret = registered(gnet, chain, gateway, chain.alice)
    with client(gnet, gateway, chain.bob) as bob:
        with pytest.raises(AccessDenied):
            bob.decrypt(secret)
        chain.nox.add_viewer(chain.alice, parse_hex(secret.handle), chain.bob.address)
        assert bob.decrypt(secret) == 1000


def test_no_owner_row_on_a_chain(gnet: GatewayNet, chain: Chain, gateway: Service) -> None:
    """Stored but never registered on chain: its owner is no viewer (nox stores no owner)."""
    with client(gnet, gateway, chain.carol) as carol:
        secret = carol.encrypt(7, "uint256", application=chain.app.address)
        with pytest.raises(AccessDenied):
            carol.decrypt(secret)


def test_a_handle_allowed_on_chain_but_not_stored_is_404(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    handle = new_handle(CHAIN_ID, "uint256")
    block = chain.rpc.request("eth_getBlockByNumber", ["latest", False])
    proof = proofs.input_proof(
        gnet.cluster.gateway, CHAIN_ID, chain.nox.address, handle, chain.alice.address,
        chain.app.address, int(block["timestamp"], 16),
    )  # fmt: skip
    chain.app.register(chain.alice, handle, proof, "uint256")
    with client(gnet, gateway, chain.alice) as alice, pytest.raises(NotFound):
        alice.decrypt(to_hex(handle))


def test_a_publicly_decryptable_handle_reads_for_anyone(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    secret = registered(gnet, chain, gateway, chain.alice)
    handle = parse_hex(secret.handle)

    async def flag_read_by_the_gateway_acl() -> tuple[bool, bool]:
        acl = ChainAcl(chain.anvil.url, chain.nox.address, CHAIN_ID)
        try:
            before = await acl.is_publicly_decryptable(handle)
            await asyncio.to_thread(chain.nox.allow_public_decryption, chain.alice, handle)
            return before, await acl.is_publicly_decryptable(handle)
        finally:
            await acl.aclose()

    assert asyncio.run(flag_read_by_the_gateway_acl()) == (False, True)
    with client(gnet, gateway, Wallet.generate()) as anyone:
        assert anyone.decrypt(secret) == 1000


def test_a_contract_wallet_decrypts_through_erc1271(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    wallet = deploy_contract_wallet(chain.carol, chain.carol.address)
    # The user is the contract; its owner's key signs (ContractWallet's isValidSignature).
    user = chain.wallet(chain.carol)
    user.address = wallet.address
    with gnet.client(gateway.url, user) as c:
        secret = c.encrypt(42, "uint256", application=chain.app.address)
        calldata = chain.app.abi.function("register").encode(
            parse_hex(secret.handle), parse_hex(secret.proof), type_code("uint256")
        )
        wallet.execute(chain.carol, chain.app.address, calldata)
        assert c.decrypt(secret) == 42
    # Someone else's signature in the contract's name: ERC-1271 says no, a 401.
    impostor = Wallet.generate()
    impostor.address = wallet.address
    with gnet.client(gateway.url, impostor) as c, pytest.raises(Unauthorized):
        c.decrypt(secret)


def test_writes_follow_nox_v06(gnet: GatewayNet, chain: Chain, gateway: Service) -> None:
    body = {"owner": to_hex(chain.alice.address), "applicationContract": to_hex(chain.app.address)}
    params = {"chain_id": str(CHAIN_ID), "salt": "0x" + "11" * 32}
    url = gateway.url + "/v0/secrets"
    for kind in ("bytes", "string", "uint256"):
        answer = httpx.post(url, params=params, json={**body, "value": "0x", "solidityType": kind})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_value", kind
    answer = httpx.post(url, params=params, json={**body, "value": "0x01", "solidityType": "u7"})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_type"
    # Grants are transactions on a chain: the embedded ACL's routes say so.
    answer = httpx.post(gateway.url + "/v1/acl/grant", params=params, json={})
    assert answer.status_code == 501


def refused(env: dict[str, str]) -> str:
    """The gateway refuses to start: exit 2, one line, no traceback; returns the line."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "gateway"],
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
    assert env[V06 + "WALLET_KEY"][2:] not in lines[0]
    return lines[0]


def test_a_silent_rpc_is_chain_unavailable_within_the_call_timeout() -> None:
    """A socket that never answers: every question is a 503 once CALL_TIMEOUT passes."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"

        async def ask() -> list[str]:
            acl = ChainAcl(url, b"\x01" * 20, CHAIN_ID, timeout=0.4, connect_timeout=0.2)
            codes = []
            try:
                for question in (
                    acl.is_viewer(new_handle(CHAIN_ID, "bool"), b"\x02" * 20),
                    acl.is_publicly_decryptable(new_handle(CHAIN_ID, "bool")),
                    acl.contract_signed(b"\x02" * 20, bytes(32), bytes(65)),
                ):
                    with pytest.raises(ChainAclUnavailable) as err:
                        await question
                    codes.append(f"{err.value.status} {err.value.code}")
            finally:
                await acl.aclose()
            return codes

        started = time.monotonic()
        assert asyncio.run(ask()) == ["503 chain_unavailable"] * 3
        assert time.monotonic() - started < 3


def contract_var(nox: NoxCompute) -> dict[str, str]:
    return {V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(nox.address)}


def test_refuses_to_start_when_the_chain_disagrees(gnet: GatewayNet, chain: Chain) -> None:
    y = parse_hex(gnet.public_key, length=33)
    other_key = curve.encode_point(curve.base_mul(curve.random_scalar()))
    port = free_port()

    other_gateway = chain.deploy(gateway=Wallet.generate().address, kms_public_key=y)
    env = chain_env(gnet, chain, port, **contract_var(other_gateway))
    line = refused(env)
    assert f"{V06}WALLET_KEY" in line and "is not gateway()" in line

    other_y = chain.deploy(gateway=gnet.cluster.gateway.address, kms_public_key=other_key)
    env = chain_env(gnet, chain, port, **contract_var(other_y))
    line = refused(env)  # no key configured: the committee's served keyset is compared
    assert "TKMS_GATEWAY_NODES" in line and f"kmsPublicKey() {to_hex(other_key)}" in line
    line = refused({**env, "TKMS_GATEWAY_KMS__PUBLIC_KEY": gnet.public_key})
    assert "TKMS_GATEWAY_KMS__PUBLIC_KEY" in line and "is not kmsPublicKey()" in line

    dead = {V06 + "RPC_URL": f"http://127.0.0.1:{free_port()}"}
    line = refused(chain_env(gnet, chain, port, **dead))
    assert f"{V06}RPC_URL: cannot read chain {CHAIN_ID}" in line


def test_an_rpc_outage_is_503_chain_unavailable(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    """Last: it stops anvil. Never a 500, never an allow, never the embedded ACL."""
    secret = registered(gnet, chain, gateway, chain.alice)
    before = gnet.delegations()
    chain.anvil.stop()
    with client(gnet, gateway, chain.alice) as alice:
        started = time.monotonic()
        with pytest.raises(Unavailable) as err:
            alice.decrypt(secret)
        assert time.monotonic() - started < 10
    assert err.value.status == 503 and err.value.code == "chain_unavailable"
    assert gnet.delegations() == before
    assert httpx.get(gateway.url + "/health").status_code == 200  # the gateway itself is up
