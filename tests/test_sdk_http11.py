"""The async SDK's h11 transport (transport/http11.py) over real loopback sockets.

A small asyncio server (tests/loopback_http.py: TLS with a self-signed
certificate, or plain) answers what each test needs: an answer, one that is
too large, none at all, or a close of a kept connection. The SDK's own flows
over it are test_sdk.py's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_http import (
    answer,
    base_url,
    keep_alive,
    read_request,
    serve,
    silent,
    tls_pair,
    too_large,
)
from tkms.client import AsyncClient, TransportError
from tkms.crypto.wallet import Wallet
from tkms.transport.http11 import Http11, TransportFailure


def test_https_is_verified_and_kept_alive(tmp_path: Path) -> None:
    server_tls, client_tls = tls_pair(tmp_path)

    async def run() -> None:
        server = await serve(keep_alive, server_tls)
        async with server:
            http = Http11(base_url(server, "https") + "/prefix", timeout=5, ssl_context=client_tls)
            first = await http.request("GET", "/a", {"salt": "0x01"}, {}, None)
            second = await http.request("POST", "/b", {}, {"Authorization": "x"}, b"{}")
            assert first.status == second.status == 200
            assert first.body == b'{"target":"/prefix/a?salt=0x01"}'
            assert first.headers["content-type"] == "application/json"
            assert len(http._idle) == 1  # the one connection, reused
            await http.aclose()
            # An unknown certificate is refused: the default context checks it.
            stranger = Http11(base_url(server, "https"), timeout=5)
            with pytest.raises(TransportFailure, match="ConnectError"):
                await stranger.request("GET", "/", {}, {}, None)

    asyncio.run(run())


def test_answer_size_and_timeout_are_bounded() -> None:
    async def run() -> None:
        big, slow = await serve(too_large), await serve(silent)
        async with big, slow:
            http = Http11(base_url(big), timeout=5, max_answer_bytes=4096)
            with pytest.raises(TransportFailure, match="answer over 4096 bytes"):
                await http.request("GET", "/", {}, {}, None)
            http = Http11(base_url(slow), timeout=0.3)
            with pytest.raises(TransportFailure, match="ReadTimeout"):
                await http.request("GET", "/", {}, {}, None)

    asyncio.run(run())


def test_a_closed_kept_connection_is_not_reused() -> None:
    async def one_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))  # no "connection: close": the client keeps it
        await writer.drain()
        writer.close()  # as a server's keep-alive timeout does

    async def run() -> None:
        server = await serve(one_each)
        async with server:
            http = Http11(base_url(server), timeout=5)
            for _ in range(3):
                assert (await http.request("POST", "/", {}, {}, b"{}")).status == 200
                await asyncio.sleep(0.05)
            await http.aclose()

    asyncio.run(run())


def test_the_sdk_raises_transport_error() -> None:
    async def run() -> None:
        for url in ("http://127.0.0.1:9", "ftp://127.0.0.1"):
            chain: dict[str, Any] = {
                "gateway_signer": "0x" + "11" * 20,
                "verifying_contract": "0x" + "22" * 20,
            }
            async with AsyncClient(url, Wallet.generate(), chain_id=1, **chain) as client:
                with pytest.raises(TransportError, match="cannot reach the gateway"):
                    await client.keyset()

    asyncio.run(run())
