"""Records imported from a nox deployment (docs/binding.md), over real processes: anvil with
NoxCompute and DemoApp, five user-mode nodes (a real DKG, t = 3) that accept registrations
(``TKMS_NODE_BINDING_REGISTRATION=open``), a gateway on the same chain, and ``tkms
migrate-records`` run as the operator runs it.

A nox record's handle is random: before its binding is registered every node refuses it
(``binding_mismatch``, in its audit log); after ``tkms migrate-records`` it decrypts through
the gateway (an SDK with ``require_binding=False``), and still no node multiplies another
record's ``K`` under its handle.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chainnet import CHAIN_ID, start_chain
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start, wait_healthy
from tests.usernet import (
    N,
    Net,
    Record,
    T,
    UserCluster,
    ask_every_node,
    assert_refused,
    authorization,
    gateway_env,
    open_value,
    registered_record,
    wait_for,
)
from tkms.chain import proofs
from tkms.client import Client
from tkms.client.errors import TkmsError, UntrustedResponse
from tkms.client.relay import run_ceremony
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.nox_export import parse_line
from tkms.gateway.storage import open_record_store
from tkms.protocol.binding_registration import BindingEntry, registration_body
from tkms.protocol.handle import RANDOM_LENGTH, input_handle_prefix
from tkms.protocol.keyset import verify_keyset
from tkms.protocol.solidity import encode_value

TKMS = str(Path(sys.executable).parent / "tkms")


class MigrationCluster(UserCluster):
    """User-mode nodes whose registration window the operator holds open (or not)."""

    registration = "open"

    def env(self, spec: Any) -> dict[str, str]:
        return super().env(spec) | {"TKMS_NODE_BINDING_REGISTRATION": self.registration}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("migration")
    cluster = MigrationCluster.create(root, N)
    chain = start_chain()  # from here on, the finally below stops what is up
    assert isinstance(cluster, MigrationCluster)
    cluster.gateway = chain.gateway
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


def nox_record(net: Net, value: int) -> Record:
    """A record as a nox gateway made it: a random handle, registered on chain by alice."""
    sealed = ecies.encrypt(net.keyset.public_key, encode_value(value, "uint256"))
    handle = input_handle_prefix(CHAIN_ID, "uint256") + secrets.token_bytes(RANDOM_LENGTH)
    chain = net.chain
    proof = proofs.input_proof(
        chain.gateway, CHAIN_ID, chain.nox.address, handle, chain.alice.address,
        chain.app.address, chain.timestamp(),
    )  # fmt: skip
    chain.app.register(chain.alice, handle, proof, "uint256")
    return Record(handle, sealed, value)


def unbound_client(net: Net) -> Client:
    """Alice's SDK as a reader of imported records runs it (docs/binding.md)."""
    return net.gnet.client(net.gateway.url, net.wallet(net.chain.alice), require_binding=False)


def export_line(record: Record) -> str:
    return json.dumps(
        {
            "handle": to_hex(record.handle),
            "ciphertext": to_hex(record.sealed.ciphertext),
            "iv": to_hex(record.sealed.iv),
            "ephemeralPubKey": to_hex(record.sealed.ephemeral_pubkey),
            "solidityType": "uint256",
        }
    )


def gateway_db(net: Net) -> Path:
    return next((net.gnet.root / "gateway-state").rglob("*.sqlite3"))


def migrate(net: Net, tmp: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    export, committee, key = tmp / "export.jsonl", tmp / "committee.json", tmp / "admin.key"
    export.write_text("\n".join(lines) + "\n")
    nodes = [{"index": i, "url": s.url} for i, s in net.cluster.nodes.items()]
    committee.write_text(json.dumps({"chainId": CHAIN_ID, "nodes": nodes}))
    key.write_text(to_hex(net.cluster.admin.private_key_bytes()))
    key.chmod(0o600)
    return subprocess.run(
        [TKMS, "migrate-records", "--export", str(export), "--database", str(gateway_db(net)),
         "--committee", str(committee), "--admin-key-file", str(key)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def register(
    net: Net, index: int, entries: list[BindingEntry], *, signer: Wallet | None = None,
    expires_at: int | None = None, over: dict[str, Any] | None = None,
) -> httpx.Response:  # fmt: skip
    expires = int(time.time()) + 600 if expires_at is None else expires_at
    body = registration_body(
        signer or net.cluster.admin, CHAIN_ID, entries, secrets.token_bytes(32), expires
    )
    spec = net.cluster.nodes[index]
    return httpx.post(spec.url + "/v1/bindings/register", json=body | (over or {}), timeout=10)


def alice_reads(net: Net, record: Record, key: rsa.RSAPrivateKey, **over: Any) -> dict[int, Any]:
    target = to_hex(rsa.public_key_der(key))
    fields = record.fields(
        authorization=authorization(net.wallet(net.chain.alice), target, net.chain.nox.address)
    )
    return ask_every_node(net, record.sealed.ephemeral_pubkey, target, fields | over)


def random_entry(record: bytes | None = None) -> BindingEntry:
    handle = input_handle_prefix(CHAIN_ID, "uint256") + secrets.token_bytes(RANDOM_LENGTH)
    return BindingEntry(handle, record or secrets.token_bytes(32))


# --- the migration ---------------------------------------------------------------------------


def test_an_imported_record_reads_only_after_migrate_records(net: Net, tmp_path: Path) -> None:
    imported = nox_record(net, 4242)
    key = rsa.generate_private_key()
    # Stored in the gateway's database (the import's first step), not yet registered.
    with open_record_store(gateway_db(net)) as store:
        store.put(parse_line(export_line(imported), CHAIN_ID, int(time.time())))
    answers = alice_reads(net, imported, key)
    assert_refused(
        net, answers, 403, "binding_mismatch", imported.handle, net.chain.gateway.address
    )
    with unbound_client(net) as client, pytest.raises(TkmsError):
        client.decrypt(to_hex(imported.handle))

    done = migrate(net, tmp_path, [export_line(imported)])
    assert done.returncode == 0, done.stderr
    assert "0 stored, 1 unchanged, 0 conflicted" in done.stderr
    assert done.stderr.count("1 registered, 0 unchanged, 0 conflicted") == N

    with unbound_client(net) as client:
        assert client.decrypt(to_hex(imported.handle)) == 4242
    # The SDK's own check still cannot see the binding (it is the nodes'): documented.
    with net.client(net.chain.alice) as client, pytest.raises(UntrustedResponse):
        client.decrypt(to_hex(imported.handle))
    answers = alice_reads(net, imported, key)
    assert open_value(net, key, imported, dict(list(answers.items())[:T])) == 4242

    # Run again, with one more record: idempotent for the first, the second new.
    second = nox_record(net, 7)
    again = migrate(net, tmp_path, [export_line(imported), export_line(second)])
    assert again.returncode == 0, again.stderr
    assert "1 stored, 1 unchanged, 0 conflicted" in again.stderr
    assert again.stderr.count("1 registered, 1 unchanged, 0 conflicted") == N
    with unbound_client(net) as client:
        assert client.decrypt(to_hex(second.handle)) == 7


def test_another_records_k_under_a_registered_handle_is_refused(net: Net, tmp_path: Path) -> None:
    """The gateway holds a registered handle alice may read and passes a victim's K."""
    imported = nox_record(net, 99)
    assert migrate(net, tmp_path, [export_line(imported)]).returncode == 0
    victim = registered_record(net, net.chain.bob, 1000)
    key = rsa.generate_private_key()
    gw = net.chain.gateway.address
    # The victim's K with the imported record's iv and digest; then the victim's whole record.
    swapped = Record(imported.handle, victim.sealed, 0)
    for k, fields in (
        (victim.sealed.ephemeral_pubkey, imported.fields()),
        (victim.sealed.ephemeral_pubkey, swapped.fields()),
    ):
        target = to_hex(rsa.public_key_der(key))
        token = authorization(net.wallet(net.chain.alice), target, net.chain.nox.address)
        answers = ask_every_node(net, k, target, fields | {"authorization": token})
        assert_refused(net, answers, 403, "binding_mismatch", imported.handle, gw)


# --- the registration's checks ---------------------------------------------------------------


def test_only_the_admin_registers_and_only_before_expiry(net: Net) -> None:
    entry = random_entry()
    refused = register(net, 1, [entry], signer=Wallet.generate())
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized_signer")
    late = register(net, 1, [entry], expires_at=int(time.time()) - 1)
    assert (late.status_code, late.json()["error"]) == (403, "registration_expired")
    far = register(net, 1, [entry], expires_at=int(time.time()) + 25 * 3600)
    assert (far.status_code, far.json()["error"]) == (400, "invalid_registration")
    # None of them wrote anything: the admin's registration is "created".
    assert register(net, 1, [entry]).json() == {"created": 1, "unchanged": 0, "conflicted": []}


def test_a_second_digest_is_conflicted_and_the_first_kept(net: Net) -> None:
    first = random_entry()
    other = BindingEntry(first.handle, secrets.token_bytes(32))
    assert register(net, 2, [first]).json()["created"] == 1
    answer = register(net, 2, [other, random_entry()]).json()
    assert answer == {"created": 1, "unchanged": 0, "conflicted": [to_hex(first.handle)]}
    assert register(net, 2, [first]).json() == {"created": 0, "unchanged": 1, "conflicted": []}


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"chainId": 1}, 400, "unknown_chain"),
        ({"chainId": "421614"}, 400, "unknown_chain"),
        ({"entries": []}, 400, "invalid_body"),
        ({"entries": "0x00"}, 400, "invalid_body"),
        ({"entries": [{"handle": "0x" + "00" * 32, "record": "0x" + "11" * 32}]}, 400,
         "invalid_handle"),
        ({"nonce": "0x12"}, 400, "invalid_body"),
        ({"expiresAt": -1}, 400, "invalid_body"),
        ({"expiresAt": True}, 400, "invalid_body"),
        ({"authorization": "0x" + "00" * 65}, 401, "invalid_signature"),
        ({"authorization": 5}, 400, "invalid_body"),
    ],
)  # fmt: skip
def test_bad_registrations_get_documented_errors(
    net: Net, over: dict[str, Any], status: int, code: str
) -> None:
    answer = register(net, 3, [random_entry()], over=over)
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text


def test_too_many_entries_and_too_large_bodies_are_refused(net: Net) -> None:
    spec = net.cluster.nodes[3]
    entries = [random_entry() for _ in range(1001)]
    answer = register(net, 3, entries)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_body")
    huge = httpx.post(
        spec.url + "/v1/bindings/register",
        content=b'{"entries": "' + b"0" * (300 * 1024) + b'"}',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert (huge.status_code, huge.json()["error"]) == (413, "payload_too_large")
    dup = random_entry()
    answer = register(net, 3, [dup, dup])
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_body")


def test_the_registry_survives_a_crash_and_a_closed_window(net: Net, tmp_path: Path) -> None:
    """Killed (SIGKILL) right after it answered, node 1 still holds the binding; restarted with
    the window closed (the default) it refuses new registrations and still serves the record."""
    imported = nox_record(net, 5150)
    assert migrate(net, tmp_path, [export_line(imported)]).returncode == 0
    cluster = net.cluster
    assert isinstance(cluster, MigrationCluster)
    service = cluster.nodes[1].service
    assert service is not None
    service.stop(sig=9)
    cluster.registration = "closed"
    try:
        wait_healthy(cluster.start(1))
        wait_for(lambda: httpx.get(cluster.nodes[1].url + "/health").status_code == 200)
        closed = register(net, 1, [random_entry()])
        assert (closed.status_code, closed.json()["error"]) == (403, "registration_closed")
        key = rsa.generate_private_key()
        answers = alice_reads(net, imported, key)
        assert answers[1].status_code == 200, answers[1].text
        picked = {i: answers[i] for i in (1, 2, 3)}
        assert open_value(net, key, imported, picked) == 5150
    finally:
        cluster.registration = "open"


def test_a_bad_export_line_stores_and_registers_nothing(net: Net, tmp_path: Path) -> None:
    good = nox_record(net, 1)
    line = json.loads(export_line(nox_record(net, 2)))
    line["solidityType"] = "bool"  # not the handle's type code
    done = migrate(net, tmp_path, [export_line(good), json.dumps(line)])
    assert done.returncode == 2, done.stderr
    assert "line 2: solidityType is not the handle's type" in done.stderr
    with open_record_store(gateway_db(net)) as store:
        assert store.get(good.handle) is None
