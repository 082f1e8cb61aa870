"""One gateway process serving two chains at once: two anvil processes with different chain ids,
our NoxCompute and DemoApp on each (each with its own gateway wallet as ``gateway()`` and its
own ``kmsPublicKey()``), a 3-node committee holding one key per chain (a real DKG per chain),
and the single v0 node of conftest (a key per chain) behind a second gateway. No mocks.

The chain of a read is its handle's: each answer is signed by that chain's wallet in that
chain's domain, a viewer on one chain is not one on the other, an unserved chain is 400
``unknown_chain``, and with chain B's anvil stopped B's reads are 503 while A's still work (the
last test: it stops B).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from tests.chainnet import FOREIGN_CHAIN_ID
from tests.cluster import CHAIN_ID, Cluster
from tests.conftest import NodeKeys
from tests.procs import Service, free_port, start, start_healthy, wait_healthy
from tkms.chain.anvil import Anvil
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.client import AccessDenied, Client, Unavailable
from tkms.client.gateway_open import Encrypted
from tkms.client.relay import run_ceremony
from tkms.crypto import curve, eip712
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.handle import new_handle, parse_handle

A, B = CHAIN_ID, FOREIGN_CHAIN_ID  # 421614 and 11155111 (the v0 node of conftest serves both)
UNSERVED = 31337


@dataclass
class Chain:
    anvil: Anvil
    admin: TxSigner
    alice: TxSigner
    bob: TxSigner
    wallet: Wallet  # this chain's gateway wallet
    y: str  # the committee's key of this chain
    nox: NoxCompute
    app: DemoApp

    @property
    def id(self) -> int:
        return self.anvil.chain_id

    def key_of(self, signer: TxSigner) -> Wallet:
        return next(w for w in map(Wallet, self.anvil.private_keys) if w.address == signer.address)

    def deploy(self, *, gateway: bytes, kms_public_key: bytes) -> NoxCompute:
        return deploy(self.admin, gateway=gateway, kms_public_key=kms_public_key)


def deploy(admin: TxSigner, *, gateway: bytes, kms_public_key: bytes) -> NoxCompute:
    return deploy_nox_compute(
        admin,
        admin=admin.address,
        upgrader=admin.address,
        kms_public_key=kms_public_key,
        gateway=gateway,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("multichain")
    cluster = Cluster.create(root, 3, chain_ids=(A, B))
    cluster.chain_gateways = {A: Wallet.generate(), B: Wallet.generate()}
    cluster.start_all()  # stops what it started when it fails
    yield cluster
    cluster.stop_all()


def start_chain(cluster: Cluster, chain_id: int) -> Chain:
    outcome = run_ceremony(cluster.committee(chain_id), cluster.admin, 2)
    assert outcome.keyset is not None, outcome.errors
    y = str(outcome.keyset["publicKey"])
    anvil = Anvil.start(chain_id=chain_id, accounts=4)
    try:
        admin, alice, bob = (
            TxSigner(anvil.rpc(), k, chain_id=chain_id) for k in anvil.private_keys[:3]
        )
        wallet = cluster.chain_gateways[chain_id]
        nox = deploy(admin, gateway=wallet.address, kms_public_key=parse_hex(y, length=33))
        app = deploy_demo_app(admin, nox.address)
    except BaseException:
        anvil.stop()
        raise
    return Chain(anvil, admin, alice, bob, wallet, y, nox, app)


@pytest.fixture(scope="module")
def chains(cluster: Cluster) -> Iterator[dict[int, Chain]]:
    with ExitStack() as stack:  # chain A's anvil is stopped when chain B's start fails
        served = {}
        for chain_id in (A, B):
            served[chain_id] = start_chain(cluster, chain_id)
            stack.callback(served[chain_id].anvil.stop)
        yield served


def chain_vars(
    chain: Chain, nox: NoxCompute | None = None, wallet: Wallet | None = None
) -> dict[str, str]:
    stem = f"NOX_HANDLE_GATEWAY_CHAINS__{chain.id}__"
    return {
        stem + "RPC_URL": chain.anvil.url,
        stem + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex((nox or chain.nox).address),
        stem + "WALLET_KEY": to_hex((wallet or chain.wallet).private_key_bytes()),
        stem + "CALL_TIMEOUT": "2s",
        stem + "CONNECT_TIMEOUT": "1s",
    }


def gateway_env(
    cluster: Cluster, chains: dict[int, Chain], port: int, **extra: str
) -> dict[str, str]:
    nodes = [
        {"index": i, "url": s.url, "signer": to_hex(s.wallet.address)}
        for i, s in sorted(cluster.nodes.items())
    ]
    return {
        **chain_vars(chains[A]),
        **chain_vars(chains[B]),
        "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": str(A),
        "TKMS_GATEWAY_NODES": json.dumps(nodes),
        "TKMS_GATEWAY_STATE_DIR": str(cluster.root / "gateway-state"),
        "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
        "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port),
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(cluster: Cluster, chains: dict[int, Chain]) -> Iterator[Service]:
    port = free_port()
    env = gateway_env(cluster, chains, port)
    service = start_healthy(["gateway"], env, cluster.root / "gw.log", port)
    try:
        yield service
    finally:
        service.stop()


def client(gateway: Service, chain: Chain, user: TxSigner | Wallet) -> Client:
    """The SDK for ``chain``: it trusts only that chain's wallet, contract and key."""
    wallet = chain.key_of(user) if isinstance(user, TxSigner) else user
    return Client(
        gateway.url,
        wallet,
        chain_id=chain.id,
        gateway_signer=chain.wallet.address,
        verifying_contract=chain.nox.address,
        kms_public_key=chain.y,
    )


def registered(gateway: Service, chain: Chain, owner: TxSigner, value: int) -> Encrypted:
    with client(gateway, chain, owner) as c:
        secret = c.encrypt(value, "uint256", application=chain.app.address)
    chain.app.register(owner, parse_hex(secret.handle), parse_hex(secret.proof), "uint256")
    return secret


def test_the_start_log_lists_each_chain(cluster: Cluster, gateway: Service) -> None:
    line = next(
        line for line in (cluster.root / "gw.log").read_text().splitlines() if "chains:" in line
    )
    assert f"default chain {A}" in line and f"{A} (signer " in line and f"{B} (signer " in line
    assert line.count("ACL on chain") == 2


def test_each_chain_encrypts_registers_and_decrypts_for_its_owner(
    gateway: Service, chains: dict[int, Chain]
) -> None:
    for chain_id, value in ((A, 111), (B, 222)):
        chain = chains[chain_id]
        secret = registered(gateway, chain, chain.alice, value)
        assert parse_handle(secret.handle).chain_id == chain_id
        with client(gateway, chain, chain.alice) as alice:  # checks chain's wallet and domain
            assert alice.decrypt(secret) == value
    # The write answer itself: chain B's wallet, in chain B's Handle Gateway domain.
    salt = "0x" + "42" * 32
    body = {
        "value": "0x" + "00" * 31 + "07",
        "solidityType": "uint256",
        "owner": to_hex(chains[B].alice.address),
        "applicationContract": to_hex(chains[B].app.address),
    }
    answer = httpx.post(
        gateway.url + "/v0/secrets", params={"chain_id": str(B), "salt": salt}, json=body
    ).json()
    domain = eip712.gateway_domain(B, salt=parse_hex(salt, length=32))
    signer = eip712.recover(
        domain, eip712.HANDLE_WITH_PROOF, answer["payload"], parse_hex(answer["signature"])
    )
    assert signer == chains[B].wallet.address != chains[A].wallet.address


def test_a_viewer_on_chain_a_is_not_a_viewer_on_chain_b(
    gateway: Service, chains: dict[int, Chain]
) -> None:
    a, b = chains[A], chains[B]
    on_a = registered(gateway, a, a.alice, 5)
    on_b = registered(gateway, b, b.alice, 6)
    a.nox.add_viewer(a.alice, parse_hex(on_a.handle), a.bob.address)
    bob = a.key_of(a.bob)
    assert bob.address == b.key_of(b.bob).address  # the same account on both chains
    with client(gateway, a, bob) as on_chain_a:
        assert on_chain_a.decrypt(on_a) == 5
    with client(gateway, b, bob) as on_chain_b, pytest.raises(AccessDenied):
        on_chain_b.decrypt(on_b)


def test_an_unserved_chain_is_unknown_chain(gateway: Service, chains: dict[int, Chain]) -> None:
    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]

    unserved = to_hex(new_handle(UNSERVED, "uint256"))
    for version in ("v0", "v1"):
        read = httpx.get(f"{gateway.url}/{version}/secrets/{unserved}")
        assert error(read) == (400, "unknown_chain")
    write = httpx.post(
        gateway.url + "/v0/secrets", params={"chain_id": str(UNSERVED)}, json={"value": "0x01"}
    )
    assert error(write) == (400, "unknown_chain")
    keyset = httpx.get(gateway.url + "/v1/keyset", params={"chain_id": str(UNSERVED)})
    assert error(keyset) == (400, "unknown_chain")
    # Each chain's keyset; without chain_id the default chain's.
    for chain_id, params in ((A, {}), (B, {"chain_id": str(B)})):
        served = httpx.get(gateway.url + "/v1/keyset", params=params).json()
        assert served["publicKey"] == chains[chain_id].y
    # A chain_id that disagrees with the handle's chain.
    handle_b = to_hex(new_handle(B, "uint256"))
    mismatch = httpx.get(f"{gateway.url}/v1/secrets/{handle_b}", params={"chain_id": str(A)})
    assert error(mismatch) == (400, "invalid_handle")


def test_a_status_batch_is_of_one_chain_and_signed_by_its_wallet(
    gateway: Service, chains: dict[int, Chain]
) -> None:
    url = gateway.url + "/v0/public/handles/status"
    a, b = to_hex(new_handle(A, "bool")), to_hex(new_handle(B, "bool"))
    mixed = httpx.post(url, json={"handles": [a, b]})
    assert mixed.status_code == 400 and mixed.json()["error"] == "bad_request"
    salt = "0x" + "24" * 32
    answer = httpx.post(url, params={"salt": salt}, json={"handles": [b]}).json()
    assert answer["payload"] == {"statuses": [{"handle": b, "resolved": False}]}
    domain = eip712.gateway_domain(B, salt=parse_hex(salt, length=32))
    signer = eip712.recover(
        domain, eip712.HANDLE_STATUS_REPORT, answer["payload"], parse_hex(answer["signature"])
    )
    assert signer == chains[B].wallet.address  # chain B's wallet, in chain B's domain


def test_refuses_to_start_when_chain_b_gateway_is_not_b_wallet(
    cluster: Cluster, chains: dict[int, Chain]
) -> None:
    b = chains[B]
    # gateway() is chain A's wallet: B's own wallet must be it.
    swapped = b.deploy(gateway=chains[A].wallet.address, kms_public_key=parse_hex(b.y, length=33))
    env = gateway_env(cluster, chains, free_port(), **chain_vars(b, swapped))
    line = refused(env)
    stem = f"NOX_HANDLE_GATEWAY_CHAINS__{B}__WALLET_KEY: the gateway wallet"
    assert f"{stem} {to_hex(b.wallet.address)} is not gateway()" in line
    assert line.endswith(f"on chain {B}")


def refused(env: dict[str, str]) -> str:
    """The gateway refuses to start: exit 2, one line, no traceback, no key; the line."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "gateway"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    keys = [value[2:] for name, value in env.items() if name.endswith("WALLET_KEY")]
    assert keys and not any(key in lines[0] for key in keys)
    return lines[0]


def test_a_linked_and_an_unlinked_chain(cluster: Cluster, chains: dict[int, Chain]) -> None:
    """Chain B without RPC_URL: its ACL is the embedded one (the owner reads, no transaction);
    chain A's stays its contract's (a value never registered is refused to its owner)."""
    a, b = chains[A], chains[B]
    port = free_port()
    env = gateway_env(cluster, chains, port)
    del env[f"NOX_HANDLE_GATEWAY_CHAINS__{B}__RPC_URL"]
    log = cluster.root / "gw-mixed.log"
    service = start(["gateway"], env, log, port)
    try:
        wait_healthy(service)
        line = next(line for line in log.read_text().splitlines() if "chains:" in line)
        assert line.count("ACL on chain") == 1 and f"{B} (signer 0x" in line
        assert line.endswith("ACL embedded)")
        with client(service, b, b.alice) as owner:
            secret = owner.encrypt(9, "uint256", application=b.app.address)
            assert owner.decrypt(secret) == 9
        with client(service, b, Wallet.generate()) as stranger, pytest.raises(AccessDenied):
            stranger.decrypt(secret)
        with client(service, a, a.alice) as owner, pytest.raises(AccessDenied):
            owner.decrypt(owner.encrypt(9, "uint256", application=a.app.address))
    finally:
        service.stop()


def single_node_env(
    keys: NodeKeys, chains: dict[int, Chain], node: Service, port: int
) -> dict[str, str]:
    """Chain A with the v0 node's first key and gateway, chain B with its others."""
    a, b = chains[A], chains[B]
    nox_a = a.deploy(
        gateway=keys.gateway.address, kms_public_key=curve.encode_point(keys.public_key)
    )
    other_y = curve.encode_point(curve.base_mul(keys.other_kms_key))
    nox_b = b.deploy(gateway=keys.other_gateway.address, kms_public_key=other_y)
    return {
        **chain_vars(a, nox_a, keys.gateway),
        **chain_vars(b, nox_b, keys.other_gateway),
        "NOX_HANDLE_GATEWAY_KMS__URL": node.url,
        "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": to_hex(keys.node_wallet.address),
        "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
        "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port),
    }


def test_a_single_node_with_a_key_per_chain(
    v0_node: Service,
    node_keys: NodeKeys,
    chains: dict[int, Chain],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("multichain-v0")
    port = free_port()
    env = single_node_env(node_keys, chains, v0_node, port)
    env["TKMS_GATEWAY_STATE_DIR"] = str(root / "state")
    service = start(["gateway"], env, root / "gw.log", port)
    try:
        wait_healthy(service)
        for chain_id, gateway_wallet, value in (
            (A, node_keys.gateway, 31),
            (B, node_keys.other_gateway, 32),
        ):
            chain = chains[chain_id]
            contract = env[f"NOX_HANDLE_GATEWAY_CHAINS__{chain_id}__NOX_COMPUTE_CONTRACT_ADDRESS"]
            app = deploy_demo_app(chain.admin, parse_hex(contract, length=20))
            user = chain.key_of(chain.alice)
            with Client(
                service.url, user, chain_id=chain_id, gateway_signer=gateway_wallet.address,
                verifying_contract=contract,
            ) as c:  # fmt: skip
                secret = c.encrypt(value, "uint256", application=app.address)
                app.register(
                    chain.alice, parse_hex(secret.handle), parse_hex(secret.proof), "uint256"
                )
                assert c.decrypt(secret) == value
    finally:
        service.stop()


def test_chain_b_down_makes_b_reads_503_while_a_still_works(
    gateway: Service, chains: dict[int, Chain]
) -> None:
    """Last: it stops chain B's anvil."""
    a, b = chains[A], chains[B]
    on_a = registered(gateway, a, a.alice, 77)
    on_b = registered(gateway, b, b.alice, 88)
    b.anvil.stop()
    with client(gateway, b, b.alice) as alice_b, pytest.raises(Unavailable) as err:
        alice_b.decrypt(on_b)
    assert err.value.status == 503 and err.value.code == "chain_unavailable"
    with client(gateway, a, a.alice) as alice_a:
        assert alice_a.decrypt(on_a) == 77
