"""Admission control of the reads (gateway/admission.py, docs/gateway.md §9), over real processes.

A 5-node committee (t = 3) and a gateway admitting one read at a time with two
waiting: a burst beyond that is answered 503 ``gateway_busy`` with
``Retry-After``, everything else of the burst is served, and afterwards the
gateway holds no place; as many reads as fit are all served; the SDK waits
out ``Retry-After`` and every decryption of a burst succeeds.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet, module_net
from tests.procs import Service
from tkms.client import AsyncClient, Client
from tkms.client.gateway_core import HttpResponse, retry_after
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

IN_FLIGHT, QUEUE, RETRY_AFTER = 1, 2, 2
BURST = 40


net = module_net("admission")


@pytest.fixture(scope="module")
def gateway(net: GatewayNet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("admission-gateway")
    with net.gateway(
        str(root / "g.sqlite3"),
        root / "g.log",
        TKMS_GATEWAY_ADMISSION__MAX_IN_FLIGHT=str(IN_FLIGHT),
        TKMS_GATEWAY_ADMISSION__MAX_QUEUE=str(QUEUE),
        TKMS_GATEWAY_ADMISSION__RETRY_AFTER=str(RETRY_AFTER),
    ) as service:
        yield service


@pytest.fixture(scope="module")
def read(net: GatewayNet, gateway: Service) -> tuple[str, str]:
    """(path, Authorization) of a read of a stored secret by a viewer."""
    with net.client(gateway.url) as alice:
        secret = alice.encrypt(77, "uint64")
        assert alice.decrypt(secret) == 77
        material, _ = alice.core.material()
        return f"/v1/secrets/{secret.handle}", material.authorization


def _gauge(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


def _busy_count(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    match = re.search(r'^tkms_gateway_errors_total\{code="gateway_busy"\} (\S+)$', text, re.M)
    return 0.0 if match is None else float(match.group(1))


def _settled(url: str) -> None:
    """Every place and queue entry given back (late node answers finish in the background)."""
    for _ in range(100):
        if _gauge(url, "tkms_gateway_reads_in_flight") == 0:
            assert _gauge(url, "tkms_gateway_reads_queued") == 0
            return
        time.sleep(0.05)
    raise AssertionError("a read still holds its place")


async def _burst(url: str, path: str, authorization: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one() -> httpx.Response:
            salt = to_hex(secrets.token_bytes(32))
            headers = {"Authorization": authorization}
            return await http.get(path, params={"salt": salt}, headers=headers)

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_a_burst_beyond_the_queue_is_told_to_retry_and_the_rest_is_served(
    gateway: Service, read: tuple[str, str]
) -> None:
    answers = asyncio.run(_burst(gateway.url, *read, BURST))
    served = [a for a in answers if a.status_code == 200]
    busy = [a for a in answers if a.status_code != 200]
    assert len(served) >= IN_FLIGHT + QUEUE
    assert busy, "a burst of 40 against 1 + 2 places: some must be refused"
    for answer in busy:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == str(RETRY_AFTER)
        body = answer.json()
        assert body["error"] == "gateway_busy" and isinstance(body["message"], str)
    for answer in served:
        assert answer.json()["payload"]["partials"]  # a whole answer, not a torn one
    _settled(gateway.url)


def test_reads_that_fit_in_flight_and_queue_are_all_served(
    gateway: Service, read: tuple[str, str]
) -> None:
    _settled(gateway.url)
    for _ in range(3):
        answers = asyncio.run(_burst(gateway.url, *read, IN_FLIGHT + QUEUE))
        assert [a.status_code for a in answers] == [200] * (IN_FLIGHT + QUEUE)
        _settled(gateway.url)


def test_the_sdk_waits_out_retry_after_and_every_decryption_succeeds(
    net: GatewayNet, gateway: Service
) -> None:
    wallets = [Wallet.generate() for _ in range(12)]
    with net.client(gateway.url) as owner:
        secret = owner.encrypt(5, "uint64")
        for wallet in wallets:
            owner.grant(secret, wallet.address)
    settings: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "gateway_signer": net.cluster.gateway.address,
        "verifying_contract": net.contract,
        "kms_public_key": net.public_key,
    }
    before = _busy_count(gateway.url)

    async def users() -> list[int]:
        clients = [AsyncClient(gateway.url, w, timeout=30, **settings) for w in wallets]
        try:
            for client in clients:  # keyset, RSA key, connection: one at a time
                assert await client.decrypt(secret) == 5
            values = await asyncio.gather(*(c.decrypt(secret) for c in clients))
            return [int(v) for v in values]
        finally:
            for client in clients:
                await client.aclose()

    assert asyncio.run(users()) == [5] * len(wallets)
    assert _busy_count(gateway.url) > before  # some were refused, and asked again
    _settled(gateway.url)


def test_the_sync_sdk_waits_out_retry_after_too(net: GatewayNet, gateway: Service) -> None:
    wallets = [Wallet.generate() for _ in range(8)]
    with net.client(gateway.url) as owner:
        secret = owner.encrypt(6, "uint64")
        for wallet in wallets:
            owner.grant(secret, wallet.address)
    clients: list[Client] = [net.client(gateway.url, w, timeout=30) for w in wallets]
    for client in clients:
        assert client.decrypt(secret) == 6
    before, values = _busy_count(gateway.url), []
    start = threading.Barrier(len(clients))

    def user(client: Client) -> None:
        start.wait()
        values.append(client.decrypt(secret))

    threads = [threading.Thread(target=user, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert values == [6] * len(clients)
    assert _busy_count(gateway.url) > before
    _settled(gateway.url)


def test_only_a_503_with_a_retry_after_in_seconds_within_the_budget_is_waited_out() -> None:
    def answer(status: int, value: str | None) -> HttpResponse:
        return HttpResponse(status, None, {} if value is None else {"retry-after": value})

    assert retry_after(answer(503, "2"), waited=0.0, budget=10.0) == 2.0
    assert retry_after(answer(503, "2"), waited=9.0, budget=10.0) is None  # past the budget
    assert retry_after(answer(503, None), waited=0.0, budget=10.0) is None  # not_enough_partials
    assert retry_after(answer(429, "1"), waited=0.0, budget=10.0) is None
    for odd in ("-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "99999", "١"):
        assert retry_after(answer(503, odd), waited=0.0, budget=1e9) is None, odd
