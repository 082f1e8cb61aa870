"""Nodes that check the user, not only the gateway (docs/node-authorization.md), over real
processes: anvil with NoxCompute and DemoApp, five nodes linked to it in ``user`` mode (a real
DKG, t = 3) and a gateway process on the same chain.

The malicious gateway is this test code holding the real gateway wallet (the one
``gateway()`` names and every node trusts): it talks to the nodes directly and asks for
partials sealed to its own RSA key. Every node refuses each attempt by itself and writes
the refusal, with the handle and the requester, to its own audit log. A value sent
through ``POST /v1/secrets`` never reaches the gateway in the clear.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.chainnet import CHAIN_ID, start_chain
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start, wait_healthy
from tests.rawpublic import public_decrypt
from tests.usernet import (
    N,
    Net,
    T,
    UserCluster,
    ask_every_node,
    assert_refused,
    authorization,
    gateway_env,
    net_record,
    open_value,
    registered_record,
    served,
    wait_for,
)
from tkms.chain.contract import deploy_contract_wallet, type_code
from tkms.client import AsyncClient
from tkms.client.relay import run_ceremony
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet, keccak256
from tkms.protocol.batch_delegation import BATCH_PATH, batch_request
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.keyset import verify_keyset
from tkms.protocol.solidity import encode_value


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("usermode")
    cluster = UserCluster.create(root, N)
    chain = start_chain()  # from here on, the finally below stops what is up
    assert isinstance(cluster, UserCluster)
    cluster.gateway = chain.gateway  # the wallet gateway() names: the nodes read it there
    cluster.rpc_url, cluster.contract = chain.anvil.url, chain.nox.address
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
        gateway = start(["gateway"], gateway_env(gnet, chain, port), root / "gw.log", port)
        wait_healthy(gateway)
        yield Net(chain, cluster, gnet, verify_keyset(outcome.keyset, CHAIN_ID, y), gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        cluster.stop_all()
        chain.rpc.close()
        chain.anvil.stop()


# --- the attacks ------------------------------------------------------------------------------


def test_the_gateway_alone_gets_no_partial_of_a_victims_record(net: Net) -> None:
    chain, contract = net.chain, net.chain.nox.address
    victim = registered_record(net, chain.alice, 1000)
    alice = net.wallet(chain.alice)
    mine = rsa.generate_private_key()
    my_key = to_hex(rsa.public_key_der(mine))
    k = victim.sealed.ephemeral_pubkey
    gw = chain.gateway.address

    # No user authorization at all: today's request, and one with the handle but no token.
    assert_refused(net, ask_every_node(net, k, my_key, {}), 400, "invalid_handle", None, gw)
    answers = ask_every_node(net, k, my_key, victim.fields())
    assert_refused(net, answers, 401, "missing_user_authorization", victim.handle, gw)
    # Its own authorization, its own key: not a viewer of the victim's handle.
    attacker = Wallet.generate()
    fields = victim.fields(authorization=authorization(attacker, my_key, contract))
    answers = ask_every_node(net, k, my_key, fields)
    assert_refused(net, answers, 403, "access_denied", victim.handle, attacker.address)
    # The victim's own authorization (captured on a read), sealed to another key.
    alices_key = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    fields = victim.fields(authorization=authorization(alice, alices_key, contract))
    answers = ask_every_node(net, k, my_key, fields)
    assert_refused(net, answers, 403, "target_not_user_key", victim.handle, alice.address)
    # The victim's authorization, for its own key, but expired.
    old = authorization(alice, my_key, contract, not_before=int(time.time()) - 700)
    answers = ask_every_node(net, k, my_key, victim.fields(authorization=old))
    # (a token that does not decode names no user: the requester is the gateway's signer)
    assert_refused(net, answers, 401, "expired", victim.handle, gw)
    # Signed by someone else in userAddress's name.
    forged = authorization(attacker, my_key, contract)
    payload = json.loads(base64.b64decode(forged.split()[1]))
    payload["payload"]["userAddress"] = to_hex(alice.address)
    token = "EIP712 " + base64.b64encode(json.dumps(payload).encode()).decode()
    answers = ask_every_node(net, k, my_key, victim.fields(authorization=token))
    assert_refused(net, answers, 401, "invalid_signature", victim.handle, alice.address)
    # A purpose not served, a malformed field: the documented 400s, never a 500.
    for over, code in (
        ({"purpose": "runner"}, "unsupported_purpose"),
        ({"purpose": "admin"}, "invalid_purpose"),
        ({"iv": "0x1234"}, "invalid_body"),
        ({"ciphertextDigest": 7}, "invalid_body"),
        # The handle's text is parsed once per distinct string: a refusal is not kept.
        ({"handle": "0x1234"}, "invalid_handle"),
        ({"handle": "0x1234"}, "invalid_handle"),
        ({"handle": ["not", "text"]}, "invalid_handle"),
        ({"handle": to_hex(victim.handle[:1] + bytes(4) + victim.handle[5:])}, "invalid_handle"),
    ):
        for answer in ask_every_node(net, k, my_key, victim.fields(**over)).values():
            assert (answer.status_code, answer.json()["error"]) == (400, code), answer.text


def test_a_handle_of_its_own_does_not_open_a_victims_k(net: Net) -> None:
    """The gateway registers a value of its own on chain (so it is a viewer) and asks under
    that handle with the victim record's K: the binding says no, at every node."""
    chain, contract = net.chain, net.chain.nox.address
    victim = registered_record(net, chain.alice, 1000)
    own = registered_record(net, chain.stranger, 666)  # the attacker's account: an admin
    attacker = net.wallet(chain.stranger)
    mine = rsa.generate_private_key()
    my_key = to_hex(rsa.public_key_der(mine))
    token = authorization(attacker, my_key, contract)
    k = victim.sealed.ephemeral_pubkey
    for fields in (
        own.fields(authorization=token),  # its handle and record, the victim's K
        own.fields(  # the victim's whole record under its handle
            authorization=token,
            iv=to_hex(victim.sealed.iv),
            ciphertextDigest=to_hex(keccak256(victim.sealed.ciphertext)),
        ),
    ):
        answers = ask_every_node(net, k, my_key, fields)
        # The binding is checked before the user's token is read: the requester is the gateway.
        gw = chain.gateway.address
        assert_refused(net, answers, 403, "binding_mismatch", own.handle, gw)
    # Its own K under its own handle is served: the refusal above was the binding alone.
    answers = ask_every_node(
        net, own.sealed.ephemeral_pubkey, my_key, own.fields(authorization=token)
    )
    assert {a.status_code for a in answers.values()} == {200}
    assert open_value(net, mine, own, answers) == 666


def test_a_replayed_authorization_is_refused_until_a_grant_on_chain(net: Net) -> None:
    """Bob's authorization (sent to read his own values) replayed for Alice's handle is
    refused; once Alice adds Bob as a viewer on chain, the very same request is served by
    every node at once, with no gateway involvement."""
    chain, contract = net.chain, net.chain.nox.address
    victim = registered_record(net, chain.alice, 4242)
    bob = net.wallet(chain.bob)
    bobs = rsa.generate_private_key()
    bobs_key = to_hex(rsa.public_key_der(bobs))
    fields = victim.fields(authorization=authorization(bob, bobs_key, contract))
    k = victim.sealed.ephemeral_pubkey
    answers = ask_every_node(net, k, bobs_key, fields)
    assert_refused(net, answers, 403, "access_denied", victim.handle, bob.address)
    chain.nox.add_viewer(chain.alice, victim.handle, bob.address)
    answers = ask_every_node(net, k, bobs_key, fields)
    assert {a.status_code for a in answers.values()} == {200}, [a.text for a in answers.values()]
    assert open_value(net, bobs, victim, answers) == 4242
    for spec in net.cluster.nodes.values():
        wait_for(lambda spec=spec: served(spec, to_hex(victim.handle), bob.address), 5)


# --- client-side encryption and the honest path -----------------------------------------------


def test_a_value_sent_by_v1_secrets_never_reaches_the_gateway(net: Net) -> None:
    value = int.from_bytes(secrets.token_bytes(32), "big") | 1 << 255
    plaintext = value.to_bytes(32, "big")
    before = v1_writes(net)
    with net.client(net.chain.alice) as alice:
        secret = alice.encrypt(value, "uint256", application=net.chain.app.address)
        net.chain.app.register(
            net.chain.alice, parse_hex(secret.handle), parse_hex(secret.proof), "uint256"
        )
        assert alice.decrypt(secret) == value
    assert v1_writes(net) == before + 1  # the SDK's default in threshold mode
    state = net.gnet.root / "gateway-state"
    files = [p for p in state.rglob("*") if p.is_file()] + [net.gnet.root / "gw.log"]
    assert any(p.name.startswith("gateway") for p in files), files
    needles = (
        plaintext,
        plaintext.hex().encode(),
        plaintext.hex().upper().encode(),
        str(value).encode(),
    )
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, path
    # The gateway did store the record: its handle is in the database.
    handle = parse_hex(secret.handle)
    assert any(handle in p.read_bytes() or handle.hex().encode() in p.read_bytes() for p in files)


def test_v1_secrets_refuses_a_record_that_is_not_its_handles(net: Net) -> None:
    sealed = ecies.encrypt(net.keyset.public_key, encode_value(5, "uint256"))
    handle = bound_input_handle(CHAIN_ID, "uint256", sealed)
    other = ecies.encrypt(net.keyset.public_key, encode_value(6, "uint256"))
    body = {
        "handle": to_hex(handle),
        "ephemeralPubKey": to_hex(other.ephemeral_pubkey),
        "iv": to_hex(sealed.iv),
        "ciphertext": to_hex(sealed.ciphertext),
        "solidityType": "uint256",
        "owner": to_hex(net.chain.alice.address),
        "applicationContract": to_hex(net.chain.app.address),
    }
    for over, code in (
        ({}, "binding_mismatch"),
        ({"solidityType": "bool"}, "invalid_handle"),
        ({"ephemeralPubKey": "0x02" + "00" * 32}, "invalid_ephemeral_pubkey"),
        ({"iv": "0x00"}, "invalid_iv"),
        ({"ciphertext": "0xabcd"}, "invalid_ciphertext"),
        ({"handle": "0x1234"}, "invalid_handle"),
        ({"owner": "alice"}, "invalid_owner"),
    ):
        answer = httpx.post(net.gateway.url + "/v1/secrets", json=body | over, timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (400, code), (over, answer.text)


def test_a_contract_wallet_user_is_checked_by_erc1271_at_every_node(net: Net) -> None:
    chain = net.chain
    contract_wallet = deploy_contract_wallet(chain.carol, chain.carol.address)
    user = net.wallet(chain.carol)
    user.address = contract_wallet.address  # the user is the contract; its owner's key signs
    with net.gnet.client(net.gateway.url, user) as c:
        secret = c.encrypt(42, "uint256", application=chain.app.address)
        calldata = chain.app.abi.function("register").encode(
            parse_hex(secret.handle), parse_hex(secret.proof), type_code("uint256")
        )
        contract_wallet.execute(chain.carol, chain.app.address, calldata)
        assert c.decrypt(secret) == 42  # each node asked isValidSignature itself
    # The malicious gateway signs in the contract's name with a key of its own: ERC-1271 says no.
    impostor = Wallet.generate()
    impostor.address = contract_wallet.address
    sealed = rsa.generate_private_key()
    key = to_hex(rsa.public_key_der(sealed))
    record = net_record(net, secret.handle)
    fields = record.fields(authorization=authorization(impostor, key, chain.nox.address))
    answers = ask_every_node(net, record.sealed.ephemeral_pubkey, key, fields)
    assert_refused(net, answers, 401, "invalid_signature", record.handle, contract_wallet.address)


def test_public_purpose_reads_is_publicly_decryptable_at_every_node(net: Net) -> None:
    chain = net.chain
    record = registered_record(net, chain.alice, 5)
    key = rsa.generate_private_key()
    target = to_hex(rsa.public_key_der(key))
    k = record.sealed.ephemeral_pubkey
    answers = ask_every_node(net, k, target, record.fields(purpose="public"))
    gw = chain.gateway.address
    assert_refused(net, answers, 403, "not_publicly_decryptable", record.handle, gw)
    chain.nox.allow_public_decryption(chain.alice, record.handle)
    answers = ask_every_node(net, k, target, record.fields(purpose="public"))
    assert {a.status_code for a in answers.values()} == {200}
    assert open_value(net, key, record, answers) == 5


def test_the_gateways_public_route_works_with_user_mode_nodes(net: Net) -> None:
    """GET /v0/public sends purpose public: each node checks isPubliclyDecryptable itself."""
    chain = net.chain
    with net.client(chain.alice) as alice:
        secret = alice.encrypt(808, "uint256", application=chain.app.address)
    chain.app.register(chain.alice, parse_hex(secret.handle), parse_hex(secret.proof), "uint256")
    chain.nox.allow_public_decryption(chain.alice, parse_hex(secret.handle))
    proof = public_decrypt(
        net.gateway.url, secret.handle, chain_id=CHAIN_ID,
        gateway=to_hex(chain.gateway.address), contract=to_hex(chain.nox.address),
    )  # fmt: skip
    assert int.from_bytes(proof[65:], "big") == 808
    # The gateway asks t + spare of the nodes (gateway.md §8); each one asked served
    # it after its own isPubliclyDecryptable, as its audit log says.
    asked = min(len(net.cluster.nodes), net.keyset.threshold + 1)

    def served_by() -> int:
        specs = net.cluster.nodes.values()
        return sum(served(spec, secret.handle, chain.gateway.address) for spec in specs)

    wait_for(lambda: served_by() >= asked, 5)


def test_batch_delegation_is_no_way_around_user_mode(net: Net) -> None:
    record = registered_record(net, net.chain.alice, 3)
    target = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    keys = [to_hex(record.sealed.ephemeral_pubkey)]
    signature = batch_request(net.chain.gateway, CHAIN_ID, keys, target).signature
    for spec in net.cluster.nodes.values():
        answer = httpx.post(
            spec.url + BATCH_PATH,
            params={"chain_id": str(CHAIN_ID), "salt": to_hex(secrets.token_bytes(32))},
            headers={"Authorization": f"Bearer {signature}"},
            json={"ephemeralPubKeys": keys, "targetPubKey": target},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["error"]) == (403, "user_mode"), answer.text


def v1_writes(net: Net) -> float:
    """Answers 200 of POST /v1/secrets, from the gateway's request counter."""
    text = httpx.get(net.gateway.url + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tkms_gateway_http_requests_total{")
        and 'route="/v1/secrets"' in line and 'method="POST"' in line and 'status="200"' in line
    )  # fmt: skip


def test_the_async_client_encrypts_to_kms_public_key_read_on_chain(net: Net) -> None:
    """No trusted key configured: the client reads kmsPublicKey() from the chain itself."""
    chain = net.chain
    before = v1_writes(net)

    async def round_trip() -> int:
        async with AsyncClient(
            net.gateway.url,
            net.wallet(chain.bob),
            chain_id=CHAIN_ID,
            gateway_signer=chain.gateway.address,
            verifying_contract=chain.nox.address,
            rpc_url=chain.anvil.url,
            nox_compute=chain.nox.address,
            application=chain.app.address,
        ) as bob:
            secret = await bob.encrypt(77, "uint256")
            await bob.register_on_chain(secret)
            value = await bob.decrypt(secret)
            assert isinstance(value, int)
            return value

    assert asyncio.run(round_trip()) == 77
    assert v1_writes(net) == before + 1


def test_an_honest_decryption_works_with_two_nodes_down(net: Net) -> None:
    """Last: it stops two nodes. t = 3 of 5, each of the three left checks the user itself."""
    with net.client(net.chain.alice) as alice:
        secret = alice.encrypt(31337, "uint256", application=net.chain.app.address)
        net.chain.app.register(
            net.chain.alice, parse_hex(secret.handle), parse_hex(secret.proof), "uint256"
        )
        net.cluster.stop(4)
        net.cluster.stop(5)
        assert alice.decrypt(secret) == 31337
    for i in (1, 2, 3):
        spec = net.cluster.nodes[i]
        wait_for(lambda spec=spec: served(spec, secret.handle, net.chain.alice.address), 5)


def test_without_the_chain_every_node_answers_503_never_an_allow(net: Net) -> None:
    """Very last: it stops anvil. A request every check of which passed a moment ago."""
    chain = net.chain
    record = registered_record(net, chain.alice, 99)
    key = rsa.generate_private_key()
    target = to_hex(rsa.public_key_der(key))
    fields = record.fields(
        authorization=authorization(net.wallet(chain.alice), target, chain.nox.address)
    )
    k = record.sealed.ephemeral_pubkey
    live = ask_every_node(net, k, target, fields, only=(1, 2, 3))
    assert {a.status_code for a in live.values()} == {200}
    chain.anvil.stop()
    time.sleep(1.0)  # past the key check's trust of two refresh intervals
    for answer in ask_every_node(net, k, target, fields, only=(1, 2, 3)).values():
        assert (answer.status_code, answer.json()["error"]) == (503, "chain_unavailable")
