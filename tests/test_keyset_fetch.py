"""The gateway's keyset (re-)fetch asks every node at once: about one timeout, not n.

In-process: a real keyset from a simulated ceremony, served by one good
"node"; the others hold their request until the client gives up on it, or are
down. What is asserted is the order of what the nodes saw (asked at once, or
one after the other), never how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.adversary import serve_in_thread
from tests.procs import free_port
from tkms.dkg.simulation import run_in_process
from tkms.gateway.fanout import NodeRef
from tkms.gateway.keysets import KeysetSource, KeysetUnavailable

CHAIN_ID = 421614
TIMEOUT = 3.0
N = 5
HOLD_CAP = 30.0  # a held request ends by then even if its client never leaves

# What the nodes saw, in order: ("asked", role) as a request arrives and ("left", role)
# as its client closes the connection (a timeout or a cancellation). One list for the
# server threads: an append is atomic, so its order is the order the events happened.
EVENTS: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def ceremony() -> tuple[dict[str, Any], dict[int, bytes], bytes]:
    """(the §3.1 keyset body, index → signer, Y) of a 3-of-5 committee."""
    sim = run_in_process(N, 3, chain_id=CHAIN_ID)
    keyset = sim.participants[1].keyset
    assert keyset is not None
    signatures = {i: keyset.sign(sim.identities[i].wallet, CHAIN_ID) for i in sim.identities}
    signers = {i: ident.wallet.address for i, ident in sim.identities.items()}
    body = keyset.to_json(chain_id=CHAIN_ID, signatures=signatures)
    return body, signers, keyset.public_key_bytes


def node_app(body: dict[str, Any] | None) -> Starlette:
    """A node serving ``body`` at once, or (None) holding the request until its client
    leaves: it never answers, so whoever asked it waits for its own timeout."""
    role = "good" if body is not None else "slow"

    async def keyset(request: Request) -> Response:
        EVENTS.append(("asked", role))
        if body is not None:
            return JSONResponse(body)
        async with asyncio.timeout(HOLD_CAP):
            while (await request.receive())["type"] != "http.disconnect":
                pass
        EVENTS.append(("left", role))
        return JSONResponse({"error": "late", "message": "too late"}, 503)

    return Starlette(routes=[Route("/v1/keyset", keyset)])


@pytest.fixture(scope="module")
def urls(ceremony: tuple[dict[str, Any], dict[int, bytes], bytes]) -> Iterator[dict[str, str]]:
    body = ceremony[0]
    with ExitStack() as stack:
        yield {
            "good": stack.enter_context(serve_in_thread(node_app(body), free_port())),
            "slow": stack.enter_context(serve_in_thread(node_app(None), free_port())),
            "down": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        }


def fetch(source: KeysetSource) -> Any:
    """The keyset or the KeysetUnavailable; once every held request has ended (its
    client gone with the loop), so that no event of this fetch lands in the next one's."""

    async def run() -> Any:
        try:
            return await source.get()
        except KeysetUnavailable as exc:
            return exc

    outcome = asyncio.run(run())
    for _ in range(int(HOLD_CAP / 0.01)):  # a wait for the servers' threads, not a check
        if EVENTS.count(("left", "slow")) == EVENTS.count(("asked", "slow")):
            break
        time.sleep(0.01)
    return outcome


def source(
    ceremony: tuple[dict[str, Any], dict[int, bytes], bytes], roles: dict[int, str]
) -> KeysetSource:
    _, signers, public_key = ceremony
    nodes = {i: NodeRef(i, url, signers[i]) for i, url in roles.items()}
    return KeysetSource(nodes, CHAIN_ID, public_key, timeout=TIMEOUT)


def test_slow_and_down_nodes_cost_one_timeout_not_n(
    ceremony: tuple[dict[str, Any], dict[int, bytes], bytes], urls: dict[str, str]
) -> None:
    # The good node last: one after the other, it was asked only once each slow node
    # before it had timed out (its client gone), which took 3 timeouts.
    roles = {1: urls["slow"], 2: urls["down"], 3: urls["slow"], 4: urls["slow"], 5: urls["good"]}
    keysets = source(ceremony, roles)
    for attempt in ("first fetch", "re-fetch after an invalidation (a reshare)"):
        EVENTS.clear()
        loaded = fetch(keysets)
        assert not isinstance(loaded, KeysetUnavailable), loaded
        assert loaded.keyset.threshold == 3
        # The good node was asked while every slow node still held its request: the
        # good answer did not wait for the slow ones.
        asked_good = EVENTS.index(("asked", "good"))
        assert ("left", "slow") not in EVENTS[:asked_good], (attempt, EVENTS)
        keysets.invalidate()


def test_no_good_node_fails_after_about_one_timeout_naming_each(
    ceremony: tuple[dict[str, Any], dict[int, bytes], bytes], urls: dict[str, str]
) -> None:
    roles = {i: urls["slow"] for i in (1, 2, 3, 4)} | {5: urls["down"]}
    EVENTS.clear()
    failed = fetch(source(ceremony, roles))
    assert isinstance(failed, KeysetUnavailable)
    for i in range(1, N + 1):
        assert f"node {i}: unreachable" in str(failed)
    # All four were asked before the first one's client gave up: one timeout, not four.
    assert EVENTS[:4] == [("asked", "slow")] * 4, EVENTS


def test_the_poll_keeps_one_connection_per_node(
    ceremony: tuple[dict[str, Any], dict[int, bytes], bytes],
) -> None:
    """Each refresh asks every node over the connection the last one left open: a new
    client and new connections every KEYSET_REFRESH were most of the gateway's idle CPU."""
    body = ceremony[0]
    seen: list[tuple[str, int]] = []

    async def keyset(request: Request) -> Response:
        assert request.client is not None
        seen.append((request.client.host, request.client.port))  # the connection's port
        return JSONResponse(body)

    app = Starlette(routes=[Route("/v1/keyset", keyset)])
    with serve_in_thread(app, free_port()) as url:
        keysets = source(ceremony, {i: url for i in range(1, N + 1)})

        async def run() -> None:
            for _ in range(3):
                loaded = await keysets.refresh()
                assert loaded is not None and loaded.keyset.threshold == 3
            await keysets.aclose()

        asyncio.run(run())
        # A new event loop gets connections of its own (one belongs to its loop).
        keysets.invalidate()
        assert not isinstance(fetch(keysets), KeysetUnavailable)
    assert len(seen) > 3 * N
    assert len(set(seen[: 3 * N])) == N  # one connection per node, from poll to poll
