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
  byte: a GET (or a request the caller says is ``idempotent``) is then sent
  again on another, anything else fails with :class:`Dropped`; the deadline
  is :class:`TimedOut`, an answer over the bound :class:`TooLarge`, every
  other failure :class:`TransportFailure`;
* optionally ``connect_timeout`` seconds for opening a connection, within the
  whole ``timeout`` (the chain's JSON-RPC client has both, as nox-kms).

The base URL's path and query are kept: a request for path ``""`` goes to
the base URL itself (a JSON-RPC endpoint, whose path or query may hold an
API key: no message of this module quotes the URL).

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


class TimedOut(TransportFailure):
    """The deadline passed (``timeout``, or ``connect_timeout`` for a new connection)."""


class ConnectTimedOut(TimedOut):
    """``connect_timeout`` passed before a new connection was open."""


class TooLarge(TransportFailure):
    """The answer is larger than ``max_answer_bytes``."""


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
        connect_timeout: float | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        # As httpx: a URL it cannot use fails each request, not the constructor.
        self._unusable = parts.scheme not in ("http", "https") or not parts.hostname
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self._base_target = parts.path or "/"
        self._query = parts.query
        self.timeout = timeout
        self.connect_timeout = connect_timeout
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
        *,
        idempotent: bool | None = None,
    ) -> Answer:
        """One exchange; ``idempotent`` (default: a GET) lets a dropped one be sent again."""
        if self._unusable:
            raise TransportFailure("UnsupportedProtocol")
        query = "&".join(q for q in (self._query, urlencode(params) if params else "") if q)
        target = (self.prefix + path if path else self._base_target) + (
            "?" + query if query else ""
        )
        again = method == "GET" if idempotent is None else idempotent
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
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        except TimeoutError:
            raise ConnectTimedOut("ConnectTimeout") from None
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
                length = headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_answer_bytes:
                    raise TooLarge(f"answer over {self.max_answer_bytes} bytes")  # unread
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_answer_bytes:
                    raise TooLarge(f"answer over {self.max_answer_bytes} bytes")
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
