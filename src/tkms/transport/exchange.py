"""What the async and the blocking HTTP/1.1 transports share, apart from their I/O.

The base URL each talks to (:class:`Origin`) and their settings
(:class:`Transport`), the bytes of one request
(:func:`request_bytes`), the assembly of one answer out of h11's events
(:class:`AnswerReader`: the size bound is applied there, once), and the
failures both raise. transport/http11.py drives these over asyncio streams,
transport/http11_sync.py over a blocking socket.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode, urlsplit

import h11

C = TypeVar("C")
READ_CHUNK = 65536
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class TransportFailure(Exception):
    """The exchange failed; the message names how (an exception type, never data)."""


class Dropped(TransportFailure):
    """A kept-alive connection was closed by the server before any answer byte."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


class Origin:
    """Where a base URL's requests go: host, port, the Host header, a path prefix, TLS."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(base_url)
        # As httpx: a URL it cannot use fails each request, not the constructor.
        self.unusable = parts.scheme not in ("http", "https") or not parts.hostname
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()

    def target(self, path: str, params: dict[str, str]) -> str:
        return self.prefix + path + ("?" + urlencode(params) if params else "")

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
    ) -> None:
        self.origin = Origin(base_url, ssl_context)
        self.timeout = timeout
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
    http: h11.Connection,
    method: str,
    target: str,
    fields: list[tuple[str, str]],
    body: bytes | None,
) -> bytes:
    """One whole request, as one write (raises h11.LocalProtocolError on a bad field)."""
    out = http.send(h11.Request(method=method, target=target, headers=fields)) or b""
    if body:
        out += http.send(h11.Data(data=body)) or b""
    return out + (http.send(h11.EndOfMessage()) or b"")


def reusable(http: h11.Connection) -> bool:
    """Whether the connection may carry the next request; if so, ready for it."""
    if http.our_state is h11.DONE and http.their_state is h11.DONE:
        http.start_next_cycle()
        return True
    return False


class AnswerReader:
    """One answer out of h11's events: :meth:`step` until it returns one.

    The caller reads the socket when :meth:`step` returns None and hands the
    bytes to :meth:`feed`; ``received`` says whether any answer byte came
    (a kept connection that dies before one is :class:`Dropped`).
    """

    def __init__(self, http: h11.Connection, max_answer_bytes: int) -> None:
        self.http = http
        self.max_answer_bytes = max_answer_bytes
        self.received = 0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk and self.received == 0:
            raise ConnectionResetError  # closed before any answer byte
        self.received += len(chunk)
        self.http.receive_data(chunk)

    def step(self) -> Answer | None:
        """The answer once it is whole; None when h11 needs more bytes."""
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > self.max_answer_bytes:
                    raise TransportFailure(f"answer over {self.max_answer_bytes} bytes")
                self._chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Answer(self._status, self._headers, b"".join(self._chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise TransportFailure("RemoteProtocolError (closed mid-answer)")
            # an InformationalResponse (1xx): keep reading
