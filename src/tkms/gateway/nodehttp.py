"""The fan-out's HTTP/1.1 client: a small strict codec on asyncio protocols, kept alive.

Why not a general library here: a decryption makes one request per node asked
(four), and each library layer is CPU the nodes need on a small machine.
httpx (httpcore, anyio) cost ~0.7 ms of CPU per request; h11, used here
before, ~0.13 ms (its per-event state machine and header validation): more
than the rest of an exchange. A node is our own service and answers one way
(``Content-Length`` JSON, keep-alive), so this module speaks exactly that and
treats anything else as that node's failure (:class:`NodeHttpError`):

* the answer's head (status line and headers) is at most ``MAX_HEAD_BYTES``
  (h11's default limit), its body at most the caller's ``limit``, refused as
  soon as its ``Content-Length`` says so, before reading it;
* no ``Content-Length``, a bad one, two that differ, any ``Transfer-Encoding``
  (chunked), a status line that is not HTTP/1.x, a header line without a
  name, or bytes nobody asked for: ``invalid``; a connection closed or reset
  mid-answer: ``unreachable``; ``1xx`` interim answers are skipped, as h11 did;
* an answer with ``Connection: close``, from HTTP/1.0, or followed by extra
  bytes ends its connection; otherwise the connection is kept for the next
  request. A kept connection the node closed in the meantime is dropped when
  it closes, and one found closed before any answer byte is tried once again
  on a fresh connection (nothing was processed).

A request's ``timeout`` is a timer of the exchange (connecting included), and a
caller may also cancel it: either closes its connection, so no late answer is
ever read as the next request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast
from urllib.parse import urlsplit

from tkms.gateway.node_failure import FailureKind, NodeFailure

MAX_HEAD_BYTES = 16 * 1024  # status line + headers of one answer (h11's default bound)
_CRLF = b"\r\n"
_END_OF_HEAD = b"\r\n\r\n"
_VERSION = b"HTTP/1."


class NodeHttpError(Exception):
    """The exchange failed (connection, protocol, size); ``failure`` says how."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.failure = NodeFailure(kind, detail)


def _invalid(detail: str) -> NodeHttpError:
    return NodeHttpError(FailureKind.INVALID, detail)


class _Stale(Exception):
    """A reused connection was closed by the peer before any answer byte."""


class _Answer:
    """The answer being read on one connection: its head once parsed, then its body."""

    __slots__ = ("body_at", "keep", "length", "limit", "status", "waiter")

    def __init__(self, waiter: asyncio.Future[tuple[int, bytes]], limit: int) -> None:
        self.waiter = waiter
        self.limit = limit
        self.status = 0
        self.length = -1  # Content-Length, once the head is in
        self.body_at = 0  # where the body starts in the buffer
        self.keep = True


class _Conn(asyncio.Protocol):
    """One connection to a node: at most one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: _Answer | None = None
        self.received = 0  # bytes of the current answer so far
        self.closed = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None or answer.waiter.done():
            self.close()  # bytes nobody asked for: this connection is out of step
            return
        self.received += len(data)
        self.buffer += data
        try:
            result = self._parse(answer)
        except NodeHttpError as exc:
            self.close()
            answer.waiter.set_exception(exc)
            return
        if result is not None:
            answer.waiter.set_result(result)

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost says the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self.answer
        if answer is not None and not answer.waiter.done():
            if self.received == 0:
                answer.waiter.set_exception(_Stale())
            else:
                detail = "connection closed mid-answer" if exc is None else "connection reset"
                answer.waiter.set_exception(NodeHttpError(FailureKind.UNREACHABLE, detail))

    # --- the exchange ---

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def start(self, request: bytes, limit: int) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.answer is None
        if self.closed or self.transport.is_closing():
            raise _Stale
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.answer = _Answer(waiter, limit)
        self.received = 0
        self.transport.write(request)
        return waiter

    def expire(self) -> None:
        """The exchange's time is up: a ``timeout`` failure, and the connection closed."""
        answer = self.answer
        if answer is not None and not answer.waiter.done():
            answer.waiter.set_exception(NodeHttpError(FailureKind.TIMEOUT, "no answer in time"))
        self.close()

    def finish(self) -> bool:
        """After an exchange: whether the connection may carry the next one."""
        answer, self.answer = self.answer, None
        ok = (
            answer is not None
            and answer.waiter.done()
            and not answer.waiter.cancelled()
            and answer.waiter.exception() is None
            and answer.keep
            and not self.closed
        )
        self.buffer.clear()
        if not ok:
            self.close()
        return ok

    def _parse(self, answer: _Answer) -> tuple[int, bytes] | None:
        """(status, body) once the whole answer is in; None while more is to come."""
        buffer = self.buffer
        while answer.length < 0:
            if not buffer.startswith(_VERSION[: len(buffer)]):
                raise _invalid("not HTTP/1.1")  # no need to wait for a whole head of junk
            end = buffer.find(_END_OF_HEAD, 0, MAX_HEAD_BYTES + len(_END_OF_HEAD))
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _invalid("answer head too large")
                return None
            head = bytes(buffer[:end])
            if not self._head(answer, head):  # a 1xx interim answer: skip it
                del buffer[: end + len(_END_OF_HEAD)]
                continue
            answer.body_at = end + len(_END_OF_HEAD)
        have = len(buffer) - answer.body_at
        if have < answer.length:
            return None
        if have > answer.length:
            answer.keep = False  # more than one answer: not a connection to reuse
        body = bytes(buffer[answer.body_at : answer.body_at + answer.length])
        return answer.status, body

    @staticmethod
    def _head(answer: _Answer, head: bytes) -> bool:
        """Read a head into ``answer``; False for a 1xx interim answer."""
        lines = head.split(_CRLF)
        parts = lines[0].split(b" ", 2)
        version = parts[0]
        if (
            len(parts) < 2
            or version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise _invalid("not HTTP/1.1")
        status = int(parts[1])
        if status < 100:
            raise _invalid("not HTTP/1.1")
        length: int | None = None
        keep = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
                raise _invalid("not HTTP/1.1")
            name = name.lower()
            value = value.strip(b" \t")
            if name == b"content-length":
                if not value.isdigit() or len(value) > 12:
                    raise _invalid("bad Content-Length")
                if length is not None and int(value) != length:
                    raise _invalid("bad Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                raise _invalid("Transfer-Encoding (chunked) answer: Content-Length only")
            elif name == b"connection" and b"close" in [
                v.strip(b" \t") for v in value.lower().split(b",")
            ]:
                keep = False
        if 100 <= status < 200:
            if status == 101:
                raise _invalid("not HTTP/1.1")
            return False
        if length is None:
            if status in (204, 304):
                length = 0
            else:
                raise _invalid("answer without Content-Length")
        if length > answer.limit:
            raise _invalid("answer too large")
        answer.status, answer.length, answer.keep = status, length, keep
        return True


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
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Conn, self.host, self.port, ssl=self._ssl)
        except (OSError, ssl.SSLError) as exc:
            raise NodeHttpError(FailureKind.UNREACHABLE, f"connect: {type(exc).__name__}") from None
        return conn

    def _request(self, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"POST {target} HTTP/1.1", f"Host: {self.authority}"]
        lines.append(f"Content-Length: {len(body)}")
        lines += [f"{name}: {value}" for name, value in headers]
        head = "\r\n".join(lines)
        # Our own values, but a CR or LF in one would split the request: refuse it.
        breaks = len(lines) - 1
        if head.count("\n") != breaks or head.count("\r") != breaks or " " in target:
            raise ValueError("a request line or header holds a line break")
        return head.encode("ascii") + _END_OF_HEAD + body

    async def post(
        self,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        limit: int,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of ``POST target``; a body over ``limit`` bytes is an error.

        ``timeout`` (seconds, connecting included) ends it as a ``timeout`` failure: a
        timer on the loop, where ``asyncio.timeout`` adds an object, a reschedule and
        a cancellation per request (the caller's own cancellation works as well).
        """
        request = self._request(target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:  # the node closed it while idle (keep-alive timeout)
                continue
            try:
                # A close racing this request: nothing was processed, so it goes again.
                return await self._exchange(conn, request, limit, deadline)
            except _Stale:
                pass
        try:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect()
        except TimeoutError:
            raise NodeHttpError(FailureKind.TIMEOUT, "no answer in time") from None
        try:
            return await self._exchange(conn, request, limit, deadline)
        except _Stale:
            raise NodeHttpError(
                FailureKind.UNREACHABLE, "connection closed or reset before an answer"
            ) from None

    async def _exchange(
        self, conn: _Conn, request: bytes, limit: int, deadline: float | None
    ) -> tuple[int, bytes]:
        timer = None
        try:
            waiter = conn.start(request, limit)
            if deadline is not None:
                timer = asyncio.get_running_loop().call_at(deadline, conn.expire)
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            # Timed out, cancelled, failed or done: only a clean one is kept.
            if conn.finish() and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                conn.close()

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # let the transports run their close
