"""A blocking HTTP/1.1 client transport over a socket, kept alive (the sync SDK's).

The blocking sibling of transport/http11.py, with its semantics: keep-alive
connections to one base URL, one request per connection at a time (threads
each take their own), at most ``max_idle`` kept; ``timeout`` seconds for the
whole exchange (connect, TLS handshake, send, answer: each blocking call gets
what is left of one deadline, so a server that trickles its answer byte by
byte is cut off too); an answer of at most ``max_answer_bytes``; https through
``ssl`` (the default context: certificates and host names checked), or a
context the caller gives; a kept connection the server has closed is not
reused, and one that dies before any answer byte fails with :class:`Dropped`,
a GET being sent again first; every other failure is :class:`TransportFailure`.

Why not httpx.Client: its models, httpcore's pool and its per-phase timeouts
cost several times this module's CPU per request (bench/sdk_transport.py).
The name lookup (``getaddrinfo``) is the one step no deadline bounds: the
resolver's own timeouts do, as with httpx.

A plain (not TLS) connection is kept non-blocking with one ``poll`` object of its
own: the stale check, then each wait for the answer, is that one ``poll`` with
what is left of the deadline, where ``settimeout`` before each send and receive
cost an ``ioctl`` and a ``poll`` each (four system calls an exchange, not seven;
docs/performance.md). A TLS connection, and a system without ``poll``, keep the
socket's own timeouts.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from dataclasses import dataclass

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
from tkms.transport.http1 import Http1, ProtocolError

__all__ = ["Answer", "Dropped", "Http11Sync", "TransportFailure"]


@dataclass
class _Conn:
    sock: socket.socket
    http: Http1
    # A plain socket's, non-blocking, registered for POLLIN; None: the socket's timeouts.
    poller: select.poll | None = None


def _left(deadline: float) -> float:
    """What is left of the deadline, for the next blocking call (TimeoutError: none)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _left_ms(deadline: float) -> float:
    """:func:`_left` in milliseconds, for ``poll`` (which rounds a fraction up)."""
    return _left(deadline) * 1000


def _stale(conn: _Conn) -> bool:
    """Whether an idle connection has something to read: the server's FIN (its
    keep-alive timeout), or bytes nobody asked for. Either way it is not reused
    (httpcore's check before reuse, too); a close racing the request is Dropped."""
    if conn.poller is not None:
        return bool(conn.poller.poll(0))
    sock = conn.sock
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poll = select.poll()  # not select(): a descriptor above 1024 is fine
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


def _send_polled(sock: socket.socket, data: bytes, deadline: float) -> None:
    """All of ``data`` on a non-blocking socket (a request fits its buffer: one ``send``)."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:  # the buffer is full: wait until it drains, or the deadline
            writable = select.poll()
            writable.register(sock, select.POLLOUT)
            if not writable.poll(_left_ms(deadline)):
                raise TimeoutError from None


def _recv_polled(sock: socket.socket, poller: select.poll, deadline: float) -> bytes:
    """The next bytes of a non-blocking socket (``b""``: the server's close)."""
    while True:
        if not poller.poll(_left_ms(deadline)):
            raise TimeoutError
        try:
            return sock.recv(READ_CHUNK)
        except BlockingIOError:  # woken with nothing to read after all: wait again
            continue


class Http11Sync(Transport[_Conn]):
    """Keep-alive HTTP/1.1 to one base URL; safe to share between threads."""

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
    ) -> Answer:
        target, fields = self._prepare(path, params, headers, body)
        deadline = time.monotonic() + self.timeout
        while True:
            conn, reused = self._take(deadline)
            try:
                return self._exchange(conn, reused, deadline, method, target, fields, body)
            except Dropped:
                if method != "GET":
                    raise  # it may have been processed: the caller decides
                # a read is safe to send again: on the next idle or a new one

    def _take(self, deadline: float) -> tuple[_Conn, bool]:
        while conn := self._pop():
            if not _stale(conn):
                return conn, True
            conn.sock.close()
        try:
            sock = self._connect(deadline)
        except TimeoutError:
            raise TransportFailure("ConnectTimeout") from None
        except OSError as exc:  # ssl.SSLError (a certificate refused) is one
            raise TransportFailure(f"ConnectError ({type(exc).__name__})") from None
        conn = _Conn(sock, Http1())
        if not isinstance(sock, ssl.SSLSocket) and hasattr(select, "poll"):
            sock.setblocking(False)
            conn.poller = select.poll()  # not select(): a descriptor above 1024 is fine
            conn.poller.register(sock, select.POLLIN)
        return conn, False

    def _connect(self, deadline: float) -> socket.socket:
        origin = self.origin
        error: OSError = ConnectionRefusedError()
        for family, kind, proto, _, address in socket.getaddrinfo(
            origin.host, origin.port, type=socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(_left(deadline))
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if origin.ssl is None:
                    return sock
                sock.settimeout(_left(deadline))  # the handshake, within the same deadline
                return origin.ssl.wrap_socket(sock, server_hostname=origin.host)
            except TimeoutError:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                error = exc  # the next address, if any (an IPv6 one, then an IPv4 one)
        raise error

    def _exchange(
        self,
        conn: _Conn,
        reused: bool,
        deadline: float,
        method: str,
        target: str,
        fields: list[tuple[str, str]],
        body: bytes | None,
    ) -> Answer:
        keep = False
        answer = AnswerReader(conn.http, self.max_answer_bytes)
        sock = conn.sock
        try:
            out = request_bytes(conn.http, method, target, fields, body)
            if conn.poller is None:
                sock.settimeout(_left(deadline))
                sock.sendall(out)
            else:
                _send_polled(sock, out, deadline)
            while (whole := answer.step()) is None:
                if conn.poller is None:
                    sock.settimeout(_left(deadline))
                    answer.feed(sock.recv(READ_CHUNK))
                else:
                    answer.feed(_recv_polled(sock, conn.poller, deadline))
            keep = reusable(conn.http)
            return whole
        except TimeoutError:
            raise TransportFailure("ReadTimeout") from None
        except ProtocolError:
            raise TransportFailure("RemoteProtocolError") from None
        except OSError as exc:  # ssl.SSLError is one
            if reused and answer.received == 0:
                raise Dropped(f"ReadError ({type(exc).__name__})") from None
            raise TransportFailure(f"ReadError ({type(exc).__name__})") from None
        finally:
            if keep:
                self._idle.append(conn)
                # Over the bound: close the surplus. Without a lock (threads racing
                # here may each append), so each trims after its own append.
                while len(self._idle) > self._max_idle and (extra := self._pop()):
                    extra.sock.close()
            else:
                sock.close()

    def _pop(self) -> _Conn | None:
        try:  # atomic, where a check of the length then a pop is not (another thread)
            return self._idle.pop()
        except IndexError:
            return None

    def close(self) -> None:
        while conn := self._pop():
            conn.sock.close()
