"""The gateway's request logic in-process (as the benchmark calls it), on a real store and node."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_env
from tests.procs import Service
from tkms.crypto import eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.acl import AccessControl
from tkms.gateway.assembly import build_gateway_service
from tkms.gateway.config import load_gateway_config
from tkms.gateway.service import GatewayService
from tkms.gateway.storage import SqliteRecordStore
from tkms.protocol.handle import new_handle
from tkms.web.errors import ApiError

OWNER = Wallet.generate()


class AllowList:
    """An ACL that is not the embedded one: what an on-chain adapter would plug in."""

    def __init__(self, *viewers: bytes) -> None:
        self.viewers = set(viewers)

    def is_viewer(self, handle: bytes, address: bytes) -> bool:
        return address in self.viewers

    def is_publicly_decryptable(self, handle: bytes) -> bool:
        return False


def body(value: str = "0x01", kind: str = "uint8") -> bytes:
    return json.dumps(
        {
            "value": value,
            "solidityType": kind,
            "owner": to_hex(OWNER.address),
            "applicationContract": to_hex(bytes(20)),
        }
    ).encode()


def authorization(wallet: Wallet) -> str:
    now = int(time.time())
    message = {
        "userAddress": to_hex(wallet.address),
        "encryptionPubKey": to_hex(rsa.public_key_der(rsa.generate_private_key())),
        "notBefore": now - 5,
        "expiresAt": now + 60,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=NOX_COMPUTE)
    signature = to_hex(eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message))
    token = json.dumps({"payload": message, "signature": signature}).encode()
    return "EIP712 " + base64.b64encode(token).decode()


def run(
    node: Service,
    keys: NodeKeys,
    root: Path,
    story: Callable[[GatewayService], Awaitable[Any]],
    **kw: Any,
) -> Any:
    config = load_gateway_config(single_node_env(node, keys, root, 0))

    async def main() -> Any:
        service = build_gateway_service(config, SqliteRecordStore(root / "g.sqlite3"), **kw)
        try:
            return await story(service)
        finally:
            await service.aclose()
            service.store.close()

    return asyncio.run(main())


def test_a_handle_is_written_once(
    v0_node: Service, node_keys: NodeKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating an existing handle is a 409 (forced here: real handles are random)."""
    fixed = new_handle(CHAIN_ID, "uint8")
    monkeypatch.setattr("tkms.gateway.service.bound_input_handle", lambda *_: fixed)

    async def twice(service: GatewayService) -> None:
        first = await service.create_secret(None, None, body())
        assert first.body["payload"]["handle"] == to_hex(fixed)
        with pytest.raises(ApiError) as exists:
            await service.create_secret(None, None, body())
        assert exists.value.status == 409 and exists.value.code == "handle_exists"

    run(v0_node, node_keys, tmp_path, twice)


def test_another_access_control_replaces_the_embedded_acl(
    v0_node: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    allowed, stranger = Wallet.generate(), Wallet.generate()
    acl: AccessControl = AllowList(allowed.address)

    async def story(service: GatewayService) -> None:
        created = await service.create_secret(None, None, body("0x07"))
        handle = created.body["payload"]["handle"]
        served = await service.secret_v0(handle, None, None, authorization(allowed))
        assert served.body["payload"]["handle"] == handle and "kms" in served.timings
        for call in (
            service.secret_v0(handle, None, None, authorization(stranger)),
            service.secret_v0(handle, None, None, authorization(OWNER)),  # the list decides
        ):
            with pytest.raises(ApiError) as refused:
                await call
            assert refused.value.status == 403
        with pytest.raises(ApiError) as grants:
            await service.acl_listing(handle, None, None, None)
        assert grants.value.status == 501

    run(v0_node, node_keys, tmp_path, story, access=acl)
