"""A lean HTTP/1.1 client for the fan-out: h11 over asyncio streams, kept alive.

Why not httpx here: a decryption makes one request per node, and httpx's
layers (httpcore, anyio) cost ~0.7 ms of CPU per request — on a small
machine that is CPU the nodes need. h11 does the HTTP parsing (it is what
httpcore uses underneath); this module only keeps connections per node and
bounds what it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from tkms.gateway.node_failure import FailureKind, NodeFailure

READ_CHUNK = 65536


class NodeHttpError(Exception):
    """The exchange failed (connection, protocol, size); ``failure`` says how."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.failure = NodeFailure(kind, detail)


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    received: int = 0  # bytes of the current answer so far

    def close(self) -> None:
        self.writer.close()


class NodeConnections:
    """Keep-alive connections to one node; safe for concurrent requests (one per connection)."""

    def __init__(self, base_url: str, *, max_idle: int = 32) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("node URL must be http(s)://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._idle: list[_Conn] = []
        self._max_idle = max_idle

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        except (OSError, ssl.SSLError) as exc:
            raise NodeHttpError(FailureKind.UNREACHABLE, f"connect: {type(exc).__name__}") from None
        return _Conn(reader, writer, h11.Connection(h11.CLIENT))

    async def post(
        self, target: str, headers: list[tuple[str, str]], body: bytes, *, limit: int
    ) -> tuple[int, bytes]:
        """(status, body) of ``POST target``; a body over ``limit`` bytes is an error."""
        while self._idle:
            conn = self._idle.pop()
            try:
                # The node may have closed an idle connection (keep-alive timeout):
                # nothing was processed then, so the request goes again on a new one.
                return await self._exchange(conn, target, headers, body, limit)
            except _Stale:
                conn.close()
        conn = await self._connect()
        try:
            return await self._exchange(conn, target, headers, body, limit)
        except _Stale:
            conn.close()
            raise NodeHttpError(
                FailureKind.UNREACHABLE, "connection closed or reset before an answer"
            ) from None

    async def _exchange(
        self, conn: _Conn, target: str, headers: list[tuple[str, str]], body: bytes, limit: int
    ) -> tuple[int, bytes]:
        reusable = False
        conn.received = 0
        try:
            request = h11.Request(
                method="POST",
                target=target,
                headers=[
                    ("Host", self.authority),
                    ("Content-Length", str(len(body))),
                    *headers,
                ],
            )
            out = conn.http.send(request) or b""
            out += conn.http.send(h11.Data(data=body)) or b""
            out += conn.http.send(h11.EndOfMessage()) or b""
            conn.writer.write(out)
            await conn.writer.drain()
            status, data = await self._read(conn, limit)
            reusable = conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE
            if reusable:
                conn.http.start_next_cycle()
            return status, data
        except _Stale:
            raise
        except h11.ProtocolError:
            raise NodeHttpError(FailureKind.INVALID, "not HTTP/1.1") from None
        except (OSError, ssl.SSLError) as exc:
            if conn.received == 0:
                # A reset before any answer byte: on a reused connection the node had
                # closed it (e.g. it restarted); the caller retries on a fresh one.
                raise _Stale from None
            raise NodeHttpError(
                FailureKind.UNREACHABLE, f"connection: {type(exc).__name__}"
            ) from None
        finally:
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            elif not reusable:
                conn.close()

    @staticmethod
    async def _read(conn: _Conn, limit: int) -> tuple[int, bytes]:
        status = 0
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.http.next_event()
            if event is h11.NEED_DATA:
                chunk = await conn.reader.read(READ_CHUNK)
                if not chunk and conn.received == 0:
                    raise _Stale
                conn.received += len(chunk)
                conn.http.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise NodeHttpError(FailureKind.INVALID, "answer too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise NodeHttpError(FailureKind.UNREACHABLE, "connection closed mid-answer")
            # InformationalResponse (1xx) and others: keep reading

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()


class _Stale(Exception):
    """A reused connection was closed by the peer before any answer byte."""
