"""The async JSON-RPC client over h11 (chain/rpc.py on transport/http11.py), real sockets.

A small asyncio server on loopback plays the endpoint: one that stalls, one that
answers too much, one that closes its kept-alive connections, and one that records
what it was sent (the path, the query, the credentials of the URL). Anvil's own
answers are test_chain_rpc.py's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from tkms.chain.errors import ChainUnavailable
from tkms.chain.rpc import AsyncRpcClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def _answer(body: bytes, extra: bytes = b"") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + extra + b"\r\n" + body


def _result(request: bytes, result: object = "0x1") -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": json.loads(request)["id"], "result": result}
    ).encode()


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_stalled_endpoint_times_out_within_the_deadline() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")  # then nothing
        await asyncio.sleep(10)

    async def run() -> None:
        server, url = await _serve(stall)
        async with server, AsyncRpcClient(url, timeout=0.3) as rpc:
            # (the stub holds the answer 10 s: a missed deadline fails on the message)
            with pytest.raises(ChainUnavailable, match=r"timed out after 0\.3 s") as info:
                await rpc.chain_id()
            assert url not in str(info.value)

    asyncio.run(run())


def test_an_answer_over_the_bound_is_unavailable() -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, request = await _read_request(reader)
                result = _result(request, "0x" + "00" * 40_000)
                if b"/chunked" in head:  # no content-length: the bound holds as it is read
                    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    for i in range(0, len(result), 1000):
                        part = result[i : i + 1000]
                        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    writer.write(b"0\r\n\r\n")
                else:
                    writer.write(_answer(result))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server, url = await _serve(huge)
        async with server:
            for path in ("", "/chunked"):
                async with AsyncRpcClient(url + path, max_response_bytes=64 * 1024) as small:
                    with pytest.raises(ChainUnavailable, match="larger than 65536 B"):
                        await small.request("eth_getCode", ["0x" + "00" * 20, "latest"])
                async with AsyncRpcClient(url + path) as roomy:  # the same answer, under 4 MiB
                    code = await roomy.get_code(b"\x00" * 20)
                    assert code == bytes(40_000)

    asyncio.run(run())


def test_a_closed_kept_alive_connection_is_replaced() -> None:
    served = {"connections": 0}

    async def one_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["connections"] += 1
        _, request = await _read_request(reader)
        writer.write(_answer(_result(request)))  # kept alive as far as the client knows
        await writer.drain()
        writer.close()  # as an endpoint's keep-alive timeout does

    async def run() -> None:
        server, url = await _serve(one_each)
        async with server, AsyncRpcClient(url) as rpc:
            for _ in range(3):
                assert await rpc.chain_id() == 1
                await asyncio.sleep(0.05)
            assert served["connections"] == 3

    asyncio.run(run())


def test_a_connection_closed_as_the_request_goes_out() -> None:
    """The endpoint reads the second request of a connection and closes without answering:
    a read is asked again on a new connection; a transaction is not sent twice."""
    seen: list[str] = []

    async def drop_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, request = await _read_request(reader)
        seen.append(json.loads(request)["method"])
        writer.write(_answer(_result(request)))
        await writer.drain()
        try:
            _, request = await _read_request(reader)
            seen.append(json.loads(request)["method"])
        except asyncio.IncompleteReadError:
            pass
        writer.close()  # no answer to the second request

    async def run() -> None:
        server, url = await _serve(drop_second)
        async with server, AsyncRpcClient(url) as rpc:
            await rpc.chain_id()  # opens the connection the endpoint drops next
            assert await rpc.request("eth_blockNumber") == "0x1"
            assert seen == ["eth_chainId", "eth_blockNumber", "eth_blockNumber"]
            seen.clear()
            with pytest.raises(ChainUnavailable, match="unreachable"):
                await rpc.send_raw_transaction(b"\x02")
            assert seen == ["eth_sendRawTransaction"]

    asyncio.run(run())


def test_the_url_path_query_and_credentials_are_sent_as_httpx_does() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, request = await _read_request(reader)
        heads.append(head)
        writer.write(_answer(_result(request), b"connection: close\r\n"))
        await writer.drain()
        writer.close()

    async def run() -> None:
        server, url = await _serve(record)
        host = url.removeprefix("http://")
        async with server:
            for target in ("", "/v3/key", "/rpc/?apikey=secret"):
                async with AsyncRpcClient(f"http://us%40er:pa:ss@{host}{target}") as rpc:
                    assert await rpc.chain_id() == 1
        lines = [head.split(b"\r\n") for head in heads]
        assert [line[0] for line in lines] == [
            b"POST / HTTP/1.1",
            b"POST /v3/key HTTP/1.1",
            b"POST /rpc/?apikey=secret HTTP/1.1",
        ]
        basic = (b"authorization: basic " + base64.b64encode(b"us@er:pa:ss")).lower()
        assert all(basic in (h.lower() for h in line) for line in lines)
        assert all(f"host: {host}".encode() in (h.lower() for h in line) for line in lines)

    asyncio.run(run())


def test_an_http_error_and_a_refused_connection_are_unavailable() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def run() -> None:
        server, url = await _serve(refuse)
        async with server, AsyncRpcClient(url) as rpc:
            with pytest.raises(ChainUnavailable, match="HTTP 429"):
                await rpc.chain_id()
        async with AsyncRpcClient(url, timeout=1.0, connect_timeout=0.5) as closed:
            with pytest.raises(ChainUnavailable, match=r"unreachable \(ConnectError"):
                await closed.chain_id()
        async with AsyncRpcClient("ftp://127.0.0.1/") as wrong:
            with pytest.raises(ChainUnavailable, match="UnsupportedProtocol"):
                await wrong.chain_id()

    asyncio.run(run())


def test_a_connection_that_cannot_open_times_out_at_connect_timeout() -> None:
    """A listener whose backlog is full drops the SYN: the connection never opens."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the backlog (never accepted)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:

            async def run() -> None:
                url = f"http://127.0.0.1:{port}"
                async with AsyncRpcClient(url, timeout=5.0, connect_timeout=0.2) as rpc:
                    with pytest.raises(ChainUnavailable, match=r"connecting after 0\.2 s"):
                        await rpc.chain_id()

            asyncio.run(run())
        finally:
            for filler in fillers:
                filler.close()
