"""The fan-out's HTTP/1.1 client: transport/http1.py's codec on asyncio protocols, kept alive.

Why not a general library here: a decryption makes one request per node asked
(four), and each library layer is CPU the nodes need on a small machine.
httpx (httpcore, anyio) cost ~0.7 ms of CPU per request; h11, used here
before, ~0.13 ms (its per-event state machine and header validation): more
than the rest of an exchange. The wire rules (a request's fields, a status
line, header lines, 1xx answers, framing, the 16 KiB head bound, reuse) are
:mod:`tkms.transport.http1`'s, the SDK's codec; this module adds the gateway's
policy. A node is our own service and answers one way (``Content-Length``
JSON, keep-alive), so anything else is that node's failure
(:class:`NodeHttpError`), by kind:

* ``invalid``: what http1 refuses (junk, refused as soon as it cannot begin a
  status line; a bad status or header line; a 101; a bad or conflicting
  ``Content-Length``; a head over ``MAX_HEAD_BYTES``), and what it would take
  but a node never sends: a ``Transfer-Encoding`` (chunked) answer, one
  without ``Content-Length``, a body over the caller's ``limit`` (refused as
  soon as its length says so, before reading it), bytes nobody asked for;
* ``unreachable``: a connection closed or reset mid-answer; ``1xx`` interim
  answers are skipped, as h11 did;
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
from tkms.gateway.node_request import NodeRequest, host_line
from tkms.transport.http1 import (
    MAX_HEAD_BYTES,
    BadCoding,
    BadLength,
    HeadTooLong,
    Http1,
    ProtocolError,
    TooLong,
)

__all__ = ["MAX_HEAD_BYTES", "NodeConnections", "NodeHttpError"]


_CHUNKED = "Transfer-Encoding (chunked) answer: Content-Length only"


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
    """The answer being read on one connection: its reader, then its status and length."""

    __slots__ = ("http", "length", "limit", "status", "waiter")

    def __init__(self, waiter: asyncio.Future[tuple[int, bytes]], limit: int) -> None:
        self.waiter = waiter
        self.limit = limit
        self.http = Http1()  # this answer's bytes (see Http1: a fresh one per answer)
        self.status = 0
        self.length = -1  # Content-Length, once the head is in


class _Conn(asyncio.Protocol):
    """One connection to a node: at most one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
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
        answer.http.receive(data)
        try:
            result = _parse(answer)
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
        # http1 says whether the answer was read whole, asked no close and left no byte.
        ok = (
            answer is not None
            and answer.waiter.done()
            and not answer.waiter.cancelled()
            and answer.waiter.exception() is None
            and answer.http.reusable()
            and not self.closed
        )
        if not ok:
            self.close()
        return ok


def _parse(answer: _Answer) -> tuple[int, bytes] | None:
    """(status, body) once the whole answer is in; None while more is to come.

    http1 reads the bytes; what it refuses, and the framings it takes that a node
    never sends, are ``invalid`` here, each with its short detail."""
    http = answer.http
    try:
        if answer.length < 0:
            head = http.head()  # past any 1xx
            if head is None:
                return None
            status, fields = head
            length = http.framing(status, fields)
            if length is None:
                raise _invalid("answer without Content-Length")
            if length < 0:
                raise _invalid(_CHUNKED)
            answer.status, answer.length = status, length
        body = http.body(answer.length, answer.limit)  # refused from the length alone
    except TooLong:
        raise _invalid("answer too large") from None
    except HeadTooLong:
        raise _invalid("answer head too large") from None
    except BadCoding:
        raise _invalid(_CHUNKED) from None
    except BadLength:
        raise _invalid("bad Content-Length") from None
    except ProtocolError:
        raise _invalid("not HTTP/1.1") from None
    if body is None:
        return None
    return answer.status, body


class NodeConnections:
    """Keep-alive connections to one node; safe for concurrent requests (one per connection)."""

    def __init__(self, base_url: str, *, max_idle: int = 32) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("node URL must be http(s)://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc
        self._host = host_line(parts.netloc)
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

    async def post(
        self,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        limit: int,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of ``POST target``; a body over ``limit`` bytes is an error."""
        return await self.send(NodeRequest(target, headers, body), limit=limit, timeout=timeout)

    async def send(
        self, prepared: NodeRequest, *, limit: int, timeout: float | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of ``prepared`` sent to this node; as :meth:`post`.

        ``timeout`` (seconds, connecting included) ends it as a ``timeout`` failure: a
        timer on the loop, where ``asyncio.timeout`` adds an object, a reschedule and
        a cancellation per request (the caller's own cancellation works as well).
        """
        request = prepared.to(self._host)
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
