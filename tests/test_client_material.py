"""A client's RSA key: made in the background, kept in a checked 0600 file (issue 13 item 4).

The file is a cache that anyone able to write it could fill with a key of their
own, so every way it can be wrong is tried: each must be ignored and replaced,
never reused and never an error. The round trip runs against the real gateway
and v0 node of conftest (single-node mode).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_gateway
from tests.procs import Service
from tkms.client import Client
from tkms.client.gateway_core import GatewayCore
from tkms.client.material import KeyMaker
from tkms.client.trust import GatewayTrust
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

NOW = 1_800_000_000.0


def core(
    wallet: Wallet,
    path: Path | None,
    *,
    now: float = NOW,
    chain_id: int = CHAIN_ID,
    contract: bytes = NOX_COMPUTE,
) -> GatewayCore:
    return GatewayCore(
        wallet,
        GatewayTrust(chain_id, bytes(20), contract),
        authorization_ttl=600,
        clock=lambda: now,
        material_file=path,
    )


def test_the_key_is_made_in_the_background_and_taken_once() -> None:
    maker = KeyMaker(2048)
    assert maker.wait(30)  # made without anyone asking for it
    first, _ = maker.take()
    second, _ = maker.take()  # the background key is not handed out twice
    assert rsa.public_key_der(first) != rsa.public_key_der(second)


def test_material_is_kept_in_a_0600_file_and_reused_by_another_process(tmp_path: Path) -> None:
    wallet, path = Wallet.generate(), tmp_path / "alice.material"
    first, fresh = core(wallet, path).material()
    assert fresh and path.stat().st_mode & 0o777 == 0o600
    again, fresh = core(wallet, path).material()  # a new client, as a new process would make
    assert not fresh
    assert again.encryption_pubkey == first.encryption_pubkey
    assert again.authorization == first.authorization
    assert rsa.private_key_der(again.rsa_key) == rsa.private_key_der(first.rsa_key)


def test_expired_material_in_the_file_is_replaced(tmp_path: Path) -> None:
    wallet, path = Wallet.generate(), tmp_path / "m"
    first, _ = core(wallet, path).material()
    later, fresh = core(wallet, path, now=NOW + 600).material()  # past expiry - margin
    assert fresh and later.encryption_pubkey != first.encryption_pubkey
    reread, fresh = core(wallet, path, now=NOW + 600).material()
    assert not fresh and reread.encryption_pubkey == later.encryption_pubkey  # file rewritten


@pytest.mark.parametrize(
    "other",
    ["wallet", "chain", "contract"],
    ids=["another wallet", "another chain", "another contract"],
)
def test_material_of_another_wallet_chain_or_contract_is_not_reused(
    tmp_path: Path, other: str
) -> None:
    wallet, path = Wallet.generate(), tmp_path / "m"
    first, _ = core(wallet, path).material()
    if other == "wallet":
        second = core(Wallet.generate(), path)
    elif other == "chain":
        second = core(wallet, path, chain_id=CHAIN_ID + 1)
    else:
        second = core(wallet, path, contract=b"\x11" * 20)
    material, fresh = second.material()
    assert fresh and material.encryption_pubkey != first.encryption_pubkey


def _rewrite(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def test_a_planted_key_or_a_damaged_file_is_replaced(tmp_path: Path) -> None:
    wallet, path = Wallet.generate(), tmp_path / "m"
    first, _ = core(wallet, path).material()
    planted = rsa.generate_private_key()
    # Our authorization, another key: whoever planted it could read our values.
    _rewrite(path, privateKey=to_hex(rsa.private_key_der(planted)))
    material, fresh = core(wallet, path).material()
    assert fresh and rsa.public_key_der(material.rsa_key) != rsa.public_key_der(planted)
    # A statement for the planted key, not signed by us.
    token = json.loads(base64.b64decode(first.authorization[len("EIP712 ") :]))
    token["payload"]["encryptionPubKey"] = to_hex(rsa.public_key_der(planted))
    header = "EIP712 " + base64.b64encode(json.dumps(token).encode()).decode()
    _rewrite(path, privateKey=to_hex(rsa.private_key_der(planted)), authorization=header)
    material, fresh = core(wallet, path).material()
    assert fresh and rsa.public_key_der(material.rsa_key) != rsa.public_key_der(planted)
    for junk in (b"", b"not json", b"[]", b'{"version": 1}', b"\xff" * 20_000):
        path.write_bytes(junk)
        os.chmod(path, 0o600)
        _, fresh = core(wallet, path).material()
        assert fresh, junk[:10]


def test_a_file_others_can_read_or_a_symlink_is_not_trusted(tmp_path: Path) -> None:
    wallet, path = Wallet.generate(), tmp_path / "m"
    first, _ = core(wallet, path).material()
    os.chmod(path, 0o644)
    material, fresh = core(wallet, path).material()
    assert fresh and material.encryption_pubkey != first.encryption_pubkey
    assert path.stat().st_mode & 0o777 == 0o600  # and it is written back private
    link = tmp_path / "link"
    link.symlink_to(path)
    kept, _ = core(wallet, path).material()
    material, fresh = core(wallet, link).material()
    assert fresh and material.encryption_pubkey != kept.encryption_pubkey


@pytest.fixture(scope="module")
def gateway(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    with single_node_gateway(v0_node, node_keys, Path(tmp_path_factory.mktemp("mat"))) as g:
        yield g


def test_kept_material_decrypts_through_the_gateway(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    wallet, path = Wallet.generate(), tmp_path / "user.material"
    settings: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "gateway_signer": node_keys.gateway.address,
        "verifying_contract": NOX_COMPUTE,
        "kms_public_key": curve.encode_point(node_keys.public_key),
        "material_file": path,
    }
    with Client(gateway.url, wallet, **settings) as first:
        secret = first.encrypt(1000, "uint256")
        assert first.decrypt(secret) == 1000
        kept = first.core.material()[0]
    with Client(gateway.url, wallet, **settings) as second:
        assert second.decrypt(secret) == 1000  # the gateway takes the kept authorization
        material, fresh = second.core.material()
        assert not fresh and material.authorization == kept.authorization
