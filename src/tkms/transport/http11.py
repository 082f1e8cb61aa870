"""An HTTP/1.1 client transport: h11 over asyncio streams, kept alive (the async SDK's).

Why not httpx here: its layers (httpx's models, httpcore's pool, anyio) cost
the async client about as much CPU per request as a partial's cryptography
(bench/sdk_transport.py measures both); h11 is the parser httpcore uses
underneath, and this module adds only what the SDK needs of a client:

* keep-alive connections to one gateway, one request per connection at a
  time, at most ``max_idle`` kept;
* ``timeout`` seconds for the whole exchange (connect, send, answer), where
  httpx's ``timeout`` bounds each phase: never longer than httpx's;
* an answer body of at most ``max_answer_bytes`` (httpx had no bound);
* https through the ``ssl`` module (the default context: certificates and
  host names checked), or a context the caller gives;
* a kept connection the server has closed (its keep-alive timeout) is not
  reused; one that it closes as the request goes out fails before any answer
  byte: a GET is then sent again on another, anything else fails with
  :class:`Dropped`; every other failure is :class:`TransportFailure`.

Its blocking sibling is transport/http11_sync.py; what they share (the
request's bytes, the answer's assembly, the failures) is transport/exchange.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

import h11

from tkms.transport.exchange import (
    READ_CHUNK,
    Answer,
    AnswerReader,
    Dropped,
    Transport,
    TransportFailure,
    request_bytes,
    reusable,
)

__all__ = ["Answer", "Dropped", "Http11", "TransportFailure"]


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection


class Http11(Transport[_Conn]):
    """Keep-alive HTTP/1.1 to one base URL; safe for concurrent requests."""

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
    ) -> Answer:
        target, fields = self._prepare(path, params, headers, body)
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    conn, reused = await self._take()
                    try:
                        return await self._exchange(conn, reused, method, target, fields, body)
                    except Dropped:
                        if method != "GET":
                            raise  # it may have been processed: the caller decides
                        # a read is safe to send again: on the next idle or a new one
        except TimeoutError:
            raise TransportFailure("ReadTimeout") from None

    async def _take(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            # A server that closed it (its keep-alive timeout) sent a FIN long ago: a
            # free check, as httpcore's before reuse. A close racing the request is Dropped.
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn, True
            conn.writer.close()
        try:
            origin = self.origin
            reader, writer = await asyncio.open_connection(origin.host, origin.port, ssl=origin.ssl)
        except (OSError, ssl.SSLError) as exc:
            raise TransportFailure(f"ConnectError ({type(exc).__name__})") from None
        return _Conn(reader, writer, h11.Connection(h11.CLIENT)), False

    async def _exchange(
        self,
        conn: _Conn,
        reused: bool,
        method: str,
        target: str,
        fields: list[tuple[str, str]],
        body: bytes | None,
    ) -> Answer:
        keep = False
        answer = AnswerReader(conn.http, self.max_answer_bytes)
        try:
            conn.writer.write(request_bytes(conn.http, method, target, fields, body))
            await conn.writer.drain()
            while (whole := answer.step()) is None:
                answer.feed(await conn.reader.read(READ_CHUNK))
            keep = reusable(conn.http)
            return whole
        except h11.ProtocolError:
            raise TransportFailure("RemoteProtocolError") from None
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            if reused and answer.received == 0:
                raise Dropped(f"ReadError ({type(exc).__name__})") from None
            raise TransportFailure(f"ReadError ({type(exc).__name__})") from None
        finally:
            if keep and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:  # not reusable, or enough kept already
                conn.writer.close()

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()
