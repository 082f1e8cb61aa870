"""HTTP/1.1 on the client's side of one connection: a request's bytes, an answer's parts.

The transports' codec (transport/exchange.py drives it), in place of h11 since
issue 13: h11's events, state machine and per-header validation cost about
140 µs of CPU per exchange, a fifth of the SDK's overhead above its
cryptography, where this costs about 20 (bench/sdk_decrypt.py). It does what a
client of one origin needs and refuses the rest as :class:`ProtocolError`:

- a request: a token method, a printable target, token header names, values
  without CR, LF or NUL (no header can be smuggled into another), ASCII only;
- an answer: a ``HTTP/1.x`` status line, header lines (no obs-fold, names
  lower-cased), informational 1xx answers skipped (a 101 refused), the body
  framed by ``Transfer-Encoding: chunked`` (nothing else is a transfer coding
  we take), ``Content-Length`` (repeated only with one value; never with
  chunked), none for HEAD, 204 and 304, else the bytes up to the server's close;
  a head over :data:`MAX_HEAD_BYTES` (h11's bound) is refused;
- reuse: an HTTP/1.1 answer read whole by its framing, without
  ``Connection: close``, with no byte after it.
"""

from __future__ import annotations

import re

MAX_HEAD_BYTES = 16 * 1024  # a status line and headers, or a chunk's size line and trailers

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_STATUS = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ProtocolError(Exception):
    """Bytes that are not HTTP/1.1 as this client speaks it (either way)."""


class TooLong(ProtocolError):
    """A body longer than the bound the reader was given."""


class Http1:
    """One connection's HTTP/1.1 state: the request in flight and the bytes not yet parsed."""

    __slots__ = ("_buffer", "_chunk_left", "_eof", "_head_only", "_keep", "_parts", "_size", "done")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._head_only = False  # the request was a HEAD: no answer carries a body
        self._keep = True  # our request did not ask to close
        self.done = False  # the answer was read whole by its framing
        # A chunked body in progress: its chunks so far, their size, and the chunk being
        # read (None: a size line next; -1: the last chunk was read, the trailers next).
        self._parts: list[bytes] = []
        self._size = 0
        self._chunk_left: int | None = None

    def request(
        self, method: str, target: str, fields: list[tuple[str, str]], body: bytes | None
    ) -> bytes:
        """One whole request's bytes; :class:`ProtocolError` on a field that is not HTTP."""
        if self._buffer or self._eof:
            raise ProtocolError("the connection has bytes of an earlier answer")
        try:
            head = [_checked(_TOKEN, method) + b" " + _checked(_TARGET, target) + b" HTTP/1.1"]
            for name, value in fields:
                head.append(_checked(_TOKEN, name) + b": " + _checked(_VALUE, value))
                if name.lower() == "connection" and "close" in value.lower():
                    self._keep = False
        except UnicodeEncodeError:
            raise ProtocolError("a request field is not ASCII") from None
        self._head_only = method == "HEAD"
        self.done = False
        return b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")

    def receive(self, data: bytes) -> None:
        """Bytes read from the server; ``b""`` is its close."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def reusable(self) -> bool:
        """Whether the next request may go on this connection."""
        return self.done and self._keep and not self._buffer and not self._eof

    # --- the answer's parts, in order: each None until its bytes are all in ------------------

    def head(self) -> tuple[int, list[tuple[str, str]]] | None:
        """The final answer's (status, lower-cased header fields), past any 1xx."""
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("answer head too long")
                self._more()
                return None
            if end > MAX_HEAD_BYTES:
                raise ProtocolError("answer head too long")
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            del self._buffer[: end + 4]
            status = _STATUS.fullmatch(lines[0])
            if status is None:
                raise ProtocolError("not an HTTP/1.x status line")
            code = int(status[2])
            if code == 101 or code < 100:
                raise ProtocolError("the server switched protocols, or no status")
            if code >= 200:
                if status[1] != b"1":
                    self._keep = False  # HTTP/1.0: the server closes after it
                return code, [_field(line) for line in lines[1:]]
            # an informational answer (100 Continue, 103 Early Hints): the real one follows

    def framing(self, status: int, fields: list[tuple[str, str]]) -> int | None:
        """The body's length, or -1 (chunked), or None (up to the server's close)."""
        lengths = {v.strip() for k, v in fields if k == "content-length"}
        codings = [v.strip().lower() for k, v in fields if k == "transfer-encoding"]
        if any(k == "connection" and "close" in v.lower() for k, v in fields):
            self._keep = False
        if self._head_only or status in (204, 304):
            return 0
        if codings:
            if codings != ["chunked"] or lengths:
                raise ProtocolError("a transfer coding other than chunked alone")
            return -1
        if lengths:
            (length,) = lengths if len(lengths) == 1 else (None,)
            if length is None or not length.isdigit() or not length.isascii():
                raise ProtocolError("Content-Length is not one number")
            return int(length)
        self._keep = False
        return None

    def body(self, length: int | None, bound: int) -> bytes | None:
        """The whole body for this framing (see :meth:`framing`), within ``bound`` bytes."""
        if length is None:  # up to the close
            if len(self._buffer) > bound:
                raise TooLong
            if not self._eof:
                return None
            data = bytes(self._buffer)
            self._buffer.clear()
        elif length >= 0:
            if length > bound:
                raise TooLong
            if len(self._buffer) < length:
                self._more()
                return None
            data = bytes(self._buffer[:length])
            del self._buffer[:length]
        else:
            chunks = self._chunks(bound)
            if chunks is None:
                self._more()
                return None
            data = chunks
        self.done = True
        return data

    def _chunks(self, bound: int) -> bytes | None:
        """A whole chunked body, consumed chunk by chunk as its bytes come."""
        buffer = self._buffer
        while True:
            left = self._chunk_left
            if left is None:  # a chunk's size line
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise ProtocolError("chunk size line too long")
                    return None
                size_hex = bytes(buffer[:line_end]).split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size_hex):
                    raise ProtocolError("not a chunk size")
                left = int(size_hex, 16)
                self._size += left
                if self._size > bound:
                    raise TooLong
                del buffer[: line_end + 2]
                self._chunk_left = left if left else -1
            elif left < 0:  # after the last chunk: trailers (ignored) up to an empty line
                end = 0 if buffer[:2] == b"\r\n" else buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise ProtocolError("chunked trailers too long")
                    return None
                del buffer[: end + (2 if end == 0 else 4)]
                data, self._parts, self._size, self._chunk_left = b"".join(self._parts), [], 0, None
                return data
            else:  # a chunk's data, then its CRLF
                if len(buffer) < left + 2:
                    return None
                if buffer[left : left + 2] != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                self._parts.append(bytes(buffer[:left]))
                del buffer[: left + 2]
                self._chunk_left = None

    def _more(self) -> None:
        """None: more bytes are needed, unless the server closed (then, mid-answer)."""
        if self._eof:
            raise Truncated


class Truncated(ProtocolError):
    """The server closed the connection in the middle of an answer."""


def _checked(pattern: re.Pattern[bytes], text: str) -> bytes:
    raw = text.encode("ascii")
    if not pattern.fullmatch(raw):
        raise ProtocolError("a request field is not HTTP")
    return raw


def _field(line: bytes) -> tuple[str, str]:
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        raise ProtocolError("not a header line")  # obs-fold (a leading space) is one
    value = value.strip(b" \t")
    if not _VALUE.fullmatch(value):
        raise ProtocolError("a header value with a control character")
    return name.decode("ascii").lower(), value.decode("latin-1")
