"""Serving through a reshare: gateway + SDK over real processes, no request fails.

Five node processes (3-of-5, a real DKG), a gateway process that reads the
keyset again every half second, the SDK decrypting in a loop while the
committee is refreshed (5/3 → 5/3) and then loses a member (5/3 → 4/3). The
gateway learns each new epoch without a failed request; a record encrypted
at epoch 1 still decrypts, at the new epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet, module_net
from tests.procs import Service
from tests.reshare_net import committee_of
from tkms.client.reshare_relay import run_reshare
from tkms.crypto.wallet import Wallet

net = module_net("reshare-gw")


@pytest.fixture(scope="module")
def gateway(net: GatewayNet) -> Iterator[Service]:
    with net.gateway(
        str(net.root / "gateway.sqlite3"),
        net.root / "gateway.log",
        TKMS_GATEWAY_KEYSET_REFRESH="0.5",
    ) as service:
        yield service


def _epoch(gateway: Service) -> int:
    body = httpx.get(gateway.url + "/v1/keyset", params={"chain_id": CHAIN_ID}).json()
    return int(body["epoch"])


def test_requests_during_reshares_never_fail(net: GatewayNet, gateway: Service) -> None:
    wallet = Wallet.generate()
    alice = net.client(gateway.url, wallet)
    secret = alice.encrypt(1234, "uint64")  # sealed at epoch 1
    assert alice.decrypt(secret) == 1234 and _epoch(gateway) == 1
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def reader() -> None:
        client = net.client(gateway.url, wallet)
        while not stop.is_set():
            try:
                assert client.decrypt(secret) == 1234
                served[0] += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        everyone = [1, 2, 3, 4, 5]
        for new_nodes, threshold, epoch in ((everyone, 3, 2), ([1, 2, 3, 4], 3, 3)):
            time.sleep(0.5)
            outcome = run_reshare(
                committee_of(net.cluster, CHAIN_ID, everyone),
                committee_of(net.cluster, CHAIN_ID, new_nodes),
                net.cluster.admin,
                threshold,
            )
            assert outcome.keyset is not None, outcome.errors
            assert outcome.keyset["publicKey"] == net.public_key
            deadline = time.monotonic() + 5
            while _epoch(gateway) != epoch:  # learnt by polling, not by a failed request
                assert time.monotonic() < deadline, "the gateway did not learn the new epoch"
                time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert served[0] > 5
    # The record of epoch 1 opens at epoch 3, through the four nodes left.
    fresh = net.client(gateway.url, wallet)
    assert fresh.decrypt(secret) == 1234
