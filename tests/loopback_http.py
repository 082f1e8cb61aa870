"""Small HTTP/1.1 servers on loopback for the client transports' tests.

An asyncio server (plain, or TLS with a self-signed certificate) runs the
handler a test gives it: an answer, one too large, none at all, a trickle, a
close of a kept connection. :func:`serving_in_thread` runs one on its own
event loop for the blocking transport's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import queue
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context that trusts it (and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tkms test server")])
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


async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)


def base_url(server: asyncio.Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with its target, as JSON."""
    try:
        while True:
            head = await read_request(reader)
            target = head.split(b" ")[1]
            writer.write(answer(b'{"target":"' + target + b'"}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def too_large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers 5000 bytes of body, whatever is asked."""
    await read_request(reader)
    writer.write(answer(b"x" * 5000))
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request and answers nothing (until the test ends)."""
    await read_request(reader)
    await asyncio.sleep(30)


@contextmanager
def serving_in_thread(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """The server's base URL while it runs on an event loop of its own thread."""
    started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]] = queue.Queue()

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A handler still waiting at the end (a silent server's sleep) is cancelled:
        # it ends quietly (a cancelled one is logged as an error on Python 3.11).
        with contextlib.suppress(asyncio.CancelledError):
            await handler(reader, writer)
        writer.close()

    async def run() -> None:
        stop = asyncio.Event()
        server = await serve(quiet, tls)
        started.put(
            (asyncio.get_running_loop(), stop, base_url(server, "http" if tls is None else "https"))
        )
        async with server:
            await stop.wait()
        # asyncio.run then cancels the handlers still running

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    loop, stop, url = started.get(timeout=10)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
