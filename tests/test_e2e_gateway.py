"""End to end: 5 node processes (t = 3, a real DKG), a gateway process, the SDK over HTTP.

The whole module runs twice, with the gateway on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from eth_utils.address import to_checksum_address

from tests.adversary import forging_proxy
from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet, garbage_node, module_net
from tests.pg import isolated_schema
from tests.procs import Service, wait_healthy
from tests.rawclient import RawClient
from tkms.client import (
    AccessDenied,
    AsyncClient,
    Client,
    NotEnoughPartials,
    NotFound,
    Unauthorized,
)
from tkms.client.gateway_core import DecryptionMaterial
from tkms.client.recombine import open_partial
from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.shamir import combine_points
from tkms.crypto.wallet import Wallet
from tkms.protocol.delegation import SealedPartial
from tkms.protocol.handle import new_handle
from tkms.protocol.keyset import verify_keyset

SAMPLES: list[tuple[str, Any]] = [
    ("bool", True),
    ("bool", False),
    ("address", to_checksum_address(os.urandom(20))),
    ("bytes", b"\x00\xff raw bytes"),
    ("bytes", b""),
    ("string", "héllo, wörld ✓"),
    ("uint8", 255),
    ("uint16", 0),
    ("uint256", 2**256 - 1),
    ("int8", -128),
    ("int64", -(2**40) + 7),
    ("int256", -(2**255)),
    ("bytes1", b"\x7f"),
    ("bytes20", os.urandom(20)),
    ("bytes32", os.urandom(32)),
]


@dataclass
class Backend:
    name: str
    database: str
    gateway: Service

    def dump(self) -> bytes:
        """Every byte the gateway stored: the SQLite files, or every PostgreSQL row."""
        if self.name == "sqlite":
            files = [Path(self.database), Path(self.database + "-wal")]
            return b"".join(f.read_bytes() for f in files if f.exists())
        out = b""
        with psycopg.connect(self.database) as conn:
            for table in ("gateway_records", "gateway_grants"):
                for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608 - fixed names
                    out += b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
        return out


net = module_net("e2e")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, net: GatewayNet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    root = Path(tmp_path_factory.mktemp(f"gateway-{request.param}"))
    if request.param == "sqlite":
        database = nullcontext(str(root / "gateway.sqlite3"))
    else:
        database = isolated_schema(request.getfixturevalue("postgres_server"))
    with database as url, net.gateway(url, root / "gateway.log") as service:
        yield Backend(request.param, url, service)


@pytest.fixture
def alice(net: GatewayNet, backend: Backend) -> Iterator[Client]:
    with net.client(backend.gateway.url) as client:
        yield client


@pytest.fixture
def bob(net: GatewayNet, backend: Backend) -> Iterator[Client]:
    with net.client(backend.gateway.url) as client:
        yield client


def test_every_family_round_trips_to_a_granted_viewer(alice: Client, bob: Client) -> None:
    for solidity_type, value in SAMPLES:
        secret = alice.encrypt(value, solidity_type)
        assert secret.solidity_type.name == solidity_type
        assert len(parse_hex(secret.proof)) == 137
        alice.grant(secret, bob.address)
        assert bob.decrypt(secret.handle) == value, solidity_type
    # The owner may always decrypt, without any grant.
    assert alice.decrypt(secret) == value


def test_a_stranger_is_refused_and_no_node_is_asked(
    net: GatewayNet, alice: Client, bob: Client
) -> None:
    secret = alice.encrypt(42, "uint64")
    before = net.delegations()
    with pytest.raises(AccessDenied) as refused:
        bob.decrypt(secret)
    assert refused.value.status == 403 and bob.address in str(refused.value)
    with pytest.raises(NotFound):
        bob.decrypt(to_hex(new_handle(CHAIN_ID, "uint64")))
    assert net.delegations() == before
    alice.decrypt(secret)  # and the counter does move for a real decryption
    assert sum(net.delegations().values()) > sum(before.values())


def _authorization(
    signer: Wallet,
    *,
    user: bytes,
    key: str,
    not_before: int,
    expires_at: int,
    chain_id: int = CHAIN_ID,
    contract: bytes,
) -> str:
    message = {
        "userAddress": to_hex(user),
        "encryptionPubKey": key,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    domain = eip712.gateway_domain(chain_id, verifying_contract=contract)
    sig = eip712.sign(signer, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    token = json.dumps({"payload": message, "signature": to_hex(sig)}).encode()
    return "EIP712 " + base64.b64encode(token).decode()


def test_bad_expired_and_replayed_authorizations_get_401(
    net: GatewayNet, backend: Backend, alice: Client, bob: Client
) -> None:
    secret = alice.encrypt(7, "uint8")
    alice.grant(secret, bob.address)
    material, _ = bob.core.material()
    payload = json.loads(base64.b64decode(material.authorization.split(" ", 1)[1]))
    other_key = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    now = int(time.time())
    wallet = bob.core.wallet
    ok = {"user": wallet.address, "key": other_key, "contract": net.contract}
    replayed = dict(payload, payload=dict(payload["payload"], encryptionPubKey=other_key))
    variants = {
        "garbage": "EIP712 not-base64!",
        "not json": "EIP712 " + base64.b64encode(b"nope").decode(),
        "no scheme": material.authorization.split(" ", 1)[1],
        "signed by a stranger": _authorization(
            Wallet.generate(), not_before=now - 5, expires_at=now + 60, **ok
        ),
        "expired": _authorization(wallet, not_before=now - 7200, expires_at=now - 3600, **ok),
        "not yet valid": _authorization(wallet, not_before=now + 600, expires_at=now + 900, **ok),
        "window over an hour": _authorization(
            wallet, not_before=now - 5, expires_at=now + 3600, **ok
        ),
        "another chain": _authorization(
            wallet, not_before=now - 5, expires_at=now + 60, chain_id=1, **ok
        ),
        "replayed for another key": "EIP712 "
        + base64.b64encode(json.dumps(replayed).encode()).decode(),
    }
    before = net.delegations()
    for name, header in variants.items():
        answer = httpx.get(
            f"{backend.gateway.url}/v1/secrets/{secret.handle}",
            params={"chain_id": str(CHAIN_ID)},
            headers={"Authorization": header},
        )
        assert answer.status_code == 401, (name, answer.text)
        assert set(answer.json()) == {"error", "message"}, name
    answer = httpx.get(f"{backend.gateway.url}/v1/secrets/{secret.handle}")
    assert answer.status_code == 401 and answer.json()["error"] == "missing_authorization"
    assert net.delegations() == before
    # The unaltered authorization still works.
    assert bob.decrypt(secret) == 7
    # Cached material the gateway refuses is renewed once, as the Nox SDK does...
    stale = DecryptionMaterial(
        material.rsa_key, material.encryption_pubkey, variants["expired"], now - 10, now + 3600
    )
    bob.core._material = stale
    assert bob.decrypt(secret) == 7 and bob.core._material is not stale
    # ...and fresh material refused too is an Unauthorized error.
    elsewhere = Client(
        backend.gateway.url,
        wallet,
        chain_id=CHAIN_ID,
        gateway_signer=net.cluster.gateway.address,
        verifying_contract=Wallet.generate().address,  # signs for another deployment
        kms_public_key=net.public_key,
    )
    with elsewhere, pytest.raises(Unauthorized):
        elsewhere.decrypt(secret)


def test_two_nodes_down_still_decrypt(net: GatewayNet, alice: Client) -> None:
    secret = alice.encrypt("still here", "string")
    for i in (2, 5):
        net.cluster.stop(i)
    try:
        assert alice.decrypt(secret) == "still here"
    finally:
        _restart(net, 2, 5)


def test_three_down_raise_not_enough_partials_naming_them(net: GatewayNet, alice: Client) -> None:
    secret = alice.encrypt(3, "uint8")
    for i in (1, 3, 4):
        net.cluster.stop(i)
    try:
        with pytest.raises(NotEnoughPartials) as failed:
            alice.decrypt(secret)
    finally:
        _restart(net, 1, 3, 4)
    # Back up, at once: the gateway's kept-alive connections to the old processes
    # are dead, and it must reconnect rather than count three failures.
    assert alice.decrypt(secret) == 3
    assert sorted(failed.value.failures) == [1, 3, 4]
    assert failed.value.threshold == 3 and failed.value.valid == 2
    for i in (1, 3, 4):
        assert f"node {i}: unreachable" in str(failed.value)


def test_nodes_restarted_behind_its_back(net: GatewayNet, alice: Client) -> None:
    """Kept-alive connections to the old processes are dead: the gateway reconnects."""
    secret = alice.encrypt(b"\x2a", "bytes1")
    assert alice.decrypt(secret) == b"\x2a"  # connections to every node are now open
    for i in (1, 2, 3):
        net.cluster.stop(i)
    _restart(net, 1, 2, 3)  # no request in between: the gateway has not noticed
    assert alice.decrypt(secret) == b"\x2a"


def _restart(net: GatewayNet, *indices: int) -> None:
    for i in indices:
        service = net.cluster.start(i)
        wait_healthy(service)


def test_a_garbage_node_and_a_lying_node_do_not_sink_a_decryption(
    net: GatewayNet, backend: Backend, tmp_path: Path
) -> None:
    liar = net.cluster.nodes[4]
    with (
        garbage_node() as junk,
        forging_proxy(liar.url, liar.wallet) as forger,
        net.gateway(
            backend.database,
            tmp_path / "gateway.log",
            TKMS_GATEWAY_NODES=net.nodes_json({2: junk, 4: forger}),
        ) as gateway,
        net.client(gateway.url) as owner,
    ):
        for kind in range(5):  # each call meets another kind of garbage
            secret = owner.encrypt(kind, "uint16")
            assert owner.decrypt(secret) == kind
        assert "Traceback" not in gateway.output()


def test_a_client_written_from_the_protocol_alone(
    net: GatewayNet, backend: Backend, alice: Client
) -> None:
    raw = RawClient(
        backend.gateway.url,
        CHAIN_ID,
        to_hex(net.cluster.gateway.address),
        to_hex(net.contract),
        net.public_key,
    )
    handle = raw.store((1000).to_bytes(32, "big"), "uint256")
    assert raw.decrypt(handle) == (1000).to_bytes(32, "big")
    with net.client(backend.gateway.url) as sdk, pytest.raises(AccessDenied):
        sdk.decrypt(handle)
    # Both ways: what the SDK stores and grants, the raw client decrypts.
    secret = alice.encrypt("from the SDK", "string")
    alice.grant(secret, raw.account.address)
    assert raw.decrypt(secret.handle) == b"from the SDK"


def test_the_gateway_serves_the_nodes_keyset(net: GatewayNet, backend: Backend) -> None:
    served = httpx.get(f"{backend.gateway.url}/v1/keyset", params={"chain_id": CHAIN_ID})
    assert served.status_code == 200
    assert served.json() == net.keyset
    verify_keyset(served.json(), CHAIN_ID, parse_hex(net.public_key))


def test_a_new_client_checks_the_keyset_before_its_first_call(
    net: GatewayNet, backend: Backend, alice: Client
) -> None:
    """Issue 13: the keyset is fetched and checked from the client's creation, on a
    background thread, so that the first call does not wait for it."""
    secret = alice.encrypt(7, "uint64")
    with net.client(backend.gateway.url, wallet=alice.core.wallet) as early:
        deadline = time.monotonic() + 30
        while early.core.known_keyset is None and time.monotonic() < deadline:
            time.sleep(0.02)
        prefetched = early.core.known_keyset
        assert prefetched is not None and prefetched.public_key_bytes == parse_hex(net.public_key)
        assert early.decrypt(secret) == 7
        assert early.core.known_keyset is prefetched  # the first call asked for no other
    with net.client(backend.gateway.url, wallet=alice.core.wallet, prefetch_keyset=False) as late:
        time.sleep(0.3)
        assert late.core.known_keyset is None
        assert late.decrypt(secret) == 7
        assert late.core.known_keyset is not None


def test_grants_come_from_the_owner_or_an_admin(
    net: GatewayNet, backend: Backend, alice: Client, bob: Client
) -> None:
    secret = alice.encrypt(b"\x01" * 8, "bytes8")
    alice.grant(secret, bob.address)
    carol, dave = Wallet.generate(), Wallet.generate()
    with pytest.raises(AccessDenied):
        bob.grant(secret, carol.address)  # a viewer is not an admin
    listing = alice.grant(secret, dave.address, "admin")
    assert listing.admins == (to_hex(dave.address),) and listing.viewers == (bob.address,)
    with net.client(backend.gateway.url, wallet=dave) as admin:
        admin.grant(secret, carol.address)
        with net.client(backend.gateway.url, wallet=carol) as viewer:
            assert viewer.decrypt(secret) == b"\x01" * 8
    with pytest.raises(NotFound):
        alice.grant(to_hex(new_handle(CHAIN_ID, "bool")), bob.address)
    public = alice.make_public(secret)
    assert public.public and alice.acl(secret) == public
    with net.client(backend.gateway.url) as anyone:
        assert anyone.decrypt(secret) == b"\x01" * 8


def test_concurrent_async_users(net: GatewayNet, backend: Backend, alice: Client) -> None:
    secret = alice.encrypt(-12345, "int32")
    alice.make_public(secret)

    async def one_user() -> list[Any]:
        async with AsyncClient(
            backend.gateway.url,
            Wallet.generate(),
            chain_id=CHAIN_ID,
            gateway_signer=net.cluster.gateway.address,
            verifying_contract=net.contract,
            kms_public_key=net.public_key,
        ) as user:
            return [await user.decrypt(secret) for _ in range(3)]

    async def everyone() -> list[list[Any]]:
        return await asyncio.gather(*(one_user() for _ in range(8)))

    assert asyncio.run(everyone()) == [[-12345] * 3] * 8


def test_no_secret_reaches_the_gateway_log_or_database(
    net: GatewayNet, backend: Backend, alice: Client
) -> None:
    marker = "plaintext-marker-" + os.urandom(8).hex()
    secret = alice.encrypt(marker, "string")
    assert alice.decrypt(secret) == marker
    # Fetch the material as the SDK does, and open it here to learn S_i and x(S).
    material, _ = alice.core.material()
    salt = os.urandom(32)
    answer = httpx.get(
        f"{backend.gateway.url}/v1/secrets/{secret.handle}",
        params={"chain_id": str(CHAIN_ID), "salt": to_hex(salt)},
        headers={"Authorization": material.authorization},
    ).json()["payload"]
    keyset = verify_keyset(net.keyset, CHAIN_ID, parse_hex(net.public_key))
    ephemeral = curve.parse_point(parse_hex(answer["ephemeralPubKey"]))
    partials = {
        p["index"]: open_partial(
            keyset,
            material.rsa_key,
            ephemeral,
            SealedPartial(p["index"], answer["epoch"], parse_hex(p["encryptedPartial"])),
        )
        for p in answer["partials"]
    }
    shared_x = curve.point_x(combine_points(dict(list(partials.items())[:3])))
    secrets_ = [shared_x, marker.encode()] + [curve.encode_point(p) for p in partials.values()]
    time.sleep(0.2)  # let the gateway flush its log
    log = backend.gateway.output()
    stored = backend.dump()
    assert parse_hex(answer["ciphertext"]) in stored  # the dump does hold the records
    for value in secrets_:
        for form in (value, value.hex().encode(), value.hex().upper().encode()):
            assert form not in stored
            assert form.decode(errors="replace") not in log
    assert "Traceback" not in log
