"""The runner's routes in single-node mode, on a real chain, with a runner that imports no tkms.

anvil runs our NoxCompute (its ``gateway()`` the gateway's wallet, its
``kmsPublicKey()`` the v0 node's key); the gateway is a process configured by
nox v0.6's names with ``RUNNER_ADDRESS``; the v0 node of conftest holds the
key. The runner (tests/rawrunner.py, written from nox-compat.md) fetches
three operands, decrypts them and publishes results; a user granted on chain
reads a result through ``GET /v0/secrets`` with the Nox SDK's steps.

Our NoxCompute has no compute operations, so a "result handle" here is a
fresh handle the chain granted to a user through an input proof (the gateway
wallet's ``HandleProof``, registered by the DemoApp): on chain it is a handle
the user may view, with no record yet — as a computation's result is before
the runner publishes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from tests.conftest import CHAIN_ID, NodeKeys
from tests.procs import Service, free_port, running, start, wait_healthy
from tests.rawclient import RawClient
from tests.rawrunner import RawRunner, read_v0, read_v0_answer
from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

SALT = "0x" + "00" * 32
V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"


@dataclass
class World:
    anvil: Anvil
    admin: TxSigner
    alice: TxSigner
    nox: NoxCompute
    app: DemoApp
    gateway: Service
    runner_key: bytes
    keys: NodeKeys

    @property
    def gateway_address(self) -> str:
        return to_hex(self.keys.gateway.address)

    @property
    def kms_key(self) -> str:
        return to_hex(curve.encode_point(self.keys.public_key))

    def head(self) -> int:
        with self.anvil.rpc() as rpc:
            return rpc.block_number()

    def runner(self, key: bytes | None = None) -> RawRunner:
        return RawRunner(
            self.gateway.url, CHAIN_ID, self.gateway_address, self.kms_key, key or self.runner_key
        )

    def user(self, signer: TxSigner | None = None) -> RawClient:
        client = RawClient(
            self.gateway.url, CHAIN_ID, self.gateway_address, to_hex(self.nox.address), self.kms_key
        )
        if signer is not None:  # the anvil account's key, so that the chain knows the user
            key = next(k for k in self.anvil.private_keys if Wallet(k).address == signer.address)
            client.account = Account.from_key(key)
        return client

    def result_handle(self, viewer: TxSigner, code: int = 35) -> str:
        """A fresh uint256 handle the chain lets ``viewer`` view (see the module's docstring)."""
        handle = bytes([0]) + CHAIN_ID.to_bytes(4, "big") + bytes([code, 1])
        handle += secrets.token_bytes(25)
        with self.anvil.rpc() as rpc:
            now = int(rpc.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        proof = proofs.input_proof(
            self.keys.gateway, CHAIN_ID, self.nox.address, handle, viewer.address,
            self.app.address, now,
        )  # fmt: skip
        self.app.register(viewer, handle, proof, "uint256")
        return to_hex(handle)


@pytest.fixture(scope="module")
def world(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = Path(tmp_path_factory.mktemp("runner"))
    # anvil is stopped when a deployment or the gateway fails too, not only after the module.
    with Anvil.start(chain_id=CHAIN_ID, accounts=4) as anvil, anvil.rpc() as rpc:
        admin, alice = (TxSigner(rpc, k, chain_id=CHAIN_ID) for k in anvil.private_keys[:2])
        nox = deploy_nox_compute(
            admin,
            admin=admin.address,
            upgrader=admin.address,
            kms_public_key=curve.encode_point(node_keys.public_key),
            gateway=node_keys.gateway.address,
        )
        runner = Wallet.generate()
        port = free_port()
        env = {
            V06 + "RPC_URL": anvil.url,
            V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(nox.address),
            V06 + "WALLET_KEY": to_hex(node_keys.gateway.private_key_bytes()),
            "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": str(CHAIN_ID),
            "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(runner.address),
            "NOX_HANDLE_GATEWAY_KMS__URL": v0_node.url,
            "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": to_hex(node_keys.node_wallet.address),
            "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
            "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port),
            "TKMS_GATEWAY_STATE_DIR": str(root / "state"),
            "TKMS_GATEWAY_RUNNER_MAX_BLOCK_AGE": "16",
        }
        app = deploy_demo_app(admin, nox.address)
        with running(["gateway"], env, root / "gw.log", port) as service:
            key = runner.private_key_bytes()
            yield World(anvil, admin, alice, nox, app, service, key, node_keys)


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def error(answer: httpx.Response) -> tuple[int, str]:
    assert set(answer.json()) >= {"error", "message"}, answer.text
    return answer.status_code, str(answer.json()["error"])


def test_the_runner_computes_and_a_granted_user_reads_the_result(world: World) -> None:
    owner = world.user()
    inputs = [owner.store(word(v), "uint256") for v in (3, 4, 5)]
    runner = world.runner()
    values = runner.operands(inputs, world.head())
    assert [int.from_bytes(v, "big") for v in values] == [3, 4, 5]
    # The computation: a sum and a product, published under handles the chain computed.
    total, product = world.result_handle(world.alice), world.result_handle(world.alice)
    results = [runner.result(total, word(12)), runner.result(product, word(60))]
    assert runner.publish(results, world.head()) == "2 created, 0 unchanged, 0 conflicted"
    # Readable the moment the answer is sent, by whoever the chain lets view it.
    alice = world.user(world.alice)
    assert read_v0(alice, total) == word(12) and read_v0(alice, product) == word(60)
    stranger = world.user()
    assert error(read_v0_answer(stranger, total, SALT)) == (403, "access_denied")
    # The runner may also read its own results back as operands of the next computation.
    assert runner.operands([product, total], world.head()) == [word(60), word(12)]


def test_republication_counts_created_unchanged_and_conflicted(world: World) -> None:
    runner = world.runner()
    same, other = world.result_handle(world.alice), world.result_handle(world.alice)
    first = [runner.result(same, word(1)), runner.result(other, word(2))]
    assert runner.publish(first, world.head()) == "2 created, 0 unchanged, 0 conflicted"
    fresh = world.result_handle(world.alice)
    again = [
        runner.result(same, word(1)),  # the same value: the same tag (another encryption)
        runner.result(other, word(99)),  # another value: another tag
        runner.result(fresh, word(3)),
    ]
    assert runner.publish(again, world.head()) == "1 created, 1 unchanged, 1 conflicted"
    alice = world.user(world.alice)
    assert read_v0(alice, other) == word(2)  # never overwritten
    assert read_v0(alice, fresh) == word(3)


def test_a_non_runner_signer_is_401(world: World) -> None:
    owner = world.user()
    handle = owner.store(word(7), "uint256")
    impostor = world.runner(Wallet.generate().private_key_bytes())
    answer = impostor.request_operands([handle], world.head(), SALT)
    assert error(answer) == (401, "invalid_signature")
    result = impostor.result(world.result_handle(world.alice), word(1))
    assert error(impostor.request_publish([result], world.head(), SALT)) == (
        401,
        "invalid_signature",
    )


def test_a_missing_operand_is_400_operands(world: World) -> None:
    owner = world.user()
    stored = owner.store(word(7), "uint256")
    missing = world.result_handle(world.alice)  # on chain, no record
    answer = world.runner().request_operands([stored, missing], world.head(), SALT)
    assert error(answer) == (400, "operands")
    assert missing in answer.json()["message"]


def test_a_statement_far_from_the_chain_head_is_401(world: World) -> None:
    owner = world.user()
    handle = owner.store(word(7), "uint256")
    runner = world.runner()
    result = runner.result(world.result_handle(world.alice), word(1))
    far = world.head() + 17  # RUNNER_MAX_BLOCK_AGE is 16 here
    assert error(runner.request_operands([handle], far, SALT)) == (401, "stale_authorization")
    assert error(runner.request_publish([result], far, SALT)) == (401, "stale_authorization")


def test_malformed_requests_are_4xx(world: World) -> None:
    runner = world.runner()
    head = world.head()
    owner = world.user()
    handle = owner.store(word(7), "uint256")
    url = world.gateway.url
    assert error(httpx.get(f"{url}/v0/compute/operands")) == (401, "missing_authorization")
    assert error(runner.request_operands([handle], head, "0x12")) == (400, "invalid_salt")
    assert error(runner.request_operands([], head, SALT)) == (400, "operands")
    assert error(runner.request_operands(["0x1234"], head, SALT)) == (400, "invalid_handle")
    too_many = [handle] * 129
    assert error(runner.request_operands(too_many, head, SALT)) == (400, "batch_too_large")
    foreign = RawRunner(url, 1, world.gateway_address, world.kms_key, world.runner_key)
    assert error(foreign.request_operands([handle], head, SALT)) == (400, "unknown_chain")
    good = runner.result(world.result_handle(world.alice), word(1))
    for body in (
        [],
        [{"handle": good["handle"]}],
        [{**good, "nonce": "0x00"}],
        [{**good, "publicKey": "0x02" + "00" * 32}],
        [5],
    ):
        answer = runner.request_publish(body, head, SALT)  # type: ignore[arg-type]
        assert answer.status_code == 400, (body, answer.text)
    wrong_chain = {**good, "handle": "0x00" + "00000001" + good["handle"][10:]}
    assert error(runner.request_publish([wrong_chain], head, SALT)) == (400, "invalid_handle")
    raw = httpx.post(
        f"{url}/v0/compute/results",
        content=b"{not json",
        headers={"Content-Type": "application/json", "Authorization": "EIP712 AAAA"},
    )
    assert raw.status_code in (400, 401)


def test_a_kms_failure_is_503_operands_never_500(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """nox answers 500 here; tkms never does (docs/runner.md)."""
    root = Path(tmp_path_factory.mktemp("runner-nokms"))
    port = free_port()
    env = {
        V06 + "RPC_URL": world.anvil.url,
        V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(world.nox.address),
        V06 + "WALLET_KEY": to_hex(world.keys.gateway.private_key_bytes()),
        "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(Wallet(world.runner_key).address),
        "NOX_HANDLE_GATEWAY_KMS__URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": to_hex(world.keys.node_wallet.address),
        "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
        "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port),
        "TKMS_GATEWAY_STATE_DIR": str(root / "state"),
    }
    service = start(["gateway"], env, root / "gw.log", port)
    try:
        wait_healthy(service)
        owner = RawClient(
            service.url, CHAIN_ID, world.gateway_address, to_hex(world.nox.address), world.kms_key
        )
        handle = owner.store(word(7), "uint256")
        runner = RawRunner(
            service.url, CHAIN_ID, world.gateway_address, world.kms_key, world.runner_key
        )
        assert error(runner.request_operands([handle], world.head(), SALT)) == (503, "operands")
    finally:
        service.stop()


def test_the_sdk_runner_in_single_node_mode(world: World) -> None:
    """tkms.client.Runner speaks /v0/compute/operands too (chosen as the SDK chooses)."""
    from tkms.client import Runner

    owner = world.user()
    inputs = [owner.store(word(v), "uint256") for v in (6, 7)]
    with Runner(
        world.gateway.url,
        Wallet(world.runner_key),
        chain_id=CHAIN_ID,
        gateway_signer=world.keys.gateway.address,
        verifying_contract=world.nox.address,
        rpc_url=world.anvil.url,
        nox_compute=world.nox.address,
    ) as runner:
        assert [o.value for o in runner.operands(inputs)] == [6, 7]
        result = world.result_handle(world.alice)
        assert runner.publish([(result, 42)]).created == 1
    assert read_v0(world.user(world.alice), result) == word(42)
