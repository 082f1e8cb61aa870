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


def _left(deadline: float) -> float:
    """What is left of the deadline, for the next blocking call (TimeoutError: none)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _stale(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server's FIN (its
    keep-alive timeout), or bytes nobody asked for. Either way it is not reused
    (httpcore's check before reuse, too); a close racing the request is Dropped."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poll = select.poll()  # not select(): a descriptor above 1024 is fine
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


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
            if not _stale(conn.sock):
                return conn, True
            conn.sock.close()
        try:
            sock = self._connect(deadline)
        except TimeoutError:
            raise TransportFailure("ConnectTimeout") from None
        except OSError as exc:  # ssl.SSLError (a certificate refused) is one
            raise TransportFailure(f"ConnectError ({type(exc).__name__})") from None
        return _Conn(sock, Http1()), False

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
            sock.settimeout(_left(deadline))
            sock.sendall(out)
            while (whole := answer.step()) is None:
                sock.settimeout(_left(deadline))
                answer.feed(sock.recv(READ_CHUNK))
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
