"""The runner in threshold mode: ``tkms.client.Runner`` over ``GET /v1/compute/operands``.

A real 5-node committee (t = 3, a real DKG), anvil with our NoxCompute, a
gateway process with ``RUNNER_ADDRESS`` and the runner's wallet. The runner
fetches three operands in one request (one batch per node: every node's
signature and every DLEQ proof checked, partials combined by the runner),
computes, and publishes; a user granted on chain reads the result. With two
nodes down it all still works.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start_healthy
from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.client import AsyncRunner, BadRequest, Client, Runner, Unauthorized
from tkms.client.recombine import open_partial
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.audit_format import chain_files
from tkms.node.audit_verify import verify
from tkms.protocol.batch_delegation import batch_request, check_batch_answer
from tkms.protocol.delegation import DelegationAnswerError
from tkms.protocol.handle import new_handle
from tkms.protocol.keyset import verify_keyset

V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"


class World:
    def __init__(self, root: Path) -> None:
        # What is up when a later step fails (anvil missing, a gateway never healthy) is
        # stopped before the error goes on: the fixture has not yielded, close() never runs.
        with ExitStack() as stack:
            self._build(root, stack)
            self._stack = stack.pop_all()

    def _build(self, root: Path, stack: ExitStack) -> None:
        self.gnet = GatewayNet.create(root, n=5, t=3)
        stack.callback(self.gnet.close)
        self.anvil = Anvil.start(chain_id=CHAIN_ID, accounts=4)
        stack.callback(self.anvil.stop)
        self.rpc = self.anvil.rpc()
        stack.callback(self.rpc.close)
        admin, alice = (
            TxSigner(self.rpc, k, chain_id=CHAIN_ID) for k in self.anvil.private_keys[:2]
        )
        self.alice = alice
        self.alice_wallet = Wallet(self.anvil.private_keys[1])
        self.nox: NoxCompute = deploy_nox_compute(
            admin,
            admin=admin.address,
            upgrader=admin.address,
            kms_public_key=parse_hex(self.gnet.public_key, length=33),
            gateway=self.gnet.cluster.gateway.address,
        )
        self.gnet.contract = self.nox.address
        self.app: DemoApp = deploy_demo_app(admin, self.nox.address)
        self.runner_wallet = Wallet.generate()
        port = free_port()
        env = self.gnet.env("", port)
        for old in ("SIGNER__WALLET_KEY", "CHAIN__ID", "CHAIN__NOX_COMPUTE_CONTRACT"):
            env.pop("TKMS_GATEWAY_" + old)
        env.pop("TKMS_GATEWAY_KMS__PUBLIC_KEY")  # kmsPublicKey()
        env.pop("TKMS_GATEWAY_DATABASE_URL")
        env.update(
            {
                V06 + "RPC_URL": self.anvil.url,
                V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(self.nox.address),
                V06 + "WALLET_KEY": to_hex(self.gnet.cluster.gateway.private_key_bytes()),
                "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(self.runner_wallet.address),
            }
        )
        self.gateway: Service = start_healthy(["gateway"], env, root / "gw.log", port)
        stack.callback(self.gateway.stop)

    def close(self) -> None:
        """The gateway, then the chain, then the nodes: the reverse of their start."""
        self._stack.close()

    def runner(self, wallet: Wallet | None = None) -> Runner:
        return Runner(
            self.gateway.url,
            wallet or self.runner_wallet,
            chain_id=CHAIN_ID,
            gateway_signer=self.gnet.cluster.gateway.address,
            verifying_contract=self.nox.address,
            kms_public_key=self.gnet.public_key,
            rpc_url=self.anvil.url,
            nox_compute=self.nox.address,
        )

    def user(self, wallet: Wallet | None = None) -> Client:
        return self.gnet.client(self.gateway.url, wallet, application=self.app.address)

    def result_reader(self, wallet: Wallet) -> Client:
        """A user reading a runner's result: its handle comes from the chain, so its record
        carries no tkms binding (docs/runner.md, "Results and the binding"); the SDK must
        be told to trust the gateway's signature alone for it."""
        return self.gnet.client(
            self.gateway.url, wallet, application=self.app.address, require_binding=False
        )

    def result_handle(self) -> str:
        """A fresh handle the chain lets alice view, with no record yet (test_gateway_runner.py)."""
        handle = new_handle(CHAIN_ID, "uint256")
        now = int(self.rpc.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        proof = proofs.input_proof(
            self.gnet.cluster.gateway, CHAIN_ID, self.nox.address, handle, self.alice.address,
            self.app.address, now,
        )  # fmt: skip
        self.app.register(self.alice, handle, proof, "uint256")
        return to_hex(handle)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(Path(tmp_path_factory.mktemp("runner-threshold")))
    yield w
    w.close()


def test_the_runner_round_trip_with_all_nodes(world: World) -> None:
    with world.user() as owner:
        inputs = [owner.encrypt(v, "uint256").handle for v in (3, 4, 5)]
    with world.runner() as runner:
        operands = runner.operands(inputs)
        assert [o.value for o in operands] == [3, 4, 5]
        total = world.result_handle()
        report = runner.publish([(total, sum(int(o.value) for o in operands))])  # type: ignore[arg-type]
        assert (report.created, report.unchanged, report.conflicted) == (1, 0, 0)
        again = runner.publish([(total, 12)])
        assert again.message == "0 created, 1 unchanged, 0 conflicted"
        assert runner.publish([(total, 13)]).conflicted == 1
    with world.result_reader(world.alice_wallet) as alice:
        assert alice.decrypt(total) == 12


def test_one_batch_request_per_node(world: World) -> None:
    with world.user() as owner:
        inputs = [owner.encrypt(v, "uint256").handle for v in range(8)]
    before = _batch_requests(world)
    with world.runner() as runner:
        assert [o.value for o in runner.operands(inputs)] == list(range(8))
    world.gnet.delegations()  # let stragglers land
    after = _batch_requests(world)
    assert sum(after.values()) - sum(before.values()) == 5  # one per node, not 8 per node
    # Each node's audit log has one `served` entry per partial of its batch (docs/audit.md).
    time.sleep(0.6)  # the writers fsync every 200 ms
    for spec in world.gnet.cluster.nodes.values():
        files = chain_files(spec.state_dir / "audit", 0)
        assert verify(files).ok
        entries = [json.loads(x) for f in files for x in f.read_text().splitlines()]
        last = [e for e in entries if e["version"] == "v1-batch" and e["decision"] == "served"][-8:]
        assert len({e["k"] for e in last}) == 8
        assert {e["requester"] for e in last} == {to_hex(world.gnet.cluster.gateway.address)}


def _batch_requests(world: World) -> dict[int, float]:
    counts = {}
    for i, spec in world.gnet.cluster.nodes.items():
        text = httpx.get(spec.url + "/metrics", timeout=5).text
        counts[i] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tkms_node_http_requests_total{") and "/v1/delegate/batch" in line
        )
    return counts


def test_the_async_runner(world: World) -> None:
    with world.user() as owner:
        inputs = [owner.encrypt(v, "uint256").handle for v in (7, 8)]
    result = world.result_handle()

    async def run() -> tuple[list[int], int]:
        async with AsyncRunner(
            world.gateway.url,
            world.runner_wallet,
            chain_id=CHAIN_ID,
            gateway_signer=world.gnet.cluster.gateway.address,
            verifying_contract=world.nox.address,
            rpc_url=world.anvil.url,
            nox_compute=world.nox.address,
        ) as runner:
            values = [int(o.value) for o in await runner.operands(inputs)]  # type: ignore[call-overload]
            report = await runner.publish([(result, sum(values))])
            return values, report.created

    assert asyncio.run(run()) == ([7, 8], 1)
    with world.result_reader(world.alice_wallet) as alice:
        assert alice.decrypt(result) == 15


def test_a_non_runner_is_401_and_a_missing_operand_400(world: World) -> None:
    with world.user() as owner:
        stored = owner.encrypt(1, "uint256").handle
    with world.runner(Wallet.generate()) as impostor, pytest.raises(Unauthorized):
        impostor.operands([stored])
    with world.runner() as runner, pytest.raises(BadRequest) as missing:
        runner.operands([stored, to_hex(new_handle(CHAIN_ID, "uint256"))])
    assert missing.value.code == "operands"


def _ask_batch(
    world: World, keys: list[str], target: str, *, signer: Wallet | None = None
) -> tuple[httpx.Response, bytes]:
    request = batch_request(signer or world.gnet.cluster.gateway, CHAIN_ID, keys, target)
    salt = os.urandom(32)
    answer = httpx.post(
        world.gnet.cluster.nodes[1].url + request.target(salt),
        headers={"Authorization": request.authorization},
        json=request.body,
        timeout=30,
    )
    return answer, salt


def test_a_node_batch_answers_each_key_with_a_dleq_proof(world: World) -> None:
    keyset = verify_keyset(world.gnet.keyset, CHAIN_ID, parse_hex(world.gnet.public_key))
    key = rsa.generate_private_key()
    target = to_hex(rsa.public_key_der(key))
    points = [curve.base_mul(curve.random_scalar()) for _ in range(3)]
    keys = [to_hex(curve.encode_point(p)) for p in points]
    answer, salt = _ask_batch(world, keys, target)
    assert answer.status_code == 200, answer.text
    node = world.gnet.cluster.nodes[1]
    batch = check_batch_answer(
        answer.json(), index=1, signer=node.wallet.address, chain_id=CHAIN_ID, salt=salt, count=3
    )
    for point, partial in zip(points, batch.partials, strict=True):
        open_partial(keyset, key, point, partial)  # raises unless its DLEQ proof verifies
    with pytest.raises(DelegationAnswerError):  # the one signature covers the list's order
        swapped = {**answer.json(), "encryptedPartials": answer.json()["encryptedPartials"][::-1]}
        check_batch_answer(
            swapped, index=1, signer=node.wallet.address, chain_id=CHAIN_ID, salt=salt, count=3
        )


def test_a_node_refuses_bad_batches(world: World) -> None:
    target = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    good = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))

    def refused(answer: httpx.Response) -> tuple[int, str]:
        return answer.status_code, str(answer.json()["error"])

    assert refused(_ask_batch(world, [good] * 129, target)[0]) == (413, "batch_too_large")
    assert refused(_ask_batch(world, [], target)[0]) == (400, "invalid_body")
    stranger = _ask_batch(world, [good], target, signer=Wallet.generate())[0]
    assert refused(stranger) == (401, "unauthorized_signer")
    bad_point = _ask_batch(world, [good, "0x02" + "00" * 32], target)[0]
    assert refused(bad_point) == (400, "invalid_ephemeral_pubkey")
    request = batch_request(world.gnet.cluster.gateway, CHAIN_ID, [good], target)
    other = {"ephemeralPubKeys": [good, good], "targetPubKey": target}  # not what was signed
    answer = httpx.post(
        world.gnet.cluster.nodes[1].url + request.target(bytes(32)),
        headers={"Authorization": request.authorization},
        json=other,
        timeout=30,
    )
    assert refused(answer) == (401, "unauthorized_signer")


def test_with_two_nodes_down(world: World) -> None:
    """Last: it stops nodes 2 and 4 (t = 3 of 5 still answer)."""
    with world.user() as owner:
        inputs = [owner.encrypt(v, "uint256").handle for v in (10, 20, 30)]
    world.gnet.cluster.stop(2)
    world.gnet.cluster.stop(4)
    with world.runner() as runner:
        operands = runner.operands(inputs)
        assert [o.value for o in operands] == [10, 20, 30]
        product = world.result_handle()
        assert runner.publish([(product, 6000)]).created == 1
    with world.result_reader(world.alice_wallet) as alice:
        assert alice.decrypt(product) == 6000
