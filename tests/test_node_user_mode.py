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

import base64
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.chainnet import CHAIN_ID, ChainNet, start_chain
from tests.cluster import Cluster, NodeSpec
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start, wait_healthy
from tkms.chain import proofs
from tkms.chain.contract import deploy_contract_wallet, type_code
from tkms.chain.tx import TxSigner
from tkms.client import Client
from tkms.client.recombine import decrypt_record
from tkms.client.relay import run_ceremony
from tkms.crypto import ecies, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet, keccak256
from tkms.dkg.keyset import VerifiedKeyset, verify_keyset
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.delegation import check_partial_answer, sign_delegate_request
from tkms.protocol.solidity import encode_value

N, T = 5, 3
REFRESH = 0.3
V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"


class UserCluster(Cluster):
    """Nodes linked to the chain, mode unset: ``user`` is the default on a linked chain."""

    rpc_url = ""
    contract = b""

    def env(self, spec: NodeSpec) -> dict[str, str]:
        env = super().env(spec)
        del env[f"TKMS_NODE_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS"]
        stem = f"TKMS_NODE_CHAINS__{CHAIN_ID}__"
        return env | {
            stem + "RPC_URL": self.rpc_url,
            stem + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(self.contract),
            stem + "CALL_TIMEOUT": "2s",
            stem + "CONNECT_TIMEOUT": "1s",
            stem + "REFRESH_INTERVAL": f"{REFRESH}s",
        }


@dataclass
class Net:
    chain: ChainNet
    cluster: UserCluster
    gnet: GatewayNet
    keyset: VerifiedKeyset
    gateway: Service

    def wallet(self, signer: TxSigner) -> Wallet:
        return next(
            w for w in map(Wallet, self.chain.anvil.private_keys) if w.address == signer.address
        )

    def client(self, signer: TxSigner) -> Client:
        return self.gnet.client(self.gateway.url, self.wallet(signer))


def gateway_env(gnet: GatewayNet, chain: ChainNet, port: int) -> dict[str, str]:
    env = gnet.env("", port)
    for old in (
        "SIGNER__WALLET_KEY",
        "CHAIN__ID",
        "CHAIN__NOX_COMPUTE_CONTRACT",
        "KMS__PUBLIC_KEY",
    ):
        env.pop("TKMS_GATEWAY_" + old)
    env.pop("TKMS_GATEWAY_DATABASE_URL")  # SQLite under the state directory
    return env | {
        V06 + "RPC_URL": chain.anvil.url,
        V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": to_hex(chain.nox.address),
        V06 + "WALLET_KEY": to_hex(chain.gateway.private_key_bytes()),
        V06 + "CALL_TIMEOUT": "2s",
        V06 + "CONNECT_TIMEOUT": "1s",
        "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": str(CHAIN_ID),
        "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": to_hex(Wallet.generate().address),
    }


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("usermode")
    chain = start_chain()
    cluster = UserCluster.create(root, N)
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


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- what a user and a malicious gateway hold -----------------------------------------------


def authorization(
    wallet: Wallet, key: str, contract: bytes, *, not_before: int | None = None, ttl: int = 600
) -> str:
    """A ``DataAccessAuthorization`` header value, as the SDK makes it."""
    start = int(time.time()) - 30 if not_before is None else not_before
    message = {
        "userAddress": to_hex(wallet.address),
        "encryptionPubKey": key,
        "notBefore": start,
        "expiresAt": start + ttl,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=contract)
    signature = eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    token = json.dumps({"payload": message, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(token.encode()).decode()


@dataclass
class Record:
    handle: bytes
    sealed: ecies.EciesRecord
    value: int

    def fields(self, **over: Any) -> dict[str, Any]:
        """The binding inputs as a delegation request carries them (never the ciphertext)."""
        return {
            "purpose": "user",
            "handle": to_hex(self.handle),
            "iv": to_hex(self.sealed.iv),
            "ciphertextDigest": to_hex(keccak256(self.sealed.ciphertext)),
        } | over


def registered_record(net: Net, owner: TxSigner, value: int) -> Record:
    """A bound record of ``owner``'s, its handle registered on chain through DemoApp."""
    sealed = ecies.encrypt(net.keyset.public_key, encode_value(value, "uint256"))
    handle = bound_input_handle(CHAIN_ID, "uint256", sealed)
    proof = proofs.input_proof(
        net.chain.gateway, CHAIN_ID, net.chain.nox.address, handle, owner.address,
        net.chain.app.address, net.chain.timestamp(),
    )  # fmt: skip
    net.chain.app.register(owner, handle, proof, "uint256")
    return Record(handle, sealed, value)


def ask_every_node(
    net: Net, k: bytes, target: str, fields: dict[str, Any]
) -> dict[int, httpx.Response]:
    """The malicious gateway: its real wallet signs, the body says what it likes."""
    ephemeral = to_hex(k)
    signature = sign_delegate_request(net.chain.gateway, CHAIN_ID, ephemeral, target)
    body = {"ephemeralPubKey": ephemeral, "targetPubKey": target, **fields}
    return {
        i: httpx.post(
            spec.url + "/v1/delegate",
            params={"chain_id": str(CHAIN_ID), "salt": to_hex(secrets.token_bytes(32))},
            headers={"Authorization": f"Bearer {signature}"},
            json=body,
            timeout=10,
        )
        for i, spec in net.cluster.nodes.items()
    }


def audit_entries(spec: NodeSpec) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((spec.state_dir / "audit").glob("audit-*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line]
    return entries


def assert_refused(
    net: Net,
    answers: dict[int, httpx.Response],
    status: int,
    code: str,
    handle: bytes | None,
    requester: bytes,
) -> None:
    """Every node said no with this code, and each wrote it to its own audit log."""
    for i, answer in answers.items():
        assert (answer.status_code, answer.json()["error"]) == (status, code), (i, answer.text)
        assert "encryptedPartial" not in answer.text
    want = None if handle is None else to_hex(handle)

    def logged(spec: NodeSpec) -> bool:
        return any(
            e["decision"] == "refused"
            and e["reason"] == code
            and e["handle"] == want
            and e["requester"] == to_hex(requester)
            for e in audit_entries(spec)
        )

    for spec in net.cluster.nodes.values():
        wait_for(lambda spec=spec: logged(spec), 5)


def open_value(net: Net, key: rsa.RSAPrivateKey, record: Record, answers: dict[int, Any]) -> int:
    sealed = [
        check_partial_answer(
            a.json(), index=i, signer=net.cluster.nodes[i].wallet.address, chain_id=CHAIN_ID,
            salt=parse_hex(a.request.url.params["salt"], length=32),
        )
        for i, a in answers.items()
    ]  # fmt: skip
    plaintext = decrypt_record(net.keyset, key, record.sealed, sealed)
    return int.from_bytes(plaintext, "big")


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
    with net.client(net.chain.alice) as alice:
        secret = alice.encrypt(value, "uint256", application=net.chain.app.address)
        net.chain.app.register(
            net.chain.alice, parse_hex(secret.handle), parse_hex(secret.proof), "uint256"
        )
        assert alice.decrypt(secret) == value
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


def net_record(net: Net, handle: str) -> Record:
    """A record as the gateway stored it (the malicious gateway holds its database)."""
    db = next((net.gnet.root / "gateway-state").rglob("*.sqlite3"))
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT ephemeral_pubkey, iv, ciphertext FROM gateway_records WHERE handle = ?",
            (parse_hex(handle),),
        ).fetchone()
    assert row is not None
    return Record(parse_hex(handle), ecies.EciesRecord(*map(bytes, row)), 0)


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


def served(spec: NodeSpec, handle: str, requester: bytes) -> bool:
    return any(
        e["decision"] == "served" and e["handle"] == handle.lower()
        and e["requester"] == to_hex(requester)
        for e in audit_entries(spec)
    )  # fmt: skip
