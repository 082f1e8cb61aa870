"""The async SDK's h11 transport (transport/http11.py) over real loopback sockets.

A small asyncio server (TLS with a self-signed certificate, or plain) answers
what each test needs: an answer, one that is too large, none at all, or a
close of a kept connection. The SDK's own flows over it are test_sdk.py's.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tkms.client import AsyncClient, TransportError
from tkms.crypto.wallet import Wallet
from tkms.transport.http11 import Http11, TransportFailure

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _answer(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def _serve(handler: Handler, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)


def _url(server: asyncio.Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await _read_request(reader)
            target = head.split(b" ")[1]
            writer.write(_answer(b'{"target":"' + target + b'"}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def test_https_is_verified_and_kept_alive(tmp_path: Path) -> None:
    server_tls, client_tls = _tls(tmp_path)

    async def run() -> None:
        server = await _serve(_keep_alive, server_tls)
        async with server:
            http = Http11(_url(server, "https") + "/prefix", timeout=5, ssl_context=client_tls)
            first = await http.request("GET", "/a", {"salt": "0x01"}, {}, None)
            second = await http.request("POST", "/b", {}, {"Authorization": "x"}, b"{}")
            assert first.status == second.status == 200
            assert first.body == b'{"target":"/prefix/a?salt=0x01"}'
            assert first.headers["content-type"] == "application/json"
            assert len(http._idle) == 1  # the one connection, reused
            await http.aclose()
            # An unknown certificate is refused: the default context checks it.
            stranger = Http11(_url(server, "https"), timeout=5)
            with pytest.raises(TransportFailure, match="ConnectError"):
                await stranger.request("GET", "/", {}, {}, None)

    asyncio.run(run())


def test_answer_size_and_timeout_are_bounded() -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(b"x" * 5000))
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def run() -> None:
        big, slow = await _serve(huge), await _serve(silent)
        async with big, slow:
            http = Http11(_url(big), timeout=5, max_answer_bytes=4096)
            with pytest.raises(TransportFailure, match="answer over 4096 bytes"):
                await http.request("GET", "/", {}, {}, None)
            http = Http11(_url(slow), timeout=0.3)
            with pytest.raises(TransportFailure, match="ReadTimeout"):
                await http.request("GET", "/", {}, {}, None)

    asyncio.run(run())


def test_a_closed_kept_connection_is_not_reused() -> None:
    async def one_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(b"{}"))  # no "connection: close": the client keeps it
        await writer.drain()
        writer.close()  # as a server's keep-alive timeout does

    async def run() -> None:
        server = await _serve(one_each)
        async with server:
            http = Http11(_url(server), timeout=5)
            for _ in range(3):
                assert (await http.request("POST", "/", {}, {}, b"{}")).status == 200
                await asyncio.sleep(0.05)
            await http.aclose()

    asyncio.run(run())


def test_the_sdk_raises_transport_error() -> None:
    async def run() -> None:
        for url in ("http://127.0.0.1:9", "ftp://127.0.0.1"):
            chain = {"gateway_signer": "0x" + "11" * 20, "verifying_contract": "0x" + "22" * 20}
            async with AsyncClient(url, Wallet.generate(), chain_id=1, **chain) as client:
                with pytest.raises(TransportError, match="cannot reach the gateway"):
                    await client.keyset()

    asyncio.run(run())
