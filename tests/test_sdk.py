"""The SDK: every Solidity type, material reuse, typed errors, trust checks.

The round trips run against a real gateway process in front of the real v0
node of conftest (single-node mode: the cheapest real stack); the threshold
path is covered end to end in test_e2e_gateway.py.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_gateway
from tests.procs import Service, free_port
from tkms import client as sdk
from tkms.cli_values import parse_cli_value, show_value
from tkms.client import AsyncClient, Client, InvalidInput, TransportError, UntrustedResponse
from tkms.client.gateway_core import GatewayCore
from tkms.client.trust import GatewayTrust
from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.handle import SolidityType, TypeFamily, all_solidity_types


@pytest.fixture(scope="module")
def gateway(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    with single_node_gateway(v0_node, node_keys, Path(tmp_path_factory.mktemp("sdk"))) as g:
        yield g


def make_client(
    gateway: Service, keys: NodeKeys, wallet: Wallet | None = None, **kw: Any
) -> Client:
    settings: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "gateway_signer": keys.gateway.address,
        "verifying_contract": NOX_COMPUTE,
        "kms_public_key": curve.encode_point(keys.public_key),
    }
    settings.update(kw)
    return Client(gateway.url, wallet or Wallet.generate(), **settings)


def sample(kind: SolidityType, rng: random.Random) -> Any:
    family = kind.family
    if family is TypeFamily.BOOL:
        return rng.random() < 0.5
    if family is TypeFamily.ADDRESS:
        return to_checksum_address(rng.randbytes(20))
    if family is TypeFamily.BYTES:
        return rng.randbytes(rng.randrange(0, 48))
    if family is TypeFamily.STRING:
        return "".join(rng.choice("aé✓ z€0") for _ in range(rng.randrange(0, 24)))
    if family is TypeFamily.FIXED_BYTES:
        return rng.randbytes(kind.size)
    bits = kind.size * 8
    if family is TypeFamily.UINT:
        return rng.choice([0, 2**bits - 1, rng.randrange(2**bits)])
    return rng.choice(
        [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, rng.randrange(-(2 ** (bits - 1)), 0)]
    )


def test_every_solidity_type_round_trips(gateway: Service, node_keys: NodeKeys) -> None:
    rng = random.Random(20261125)
    types = all_solidity_types()
    assert len(types) == 100
    with make_client(gateway, node_keys) as owner, make_client(gateway, node_keys) as viewer:
        for kind in types:
            value = sample(kind, rng)
            secret = owner.encrypt(value, kind.name)
            assert secret.solidity_type == kind and str(secret) == secret.handle
            assert owner.decrypt(secret) == value, kind.name
            if kind.size in (0, 1, 32):  # a viewer, too, for a few of each family
                owner.grant(secret, viewer.address)
                assert viewer.decrypt(secret.handle) == value, kind.name
        assert owner.keyset() is None  # single-node mode: there is no keyset


def test_material_is_reused_while_valid_and_renewed_before_expiry() -> None:
    now = [1_800_000_000.0]
    core = GatewayCore(
        Wallet.generate(),
        GatewayTrust(CHAIN_ID, bytes(20), NOX_COMPUTE),
        authorization_ttl=600,
        clock=lambda: now[0],
    )
    first, fresh = core.material()
    assert fresh
    again, fresh = core.material()
    assert again is first and not fresh
    now[0] += 600 - 30 - 10  # back-dated 30 s; renewed 10 s before expiry, as Nox does
    renewed, fresh = core.material()
    assert fresh and renewed is not first
    assert renewed.rsa_key is not first.rsa_key
    assert repr(renewed).startswith("DecryptionMaterial(") and "rsa" not in repr(renewed)


def test_inputs_are_checked_before_anything_is_sent() -> None:
    # Nothing listens there: an InvalidInput proves no request was attempted.
    dead = f"http://127.0.0.1:{free_port()}"
    with Client(
        dead,
        Wallet.generate(),
        chain_id=CHAIN_ID,
        gateway_signer=bytes(20),
        verifying_contract=NOX_COMPUTE,
    ) as client:
        for value, kind in [(256, "uint8"), (-1, "uint8"), (True, "uint8"), (1, "bool")]:
            with pytest.raises(InvalidInput):
                client.encrypt(value, kind)
        with pytest.raises(InvalidInput):
            client.encrypt(1, "uint7")
        with pytest.raises(InvalidInput):
            client.encrypt("0x12", "address")
        with pytest.raises(InvalidInput):
            client.decrypt("0x1234")
        with pytest.raises(InvalidInput):
            client.grant("0x" + "00" * 32, "0x" + "11" * 20, role="owner")
        with pytest.raises(InvalidInput):
            client.grant("0x" + "00" * 32, "0x12")
        with pytest.raises(TransportError):
            client.encrypt(1, "uint8")
        # No chain given: the *_on_chain calls send nothing.
        assert not client.on_chain
        with pytest.raises(InvalidInput, match="no chain"):
            client.grant_on_chain("0x" + "00" * 32, "0x" + "11" * 20)
        with pytest.raises(InvalidInput, match="no chain"):
            client.make_public_on_chain("0x" + "00" * 32)
    with pytest.raises(InvalidInput):
        Client(dead, Wallet.generate(), chain_id=1, gateway_signer="0x12", verifying_contract="")
    # A chain nobody serves is a TransportError, never a refusal.
    with Client(
        dead,
        Wallet.generate(),
        chain_id=CHAIN_ID,
        gateway_signer=bytes(20),
        verifying_contract=NOX_COMPUTE,
        rpc_url=dead,
        nox_compute=NOX_COMPUTE,
    ) as client:
        assert client.on_chain
        with pytest.raises(TransportError, match="cannot reach the chain"):
            client.grant_on_chain("0x" + "00" * 32, "0x" + "11" * 20)


def test_answers_not_signed_by_the_trusted_gateway_are_refused(
    gateway: Service, node_keys: NodeKeys
) -> None:
    with make_client(gateway, node_keys) as owner:
        secret = owner.encrypt(5, "uint8")
        wallet = owner.core.wallet
    with make_client(gateway, node_keys, wallet, gateway_signer=os.urandom(20)) as fooled:
        with pytest.raises(UntrustedResponse):
            fooled.encrypt(5, "uint8")
        with pytest.raises(UntrustedResponse):
            fooled.decrypt(secret)
    # The handle proof is checked against the verifying contract too.
    other = make_client(gateway, node_keys, wallet, verifying_contract=os.urandom(20))
    with other, pytest.raises(UntrustedResponse):
        other.encrypt(5, "uint8")


def test_the_async_client(gateway: Service, node_keys: NodeKeys) -> None:
    async def story() -> tuple[Any, Any]:
        settings = {
            "chain_id": CHAIN_ID,
            "gateway_signer": to_hex(node_keys.gateway.address),
            "verifying_contract": to_hex(NOX_COMPUTE),
        }
        async with (
            AsyncClient(gateway.url, Wallet.generate(), **settings) as alice,
            AsyncClient(gateway.url, Wallet.generate(), **settings) as bob,
        ):
            secret = await alice.encrypt("async", "string")
            with pytest.raises(sdk.AccessDenied):
                await bob.decrypt(secret)
            acl = await alice.grant(secret, bob.address)
            assert acl.can_read(bob.address) and not acl.public
            return await bob.decrypt(secret), await alice.acl(secret)

    value, acl = asyncio.run(story())
    assert value == "async" and len(acl.viewers) == 1


def test_every_sdk_error_is_a_tkms_error() -> None:
    names = [n for n in sdk.__all__ if n[0].isupper() and n not in ("Client", "AsyncClient")]
    errors = [getattr(sdk, n) for n in names if isinstance(getattr(sdk, n), type)]
    errors = [e for e in errors if issubclass(e, Exception)]
    assert {e.__name__ for e in errors} >= {
        "AccessDenied",
        "NotFound",
        "NotEnoughPartials",
        "UntrustedResponse",
        "Unauthorized",
        "InvalidInput",
    }
    assert all(issubclass(e, sdk.TkmsError) for e in errors)


def test_cli_values() -> None:
    assert parse_cli_value("1000", "uint256") == 1000
    assert parse_cli_value("-5", "int8") == -5
    assert parse_cli_value("0xff", "uint8") == 255
    assert parse_cli_value("true", "bool") is True and parse_cli_value("0", "bool") is False
    assert parse_cli_value("0xabcd", "bytes2") == "0xabcd"
    assert parse_cli_value("hello world", "string") == "hello world"
    for text, kind in [("ten", "uint8"), ("yes", "bool")]:
        with pytest.raises(ValueError):
            parse_cli_value(text, kind)
    assert show_value(True) == "true" and show_value(b"\x01\x02") == "0x0102"
    assert show_value(-3) == "-3" and show_value("text") == "text"
