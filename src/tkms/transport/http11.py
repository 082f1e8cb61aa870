"""An HTTP/1.1 client transport over asyncio streams, kept alive (the async SDK's).

Why not httpx here: its layers (httpx's models, httpcore's pool, anyio) cost
the async client about as much CPU per request as a partial's cryptography
(bench/sdk_transport.py measures both); the codec is transport/http1.py (h11,
the parser httpcore uses underneath, until issue 13 cut its CPU too), and this
module adds only what the SDK needs of a client:

* keep-alive connections to one gateway, one request per connection at a
  time, at most ``max_idle`` kept;
* ``timeout`` seconds for the whole exchange (connect, send, answer), where
  httpx's ``timeout`` bounds each phase: never longer than httpx's;
* an answer body of at most ``max_answer_bytes`` (httpx had no bound);
* https through the ``ssl`` module (the default context: certificates and
  host names checked), or a context the caller gives;
* a kept connection the server has closed (its keep-alive timeout) is not
  reused; one that it closes as the request goes out fails before any answer
  byte: a GET (or a request the caller says is ``idempotent``) is then sent
  again on another, anything else fails with :class:`Dropped`; the deadline
  is :class:`TimedOut`, an answer over the bound :class:`TooLarge`, every
  other failure :class:`TransportFailure`;
* optionally ``connect_timeout`` seconds for opening a connection, within the
  whole ``timeout`` (the chain's JSON-RPC client has both, as nox-kms).

Its blocking sibling is transport/http11_sync.py; what they share (the
request's bytes, the answer's assembly, the failures) is transport/exchange.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from tkms.transport.exchange import (
    READ_CHUNK,
    Answer,
    AnswerReader,
    ConnectTimedOut,
    Dropped,
    TimedOut,
    TooLarge,
    Transport,
    TransportFailure,
    request_bytes,
    reusable,
)
from tkms.transport.http1 import Http1, ProtocolError

__all__ = [
    "Answer",
    "ConnectTimedOut",
    "Dropped",
    "Http11",
    "TimedOut",
    "TooLarge",
    "TransportFailure",
]


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: Http1


class Http11(Transport[_Conn]):
    """Keep-alive HTTP/1.1 to one base URL; safe for concurrent requests."""

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
        *,
        idempotent: bool | None = None,
    ) -> Answer:
        """One exchange; ``idempotent`` (default: a GET) lets a dropped one be sent again."""
        target, fields = self._prepare(path, params, headers, body)
        again = method == "GET" if idempotent is None else idempotent
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    conn, reused = await self._take()
                    try:
                        return await self._exchange(conn, reused, method, target, fields, body)
                    except Dropped:
                        if not again:
                            raise  # it may have been processed: the caller decides
                        # a read is safe to send again: on the next idle or a new one
        except TimeoutError:
            raise TimedOut("ReadTimeout") from None

    async def _take(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            # A server that closed it (its keep-alive timeout) sent a FIN long ago: a
            # free check, as httpcore's before reuse. A close racing the request is Dropped.
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn, True
            conn.writer.close()
        origin = self.origin
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    origin.host, origin.port, ssl=origin.ssl
                )
        except TimeoutError:
            raise ConnectTimedOut("ConnectTimeout") from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportFailure(f"ConnectError ({type(exc).__name__})") from None
        return _Conn(reader, writer, Http1()), False

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
        except ProtocolError:
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
