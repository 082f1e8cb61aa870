"""What the async and the blocking HTTP/1.1 transports share, apart from their I/O.

The base URL each talks to (:class:`Origin`) and their settings
(:class:`Transport`), the bytes of one request
(:func:`request_bytes`), the assembly of one answer out of the HTTP/1.1 codec's
parts (:class:`AnswerReader`, on transport/http1.py: the size bound is applied
there, once), and the failures both raise. transport/http11.py drives these over asyncio streams,
transport/http11_sync.py over a blocking socket.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from tkms.transport.http1 import Http1, TooLong, Truncated

C = TypeVar("C")
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
    """The answer is larger than ``max_answer_bytes`` (by its Content-Length, or as read)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


class Origin:
    """Where a base URL's requests go: host, port, the Host header, a path prefix, TLS.

    Its path and query are kept: a request for path ``""`` goes to the base URL
    itself (a JSON-RPC endpoint, whose path or query may hold an API key: no
    failure of these transports quotes the URL)."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(base_url)
        # As httpx: a URL it cannot use fails each request, not the constructor.
        self.unusable = parts.scheme not in ("http", "https") or not parts.hostname
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.base_target = parts.path or "/"
        self.query = parts.query
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()

    def target(self, path: str, params: dict[str, str]) -> str:
        query = "&".join(q for q in (self.query, urlencode(params) if params else "") if q)
        return (self.prefix + path if path else self.base_target) + ("?" + query if query else "")

    def fields(self, headers: dict[str, str], body: bytes | None) -> list[tuple[str, str]]:
        fields = [("Host", self.authority), ("Accept", "*/*")]
        if body is not None:
            fields += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        return fields + list(headers.items())


class Transport(Generic[C]):
    """What both transports hold: one base URL, one deadline, one answer bound, and
    their idle connections (``C``: each transport's own)."""

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
        self.origin = Origin(base_url, ssl_context)
        self.timeout = timeout
        self.connect_timeout = connect_timeout  # within timeout; None: timeout alone
        self.max_answer_bytes = max_answer_bytes
        self._idle: list[C] = []  # list.pop and .append are atomic: threads may share it
        self._max_idle = max_idle  # kept connections at the most

    def _prepare(
        self, path: str, params: dict[str, str], headers: dict[str, str], body: bytes | None
    ) -> tuple[str, list[tuple[str, str]]]:
        """The request's target and header fields (TransportFailure: an unusable URL)."""
        if self.origin.unusable:
            raise TransportFailure("UnsupportedProtocol")
        return self.origin.target(path, params), self.origin.fields(headers, body)


def request_bytes(
    http: Http1,
    method: str,
    target: str,
    fields: list[tuple[str, str]],
    body: bytes | None,
) -> bytes:
    """One whole request, as one write (raises http1.ProtocolError on a bad field)."""
    return http.request(method, target, fields, body)


def reusable(http: Http1) -> bool:
    """Whether the connection may carry the next request."""
    return http.reusable()


class AnswerReader:
    """One answer off a connection: :meth:`step` until it returns one.

    The caller reads the socket when :meth:`step` returns None and hands the
    bytes to :meth:`feed`; ``received`` says whether any answer byte came
    (a kept connection that dies before one is :class:`Dropped`).
    """

    def __init__(self, http: Http1, max_answer_bytes: int) -> None:
        self.http = http
        self.max_answer_bytes = max_answer_bytes
        self.received = 0
        self._head: tuple[int, dict[str, str], int | None] | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk and self.received == 0:
            raise ConnectionResetError  # closed before any answer byte
        self.received += len(chunk)
        self.http.receive(chunk)

    def step(self) -> Answer | None:
        """The answer once it is whole; None when more bytes are needed."""
        try:
            if self._head is None:
                head = self.http.head()
                if head is None:
                    return None
                status, fields = head
                framing = self.http.framing(status, fields)
                self._head = status, dict(fields), framing
            status, headers, framing = self._head
            body = self.http.body(framing, self.max_answer_bytes)
        except TooLong:
            raise TooLarge(f"answer over {self.max_answer_bytes} bytes") from None
        except Truncated:
            raise TransportFailure("RemoteProtocolError (closed mid-answer)") from None
        return None if body is None else Answer(status, headers, body)
