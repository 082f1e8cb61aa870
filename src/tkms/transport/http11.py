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

The synchronous :class:`~tkms.client.sdk.Client` keeps httpx: one blocking
request at a time does not pay the async machinery that costs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import h11

READ_CHUNK = 65536
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class TransportFailure(Exception):
    """The exchange failed; the message names how (an exception type, never data)."""


class Dropped(TransportFailure):
    """A kept-alive connection was closed by the server before any answer byte."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    received: int = 0  # bytes of the current answer so far


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


class Http11:
    """Keep-alive HTTP/1.1 to one base URL; safe for concurrent requests."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_idle: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        # As httpx: a URL it cannot use fails each request, not the constructor.
        self._unusable = parts.scheme not in ("http", "https") or not parts.hostname
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._idle: list[_Conn] = []
        self._max_idle = max_idle

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
    ) -> Answer:
        if self._unusable:
            raise TransportFailure("UnsupportedProtocol")
        target = self.prefix + path + ("?" + urlencode(params) if params else "")
        fields = [("Host", self.authority), ("Accept", "*/*")]
        if body is not None:
            fields += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        fields += list(headers.items())
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
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
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
        conn.received = 0
        try:
            out = conn.http.send(h11.Request(method=method, target=target, headers=fields)) or b""
            if body:
                out += conn.http.send(h11.Data(data=body)) or b""
            out += conn.http.send(h11.EndOfMessage()) or b""
            conn.writer.write(out)
            await conn.writer.drain()
            answer = await self._read(conn)
            keep = conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE
            if keep:
                conn.http.start_next_cycle()
            return answer
        except h11.ProtocolError:
            raise TransportFailure("RemoteProtocolError") from None
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            if reused and conn.received == 0:
                raise Dropped(f"ReadError ({type(exc).__name__})") from None
            raise TransportFailure(f"ReadError ({type(exc).__name__})") from None
        finally:
            if keep and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            elif not keep:
                conn.writer.close()

    async def _read(self, conn: _Conn) -> Answer:
        status, headers = 0, {}
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.http.next_event()
            if event is h11.NEED_DATA:
                chunk = await conn.reader.read(READ_CHUNK)
                if not chunk and conn.received == 0:
                    raise ConnectionResetError  # closed before any answer byte
                conn.received += len(chunk)
                conn.http.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_answer_bytes:
                    raise TransportFailure(f"answer over {self.max_answer_bytes} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise TransportFailure("RemoteProtocolError (closed mid-answer)")
            # an InformationalResponse (1xx): keep reading

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()
