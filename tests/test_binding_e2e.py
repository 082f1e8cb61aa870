"""A gateway that serves another record under a handle is caught by the SDK (docs/binding.md).

Real processes: the v0 node of conftest behind a single-node gateway, and a
3-node committee (real DKG) behind a threshold gateway on SQLite and on
PostgreSQL. The malicious gateway is simulated the way its operator would
act: rewriting the row of a handle in the gateway's own database, so that the
handle names another user's record, or a record the gateway made itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NodeKeys
from tests.gatewaynet import NOX_COMPUTE, GatewayNet, module_net, single_node_gateway
from tests.pg import isolated_schema
from tests.procs import Service
from tests.tamper import read_record, rewrite_record
from tkms.client import AsyncClient, Client, UntrustedResponse
from tkms.crypto import curve, ecies
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.audit_format import chain_files
from tkms.node.audit_verify import verify


@dataclass
class Stack:
    """A gateway, its database, and what a client of it needs to trust."""

    url: str
    database: str
    settings: dict[str, Any]
    public_key: curve.Point

    def client(self, **kw: Any) -> Client:
        return Client(self.url, Wallet.generate(), **{**self.settings, **kw})

    def async_client(self, **kw: Any) -> AsyncClient:
        return AsyncClient(self.url, Wallet.generate(), **{**self.settings, **kw})


@pytest.fixture(scope="module")
def v0_stack(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = Path(tmp_path_factory.mktemp("binding-v0"))
    settings = {
        "chain_id": 421614,
        "gateway_signer": node_keys.gateway.address,
        "verifying_contract": NOX_COMPUTE,
        "kms_public_key": curve.encode_point(node_keys.public_key),
    }
    with single_node_gateway(v0_node, node_keys, root) as gateway:
        database = str(root / "gateway-state" / "gateway.sqlite3")
        yield Stack(gateway.url, database, settings, node_keys.public_key)


net = module_net("binding-v1", n=3, t=2)


@contextmanager
def v1_stack(request: pytest.FixtureRequest, backend: str) -> Iterator[Stack]:
    net: GatewayNet = request.getfixturevalue("net")
    root = Path(request.getfixturevalue("tmp_path_factory").mktemp(f"binding-{backend}"))
    if backend == "sqlite":
        database = nullcontext(str(root / "gateway.sqlite3"))
    else:
        database = isolated_schema(request.getfixturevalue("postgres_server"))
    settings = {
        "chain_id": 421614,
        "gateway_signer": net.cluster.gateway.address,
        "verifying_contract": net.contract,
        "kms_public_key": net.public_key,
    }
    key = curve.parse_point(parse_hex(net.public_key))
    with database as url, net.gateway(url, root / "gateway.log") as service:
        yield Stack(service.url, url, settings, key)


@pytest.fixture(scope="module", params=["v0", "v1-sqlite", "v1-postgres"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    if request.param == "v0":
        yield request.getfixturevalue("v0_stack")
        return
    with v1_stack(request, request.param.removeprefix("v1-")) as built:
        yield built


def forged(stack: Stack, victim: str, swap: str, other: str) -> None:
    """Point ``victim`` at another record: ``other``'s, or one the gateway made itself."""
    if swap == "another":
        record = read_record(stack.database, parse_hex(other))
    else:
        record = ecies.encrypt(stack.public_key, (666).to_bytes(32, "big"))
    rewrite_record(stack.database, parse_hex(victim), record)


@pytest.mark.parametrize("swap", ["another", "own"])
def test_a_swapped_record_is_untrusted_sync(stack: Stack, swap: str) -> None:
    with stack.client() as alice:
        victim = alice.encrypt(1000, "uint256")
        other = alice.encrypt(2000, "uint256")
        assert alice.decrypt(other) == 2000  # honest reads decrypt
        # Before the victim's first read: the gateway keeps a record once it has read it
        # (gateway/record_cache.py), so a row rewritten later would not be served at all.
        forged(stack, victim.handle, swap, other.handle)
        with pytest.raises(UntrustedResponse, match="does not belong to this handle"):
            alice.decrypt(victim)
        assert alice.decrypt(other) == 2000  # an untouched record still reads


@pytest.mark.parametrize("swap", ["another", "own"])
def test_a_swapped_record_is_untrusted_async(stack: Stack, swap: str) -> None:
    async def story() -> None:
        async with stack.async_client() as alice:
            victim = await alice.encrypt(1000, "uint256")
            other = await alice.encrypt(2000, "uint256")
            assert await alice.decrypt(other) == 2000
            forged(stack, victim.handle, swap, other.handle)  # before its first read, as above
            with pytest.raises(UntrustedResponse, match="does not belong to this handle"):
                await alice.decrypt(victim)
            assert await alice.decrypt(other) == 2000

    asyncio.run(story())


def test_without_require_binding_the_swap_goes_unseen(stack: Stack) -> None:
    """What the check catches: a client that trusts the gateway's signature alone reads 666."""
    with stack.client(require_binding=False) as alice:
        victim = alice.encrypt(1000, "uint256")
        forged(stack, victim.handle, "own", victim.handle)
        assert alice.decrypt(victim) == 666


def test_the_committee_logs_each_partial_it_serves(net: GatewayNet, tmp_path: Path) -> None:
    """The audit log of v1 (docs/audit.md), on the committee's real nodes: epoch and requester."""
    with (
        net.gateway(str(tmp_path / "g.sqlite3"), tmp_path / "g.log") as gateway,
        net.client(gateway.url) as alice,
    ):
        assert alice.decrypt(alice.encrypt(7, "uint8")) == 7
    time.sleep(0.6)  # the writers fsync every 200 ms
    served = 0
    for spec in net.cluster.nodes.values():
        files = chain_files(spec.state_dir / "audit", 0)
        verdict = verify(files)
        assert verdict.ok, verdict.broken
        entries = [json.loads(x) for f in files for x in f.read_text().splitlines()]
        mine = [e for e in entries if e["version"] == "v1" and e["decision"] == "served"]
        assert all(e["epoch"] == net.keyset["epoch"] for e in mine)
        assert all(e["requester"] == to_hex(net.cluster.gateway.address) for e in mine)
        served += bool(mine)
    assert served >= 2  # t = 2 of 3
