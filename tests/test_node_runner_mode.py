"""The runner at nodes in ``user`` mode (docs/node-authorization.md, "The runner") and
bound runner results (docs/binding.md), over real processes: anvil with NoxCompute and
DemoApp, five nodes linked to it in ``user`` mode with ``RUNNER_ADDRESS`` configured (a
real DKG, t = 3), and a gateway process whose ``RUNNER_ADDRESS`` is the same runner.

The malicious gateway is this test code holding the real gateway wallet: it asks the
nodes directly, calling itself the runner, replaying the runner's statement for other
handles or keys, or after its block has aged; every node refuses each by itself and
writes it to its own audit log. A result the runner published with its ResultBinding
opens for a viewer with ``require_binding=True``; a gateway that serves another record
under that handle is caught by the SDK.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.adversary import serve_in_thread
from tests.chainnet import CHAIN_ID, start_chain
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start, wait_healthy
from tests.rawpublic import public_decrypt
from tests.usernet import (
    RUNNER_MAX_BLOCK_AGE,
    N,
    Net,
    Record,
    T,
    UserCluster,
    ask_every_node,
    assert_refused,
    audit_entries,
    gateway_env,
    open_value,
    registered_record,
    served,
    wait_for,
)
from tkms.client import Client, Runner, UntrustedResponse
from tkms.client.relay import run_ceremony
from tkms.crypto import ecies, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.wire import signed
from tkms.protocol.batch_delegation import OperandRecord, batch_request, runner_fields
from tkms.protocol.binding import ciphertext_digest
from tkms.protocol.keyset import verify_keyset
from tkms.protocol.result_binding import sign_result_binding

RUNNER = Wallet.generate()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("runnermode")
    cluster = UserCluster.create(root, N)
    chain = start_chain()  # from here on, the finally below stops what is up
    assert isinstance(cluster, UserCluster)
    cluster.gateway = chain.gateway
    cluster.rpc_url, cluster.contract = chain.anvil.url, chain.nox.address
    cluster.runner = RUNNER.address
    gateway: Service | None = None
    try:
        cluster.start_all()
        outcome = run_ceremony(cluster.committee(), cluster.admin, T)
        assert outcome.succeeded and outcome.keyset is not None, outcome.errors
        y = parse_hex(outcome.keyset["publicKey"], length=33)
        chain.nox.set_kms_public_key(chain.upgrader, y)
        for spec in cluster.nodes.values():
            wait_for(lambda spec=spec: httpx.get(spec.url + "/health").status_code == 200)
        gnet = GatewayNet(root, cluster, outcome.keyset, contract=chain.nox.address)
        port = free_port()
        env = gateway_env(gnet, chain, port, runner=RUNNER.address)
        gateway = start(["gateway"], env, root / "gw.log", port)
        wait_healthy(gateway)
        yield Net(chain, cluster, gnet, verify_keyset(outcome.keyset, CHAIN_ID, y), gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        cluster.stop_all()
        chain.rpc.close()
        chain.anvil.stop()


def statement(signer: Wallet, operands: list[bytes], key: str, block: int) -> str:
    """An ``OperandAccessAuthorization`` header value, as the runner sends it to the gateway."""
    message: dict[str, Any] = {
        "chainId": CHAIN_ID,
        "blockNumber": block,
        "caller": bytes(20),
        "transactionHash": "0x" + "00" * 32,
        "operands": [to_hex(h) for h in operands],
        "rsaPublicKey": key,
    }
    domain = eip712.gateway_domain(CHAIN_ID)
    signature = eip712.sign(signer, domain, eip712.OPERAND_ACCESS_AUTHORIZATION, message)
    wire = {**message, "caller": to_hex(bytes(20))}
    token = json.dumps({"payload": wire, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(token.encode()).decode()


def head(net: Net) -> int:
    return net.chain.rpc.block_number()


def runner_client(net: Net) -> Runner:
    chain = net.chain
    return Runner(
        net.gateway.url,
        RUNNER,
        chain_id=CHAIN_ID,
        gateway_signer=chain.gateway.address,
        verifying_contract=chain.nox.address,
        rpc_url=chain.anvil.url,
        nox_compute=chain.nox.address,
    )


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key()
    return key, to_hex(rsa.public_key_der(key))


# --- the malicious gateway calls itself the runner ---------------------------------------------


def test_runner_requests_the_gateway_makes_up_are_refused_by_every_node(net: Net) -> None:
    chain = net.chain
    victim = registered_record(net, chain.alice, 1000)
    other = registered_record(net, chain.alice, 7)
    runners, runner_key = rsa_pair()
    _, my_key = rsa_pair()
    k, gw = victim.sealed.ephemeral_pubkey, chain.gateway.address

    def ask(key: str, header: str | None, record: Record = victim) -> dict[int, httpx.Response]:
        fields = record.fields(purpose="runner")
        if header is not None:
            fields["authorization"] = header
        return ask_every_node(net, k, key, fields)

    assert_refused(net, ask(my_key, None), 401, "missing_runner_authorization", victim.handle, gw)
    # Its own statement: the gateway wallet is not RUNNER_ADDRESS.
    forged = statement(chain.gateway, [victim.handle], my_key, head(net))
    assert_refused(net, ask(my_key, forged), 401, "invalid_signature", victim.handle, gw)
    # The runner's real statement (it passes through the gateway) for another operand.
    real = statement(RUNNER, [other.handle], runner_key, head(net))
    answers = ask(runner_key, real)
    assert_refused(net, answers, 403, "not_an_operand", victim.handle, RUNNER.address)
    # The runner's statement for this very handle, the partials sealed to the gateway's key.
    real = statement(RUNNER, [victim.handle], runner_key, head(net))
    answers = ask(my_key, real)
    assert_refused(net, answers, 403, "target_not_runner_key", victim.handle, RUNNER.address)
    # Another record's K under the operand's handle: the binding holds for the runner too.
    fields = victim.fields(purpose="runner", authorization=real)
    answers = ask_every_node(net, other.sealed.ephemeral_pubkey, runner_key, fields)
    assert_refused(net, answers, 403, "binding_mismatch", victim.handle, gw)
    # The statement's block is its window: once the chain moved past it, it is stale.
    chain.rpc.request("anvil_mine", [hex(RUNNER_MAX_BLOCK_AGE + 2)])
    answers = ask(runner_key, real)
    assert_refused(net, answers, 401, "stale_authorization", victim.handle, RUNNER.address)
    # The runner's statement as it is, fresh: every node serves it, and only the runner opens.
    answers = ask(runner_key, statement(RUNNER, [victim.handle], runner_key, head(net)))
    assert {a.status_code for a in answers.values()} == {200}, [a.text for a in answers.values()]
    assert open_value(net, runners, victim, answers) == 1000


def ask_batch(
    net: Net, records: list[Record], target: str, header: str, **over: Any
) -> dict[int, httpx.Response]:
    """A batch as the gateway sends it for the runner (its real wallet signs)."""
    keys = [to_hex(r.sealed.ephemeral_pubkey) for r in records]
    operands = [OperandRecord(r.handle, r.sealed.iv, r.sealed.ciphertext) for r in records]
    context = runner_fields(header, operands) | over
    request = batch_request(net.chain.gateway, CHAIN_ID, keys, target, context)
    return {
        i: httpx.post(
            spec.url + request.target(secrets.token_bytes(32)),
            headers={"Authorization": request.authorization},
            json=request.body,
            timeout=10,
        )
        for i, spec in net.cluster.nodes.items()
    }


def test_a_batch_in_user_mode_is_checked_key_by_key(net: Net) -> None:
    chain = net.chain
    a, b = (registered_record(net, chain.alice, v) for v in (1, 2))
    _, runner_key = rsa_pair()
    only_a = statement(RUNNER, [a.handle], runner_key, head(net))
    for answer in ask_batch(net, [a, b], runner_key, only_a).values():
        assert (answer.status_code, answer.json()["error"]) == (403, "not_an_operand")

    def logged(spec: Any, record: Record, reason: str) -> bool:
        return any(
            e["decision"] == "refused" and e["reason"] == reason
            and e["handle"] == to_hex(record.handle) and e["version"] == "v1-batch"
            and e["requester"] == to_hex(RUNNER.address)
            for e in audit_entries(spec)
        )  # fmt: skip

    for spec in net.cluster.nodes.values():  # one entry per key, each with its own reason
        wait_for(lambda spec=spec: logged(spec, b, "not_an_operand"), 5)
        wait_for(lambda spec=spec: logged(spec, a, "batch_refused"), 5)
    both = statement(RUNNER, [a.handle, b.handle], runner_key, head(net))
    forged = statement(chain.gateway, [a.handle, b.handle], runner_key, head(net))
    for header, over, status, code in (
        (forged, {}, 401, "invalid_signature"),
        (both, {"purpose": "user"}, 403, "user_mode"),
        (both, {"operands": []}, 400, "invalid_body"),
    ):
        for answer in ask_batch(net, [a, b], runner_key, header, **over).values():
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    answers = ask_batch(net, [a, b], runner_key, both)
    assert {a.status_code for a in answers.values()} == {200}


# --- bound results ---------------------------------------------------------------------------


def swapping_gateway(net: Net, handle: str, other: str) -> Starlette:
    """A proxy holding the gateway wallet that serves ``other``'s record (and partials) under
    ``handle``, signed as the gateway signs: only the binding can give it away."""
    upstream = net.gateway.url

    async def proxy(request: Request) -> Response:
        path = request.url.path
        if path.lower() == f"/v1/secrets/{handle}":
            path = f"/v1/secrets/{other}"
        async with httpx.AsyncClient() as http:
            real = await http.request(
                request.method,
                upstream + path,
                params=dict(request.query_params),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                content=await request.body(),
                timeout=30,
            )
        if path == request.url.path or real.status_code != 200:
            return Response(real.content, real.status_code, media_type="application/json")
        payload = {**real.json()["payload"], "handle": handle}
        salt = parse_hex(request.query_params["salt"], length=32)
        wallet = net.chain.gateway
        body = signed(wallet, CHAIN_ID, salt, eip712.HANDLE_THRESHOLD_MATERIAL, payload)
        return Response(json.dumps(body), 200, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])])


def test_a_runner_result_is_bound_by_its_signature(net: Net) -> None:
    chain = net.chain
    alice = net.wallet(chain.alice)
    with net.client(chain.alice) as owner:
        inputs = [owner.encrypt(v, "uint256", application=chain.app.address) for v in (3, 4)]
    total, product = (to_hex(chain.registered(chain.alice)) for _ in range(2))
    with runner_client(net) as runner:
        a, b = (int(o.value) for o in runner.operands([i.handle for i in inputs]))  # type: ignore[call-overload]
        assert runner.publish([(total, a + b), (product, a * b)]).created == 2

    def reader(url: str, **kw: Any) -> Client:
        return net.gnet.client(url, alice, application=chain.app.address, **kw)

    with reader(net.gateway.url, runner_address=RUNNER.address) as c:
        assert c.decrypt(total) == 7  # require_binding=True, the default
        assert c.decrypt(product) == 12
    with reader(net.gateway.url) as c, pytest.raises(UntrustedResponse, match="runner"):
        c.decrypt(total)  # no runner trusted: the record's binding cannot be checked
    with serve_in_thread(swapping_gateway(net, total, product), free_port()) as url:
        with reader(url, runner_address=RUNNER.address) as c, pytest.raises(UntrustedResponse):
            c.decrypt(total)
        with reader(url, require_binding=False) as c:
            assert c.decrypt(total) == 12  # what the binding protects against


def test_the_gateway_refuses_a_result_binding_not_the_runners(net: Net) -> None:
    message = {
        "chainId": CHAIN_ID,
        "blockNumber": head(net),
        "caller": bytes(20),
        "transactionHash": "0x" + "00" * 32,
    }
    domain = eip712.gateway_domain(CHAIN_ID)
    signature = eip712.sign(RUNNER, domain, eip712.RESULT_PUBLISHING_AUTHORIZATION, message)
    wire = {**message, "caller": to_hex(bytes(20))}
    token = json.dumps({"payload": wire, "signature": to_hex(signature)})
    header = "EIP712 " + base64.b64encode(token.encode()).decode()
    sealed = ecies.encrypt(net.keyset.public_key, (5).to_bytes(32, "big"))
    handle = net.chain.registered(net.chain.alice)
    digest = ciphertext_digest(sealed.ciphertext)
    result = {
        "handle": to_hex(handle),
        "handleValueTag": to_hex(bytes(32)),
        "ciphertext": to_hex(sealed.ciphertext),
        "publicKey": to_hex(sealed.ephemeral_pubkey),
        "nonce": to_hex(sealed.iv),
    }
    other_record = sign_result_binding(RUNNER, handle, sealed.ephemeral_pubkey, bytes(12), digest)
    not_the_runner = sign_result_binding(
        net.chain.gateway, handle, sealed.ephemeral_pubkey, sealed.iv, digest
    )
    for binding, code in (
        (not_the_runner, "invalid_binding_signature"),
        (other_record, "invalid_binding_signature"),
        (b"\x12", "invalid_body"),
    ):
        answer = httpx.post(
            net.gateway.url + "/v0/compute/results",
            params={"salt": to_hex(secrets.token_bytes(32))},
            headers={"Authorization": header},
            json=[result | {"bindingSignature": to_hex(binding)}],
            timeout=10,
        )
        assert (answer.status_code, answer.json()["error"]) == (400, code), answer.text


def test_everything_works_with_two_nodes_down(net: Net) -> None:
    """Last: it stops two nodes (t = 3 of 5): an honest decryption, a public decryption and
    the runner's operands, each of the three nodes left checking by itself."""
    chain = net.chain
    with net.client(chain.alice) as alice:
        secret = alice.encrypt(31337, "uint256", application=chain.app.address)
        public = alice.encrypt(808, "uint256", application=chain.app.address)
    for s in (secret, public):
        chain.app.register(chain.alice, parse_hex(s.handle), parse_hex(s.proof), "uint256")
    chain.nox.allow_public_decryption(chain.alice, parse_hex(public.handle))
    net.cluster.stop(4)
    net.cluster.stop(5)
    with net.client(chain.alice) as alice:
        assert alice.decrypt(secret) == 31337
    proof = public_decrypt(
        net.gateway.url, public.handle, chain_id=CHAIN_ID,
        gateway=to_hex(chain.gateway.address), contract=to_hex(chain.nox.address),
    )  # fmt: skip
    assert int.from_bytes(proof[65:], "big") == 808
    with runner_client(net) as runner:
        operands = runner.operands([secret.handle, public.handle])
        assert [o.value for o in operands] == [31337, 808]
    for i in (1, 2, 3):
        spec = net.cluster.nodes[i]
        wait_for(lambda spec=spec: served(spec, secret.handle, chain.alice.address), 5)
        wait_for(lambda spec=spec: served(spec, public.handle, RUNNER.address), 5)
