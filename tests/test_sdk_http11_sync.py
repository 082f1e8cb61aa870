"""The sync SDK's blocking h11 transport (transport/http11_sync.py) over real loopback sockets.

The servers are tests/loopback_http.py's, each on an event loop in a thread of
its own; the transport is driven from the test's thread, as the synchronous
:class:`~tkms.client.Client` drives it. The SDK's own flows over it are
test_sdk.py's (a real gateway).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from tests import loopback_http as lb
from tkms.client import Client, TransportError
from tkms.crypto.wallet import Wallet
from tkms.transport.http11_sync import Dropped, Http11Sync, TransportFailure


def test_https_is_verified_and_kept_alive(tmp_path: Path) -> None:
    server_tls, client_tls = lb.tls_pair(tmp_path)
    with lb.serving_in_thread(lb.keep_alive, server_tls) as url:
        http = Http11Sync(url + "/prefix", timeout=5, ssl_context=client_tls)
        first = http.request("GET", "/a", {"salt": "0x01"}, {}, None)
        second = http.request("POST", "/b", {}, {"Authorization": "x"}, b"{}")
        assert first.status == second.status == 200
        assert first.body == b'{"target":"/prefix/a?salt=0x01"}'
        assert second.body == b'{"target":"/prefix/b"}'
        assert first.headers["content-type"] == "application/json"
        assert len(http._idle) == 1  # the one connection, reused
        http.close()
        assert not http._idle
        # An unknown certificate is refused: the default context checks it.
        stranger = Http11Sync(url, timeout=5)
        with pytest.raises(TransportFailure, match="ConnectError"):
            stranger.request("GET", "/", {}, {}, None)
        # So is a trusted certificate for another name (it names 127.0.0.1 only).
        port = url.rpartition(":")[2]
        other_name = Http11Sync(f"https://localhost:{port}", timeout=5, ssl_context=client_tls)
        with pytest.raises(TransportFailure, match="ConnectError"):
            other_name.request("GET", "/", {}, {}, None)


def test_threads_share_one_transport() -> None:
    # The synchronous Client is shared between threads: each request takes its own
    # connection, and at most max_idle are kept afterwards.
    with lb.serving_in_thread(lb.keep_alive) as url:
        http = Http11Sync(url, timeout=5, max_idle=3)
        bodies: list[bytes] = []

        def user(n: int) -> None:
            for i in range(20):
                bodies.append(http.request("GET", f"/{n}/{i}", {}, {}, None).body)

        threads = [threading.Thread(target=user, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(bodies) == sorted(
            b'{"target":"/%d/%d"}' % (n, i) for n in range(8) for i in range(20)
        )
        assert 1 <= len(http._idle) <= 3
        http.close()


def test_answer_size_and_timeout_are_bounded() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each byte well within the timeout, the whole answer far beyond it: only one
        # deadline for the exchange (not one per read) cuts it off.
        await lb.read_request(reader)
        for byte in lb.answer(b"x" * 1000):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    too_big = pytest.raises(TransportFailure, match="answer over 4096 bytes")
    with lb.serving_in_thread(lb.too_large) as big, too_big:
        Http11Sync(big, timeout=5, max_answer_bytes=4096).request("GET", "/", {}, {}, None)
    for handler in (lb.silent, trickle):
        too_slow = pytest.raises(TransportFailure, match="ReadTimeout")
        with lb.serving_in_thread(handler) as slow, too_slow:
            Http11Sync(slow, timeout=0.3).request("GET", "/", {}, {}, None)


def test_a_body_larger_than_the_socket_buffer_goes_out_or_times_out() -> None:
    # 8 MB fills the kernel's buffers: the send waits for the server to read, within
    # the one deadline (a server that never reads is a timeout, not a hang).
    body = b"[" + b"0," * (4 * 1024 * 1024) + b"0]"

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def reads_it(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got = await reader.readexactly(len(body))
        writer.write(lb.answer(b'{"length":%d}' % len(got)))
        await writer.drain()

    with lb.serving_in_thread(reads_it) as url:
        answer = Http11Sync(url, timeout=10).request("POST", "/", {}, {}, body)
        assert answer.body == b'{"length":%d}' % len(body)
    too_slow = pytest.raises(TransportFailure, match="ReadTimeout")
    with lb.serving_in_thread(deaf) as url, too_slow:
        Http11Sync(url, timeout=0.3).request("POST", "/", {}, {}, body)


def test_a_closed_kept_connection_is_not_reused() -> None:
    async def one_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lb.read_request(reader)
        writer.write(lb.answer(b"{}"))  # no "connection: close": the client keeps it
        await writer.drain()
        writer.close()  # as a server's keep-alive timeout does

    with lb.serving_in_thread(one_each) as url:
        http = Http11Sync(url, timeout=5)
        for _ in range(3):
            assert http.request("POST", "/", {}, {}, b"{}").status == 200
            # The FIN has come before the next request: it goes on a new connection.
            threading.Event().wait(0.05)
        http.close()


def test_a_connection_closed_under_the_request_resends_a_get_only() -> None:
    connections = []

    async def drops_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await lb.read_request(reader)
        writer.write(lb.answer(b"{}"))
        await writer.drain()
        await lb.read_request(reader)  # the next request: closed without a byte of answer
        writer.close()

    with lb.serving_in_thread(drops_the_second) as url:
        http = Http11Sync(url, timeout=5)
        assert http.request("GET", "/", {}, {}, None).status == 200
        assert http.request("GET", "/", {}, {}, None).status == 200  # sent again, on another
        assert len(connections) == 2
        with pytest.raises(Dropped):  # a POST may have been processed: the caller decides
            http.request("POST", "/", {}, {}, b"{}")
        assert len(connections) == 2
        http.close()


def test_the_sdk_raises_transport_error() -> None:
    chain: dict[str, Any] = {
        "gateway_signer": "0x" + "11" * 20,
        "verifying_contract": "0x" + "22" * 20,
    }
    for url in ("http://127.0.0.1:9", "ftp://127.0.0.1", "http://"):
        unreachable = pytest.raises(TransportError, match="cannot reach the gateway")
        with Client(url, Wallet.generate(), chain_id=1, **chain) as client, unreachable:
            client.keyset()
