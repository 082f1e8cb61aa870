"""Nodes that break HTTP itself: the gateway names each as that node's failure and goes on.

Real processes: 5 nodes (t = 3, a real DKG) and a gateway process; the hostile
"nodes" are raw TCP servers in this test's process (tests/loopback_http.py)
that answer junk, too much, chunked, by closing mid-answer, or never. What
the gateway's codec takes and refuses is docs/gateway.md §8 ("What counts as
a node's failure"); the codec alone: tests/test_gateway_nodehttp.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests import loopback_http as lb
from tests.adversary import relay_delegate, serve_in_thread
from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet, module_net
from tests.procs import Service, free_port
from tkms.client import Client

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Misbehaviour = Callable[[Reader, Writer], Awaitable[None]]
NODE_TIMEOUT = 2.0
NOT_FOUND = b'HTTP/1.1 404 Not Found\r\ncontent-length: 22\r\n\r\n{"error": "not_found"}'


async def junk(_: Reader, writer: Writer) -> None:
    writer.write(b"\x00\xffnot HTTP at all\r\n\r\n")


async def too_large(_: Reader, writer: Writer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n" + b"{" * 4096)


async def chunked(_: Reader, writer: Writer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")


async def cut(_: Reader, writer: Writer) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 900\r\n\r\n{"index": 4, "epo')
    await writer.drain()
    writer.close()


async def silent(_: Reader, __: Writer) -> None:
    await asyncio.sleep(NODE_TIMEOUT * 3)


KINDS: dict[Misbehaviour, str] = {
    junk: "invalid: not HTTP/1.1",
    too_large: "invalid: answer too large",
    chunked: "invalid: Transfer-Encoding (chunked) answer: Content-Length only",
    cut: "unreachable: connection closed mid-answer",
    silent: "timeout: no answer in time",
}


def rotating(*ways: Misbehaviour) -> lb.Handler:
    """A server that misbehaves one way per delegation, the next way for the next one.

    Anything else (the gateway's keyset poll) gets a well-formed 404, not counted."""
    count = 0

    async def handler(reader: Reader, writer: Writer) -> None:
        nonlocal count
        while not writer.is_closing():
            try:
                head = await lb.read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if not head.startswith(b"POST /v1/delegate"):
                writer.write(NOT_FOUND)
                await writer.drain()
                continue
            way = ways[count % len(ways)]
            count += 1
            await way(reader, writer)
            await writer.drain()

    return handler


net = module_net("hostile-nodes")


@contextmanager
def gateway_with(
    net: GatewayNet, root: Path, servers: dict[int, lb.Handler], **extra: str
) -> Iterator[Service]:
    with ExitStack() as stack:
        urls = {i: stack.enter_context(lb.serving_in_thread(h)) for i, h in servers.items()}
        yield stack.enter_context(
            net.gateway(
                str(root / "gateway.sqlite3"),
                root / "gateway.log",
                TKMS_GATEWAY_NODES=net.nodes_json(urls),
                TKMS_GATEWAY_NODE_TIMEOUT=str(NODE_TIMEOUT),
                TKMS_GATEWAY_DEADLINE="30",
                **extra,
            )
        )


def outcomes(gateway: Service, index: int) -> dict[str, float]:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    pattern = r'^tkms_gateway_node_requests_total\{node="' + str(index)
    found = re.findall(pattern + r'",outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


def read_raw(gateway: Service, owner: Client, handle: str) -> httpx.Response:
    """The gateway's own answer to ``owner``'s read of ``handle``, unopened."""
    material, _ = owner.core.material()
    return httpx.get(
        f"{gateway.url}/v1/secrets/{handle}",
        params={"chain_id": str(CHAIN_ID)},
        headers={"Authorization": material.authorization},
        timeout=60,
    )


def test_two_nodes_breaking_http_every_way_deny_no_decryption(
    net: GatewayNet, tmp_path: Path
) -> None:
    """Every node asked (so both hostile ones each time), answered at t good answers."""
    ways = tuple(KINDS)
    with (
        gateway_with(
            net,
            tmp_path,
            {4: rotating(*ways), 5: rotating(*reversed(ways))},
            TKMS_GATEWAY_ASK_ALL_NODES="true",
            TKMS_GATEWAY_SPARE="0",
        ) as gateway,
        net.client(gateway.url, timeout=60) as owner,
    ):
        for value in range(2 * len(ways)):
            secret = owner.encrypt(value, "uint16")
            assert owner.decrypt(secret) == value
        deadline = time.monotonic() + 3 * NODE_TIMEOUT  # the silent ones time out late
        while time.monotonic() < deadline:
            seen = {i: outcomes(gateway, i) for i in (4, 5)}
            if all(seen[i].get("timeout", 0) >= 2 for i in (4, 5)):
                break
            time.sleep(0.2)
        for i in (4, 5):
            assert seen[i].get("ok", 0) == 0
            assert seen[i].get("invalid") == 6  # junk, too large, chunked: twice each
            assert seen[i].get("unreachable") == 2
            assert seen[i].get("timeout") == 2
        assert "Traceback" not in gateway.output()


def test_three_nodes_breaking_http_are_named_in_the_503(net: GatewayNet, tmp_path: Path) -> None:
    hostile = {3: junk, 4: chunked, 5: cut}
    with (
        gateway_with(net, tmp_path, {i: rotating(w) for i, w in hostile.items()}) as gateway,
        net.client(gateway.url, timeout=60) as owner,
    ):
        secret = owner.encrypt(1, "uint8")
        answer = read_raw(gateway, owner, secret.handle)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["error"] == "not_enough_partials"
        assert body["threshold"] == 3 and body["valid"] == 2
        assert body["failures"] == {str(i): KINDS[w] for i, w in hostile.items()}
        assert "Traceback" not in gateway.output()


def capitals(upstream: str) -> AbstractContextManager[str]:
    """A node's honest answers with the proof written ``0X`` and in capitals: hex in any
    case, as parse_hex reads it (the node signs the partial, not the proof's spelling)."""

    async def delegate(request: Request) -> Response:
        real = await relay_delegate(upstream, request, await request.body())
        data = real.json()
        if real.status_code == 200:
            data["proof"] = "0X" + data["proof"][2:].upper()
        return JSONResponse(data, real.status_code)

    async def forward(request: Request) -> Response:  # the keyset, /health
        async with httpx.AsyncClient() as http:
            real = await http.get(upstream + request.url.path, params=dict(request.query_params))
        return Response(real.content, real.status_code, media_type="application/json")

    routes = [
        Route("/v1/delegate", delegate, methods=["POST"]),
        Route("/{path:path}", forward, methods=["GET"]),
    ]
    return serve_in_thread(Starlette(routes=routes), free_port())


def test_a_proof_in_capitals_is_passed_on_in_the_wire_s_form(
    net: GatewayNet, tmp_path: Path
) -> None:
    """The gateway writes each partial's proof as hex is written out (0x, lowercase)."""
    with ExitStack() as stack:
        urls = {i: stack.enter_context(capitals(n.url)) for i, n in net.cluster.nodes.items()}
        gateway = stack.enter_context(
            net.gateway(
                str(tmp_path / "gateway.sqlite3"),
                tmp_path / "gateway.log",
                TKMS_GATEWAY_NODES=net.nodes_json(urls),
                TKMS_GATEWAY_DEADLINE="30",
            )
        )
        owner = stack.enter_context(net.client(gateway.url, timeout=60))
        secret = owner.encrypt(9, "uint8")
        assert owner.decrypt(secret) == 9  # the answer's signature covers the proofs as written
        answer = read_raw(gateway, owner, secret.handle)
        assert answer.status_code == 200, answer.text
        partials = answer.json()["payload"]["partials"]
        assert len(partials) == 4
        for partial in partials:
            proof = partial["proof"]
            assert proof[:2] == "0x" and proof == proof.lower() and len(proof) == 132
